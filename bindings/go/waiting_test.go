package multicast_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	multicast "github.com/libmulticast/libmulticast/bindings/go"
)

// A cancelled context ends a waiting ReceiveContext with context.Canceled, and a
// context's deadline with context.DeadlineExceeded (not before it).
func TestReceiveContextEnds(t *testing.T) {
	g := join(t, "239.2.1.1")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		msg, err := g.ReceiveContext(ctx)
		if msg != nil {
			err = fmt.Errorf("a datagram arrived: %q", msg.Data)
		}
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled ReceiveContext returned %v; want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled ReceiveContext was still waiting 5 s later")
	}

	// start before the context: its deadline is then at least 50 ms after start, however
	// long this goroutine waits between the two calls on a busy machine (a run under
	// wine beside two CPU-bound processes measured 49.3 ms from a start taken after).
	start := time.Now()
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	msg, err := g.ReceiveContext(ctx)
	if msg != nil || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("ReceiveContext(50 ms) = %v, %v after %v", msg, err, time.Since(start))
	}
	if msg, err := g.ReceiveContext(ctx); msg != nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ReceiveContext(expired) = %v, %v", msg, err)
	}

	// A datagram queued is delivered whatever the context, unless it is done already.
	g.Send("queued")
	if msg := receiveContext(t, g, context.Background()); string(msg.Data) != "queued" {
		t.Fatalf("got %q", msg.Data)
	}
}

func receiveContext(t *testing.T, g *multicast.Group, ctx context.Context) *multicast.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	msg, err := g.ReceiveContext(ctx)
	if err != nil || msg == nil {
		t.Fatalf("ReceiveContext: %v, %v", msg, err)
	}
	return msg
}

// Receives cancelled at every moment lose no datagram: each one sent is either returned
// by a ReceiveContext or still queued for the next receive.
func TestReceiveContextLosesNoDatagram(t *testing.T) {
	const count = 2000
	port := uniquePort()
	g := joinWith(t, "239.2.1.2", port, multicast.JoinOptions{ReceiveBufferSize: 4 << 20})
	sender := joinWith(t, "239.2.1.2", port, multicast.JoinOptions{DisableLoopback: false})
	var received sync.Map
	stop := make(chan struct{})
	var receiving sync.WaitGroup
	for r := 0; r < 4; r++ {
		receiving.Add(1)
		go func() {
			defer receiving.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// Cancelled after 0 to ~300 us: before, during and after the wait.
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%7)*50*time.Microsecond)
				msg, err := g.ReceiveContext(ctx)
				cancel()
				switch {
				case msg != nil:
					if _, dup := received.LoadOrStore(string(msg.Data), true); dup {
						t.Errorf("%q received twice", msg.Data)
					}
				case !errors.Is(err, context.DeadlineExceeded):
					t.Errorf("ReceiveContext: %v", err)
					return
				}
			}
		}()
	}
	for i := 0; i < count; i++ {
		if err := sender.Send(fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	receiving.Wait()
	for {
		msg, err := g.Receive(200 * time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if msg == nil {
			break
		}
		received.Store(string(msg.Data), true)
	}
	for i := 0; i < count; i++ {
		// The sender hears its own sends too; only g's receipts are counted here.
		if _, ok := received.Load(fmt.Sprint(i)); !ok {
			t.Fatalf("datagram %d was lost", i)
		}
	}
}

// Goroutines waiting on one group each keep their own timeout: a short one is not held
// up behind a long one waiting in the poller. The long one waits two minutes (a datagram
// ends it), so a short one held up behind it is told from a slow machine by a minute.
func TestConcurrentReceivesKeepTheirOwnTimeouts(t *testing.T) {
	g := join(t, "239.2.1.3")
	long := make(chan error, 1)
	go func() {
		msg, err := g.Receive(2 * time.Minute)
		if msg == nil && err == nil {
			err = errors.New("timed out")
		}
		long <- err
	}()
	time.Sleep(50 * time.Millisecond)
	for _, timeout := range []time.Duration{20 * time.Millisecond, 100 * time.Millisecond} {
		start := time.Now()
		msg, err := g.Receive(timeout)
		elapsed := time.Since(start)
		if msg != nil || err != nil || elapsed < timeout || elapsed > time.Minute {
			t.Fatalf("Receive(%v) beside a 2 min Receive = %v, %v after %v", timeout, msg, err, elapsed)
		}
	}
	g.Send("for the long one")
	if err := <-long; err != nil {
		t.Fatalf("the 2 min Receive: %v", err)
	}
}

// A readable socket that held only forgeries goes back to waiting: the receive ends at
// its timeout (not at the first forgery) and the forgeries are counted.
func TestForgeriesDoNotEndAWait(t *testing.T) {
	key, _ := multicast.GenerateKey()
	port := uniquePort()
	member := joinKeyed(t, port, key, 1)
	forger := join2(t, "239.4.7.1", port)
	stop := make(chan struct{})
	forging := make(chan struct{})
	go func() {
		defer close(forging)
		for {
			select {
			case <-stop:
				return
			default:
				forger.Send("forged")
				time.Sleep(time.Millisecond)
			}
		}
	}()
	start := time.Now()
	msg, err := member.Receive(200 * time.Millisecond)
	close(stop)
	<-forging
	if msg != nil || err != nil || time.Since(start) < 200*time.Millisecond {
		t.Fatalf("Receive(200 ms) under forgeries = %v, %v after %v", msg, err, time.Since(start))
	}
	counts, _ := member.AuthCounters()
	if counts.Unauthenticated == 0 {
		t.Fatal("no forgery was read and counted")
	}
}

func join2(t *testing.T, group string, port int) *multicast.Group {
	t.Helper()
	g, err := multicast.Join(group, port, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// ReceiveBatch and a GRO group wait the same way, and take runs whole.
func TestBatchAndGROWait(t *testing.T) {
	port := uniquePort()
	g := joinWith(t, "239.2.1.4", port, multicast.JoinOptions{GRO: true})
	go func() {
		time.Sleep(50 * time.Millisecond)
		g.SendBatch([][]byte{[]byte("aaaa"), []byte("bbbb"), []byte("cccc")})
	}()
	var got []string
	for len(got) < 3 {
		msgs, err := g.ReceiveBatch(5*time.Second, 8, 0)
		if err != nil || msgs == nil {
			t.Fatalf("ReceiveBatch after %d: %v, %v", len(got), msgs, err)
		}
		for _, m := range msgs {
			got = append(got, string(m.Data))
		}
	}
	if fmt.Sprint(got) != "[aaaa bbbb cccc]" {
		t.Fatalf("got %v", got)
	}
	start := time.Now()
	if msgs, err := g.ReceiveBatch(50*time.Millisecond, 8, 0); msgs != nil || err != nil || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("ReceiveBatch(50 ms) = %v, %v after %v", msgs, err, time.Since(start))
	}
}

func TestPacketConn(t *testing.T) {
	g := join(t, "239.2.1.5")
	var c net.PacketConn = g.PacketConn()
	local, ok := c.LocalAddr().(*net.UDPAddr)
	if !ok || local.String() != g.LocalAddr() {
		t.Fatalf("LocalAddr %v; want %s", c.LocalAddr(), g.LocalAddr())
	}
	if n, err := c.WriteTo([]byte("through PacketConn"), local); n != 18 || err != nil {
		t.Fatalf("WriteTo = %d, %v", n, err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65535)
	n, from, err := c.ReadFrom(buf)
	want := fmt.Sprintf("%s:%d", os.Getenv("MC_TEST_ADDR"), g.Port())
	if err != nil || string(buf[:n]) != "through PacketConn" || from.String() != want {
		t.Fatalf("ReadFrom = %q from %v, %v; want from %s", buf[:n], from, err, want)
	}
	if _, isUDP := from.(*net.UDPAddr); !isUDP {
		t.Fatalf("source is a %T; want *net.UDPAddr", from)
	}

	// A short buffer gets the datagram cut, as net.UDPConn gives it; the rest is gone.
	c.WriteTo([]byte("0123456789"), local)
	short := make([]byte, 4)
	if n, _, err := c.ReadFrom(short); n != 4 || err != nil || string(short) != "0123" {
		t.Fatalf("ReadFrom(4 bytes) = %d %q, %v", n, short, err)
	}

	// Any destination but the group is refused.
	for _, to := range []net.Addr{
		&net.UDPAddr{IP: net.ParseIP("239.2.1.6"), Port: g.Port()},
		&net.UDPAddr{IP: local.IP, Port: g.Port() + 1},
		&net.UDPAddr{IP: net.ParseIP("10.203.0.2"), Port: g.Port()},
		nil,
	} {
		if n, err := c.WriteTo([]byte("x"), to); n != 0 || err == nil {
			t.Errorf("WriteTo(%v) = %d, %v; want an error", to, n, err)
		}
	}

	// Deadlines: a timeout is a net.Error and os.ErrDeadlineExceeded.
	start := time.Now() // before the deadline is set, as in TestReceiveContextEnds
	c.SetReadDeadline(start.Add(30 * time.Millisecond))
	_, _, err = c.ReadFrom(buf)
	var netErr net.Error
	if !errors.As(err, &netErr) || !netErr.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) ||
		time.Since(start) < 30*time.Millisecond {
		t.Fatalf("ReadFrom past its deadline = %v after %v", err, time.Since(start))
	}
	if _, _, err := c.ReadFrom(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadFrom with the deadline passed = %v", err)
	}
	c.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := c.WriteTo([]byte("late"), local); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("WriteTo past its deadline = %v", err)
	}
	c.SetDeadline(time.Time{})
	if _, err := c.WriteTo([]byte("on time"), local); err != nil {
		t.Fatal(err)
	}
	if n, _, err := c.ReadFrom(buf); err != nil || string(buf[:n]) != "on time" {
		t.Fatalf("ReadFrom without deadline = %q, %v", buf[:n], err)
	}

	// Close ends a waiting read; errors after it match net.ErrClosed.
	done := make(chan error, 1)
	go func() {
		_, _, err := c.ReadFrom(buf)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) || !errors.Is(err, multicast.ErrClosed) {
			t.Fatalf("ReadFrom during Close = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a waiting ReadFrom")
	}
	if _, err := c.WriteTo([]byte("x"), local); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("WriteTo after Close = %v", err)
	}
}

// A read deadline moved while a read waits applies to that read, as on net.UDPConn:
// moved into the past it ends the read; moved later it lets the read wait longer.
func TestPacketConnMovingDeadline(t *testing.T) {
	g := join(t, "239.2.1.7")
	c := g.PacketConn()
	buf := make([]byte, 100)
	read := func() chan error {
		done := make(chan error, 1)
		go func() {
			_, _, err := c.ReadFrom(buf)
			done <- err
		}()
		return done
	}

	done := read()
	time.Sleep(50 * time.Millisecond)
	c.SetReadDeadline(time.Now())
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read ended by a deadline set in the past: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a deadline set while a read waited did not end it")
	}

	start := time.Now()
	c.SetReadDeadline(start.Add(50 * time.Millisecond))
	done = read()
	time.Sleep(20 * time.Millisecond)
	c.SetReadDeadline(start.Add(300 * time.Millisecond))
	err := <-done
	if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("read with its deadline moved to 300 ms ended after %v: %v", time.Since(start), err)
	}
}

// The view is a net.Conn connected to the group too, as a *net.UDPConn is both.
func TestPacketConnIsAConnToTheGroup(t *testing.T) {
	g := join(t, "239.2.1.9")
	c, ok := g.PacketConn().(net.Conn)
	if !ok {
		t.Fatal("the PacketConn view is not a net.Conn")
	}
	if c.RemoteAddr().String() != g.LocalAddr() {
		t.Fatalf("RemoteAddr %v; want the group %s", c.RemoteAddr(), g.LocalAddr())
	}
	if n, err := c.Write([]byte("through Write")); n != 13 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "through Write" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
}

// An authentic datagram queued behind more forgeries than one attempt judges (64) is
// received without another datagram arriving: Go's poller reports a descriptor once
// per arrival, so a wait after an attempt that left datagrams queued would not end.
func TestAuthenticBehindManyForgeries(t *testing.T) {
	key, _ := multicast.GenerateKey()
	port := uniquePort()
	member, err := multicast.JoinWithOptions("239.4.7.1", port,
		multicast.JoinOptions{Key: key, KeyID: 1, ReceiveBufferSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	sender := joinKeyed(t, port, key, 1)
	forger := join2(t, "239.4.7.1", port)
	const forgeries = 400
	for i := 0; i < forgeries; i++ {
		if err := forger.Send("forged"); err != nil {
			t.Fatal(err)
		}
	}
	if err := sender.Send("authentic"); err != nil {
		t.Fatal(err)
	}
	msg, err := member.Receive(10 * time.Second)
	if err != nil || msg == nil || string(msg.Data) != "authentic" {
		t.Fatalf("Receive behind %d forgeries = %v, %v", forgeries, msg, err)
	}
	counts, _ := member.AuthCounters()
	if counts.Unauthenticated != forgeries {
		t.Fatalf("%d forgeries counted, want %d (the kernel dropped some?)", counts.Unauthenticated, forgeries)
	}
}
