package multicast_test

import (
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	multicast "github.com/libmulticast/libmulticast/bindings/go"
)

func joinWith(t *testing.T, group string, port int, opts multicast.JoinOptions) *multicast.Group {
	t.Helper()
	g, err := multicast.JoinWithOptions(group, port, opts)
	if err != nil {
		t.Fatalf("JoinWithOptions(%s, %+v): %v", group, opts, err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func TestJoinOptionsErrors(t *testing.T) {
	for _, opts := range []multicast.JoinOptions{{TTL: 256}, {TTL: -1}, {Interface: "mc0", InterfaceIndex: 1}} {
		if _, err := multicast.JoinWithOptions("239.3.1.2", uniquePort(), opts); !errors.Is(err, multicast.ErrInvalidArgument) {
			t.Errorf("%+v: %v, want ErrInvalidArgument", opts, err)
		}
	}
	if _, err := multicast.JoinWithOptions("239.3.1.2", uniquePort(), multicast.JoinOptions{InterfaceIndex: 999999}); !errors.Is(err, multicast.ErrInterface) {
		t.Errorf("unknown index: %v, want ErrInterface", err)
	}
}

func TestLoopbackOff(t *testing.T) {
	port := uniquePort()
	sender := joinWith(t, "239.3.1.3", port, multicast.JoinOptions{DisableLoopback: true})
	listener := joinWith(t, "239.3.1.3", port, multicast.JoinOptions{})
	if err := sender.Send("unheard"); err != nil {
		t.Fatal(err)
	}
	if msg, err := listener.Receive(300 * time.Millisecond); msg != nil || err != nil {
		t.Fatalf("listener heard a loopback-off send: %v, %v", msg, err)
	}
}

func TestReceiveBufferSize(t *testing.T) {
	g := joinWith(t, "239.3.1.4", uniquePort(), multicast.JoinOptions{ReceiveBufferSize: 4096})
	want := 4096
	if runtime.GOOS == "linux" {
		want = 8192 // Linux doubles the request for its bookkeeping
	}
	if size, err := g.ReceiveBufferSize(); err != nil || size != want {
		t.Fatalf("ReceiveBufferSize = %d, %v; want %d", size, err, want)
	}
}

func TestSendBatchWithGRO(t *testing.T) {
	port := uniquePort()
	sender := joinWith(t, "239.3.1.6", port, multicast.JoinOptions{GRO: true})
	receiver := joinWith(t, "239.3.1.6", port, multicast.JoinOptions{GRO: true, ReceiveBufferSize: 1 << 20})
	var msgs [][]byte
	for i := 0; i < 100; i++ {
		msgs = append(msgs, []byte(strconv.Itoa(1000+i))) // equal sizes: one GSO run per 64
	}
	msgs = append(msgs, []byte("odd one"), nil)
	if n, err := sender.SendBatch(msgs); err != nil || n != len(msgs) {
		t.Fatalf("SendBatch = %d, %v", n, err)
	}
	for i, want := range msgs {
		msg := receive(t, receiver)
		if string(msg.Data) != string(want) {
			t.Fatalf("datagram %d = %q, want %q", i, msg.Data, want)
		}
	}
	if _, err := sender.SendBatch([][]byte{make([]byte, multicast.MaxMessageSize+1)}); !errors.Is(err, multicast.ErrMessageTooLarge) {
		t.Fatalf("oversized batch: %v", err)
	}
}

func TestIPv6(t *testing.T) {
	port := uniquePort()
	g := joinWith(t, "ff05::1:11", port, multicast.JoinOptions{Interface: os.Getenv("MC_TEST_IFACE")})
	if err := g.Send("six"); err != nil {
		t.Fatal(err)
	}
	if msg := receive(t, g); string(msg.Data) != "six" || !strings.HasPrefix(msg.Source, "[fd00:203::") {
		t.Fatalf("got %q from %q", msg.Data, msg.Source)
	}
}

func TestSourceSpecific(t *testing.T) {
	port := uniquePort()
	onlyB := joinWith(t, "232.1.2.4", port, multicast.JoinOptions{Interface: os.Getenv("MC_TEST_IFACE"), Source: os.Getenv("MC_TEST_ADDR_B")})
	fromA := joinWith(t, "232.1.2.4", port, multicast.JoinOptions{Interface: os.Getenv("MC_TEST_ADDR")})
	fromB := joinWith(t, "232.1.2.4", port, multicast.JoinOptions{Interface: os.Getenv("MC_TEST_ADDR_B")})
	fromA.Send("a")
	fromB.Send("b")
	if msg := receive(t, onlyB); string(msg.Data) != "b" {
		t.Fatalf("source-specific group got %q", msg.Data)
	}
	if msg, err := onlyB.Receive(300 * time.Millisecond); msg != nil || err != nil {
		t.Fatalf("a's datagram got through: %v, %v", msg, err)
	}
}

func TestReceiveBatch(t *testing.T) {
	g := joinWith(t, "239.3.1.7", uniquePort(), multicast.JoinOptions{GRO: true})
	var msgs [][]byte
	for i := 0; i < 100; i++ {
		msgs = append(msgs, []byte(strconv.Itoa(1000+i)))
	}
	if n, err := g.SendBatch(msgs); err != nil || n != len(msgs) {
		t.Fatalf("SendBatch = %d, %v", n, err)
	}
	var got []string
	for len(got) < len(msgs) {
		batch, err := g.ReceiveBatch(5*time.Second, 16, 64)
		if err != nil || batch == nil {
			t.Fatalf("ReceiveBatch after %d: %v, %v", len(got), batch, err)
		}
		for _, m := range batch {
			got = append(got, string(m.Data))
		}
	}
	for i, want := range msgs {
		if got[i] != string(want) {
			t.Fatalf("datagram %d = %q, want %q", i, got[i], want)
		}
	}
	if batch, err := g.ReceiveBatch(100*time.Millisecond, 16, 0); batch != nil || err != nil {
		t.Fatalf("empty queue: %v, %v", batch, err)
	}
	if _, err := g.ReceiveBatch(0, 0, 0); !errors.Is(err, multicast.ErrInvalidArgument) {
		t.Fatalf("max 0: %v", err)
	}
	// Sizes whose product would wrap around, or would ask C for terabytes: refused
	// before any allocation, with a datagram queued that a wrapped buffer would overflow.
	if err := g.SendBytes(make([]byte, 2000)); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{huge(1<<62 + 4), huge(1 << 40), 65536, -1} {
		if batch, err := g.ReceiveBatch(time.Second, 4, size); batch != nil || !errors.Is(err, multicast.ErrInvalidArgument) {
			t.Fatalf("ReceiveBatch(size %d) = %v, %v; want ErrInvalidArgument", size, batch, err)
		}
	}
	if batch, err := g.ReceiveBatch(5*time.Second, 4, 65535); err != nil || len(batch) != 1 || len(batch[0].Data) != 2000 {
		t.Fatalf("the queued datagram after the refusals: %v, %v", batch, err)
	}
}

// A send budget refuses what is over it with ErrRateLimited and sends nothing.
func TestSendBudget(t *testing.T) {
	g := joinWith(t, "239.3.1.9", 9960, multicast.JoinOptions{MaxBytesPerSecond: 10, MaxDatagramsPerSecond: 100})
	if err := g.Send("eleven byte"); !errors.Is(err, multicast.ErrRateLimited) {
		t.Fatalf("Send over the byte budget: %v", err)
	}
	if err := g.Send("ten bytes!"); err != nil {
		t.Fatal(err)
	}
	msg, err := g.Receive(5 * time.Second)
	if err != nil || msg == nil || string(msg.Data) != "ten bytes!" {
		t.Fatalf("%v, %v", msg, err)
	}
}
