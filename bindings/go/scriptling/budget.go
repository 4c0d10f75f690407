package multicast

import (
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// sendBudgets are an interpreter's send budgets, one per group and port. They belong to
// the interpreter, not to one group handle: a script that closes and joins again gets
// the budget it left, not a fresh second's worth.
type sendBudgets struct {
	datagrams, bytes float64 // per second; 0: no limit
	mu               sync.Mutex
	of               map[netip.AddrPort]*budget
}

// budget is a token bucket per limit, each holding one second's worth and refilled
// continuously: the core library's send budget (src/budget.rs), kept here because only
// the adapter knows which handles are one interpreter's.
type budget struct {
	datagrams, bytes float64 // tokens left
	refilled         time.Time
}

func newSendBudgets(datagrams, bytes uint32) *sendBudgets {
	return &sendBudgets{datagrams: float64(datagrams), bytes: float64(bytes), of: map[netip.AddrPort]*budget{}}
}

// spend takes one datagram of size bytes from the budget of group:port, or says why
// it cannot, in the core library's words; nothing is taken then.
func (s *sendBudgets) spend(group netip.AddrPort, size int) error {
	if s.datagrams == 0 && s.bytes == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	b := s.of[group]
	if b == nil {
		b = &budget{datagrams: s.datagrams, bytes: s.bytes, refilled: now}
		s.of[group] = b
	}
	elapsed := now.Sub(b.refilled).Seconds()
	b.datagrams = min(b.datagrams+elapsed*s.datagrams, s.datagrams)
	b.bytes = min(b.bytes+elapsed*s.bytes, s.bytes)
	b.refilled = now
	switch {
	case s.datagrams > 0 && b.datagrams < 1:
		return fmt.Errorf("send failed: over the send limit of %v datagrams per second; nothing sent", s.datagrams)
	case s.bytes > 0 && float64(size) > s.bytes:
		return fmt.Errorf("send failed: a message of %d bytes is larger than the send limit of %v bytes per second; nothing sent", size, s.bytes)
	case s.bytes > 0 && b.bytes < float64(size):
		return fmt.Errorf("send failed: over the send limit of %v bytes per second; nothing sent", s.bytes)
	}
	if s.datagrams > 0 {
		b.datagrams--
	}
	if s.bytes > 0 {
		b.bytes -= float64(size)
	}
	return nil
}

// refund gives back what spend took for a datagram that was not sent after all.
func (s *sendBudgets) refund(group netip.AddrPort, size int) {
	if s.datagrams == 0 && s.bytes == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.of[group]; b != nil {
		b.datagrams = min(b.datagrams+1, s.datagrams)
		b.bytes = min(b.bytes+float64(size), s.bytes)
	}
}
