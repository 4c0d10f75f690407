package multicast

/*
#include "gomc.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"
)

// Every receive is one receive that does not wait (mc_receive with timeout 0), repeated
// by await each time the group's socket is readable, until it settles or a limit ends
// the wait. How await waits is the system's: Go's runtime poller where it can take the
// socket (wait_poller.go), a blocking call elsewhere (wait_blocking.go).

// receiveBuffers hold a datagram of any size followed by the sender's text.
var receiveBuffers = sync.Pool{New: func() any { b := make([]byte, receiveCapacity+C.MC_SOURCE_MAX); return &b }}

// receiveCapacity can never truncate a datagram (none is larger than 65,535 bytes).
const receiveCapacity = 65535

// Receive waits up to timeout for one datagram. It returns nil, nil when the timeout
// passes with nothing received; timeout <= 0 waits without limit, as in scriptling.
//
// A waiting Receive parks its goroutine in Go's runtime poller, as a read on a
// net.UDPConn does, so any number of goroutines may wait at the cost of goroutines, not
// OS threads (on Windows each waits in a blocking call; see docs/api.md).
func (g *Group) Receive(timeout time.Duration) (*Message, error) {
	l := limits{}
	if timeout > 0 {
		l.at = time.Now().Add(timeout)
	}
	msg, err := g.receiveUntil(&l)
	if err == errWaitTimeout {
		return nil, nil
	}
	return msg, err
}

// ReceiveContext waits for one datagram until ctx is done: then it returns ctx.Err()
// (context.Canceled, or context.DeadlineExceeded at the context's deadline). A datagram
// is either returned or left queued for the next receive, never lost to a cancellation.
func (g *Group) ReceiveContext(ctx context.Context) (*Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l := limits{ctx: ctx}
	l.at, _ = ctx.Deadline()
	msg, err := g.receiveUntil(&l)
	if err == errWaitTimeout {
		return nil, context.DeadlineExceeded
	}
	return msg, err
}

// ReceiveNow returns a datagram already queued, or nil, nil at once when none is: the
// non-blocking receive an event loop calls after Fd becomes readable.
func (g *Group) ReceiveNow() (*Message, error) {
	var msg *Message
	var err error
	g.receiveOnce(0, func(m *Message, e error) { msg, err = m, e })
	return msg, err
}

// receiveUntil waits for one datagram within l.
func (g *Group) receiveUntil(l *limits) (*Message, error) {
	var msg *Message
	var err error
	got := func(m *Message, e error) { msg, err = m, e }
	if werr := g.await(l, func(wait float64) bool { return g.receiveOnce(wait, got) }); werr != nil {
		return nil, werr
	}
	return msg, err
}

// receiveOnce calls mc_receive, waiting up to wait seconds (< 0: without limit, 0: not
// at all). It reports whether the receive settled: a datagram or an error, given to got.
func (g *Group) receiveOnce(wait float64, got func(*Message, error)) bool {
	bufp := receiveBuffers.Get().(*[]byte)
	defer receiveBuffers.Put(bufp)
	buf := *bufp
	source := (*C.char)(unsafe.Pointer(&buf[receiveCapacity]))
	r := C.gomc_receive(g.handle, C.double(wait), unsafe.Pointer(&buf[0]), receiveCapacity, source)
	switch r.status {
	case C.MC_OK:
		data := make([]byte, int(r.len))
		copy(data, buf[:r.len])
		got(&Message{Data: data, Source: C.GoString(source)}, nil)
	case C.MC_TIMEOUT:
		return false
	default:
		got(nil, newError(r))
	}
	return true
}

// receiveInto is receiveOnce for a caller's buffer p (PacketConn.ReadFrom): got is given
// how many bytes of the datagram p holds (the rest is cut off, as net.UDPConn does) and
// the sender's text. A buffer that can hold any datagram is received into directly.
func (g *Group) receiveInto(wait float64, p []byte, got func(n int, source string, err error)) bool {
	bufp := receiveBuffers.Get().(*[]byte)
	defer receiveBuffers.Put(bufp)
	buf := *bufp
	source := (*C.char)(unsafe.Pointer(&buf[receiveCapacity]))
	into := buf[:receiveCapacity]
	direct := len(p) >= receiveCapacity
	if direct {
		into = p
	}
	r := C.gomc_receive(g.handle, C.double(wait), unsafe.Pointer(&into[0]), C.size_t(len(into)), source)
	switch r.status {
	case C.MC_OK:
		n := int(r.len)
		if !direct {
			n = copy(p, buf[:n])
		}
		got(n, C.GoString(source), nil)
	case C.MC_TIMEOUT:
		return false
	default:
		got(0, "", newError(r))
	}
	return true
}

// ReceiveBatch waits up to timeout (<= 0: without limit) for a datagram, then takes up
// to max-1 more that are already queued, each into a slot of size bytes (0 means the
// largest datagram, which never truncates). It returns nil, nil on timeout. A datagram
// larger than its slot stays queued for the next call. It waits as Receive does.
func (g *Group) ReceiveBatch(timeout time.Duration, max, size int) ([]*Message, error) {
	// Bounded before any arithmetic: max*size then fits any int, and the C allocation
	// (at most 1024 slots of 64 KiB) is never a wrapped-around or absurd size.
	if max < 1 || max > 1024 || size < 0 || size > receiveCapacity {
		return nil, &Error{Status: StatusInvalidArgument, Message: fmt.Sprintf(
			"ReceiveBatch(max %d, size %d) needs 1 <= max <= 1024 and 0 <= size <= %d (no datagram is larger)",
			max, size, receiveCapacity)}
	}
	if size == 0 {
		size = receiveCapacity
	}
	slots := (*[1024]C.mc_received)(C.calloc(C.size_t(max), C.sizeof_mc_received))[:max:max]
	bufs := C.malloc(C.size_t(max * size))
	defer C.free(unsafe.Pointer(&slots[0]))
	defer C.free(bufs)
	for i := range slots {
		slots[i].buf = unsafe.Add(bufs, i*size)
		slots[i].capacity = C.size_t(size)
	}
	l := limits{}
	if timeout > 0 {
		l.at = time.Now().Add(timeout)
	}
	var msgs []*Message
	var err error
	werr := g.await(&l, func(wait float64) bool {
		r := C.gomc_receive_batch(g.handle, C.double(wait), &slots[0], C.size_t(max))
		switch r.status {
		case C.MC_OK:
			msgs = make([]*Message, int(r.len))
			for i := range msgs {
				msgs[i] = &Message{
					Data:   C.GoBytes(slots[i].buf, C.int(slots[i].len)),
					Source: C.GoString(&slots[i].source[0]),
				}
			}
		case C.MC_TIMEOUT:
			return false
		default:
			err = newError(r)
		}
		return true
	})
	switch {
	case werr == errWaitTimeout:
		return nil, nil
	case werr != nil:
		return nil, werr
	}
	return msgs, err
}

// cancelSlice bounds each C wait of a receive that a context or a moving deadline may
// end early: it is how late such an end can be noticed.
const cancelSlice = 10 * time.Millisecond

// awaitBlocking runs receive, waiting inside it, until it settles or l ends the wait
// (with await's results). Each wait holds an OS thread, as a blocking system call does:
// Windows waits this way, and so does a group whose socket Go's poller cannot take
// (no descriptor left for its duplicate).
func awaitBlocking(l *limits, receive func(wait float64) bool) error {
	for {
		if l.ctx != nil {
			if err := l.ctx.Err(); err != nil {
				return err
			}
		}
		at, _ := l.deadline()
		wait := time.Duration(-1)
		if !at.IsZero() {
			wait = max(time.Until(at), 0)
		}
		if (l.done() != nil || l.dynamic != nil) && (wait < 0 || wait > cancelSlice) {
			wait = cancelSlice
		}
		seconds := -1.0
		if wait >= 0 {
			seconds = wait.Seconds()
		}
		if receive(seconds) {
			return nil
		}
		if !at.IsZero() && !time.Now().Before(at) {
			return errWaitTimeout
		}
	}
}

// limits say when a wait ends without a datagram: a context, a fixed deadline, and a
// deadline that may move while the wait goes on (a PacketConn's read deadline).
type limits struct {
	ctx     context.Context // nil: none
	at      time.Time       // zero: none
	dynamic *movingDeadline // nil: none
}

// deadline is the earlier of the fixed and the moving deadline (zero: none), and a
// channel closed when the moving one moves.
func (l *limits) deadline() (time.Time, <-chan struct{}) {
	if l.dynamic == nil {
		return l.at, nil
	}
	moving, moved := l.dynamic.get()
	if l.at.IsZero() || (!moving.IsZero() && moving.Before(l.at)) {
		return moving, moved
	}
	return l.at, moved
}

// done is the context's done channel (nil: never done).
func (l *limits) done() <-chan struct{} {
	if l.ctx == nil {
		return nil
	}
	return l.ctx.Done()
}

// ended says why the wait is over, or nil while it may go on.
func (l *limits) ended() error {
	if l.ctx != nil {
		if err := l.ctx.Err(); err != nil {
			return err
		}
	}
	if at, _ := l.deadline(); !at.IsZero() && !time.Now().Before(at) {
		return errWaitTimeout
	}
	return nil
}

// errWaitTimeout ends a wait at its deadline; each receive turns it into its own
// convention (nil, nil; context.DeadlineExceeded; os.ErrDeadlineExceeded).
var errWaitTimeout = &Error{Status: StatusTimeout, Message: "receive timed out"}

// movingDeadline is a deadline that waiting receives follow as it moves.
type movingDeadline struct {
	mu    sync.Mutex
	at    time.Time
	moved chan struct{} // closed when at changes
}

func newMovingDeadline() *movingDeadline { return &movingDeadline{moved: make(chan struct{})} }

func (d *movingDeadline) get() (time.Time, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.at, d.moved
}

func (d *movingDeadline) set(at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.at = at
	close(d.moved)
	d.moved = make(chan struct{})
}

// closedError is what a receive on a closed group returns, as the library words it.
func closedError() error {
	return &Error{Status: StatusClosed, Message: "receive failed: group is closed"}
}

// waitState is what a group's receives share to wait. It does not refer to the Group,
// so the group's cleanup can hold it.
type waitState struct {
	mu       sync.Mutex
	p        *poller       // created by the first receive that waits
	closed   chan struct{} // closed by Close: ends every wait for the turn
	shut     bool
	noPoller bool // the poller could not take the socket: blocking waits
}

func newWaitState() *waitState { return &waitState{closed: make(chan struct{})} }

// errNoPoller: Go's poller cannot take this group's socket; its receives wait in
// blocking calls (awaitBlocking).
var errNoPoller = errors.New("no poller")

// poller is the group's poller, made on first use; the closed error once closed.
func (w *waitState) poller(g *Group) (*poller, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.shut {
		return nil, closedError()
	}
	if w.noPoller {
		return nil, errNoPoller
	}
	if w.p == nil {
		p, err := newPoller(g)
		if err == errNoPoller {
			w.noPoller = true
		}
		if err != nil {
			return nil, err
		}
		w.p = p
	}
	return w.p, nil
}

// shutDown ends every wait (Close, and the group's cleanup); the second call does nothing.
func (w *waitState) shutDown() {
	w.mu.Lock()
	if w.shut {
		w.mu.Unlock()
		return
	}
	w.shut = true
	close(w.closed)
	p := w.p
	w.mu.Unlock()
	if p != nil {
		p.close()
	}
}

func (w *waitState) isClosed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.shut
}

// kickMoving makes a read waiting in the poller under d look at d again (it moved).
func (w *waitState) kickMoving(d *movingDeadline) {
	w.mu.Lock()
	p := w.p
	w.mu.Unlock()
	if p != nil {
		p.kickMoving(d)
	}
}
