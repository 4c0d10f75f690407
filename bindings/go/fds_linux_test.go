//go:build linux

package multicast_test

import (
	"os"
	"testing"
	"time"

	multicast "github.com/libmulticast/libmulticast/bindings/go"
)

func openFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func fdTargets() []string {
	entries, _ := os.ReadDir("/proc/self/fd")
	var targets []string
	for _, e := range entries {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		targets = append(targets, e.Name()+"->"+target)
	}
	return targets
}

// descriptorsBeforeGroups counts the open descriptors once the library's process-wide
// ones exist (the upkeep thread's route socket and wake-up pair, made at the first join).
func descriptorsBeforeGroups(t *testing.T, port int) int {
	g, err := multicast.Join("239.2.0.6", port, "")
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	return openFDs(t)
}

func TestForgottenGroupsAreFreed(t *testing.T) {
	port := uniquePort()
	before := descriptorsBeforeGroups(t, port)
	for i := 0; i < 200; i++ {
		if _, err := multicast.Join("239.2.0.7", port, ""); err != nil {
			t.Fatal(err)
		}
	}
	if openFDs(t) < before+200 {
		t.Fatal("the groups should hold their sockets until collected")
	}
	collectedDownTo(t, before)
}

// A group that has waited holds a second descriptor (the duplicate Go's poller watches);
// a forgotten one must give back both.
func TestForgottenGroupsThatWaitedAreFreed(t *testing.T) {
	port := uniquePort()
	before := descriptorsBeforeGroups(t, port)
	groups := make([]*multicast.Group, 100)
	for i := range groups {
		g, err := multicast.Join("239.2.0.8", port, "")
		if err != nil {
			t.Fatal(err)
		}
		if m, err := g.Receive(time.Millisecond); m != nil || err != nil {
			t.Fatalf("Receive on a quiet group = %v, %v; want nil, nil", m, err)
		}
		groups[i] = g
	}
	if got := openFDs(t); got < before+200 {
		t.Fatalf("%d descriptors open; want at least %d (socket and poller's duplicate per group)", got, before+200)
	}
	groups = nil
	collectedDownTo(t, before)
}

// collectedDownTo collects garbage until no more than before descriptors are open (a
// loaded machine's while, up to 10 s), else fails naming those left.
func collectedDownTo(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for openFDs(t) > before && time.Now().Before(deadline) {
		runtime_GC()
		time.Sleep(10 * time.Millisecond)
	}
	if got := openFDs(t); got > before {
		t.Fatalf("%d descriptors still open after GC; want %d: %v", got, before, fdTargets())
	}
}
