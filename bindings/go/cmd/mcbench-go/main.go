// Command mcbench-go is the Go side of libmulticast's benchmarks (benches/run.py): the
// Go binding against Go's standard library used as scriptling's own module uses it
// (net.ListenMulticastUDP, loopback switched back on, WriteToUDP, ReadFromUDP with a
// read deadline per call). It refuses to run outside scripts/netns.
//
//	mcbench-go send lib|std SIZE SECONDS
//	mcbench-go recv lib|std SIZE SECONDS   (while benches' C `mcbench blast` saturates)
//	mcbench-go bsend lib SIZE SECONDS      SendBatch, 64 equal-sized messages per call
//	mcbench-go ping lib|std COUNT          round trips against benches' C `mcbench pong raw`
//	mcbench-go timeouts lib|std            receive timeouts on an empty group: how late each returns
//	mcbench-go waiters lib|std N GROUPS    N goroutines waiting on GROUPS groups: OS threads,
//	                                       memory per waiter, how long closing takes to wake them
//	mcbench-go cancel lib COUNT            ReceiveContext: how long after cancel() it returns
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	multicast "github.com/libmulticast/libmulticast/bindings/go"
)

const (
	group    = "239.77.0.1"
	sendPort = 47000
	recvPort = 47001
)

type endpoint interface {
	send([]byte) error
	receive(time.Duration) ([]byte, string, error)
	close()
}

type lib struct{ g *multicast.Group }

func (l lib) send(b []byte) error { return l.g.SendBytes(b) }
func (l lib) receive(t time.Duration) ([]byte, string, error) {
	m, err := l.g.Receive(t)
	if m == nil || err != nil {
		return nil, "", err
	}
	return m.Data, m.Source, nil
}
func (l lib) close() { l.g.Close() }

// std is what scriptling v0.20.1 does with Go's standard library.
type std struct {
	conn *net.UDPConn
	dest *net.UDPAddr
	buf  []byte
}

func (s *std) send(b []byte) error { _, err := s.conn.WriteToUDP(b, s.dest); return err }
func (s *std) receive(t time.Duration) ([]byte, string, error) {
	s.conn.SetReadDeadline(time.Now().Add(t))
	n, src, err := s.conn.ReadFromUDP(s.buf)
	if err != nil {
		return nil, "", err
	}
	data := make([]byte, n)
	copy(data, s.buf[:n])
	return data, src.String(), nil
}
func (s *std) close() { s.conn.Close() }

func open(impl string, port int) (endpoint, error) {
	iface := os.Getenv("MC_TEST_IFACE")
	if impl == "lib" {
		g, err := multicast.Join(group, port, iface)
		return lib{g}, err
	}
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, err
	}
	addr := &net.UDPAddr{IP: net.ParseIP(group), Port: port}
	conn, err := net.ListenMulticastUDP("udp4", ifi, addr)
	if err != nil {
		return nil, err
	}
	// ListenMulticastUDP turns loopback off; scriptling turns it back on (x/net/ipv4).
	raw, _ := conn.SyscallConn()
	raw.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_MULTICAST_LOOP, 1)
	})
	return &std{conn: conn, dest: addr, buf: make([]byte, 65536)}, nil
}

func main() {
	if os.Getenv("MC_NETNS") != "1" || len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage (inside scripts/netns): mcbench-go MODE lib|std ... (see the source's header)")
		os.Exit(2)
	}
	mode, impl := os.Args[1], os.Args[2]
	switch {
	case mode == "bsend" && len(os.Args) == 5:
		batchSend(os.Args[3], os.Args[4])
		return
	case mode == "ping" && len(os.Args) == 4:
		ping(impl, atoi(os.Args[3]))
		return
	case mode == "timeouts":
		timeouts(impl)
		return
	case mode == "waiters" && len(os.Args) == 5:
		waiters(impl, atoi(os.Args[3]), atoi(os.Args[4]))
		return
	case mode == "cancel" && len(os.Args) == 4:
		cancels(atoi(os.Args[3]))
		return
	case len(os.Args) != 5:
		fmt.Fprintln(os.Stderr, "mcbench-go: wrong number of arguments for", mode)
		os.Exit(2)
	}
	size, _ := strconv.Atoi(os.Args[3])
	seconds, _ := strconv.ParseFloat(os.Args[4], 64)
	port := sendPort
	if mode == "recv" {
		port = recvPort
	}
	ep, err := open(impl, port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcbench-go:", err)
		os.Exit(1)
	}
	defer ep.close()
	buf := make([]byte, size)
	count := 0
	var start time.Time
	if mode == "recv" {
		// Start the clock at the blaster's first datagram.
		if _, _, err := ep.receive(10 * time.Second); err != nil {
			fmt.Fprintln(os.Stderr, "mcbench-go: no traffic:", err)
			os.Exit(1)
		}
	}
	start = time.Now()
	end := start.Add(time.Duration(seconds * float64(time.Second)))
	for time.Now().Before(end) {
		for i := 0; i < 256; i++ {
			if mode == "send" {
				if ep.send(buf) == nil {
					count++
				}
			} else if data, _, err := ep.receive(time.Second); err == nil && data != nil {
				count++
			}
		}
	}
	elapsed := time.Since(start).Seconds()
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"mode": "go-" + mode, "impl": impl, "size": size, "messages": count,
		"seconds": elapsed, "rate": float64(count) / elapsed,
	})
}

// batchSend measures SendBatch on a GRO handle (it hears its own runs; see the README).
func batchSend(sizeArg, secondsArg string) {
	size, _ := strconv.Atoi(sizeArg)
	seconds, _ := strconv.ParseFloat(secondsArg, 64)
	g, err := multicast.JoinWithOptions(group, sendPort, multicast.JoinOptions{Interface: os.Getenv("MC_TEST_IFACE"), GRO: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcbench-go:", err)
		os.Exit(1)
	}
	defer g.Close()
	msgs := make([][]byte, 64)
	for i := range msgs {
		msgs[i] = make([]byte, size)
	}
	count := 0
	start := time.Now()
	end := start.Add(time.Duration(seconds * float64(time.Second)))
	for time.Now().Before(end) {
		for i := 0; i < 16; i++ {
			n, _ := g.SendBatch(msgs)
			count += n
		}
	}
	elapsed := time.Since(start).Seconds()
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"mode": "go-bsend", "impl": "lib", "size": size, "messages": count,
		"seconds": elapsed, "rate": float64(count) / elapsed,
	})
}
