//go:build unix

package multicast

/*
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include "gomc.h"

// A close-on-exec duplicate of the group's socket for Go's runtime poller, which
// registers only non-blocking descriptors. O_NONBLOCK is shared with the library's own
// descriptor; its calls keep their semantics on it (see mc_fd in multicast.h).
static gomc_result gomc_poll_fd(mc_group *g) {
	int fd = -1;
	gomc_result r = gomc_done(mc_fd(g, &fd));
	if (r.status != MC_OK)
		return r;
	int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	int flags = dup < 0 ? -1 : fcntl(dup, F_GETFL);
	if (flags < 0 || fcntl(dup, F_SETFL, flags | O_NONBLOCK) < 0) {
		r.status = MC_ERR_IO;
		r.err = strdup(strerror(errno));
		if (dup >= 0)
			close(dup);
		return r;
	}
	r.len = (size_t)dup;
	return r;
}

// Whether a datagram is queued on fd now (a poll that does not wait).
static int gomc_queued(int fd) {
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, 0) > 0;
}
*/
import "C"

import (
	"context"
	"errors"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// poller waits for a group's socket in Go's runtime poller, as net.UDPConn does: a
// waiting goroutine is parked by the scheduler and holds no OS thread. The runtime
// poller lets one reader of a descriptor wait at a time, under one read deadline, so
// the goroutine waiting there holds the turn (a channel of one slot, which a waiter
// takes in a select with its own timer, context and the group's close); the others
// wait for the turn. Whoever holds it sets the deadline to its own.
type poller struct {
	file *os.File // the duplicate; closing it wakes the goroutine with the turn
	raw  syscall.RawConn
	turn chan struct{}

	mu     sync.Mutex
	holder *limits   // the limits of the goroutine with the turn, for kick
	set    time.Time // the read deadline set on file now
}

// longAgo is a read deadline in the past: it ends the wait in the poller at once.
var longAgo = time.Unix(1, 0)

// newPoller registers a duplicate of the group's socket with the runtime poller. It
// fails with the group's error (closed, say) or errNoPoller when the poller cannot have
// it (no descriptor left for the duplicate): the group then waits in blocking calls.
func newPoller(g *Group) (*poller, error) {
	r := C.gomc_poll_fd(g.handle)
	if r.status == C.MC_ERR_IO {
		C.free(unsafe.Pointer(r.err))
		return nil, errNoPoller
	} else if r.status != C.MC_OK {
		return nil, newError(r)
	}
	file := os.NewFile(uintptr(r.len), "multicast group "+g.localAddr)
	raw, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, errNoPoller
	}
	return &poller{file: file, raw: raw, turn: make(chan struct{}, 1)}, nil
}

// close wakes the goroutine with the turn (its read ends with an error) and releases
// the duplicate once it has returned.
func (p *poller) close() { p.file.Close() }

// await runs receive (a receive that does not wait, given 0) until it settles, waiting
// in the runtime poller between attempts until l ends the wait. It returns nil when
// receive settled, else why not: errWaitTimeout, the context's error, or the group's
// closed error.
func (g *Group) await(l *limits, receive func(wait float64) bool) error {
	if receive(0) {
		return nil
	}
	p, err := g.waiting.poller(g)
	if err == errNoPoller {
		return awaitBlocking(l, receive)
	} else if err != nil {
		return err
	}
	for {
		switch err := g.takeTurn(p, l, receive); err {
		case nil:
		case errSettled:
			return nil
		default:
			return err
		}
		err := p.wait(g, l, receive)
		<-p.turn
		if err != errMoved {
			return err
		}
	}
}

// errSettled: receive settled in a precise tail (see finishPrecisely).
var errSettled = errors.New("settled")

// errMoved: a moving deadline moved (or a kick came) while waiting; look again.
var errMoved = errors.New("deadline moved")

// takeTurn waits until this goroutine may wait in the poller, or l ends the wait, or
// the group closes; the end of a timed wait it may wait out in C (errSettled when
// receive settled there).
func (g *Group) takeTurn(p *poller, l *limits, receive func(wait float64) bool) error {
	select {
	case p.turn <- struct{}{}:
		return nil
	default:
	}
	for {
		at, moved := l.deadline()
		wake, settled, again, err := nextWake(l, at, receive)
		switch {
		case settled:
			return errSettled
		case err != nil:
			return err
		case again:
			continue
		}
		var expiry <-chan time.Time
		var timer *time.Timer
		if !wake.IsZero() {
			timer = time.NewTimer(time.Until(wake))
			expiry = timer.C
		}
		select {
		case p.turn <- struct{}{}:
		case <-expiry:
			err = l.ended()
			if err == nil {
				err = errMoved // time for the tail, or the deadline moved as the timer fired
			}
		case <-l.done():
			err = l.ctx.Err()
		case <-g.waiting.closed:
			err = closedError()
		case <-moved:
			err = errMoved
		}
		if timer != nil {
			timer.Stop()
		}
		if err != errMoved {
			return err
		}
	}
}

// wait, with the turn held, waits in the poller until receive settles or l ends.
func (p *poller) wait(g *Group, l *limits, receive func(wait float64) bool) error {
	settled := false
	// Go's poller reports a descriptor once per arrival (edge-triggered): an attempt
	// that gave up after judging its bound of forgeries (see multicast.h, mc_fd) leaves
	// datagrams queued that no report will announce, so it tries again while any are,
	// and returns (true, settled false) when l ends, for the loop below to say why.
	read := func(fd uintptr) bool {
		for settled = receive(0); !settled; settled = receive(0) {
			if l.ended() != nil {
				return true
			}
			if C.gomc_queued(C.int(fd)) == 0 {
				return false
			}
		}
		return true
	}
	stop := func() bool { return false }
	if l.done() != nil {
		stop = context.AfterFunc(l.ctx, func() { p.kick(l) })
	}
	defer stop()
	for {
		at, _ := l.deadline()
		wake, settledInC, again, err := nextWake(l, at, receive)
		switch {
		case settledInC:
			return nil
		case err != nil:
			return err
		case again:
			continue
		}
		p.hold(l, wake)
		// Checked after hold: a kick that came before it found no holder to wake.
		if err := l.ended(); err != nil {
			p.release()
			return err
		}
		err = p.raw.Read(read)
		p.release()
		switch {
		case settled:
			return nil
		case g.waiting.isClosed():
			return closedError()
		case errors.Is(err, os.ErrDeadlineExceeded):
			// Time for the tail, the deadline passed or moved, or a kick came: look again.
			continue
		case err != nil:
			return &Error{Status: StatusIO, Message: "receive failed: waiting in Go's poller: " + err.Error()}
		}
	}
}

// nextWake is when a wait in the poller for a deadline at (zero: none) wakes: preciseTail
// before it, the rest being waited out inside the C library. Once the deadline is that
// near, it waits the tail out there itself: settled when receive settled there, err when
// l ended, again when the deadline moved meanwhile (look again).
func nextWake(l *limits, at time.Time, receive func(wait float64) bool) (wake time.Time, settled, again bool, err error) {
	if at.IsZero() {
		return at, false, false, nil
	}
	if tried, settled := finishPrecisely(at, receive); tried {
		if settled {
			return at, true, false, nil
		}
		if err := l.ended(); err != nil {
			return at, false, false, err
		}
		return at, false, true, nil
	}
	if time.Until(at) > preciseTail {
		return at.Add(-preciseTail), false, false, nil
	}
	return at, false, false, nil
}

// preciseTail is the end of a timed wait that is waited out inside the C library, whose
// ppoll ends within the kernel's timer slack: the runtime poller sleeps in whole
// milliseconds (epoll_wait), so a wait it ends is up to a millisecond late (0.3 to 0.8
// ms on average, measured, for net.UDPConn's deadlines as for these).
const preciseTail = 2 * time.Millisecond

// preciseSlots bounds how many goroutines wait out their tail in C at once, each
// holding an OS thread for at most preciseTail; the others end in the poller.
var preciseSlots = make(chan struct{}, 4)

// finishPrecisely waits out what is left until at inside one C receive, if at is within
// preciseTail and a slot is free. It reports whether it did, and whether receive settled.
func finishPrecisely(at time.Time, receive func(wait float64) bool) (tried, settled bool) {
	left := time.Until(at)
	if left > preciseTail {
		return false, false
	}
	select {
	case preciseSlots <- struct{}{}:
	default:
		return false, false
	}
	defer func() { <-preciseSlots }()
	return true, receive(max(left, 0).Seconds())
}

// hold records l as the holder of the turn and sets the read deadline to at.
func (p *poller) hold(l *limits, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holder = l
	if !at.Equal(p.set) {
		p.file.SetReadDeadline(at)
		p.set = at
	}
}

func (p *poller) release() {
	p.mu.Lock()
	p.holder = nil
	p.mu.Unlock()
}

// kick ends the poller wait of the goroutine waiting under l, if it holds the turn, so
// that it looks at its limits again (its context was cancelled, or its deadline moved).
func (p *poller) kick(l *limits) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.holder == l {
		p.file.SetReadDeadline(longAgo)
		p.set = longAgo
	}
}

// kickMoving kicks the holder of the turn if it waits under the moving deadline d.
func (p *poller) kickMoving(d *movingDeadline) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.holder != nil && p.holder.dynamic == d {
		p.file.SetReadDeadline(longAgo)
		p.set = longAgo
	}
}
