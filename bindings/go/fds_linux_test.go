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

func TestForgottenGroupsAreFreed(t *testing.T) {
	port := uniquePort()
	before := openFDs(t)
	for i := 0; i < 200; i++ {
		if _, err := multicast.Join("239.2.0.7", port, ""); err != nil {
			t.Fatal(err)
		}
	}
	if openFDs(t) < before+200 {
		t.Fatal("the groups should hold their sockets until collected")
	}
	deadline := time.Now().Add(10 * time.Second)
	for openFDs(t) > before && time.Now().Before(deadline) {
		runtime_GC()
		time.Sleep(10 * time.Millisecond)
	}
	if got := openFDs(t); got > before {
		t.Fatalf("%d descriptors still open after GC; want %d", got, before)
	}
}
