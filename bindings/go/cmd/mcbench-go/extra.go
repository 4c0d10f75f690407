package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	multicast "github.com/libmulticast/libmulticast/bindings/go"
)

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fail(err)
	}
	return n
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mcbench-go:", err)
	os.Exit(1)
}

func emit(v map[string]any) { json.NewEncoder(os.Stdout).Encode(v) }

// ping measures round trips against `mcbench pong raw`, which answers "P<n>" with
// "Q<n>" on the group's port 47002; both ends hear their own sends and skip them.
func ping(impl string, count int) {
	ep, err := open(impl, sendPort+2)
	if err != nil {
		fail(err)
	}
	defer ep.close()
	rtt := make([]float64, count)
	lost := 0
	for i := range rtt {
		want := fmt.Sprintf("Q%d", i)
		start := time.Now()
		ep.send([]byte(fmt.Sprintf("P%d", i)))
		for {
			data, _, err := ep.receive(time.Second)
			if err != nil || data == nil {
				lost++
				rtt[i] = 1
				break
			}
			if string(data) == want {
				rtt[i] = time.Since(start).Seconds()
				break
			}
		}
	}
	ep.send([]byte("X"))
	sort.Float64s(rtt)
	emit(map[string]any{"mode": "go-ping", "impl": impl, "count": count, "lost": lost,
		"p50_us": rtt[count/2] * 1e6, "p99_us": rtt[count*99/100] * 1e6})
}

// timeouts measures how late a receive on an empty group returns after its timeout,
// at the C table's timeouts and at one that is not a whole millisecond.
func timeouts(impl string) {
	ep, err := open(impl, sendPort+5)
	if err != nil {
		fail(err)
	}
	defer ep.close()
	var rows []map[string]any
	for _, c := range []struct {
		timeout time.Duration
		repeats int
	}{{time.Millisecond, 300}, {2500 * time.Microsecond, 120}, {5 * time.Millisecond, 180},
		{20 * time.Millisecond, 90}, {100 * time.Millisecond, 36}, {500 * time.Millisecond, 18}} {
		sum, worst := 0.0, 0.0
		for i := 0; i < c.repeats; i++ {
			start := time.Now()
			if data, _, err := ep.receive(c.timeout); data != nil || (err != nil && !isTimeout(err)) {
				fail(fmt.Errorf("unexpected %q, %v", data, err))
			}
			over := (time.Since(start) - c.timeout).Seconds() * 1e3
			sum += over
			worst = max(worst, over)
		}
		rows = append(rows, map[string]any{"timeout_ms": c.timeout.Seconds() * 1e3, "count": c.repeats,
			"mean_overrun_ms": sum / float64(c.repeats), "max_overrun_ms": worst})
	}
	emit(map[string]any{"mode": "go-timeouts", "impl": impl, "rows": rows})
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func osThreads() int {
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(rest))
			return n
		}
	}
	return -1
}

func residentKiB() int {
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(rest)[0])
			return n
		}
	}
	return -1
}

// waiters parks n goroutines in receives without a time limit, spread over groups
// groups, and reports the OS threads and memory that costs, then closes every group and
// reports how long until the last goroutine returned.
func waiters(impl string, n, groups int) {
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	if need := uint64(2*groups + 256); lim.Cur < need {
		fail(fmt.Errorf("%d groups need %d descriptors; the limit is %d", groups, need, lim.Cur))
	}
	var closers []func()
	var receivers []func() error
	for i := 0; i < groups; i++ {
		addr := fmt.Sprintf("239.79.%d.%d", i/250, i%250+1)
		if impl == "lib" {
			g, err := multicast.Join(addr, sendPort+6, os.Getenv("MC_TEST_IFACE"))
			if err != nil {
				fail(err)
			}
			closers = append(closers, func() { g.Close() })
			receivers = append(receivers, func() error { _, err := g.Receive(0); return err })
			continue
		}
		ifi, _ := net.InterfaceByName(os.Getenv("MC_TEST_IFACE"))
		conn, err := net.ListenMulticastUDP("udp4", ifi, &net.UDPAddr{IP: net.ParseIP(addr), Port: sendPort + 6})
		if err != nil {
			fail(err)
		}
		buf := make([]byte, 65536)
		var mu sync.Mutex // one buffer per conn, receives serialised, as scriptling does
		closers = append(closers, func() { conn.Close() })
		receivers = append(receivers, func() error {
			mu.Lock()
			defer mu.Unlock()
			_, _, err := conn.ReadFromUDP(buf)
			return err
		})
	}
	runtime.GC()
	before := residentKiB()
	var done sync.WaitGroup
	for i := 0; i < n; i++ {
		done.Add(1)
		go func() {
			defer done.Done()
			receivers[i%groups]()
		}()
	}
	for runtime.NumGoroutine() < n {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	threads, after := osThreads(), residentKiB()
	start := time.Now()
	for _, c := range closers {
		c()
	}
	done.Wait()
	emit(map[string]any{"mode": "go-waiters", "impl": impl, "waiters": n, "groups": groups,
		"threads": threads, "kib_per_waiter": float64(after-before) / float64(n),
		"close_ms": time.Since(start).Seconds() * 1e3})
}

// cancels measures how long after cancel() a waiting ReceiveContext returns.
func cancels(count int) {
	g, err := multicast.Join(group, sendPort+7, os.Getenv("MC_TEST_IFACE"))
	if err != nil {
		fail(err)
	}
	defer g.Close()
	sum, worst := 0.0, 0.0
	for i := 0; i < count; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		returned := make(chan time.Time, 1)
		go func() {
			g.ReceiveContext(ctx)
			returned <- time.Now()
		}()
		time.Sleep(2 * time.Millisecond)
		cancelled := time.Now()
		cancel()
		late := (<-returned).Sub(cancelled).Seconds() * 1e3
		sum += late
		worst = max(worst, late)
	}
	emit(map[string]any{"mode": "go-cancel", "count": count, "mean_ms": sum / float64(count), "max_ms": worst})
}
