//go:build linux

package multicast_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	multicast "github.com/libmulticast/libmulticast/bindings/go"
)

// osThreads is how many OS threads this process has now.
func osThreads(t *testing.T) int {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(rest))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads: line in /proc/self/status")
	return 0
}

// parkedInReceive counts the goroutines parked inside a receive of the binding: waiting
// for their turn or in the runtime poller (not running, not in a system call).
func parkedInReceive() int {
	buf := make([]byte, 64<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, stack := range bytes.Split(buf, []byte("\n\n")) {
		header, _, _ := bytes.Cut(stack, []byte("\n"))
		parked := bytes.Contains(header, []byte("[select")) || bytes.Contains(header, []byte("[IO wait"))
		if parked && bytes.Contains(stack, []byte(".(*Group).await(")) {
			n++
		}
	}
	return n
}

// waitUntilParked waits (up to a minute, polling) until want goroutines are parked in a
// receive; a slow machine only makes this take longer.
func waitUntilParked(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		n := parkedInReceive()
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines parked in a receive after a minute; want %d", n, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// raiseFileLimit lets the process hold n descriptors (a group waiting in the poller
// holds two): the test needs root to raise the hard limit, and fails saying so.
func raiseFileLimit(t *testing.T, n uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	want := syscall.Rlimit{Cur: n, Max: max(lim.Max, n)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		t.Fatalf("this test holds %d descriptors; raising RLIMIT_NOFILE from %d/%d needs root "+
			"(CAP_SYS_RESOURCE): %v", n, lim.Cur, lim.Max, err)
	}
}

// waiter is one goroutine receiving without a time limit, and when it returned.
type waiter struct {
	group    int
	err      error
	returned time.Time
}

// startWaiters starts perGroup goroutines receiving on each group, reporting on the
// channel returned.
func startWaiters(groups []*multicast.Group, perGroup int) <-chan waiter {
	results := make(chan waiter, len(groups)*perGroup)
	for i, g := range groups {
		for j := 0; j < perGroup; j++ {
			go func() {
				msg, err := g.Receive(0)
				if msg != nil {
					err = fmt.Errorf("a datagram arrived on %s: %q", g, msg.Data)
				}
				results <- waiter{i, err, time.Now()}
			}()
		}
	}
	return results
}

// closeAll closes every group, each from a goroutine of its own, and returns when each
// Close was called.
func closeAll(groups []*multicast.Group) []time.Time {
	closedAt := make([]time.Time, len(groups))
	var closing sync.WaitGroup
	for i, g := range groups {
		closing.Add(1)
		go func() {
			defer closing.Done()
			closedAt[i] = time.Now()
			g.Close()
		}()
	}
	closing.Wait()
	return closedAt
}

// collect checks that each of the n waiters returned ErrClosed within a second of its
// group's Close.
func collect(t *testing.T, results <-chan waiter, closedAt []time.Time, n int) {
	t.Helper()
	slowest := time.Duration(0)
	for i := 0; i < n; i++ {
		var w waiter
		select {
		case w = <-results:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d waiters still waiting 10 s after Close", n-i, n)
		}
		if !errors.Is(w.err, multicast.ErrClosed) || !errors.Is(w.err, net.ErrClosed) {
			t.Fatalf("a waiter returned %v; want ErrClosed", w.err)
		}
		slowest = max(slowest, w.returned.Sub(closedAt[w.group]))
	}
	// Each waiter had no timeout of its own (Receive(0)): that every one returned (within
	// the 10 s bound above) shows Close woke it. How soon is the machine's, not asserted
	// (beside two CPU hogs under qemu-arm it was 1.02 s).
	t.Logf("slowest wake-up after its group's Close: %v", slowest)
}

func joinMany(t *testing.T, count int) []*multicast.Group {
	t.Helper()
	port := uniquePort()
	groups := make([]*multicast.Group, count)
	for i := range groups {
		addr := fmt.Sprintf("239.44.%d.%d", i/250, 1+i%250)
		g, err := multicast.Join(addr, port, "")
		if err != nil {
			t.Fatalf("Join(%s) #%d: %v", addr, i, err)
		}
		groups[i] = g
	}
	return groups
}

// waitAndClose starts perGroup waiters on each group and checks that, once all of them
// are parked, they hold no OS thread each, and that Close wakes each.
//
// The process's thread count is not bounded tightly: Go keeps every thread it made, and
// it makes one whenever a call into C outlasts a scheduler tick while other goroutines
// are ready, so the count is the most calls in flight at once while the waiters started
// (11 alone, 55 under -race on a busy CI machine). That every waiter is parked in the
// poller (waitUntilParked) is the property; the count is held only to a tenth of the
// waiters, which one thread per waiter could not meet. The figure itself is measured by
// `make bench` (rows "goroutines waiting").
func waitAndClose(t *testing.T, groups []*multicast.Group, perGroup []int) {
	t.Helper()
	var results []<-chan waiter
	n := 0
	for i, g := range groups {
		results = append(results, startWaiters([]*multicast.Group{g}, perGroup[i]))
		n += perGroup[i]
	}
	waitUntilParked(t, n)
	threads := osThreads(t)
	t.Logf("%d goroutines waiting on %d groups: %d OS threads", n, len(groups), threads)
	if threads > n/10 {
		t.Errorf("%d OS threads while %d goroutines wait; want at most %d, a tenth", threads, n, n/10)
	}
	closedAt := closeAll(groups)
	merged := make(chan waiter, n)
	for i, r := range results {
		for j := 0; j < perGroup[i]; j++ {
			w := <-r
			w.group = i
			merged <- w
		}
	}
	collect(t, merged, closedAt, n)
}

// More goroutines than Go's limit of 10,000 OS threads wait in receives at once: 10,000
// sharing 50 groups and 500 on a group each. Parked by the scheduler, they hold no
// thread, and Close wakes every one.
func TestWaitingReceivesHoldNoThreads(t *testing.T) {
	groups := joinMany(t, 550)
	perGroup := make([]int, len(groups))
	for i := range perGroup {
		perGroup[i] = 1
		if i < 50 {
			perGroup[i] = 200
		}
	}
	waitAndClose(t, groups, perGroup)
}

// As many groups as this machine's descriptors allow (a group waiting in the poller
// holds two), each with a goroutine waiting on it.
func TestWaitingOnThousandsOfGroups(t *testing.T) {
	raiseFileLimit(t, 2*9_000+1024)
	groups := joinMany(t, 9_000)
	perGroup := make([]int, len(groups))
	for i := range perGroup {
		perGroup[i] = 1
	}
	waitAndClose(t, groups, perGroup)
}
