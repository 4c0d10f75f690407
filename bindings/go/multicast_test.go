package multicast_test

import (
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	multicast "github.com/libmulticast/libmulticast/bindings/go"
)

// TestMain refuses to run outside the private network namespace of scripts/netns.
func TestMain(m *testing.M) {
	dev, err := os.ReadFile("/proc/self/net/dev")
	if err != nil && runtime.GOOS == "linux" {
		fmt.Fprintln(os.Stderr, "refusing to run: cannot read /proc/self/net/dev:", err)
		os.Exit(2)
	}
	// Elsewhere (Windows under wine, say) only MC_NETNS below says where we are.
	for _, line := range append(strings.Split(string(dev), "\n"), "", "")[2:] {
		name := strings.TrimSpace(strings.SplitN(line, ":", 2)[0])
		if name != "" && name != "lo" && !strings.HasPrefix(name, "mc") {
			fmt.Fprintf(os.Stderr, "refusing to run: interface %q visible; run inside scripts/netns\n", name)
			os.Exit(2)
		}
	}
	if os.Getenv("MC_NETNS") != "1" {
		fmt.Fprintln(os.Stderr, "refusing to run outside scripts/netns (MC_NETNS is not 1)")
		os.Exit(2)
	}
	os.Exit(m.Run())
}

var nextPort = 41000
var portMu sync.Mutex

func uniquePort() int {
	portMu.Lock()
	defer portMu.Unlock()
	nextPort++
	return nextPort
}

func join(t *testing.T, group string) *multicast.Group {
	t.Helper()
	g, err := multicast.Join(group, uniquePort(), "")
	if err != nil {
		t.Fatalf("Join(%s): %v", group, err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func receive(t *testing.T, g *multicast.Group) *multicast.Message {
	t.Helper()
	msg, err := g.Receive(5 * time.Second)
	if err != nil || msg == nil {
		t.Fatalf("Receive: %v, %v", msg, err)
	}
	return msg
}

func TestJoinErrors(t *testing.T) {
	cases := []struct {
		group, iface string
		port         int
		want         error
		message      string
	}{
		{"192.168.1.1", "", 9999, multicast.ErrNotMulticast, "address 192.168.1.1 is not a multicast address"},
		{"not-an-ip", "", 9999, multicast.ErrInvalidArgument, ""},
		{"", "", 9999, multicast.ErrInvalidArgument, ""},
		{"239.1.1.1", "", 0, multicast.ErrInvalidArgument, "port must be between 1 and 65535"},
		{"239.1.1.1", "", -1, multicast.ErrInvalidArgument, "port must be between 1 and 65535"},
		{"239.1.1.1", "", 65536, multicast.ErrInvalidArgument, "port must be between 1 and 65535"},
		{"239.1.1.1", "", huge(1<<32 + 9999), multicast.ErrInvalidArgument, "port must be between 1 and 65535"},
		{"239.1.1.1", "eth-nope", 9999, multicast.ErrInterface, "interface not found: eth-nope"},
		{"239.1.1.1", "10.9.9.9", 9999, multicast.ErrInterface, "interface not found: 10.9.9.9"},
		{"239.1.1.1", "mc0 ", 9999, multicast.ErrInterface, "interface not found: mc0 "},
		{" 239.1.1.1", "", 9999, multicast.ErrInvalidArgument, ""},
		{"239.1.1.1\n", "", 9999, multicast.ErrInvalidArgument, ""},
		{"[ff02::1%mc0", "", 9999, multicast.ErrInvalidArgument, `invalid multicast address: "[ff02::1%mc0" is not an IPv4 or IPv6 address literal`},
		{"239.1.1.1\x00x", "", 9999, multicast.ErrInvalidArgument, "group address or interface contains a NUL byte"},
		{"239.1.1.1", "mc0\x00", 9999, multicast.ErrInvalidArgument, "group address or interface contains a NUL byte"},
	}
	for _, c := range cases {
		g, err := multicast.Join(c.group, c.port, c.iface)
		if g != nil || !errors.Is(err, c.want) {
			t.Errorf("Join(%q, %d, %q) = %v, %v; want %v", c.group, c.port, c.iface, g, err, c.want)
			continue
		}
		if c.message != "" && err.Error() != c.message {
			t.Errorf("Join(%q, %d, %q) message %q; want %q", c.group, c.port, c.iface, err, c.message)
		}
		var e *multicast.Error
		if !errors.As(err, &e) || e.Message == "" {
			t.Errorf("error %v is not a *multicast.Error with a message", err)
		}
	}
}

// Go's own spellings of IPv6 groups.
func TestGoSpellings(t *testing.T) {
	for _, group := range []string{"[ff02::1:9]", "[ff02::1:9%mc0]", "[ff05::1:9]"} {
		g, err := multicast.Join(group, 9979, "")
		// Without the kernel's routes (the portable path, Windows) a link-scoped group
		// needs its interface named, and the error says so.
		if group == "[ff02::1:9]" && !multicast.SystemCapabilities().InterfaceEvents {
			if !errors.Is(err, multicast.ErrInterface) || !strings.Contains(err.Error(), "name the interface") {
				t.Fatalf("Join(%q) without routes: %v", group, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Join(%q): %v", group, err)
		}
		if err := g.Send("spelled"); err != nil {
			t.Fatal(err)
		}
		msg, err := g.Receive(5 * time.Second)
		if err != nil || msg == nil || string(msg.Data) != "spelled" {
			t.Fatalf("%s: %v, %v", group, msg, err)
		}
		g.Close()
	}
}

// An interface without IPv4 (mc1) joined and sent through by index, heard across the
// veth pair on mc0.
func TestInterfaceWithoutIPv4(t *testing.T) {
	quiet := multicast.JoinOptions{TTL: 1, DisableLoopback: true}
	quiet.Interface = "mc1"
	onMC1, err := multicast.JoinWithOptions("239.1.1.29", 9978, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer onMC1.Close()
	quiet.Interface = "mc0"
	onMC0, err := multicast.JoinWithOptions("239.1.1.29", 9978, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer onMC0.Close()
	if err := onMC1.Send("via mc1"); err != nil {
		t.Fatal(err)
	}
	msg, err := onMC0.Receive(5 * time.Second)
	if err != nil || msg == nil || string(msg.Data) != "via mc1" {
		t.Fatalf("on mc0: %v, %v", msg, err)
	}
}

func TestRoundTripAndProperties(t *testing.T) {
	g := join(t, "239.2.0.1")
	if g.GroupAddr() != "239.2.0.1" || g.LocalAddr() != fmt.Sprintf("239.2.0.1:%d", g.Port()) {
		t.Fatalf("properties: %q %d %q", g.GroupAddr(), g.Port(), g.LocalAddr())
	}
	if err := g.Send("Hello group!"); err != nil {
		t.Fatal(err)
	}
	msg := receive(t, g)
	want := fmt.Sprintf("%s:%d", os.Getenv("MC_TEST_ADDR"), g.Port())
	if string(msg.Data) != "Hello group!" || msg.Source != want {
		t.Fatalf("got %q from %q; want %q from %q", msg.Data, msg.Source, "Hello group!", want)
	}
}

func TestSendKinds(t *testing.T) {
	g := join(t, "239.2.0.2")
	binary := []byte{0, 1, 0, 255}
	type record struct {
		Service string `json:"service"`
		Port    int    `json:"port"`
	}
	sends := []struct {
		msg  any
		want string
	}{
		{binary, string(binary)},
		{"", ""},
		{map[string]any{"node": "worker-1", "action": "heartbeat", "html": "<&>"},
			`{"action":"heartbeat","html":"\u003c\u0026\u003e","node":"worker-1"}`},
		{record{"api", 8080}, `{"service":"api","port":8080}`},
		{42, "42"},
		{[]any{1.0, true, nil}, "[1,true,null]"},
	}
	for _, s := range sends {
		if err := g.Send(s.msg); err != nil {
			t.Fatalf("Send(%v): %v", s.msg, err)
		}
		if got := string(receive(t, g).Data); got != s.want {
			t.Errorf("Send(%v) delivered %q; want %q", s.msg, got, s.want)
		}
	}
	if err := g.Send(make(chan int)); !errors.Is(err, multicast.ErrInvalidJSON) {
		t.Errorf("Send(chan) = %v; want ErrInvalidJSON", err)
	}
	big := make([]byte, multicast.MaxMessageSize+1)
	if err := g.Send(big); !errors.Is(err, multicast.ErrMessageTooLarge) {
		t.Errorf("Send(too large) = %v; want ErrMessageTooLarge", err)
	}
	if err := g.Send(big[:multicast.MaxMessageSize]); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, g); len(got.Data) != multicast.MaxMessageSize {
		t.Errorf("largest message came back with %d bytes", len(got.Data))
	}
}

func TestReceiveTimeout(t *testing.T) {
	g := join(t, "239.2.0.3")
	start := time.Now()
	msg, err := g.Receive(100 * time.Millisecond)
	if msg != nil || err != nil || time.Since(start) < 100*time.Millisecond {
		t.Fatalf("Receive(100ms) = %v, %v after %v; want nil, nil after 100ms", msg, err, time.Since(start))
	}
}

func TestCloseDuringReceive(t *testing.T) {
	g := join(t, "239.2.0.4")
	done := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() {
			_, err := g.Receive(0) // no limit
			done <- err
		}()
	}
	time.Sleep(100 * time.Millisecond)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		select {
		case err := <-done:
			if !errors.Is(err, multicast.ErrClosed) {
				t.Errorf("blocked Receive returned %v; want ErrClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not wake a blocked Receive")
		}
	}
	if err := g.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := g.Send("x"); !errors.Is(err, multicast.ErrClosed) || err.Error() != "send failed: group is closed" {
		t.Errorf("Send after Close = %v", err)
	}
	if _, err := g.Receive(time.Second); !errors.Is(err, multicast.ErrClosed) || err.Error() != "receive failed: group is closed" {
		t.Errorf("Receive after Close = %v", err)
	}
}

func TestConcurrentSends(t *testing.T) {
	g := join(t, "239.2.0.5")
	// Few enough to fit the default receive buffer: this tests thread safety, not loss.
	const senders, each = 16, 5
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := g.Send(fmt.Sprintf("%d-%d", s, i)); err != nil {
					t.Error(err)
				}
			}
		}(s)
	}
	seen := map[string]bool{}
	for len(seen) < senders*each {
		msg, err := g.Receive(5 * time.Second)
		if err != nil || msg == nil {
			t.Fatalf("after %d messages: %v, %v", len(seen), msg, err)
		}
		seen[string(msg.Data)] = true
	}
	wg.Wait()
}

func TestInterfaceByNameAndAddress(t *testing.T) {
	port := uniquePort()
	byName, err := multicast.Join("239.2.0.6", port, os.Getenv("MC_TEST_IFACE"))
	if err != nil {
		t.Fatal(err)
	}
	defer byName.Close()
	byAddr, err := multicast.Join("239.2.0.6", port, os.Getenv("MC_TEST_ADDR"))
	if err != nil {
		t.Fatal(err)
	}
	defer byAddr.Close()
	if err := byName.Send("x"); err != nil {
		t.Fatal(err)
	}
	receive(t, byAddr)
}

func TestStatusNames(t *testing.T) {
	if multicast.StatusClosed.String() != "MC_ERR_CLOSED" || multicast.Status(42).String() != "MC_UNKNOWN_STATUS" {
		t.Fatal("status names")
	}
}

// The linked library's version is the crate's (in the repository: Cargo.toml), or, from a
// module cache, the one of the header the released module carries beside its libraries.
func TestVersionMatchesCargo(t *testing.T) {
	source, pattern := "../../Cargo.toml", `(?m)^version = "(.*)"`
	if _, err := os.Stat(source); err != nil {
		source, pattern = "internal/prebuilt/include/multicast.h", `(?m)^#define MC_VERSION "(.*)"`
	}
	text, err := os.ReadFile(source)
	if err != nil {
		t.Fatalf("neither the repository's Cargo.toml nor the released module's header: %v", err)
	}
	want := regexp.MustCompile(pattern).FindSubmatch(text)
	if want == nil || multicast.Version() != string(want[1]) {
		t.Fatalf("Version() = %q; %s has %q", multicast.Version(), source, want)
	}
}

// huge is v as an int, or int's largest where int has 32 bits: the values past what C's
// int32_t and size arithmetic take (a port that would wrap to a valid one, a size whose
// product wraps) exist only on 64-bit systems; on 32-bit ones the largest int stands in.
func huge(v uint64) int {
	if v > math.MaxInt {
		return math.MaxInt
	}
	return int(v)
}
