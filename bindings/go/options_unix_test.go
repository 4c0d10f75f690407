//go:build unix

package multicast_test

import (
	"errors"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	multicast "github.com/libmulticast/libmulticast/bindings/go"
)

// Checks that read the socket through Unix system calls (getsockopt, select).

func TestJoinOptionsTTLAndIndex(t *testing.T) {
	iface, err := net.InterfaceByName(os.Getenv("MC_TEST_IFACE"))
	if err != nil {
		t.Fatal(err)
	}
	port := uniquePort()
	g := joinWith(t, "239.3.1.1", port, multicast.JoinOptions{InterfaceIndex: iface.Index, TTL: 16})
	fd, err := g.Fd()
	if err != nil {
		t.Fatal(err)
	}
	if ttl, err := syscall.GetsockoptInt(fd, syscall.IPPROTO_IP, syscall.IP_MULTICAST_TTL); err != nil || ttl != 16 {
		t.Fatalf("IP_MULTICAST_TTL = %d, %v; want 16", ttl, err)
	}
	if err := g.Send("x"); err != nil {
		t.Fatal(err)
	}
	if msg := receive(t, g); msg.Source != os.Getenv("MC_TEST_ADDR")+":"+strconv.Itoa(port) {
		t.Fatalf("source %q", msg.Source)
	}
}

// An event loop waits on Fd, then drains with ReceiveNow.
func TestFdReadinessAndReceiveNow(t *testing.T) {
	g := join(t, "239.3.1.5")
	fd, err := g.Fd()
	if err != nil {
		t.Fatal(err)
	}
	readable := func(wait time.Duration) bool {
		deadline := time.Now().Add(wait)
		for {
			var set syscall.FdSet
			set.Bits[fd/64] |= 1 << (uint(fd) % 64)
			tv := syscall.NsecToTimeval(max(time.Until(deadline), 0).Nanoseconds())
			n, err := syscall.Select(fd+1, &set, nil, nil, &tv)
			// The Go runtime's preemption signals interrupt select: wait out the rest.
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			return n == 1
		}
	}
	if readable(0) {
		t.Fatal("readable before any send")
	}
	g.Send("a")
	g.Send("b")
	if !readable(5 * time.Second) {
		t.Fatal("not readable after sends")
	}
	var got []string
	for {
		msg, err := g.ReceiveNow()
		if err != nil {
			t.Fatal(err)
		}
		if msg == nil {
			break
		}
		got = append(got, string(msg.Data))
	}
	if len(got) != 2 || got[0] != "a" || got[1] != "b" || readable(0) {
		t.Fatalf("drained %q", got)
	}
	g.Close()
	if _, err := g.Fd(); !errors.Is(err, multicast.ErrClosed) {
		t.Fatalf("Fd after Close: %v", err)
	}
}
