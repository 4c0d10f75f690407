//go:build linux

package multicast_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	multicast "github.com/libmulticast/libmulticast/bindings/go"
)

func ip(t *testing.T, args string) {
	t.Helper()
	if out, err := exec.Command("ip", strings.Fields(args)...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", args, err, out)
	}
}

func makeLink(t *testing.T, name, addr string) {
	t.Helper()
	ip(t, "link add "+name+" type veth peer name "+name+"p")
	ip(t, "addr add "+addr+"/24 dev "+name)
	ip(t, "link set "+name+" up")
	ip(t, "link set "+name+"p up")
}

// waitMembership polls Membership (the library updates it from its own thread) until
// want holds; it fails after 10 s.
func waitMembership(t *testing.T, g *multicast.Group, want func(multicast.MembershipStatus, uint64) bool) {
	t.Helper()
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(5 * time.Millisecond) {
		status, rejoins, err := g.Membership()
		if err != nil {
			t.Fatal(err)
		}
		if want(status, rejoins) {
			return
		}
	}
	status, rejoins, _ := g.Membership()
	t.Fatalf("membership stayed %v with %d rejoins", status, rejoins)
}

// An interface deleted and created again under the same name: the group joins again
// by itself and hears the group; one with NoRejoin stays deaf.
func TestRejoinAfterInterfaceIsCreatedAgain(t *testing.T) {
	const group, port = "239.215.0.1", 9970
	makeLink(t, "mcg0", "10.215.0.1")
	listener, err := multicast.Join(group, port, "mcg0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	deaf, err := multicast.JoinWithOptions(group, port, multicast.JoinOptions{Interface: "mcg0", NoRejoin: true})
	if err != nil {
		t.Fatal(err)
	}
	defer deaf.Close()

	ip(t, "link del mcg0")
	waitMembership(t, listener, func(s multicast.MembershipStatus, _ uint64) bool { return s == multicast.InterfaceGone })
	makeLink(t, "mcg0", "10.215.0.1")
	defer ip(t, "link del mcg0")
	waitMembership(t, listener, func(s multicast.MembershipStatus, n uint64) bool {
		return s == multicast.Joined && n == 1
	})

	sender, err := multicast.Join(group, port, "mcg0")
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	if err := sender.Send("after"); err != nil {
		t.Fatal(err)
	}
	msg, err := listener.Receive(10 * time.Second)
	if err != nil || msg == nil || string(msg.Data) != "after" {
		t.Fatalf("listener: %v, %v", msg, err)
	}
	if msg, _ := deaf.Receive(500 * time.Millisecond); msg != nil {
		t.Fatalf("the NoRejoin handle heard %q", msg.Data)
	}
	if status, rejoins, _ := deaf.Membership(); status != multicast.InterfaceGone || rejoins != 0 {
		t.Fatalf("NoRejoin handle: %v, %d rejoins", status, rejoins)
	}
}

func TestReannounceOption(t *testing.T) {
	g, err := multicast.JoinWithOptions("239.215.0.2", 9971, multicast.JoinOptions{Reannounce: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	_, err = multicast.JoinWithOptions("239.215.0.2", 9971, multicast.JoinOptions{Reannounce: time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "at least 1 second") {
		t.Fatalf("Reannounce 1 ms: %v", err)
	}
	if _, _, err := g.Membership(); err == nil || !strings.Contains(err.Error(), "group is closed") {
		t.Fatalf("Membership after Close: %v", err)
	}
}

// On Linux the linked library has every capability.
func TestSystemCapabilities(t *testing.T) {
	all := multicast.Capabilities{DropCount: true, PacketInfo: true, GRO: true, GSO: true,
		BatchSyscalls: true, InterfaceEvents: true}
	if got := multicast.SystemCapabilities(); got != all {
		t.Fatalf("SystemCapabilities() = %+v, want all on Linux", got)
	}
}
