//go:build cgo

package multicast

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"
)

// PacketConn is a view of the group as a net.PacketConn, for code written against the
// standard interfaces:
//
//   - ReadFrom receives the next datagram (waiting as Receive does) with its sender as
//     a *net.UDPAddr. A datagram longer than the buffer is cut to it, as net.UDPConn
//     does; a buffer of 65,535 bytes never cuts one.
//   - WriteTo sends to the group; its address must be the group's (LocalAddr). Any
//     other destination is refused: a group sends only to itself.
//   - LocalAddr is the group and port, as a *net.UDPAddr.
//   - SetDeadline, SetReadDeadline and SetWriteDeadline work as on a net.UDPConn (a
//     deadline may be moved while a read waits); a read past its deadline fails with an
//     error that is a net.Error with Timeout() true and matches os.ErrDeadlineExceeded.
//   - Close closes the group; errors after it match net.ErrClosed.
//
// The view is also a net.Conn connected to the group (Read, Write, RemoteAddr), as a
// *net.UDPConn is. golang.org/x/net/ipv4.NewPacketConn accepts it, but that package reads
// and writes only through a *net.UDPConn's descriptor: its ReadFrom and WriteTo fail on
// the view ("invalid connection"), and its socket options are the group's JoinOptions.
// Each call returns a new view with deadlines of its own; all views share the group.
func (g *Group) PacketConn() net.PacketConn {
	local := &net.UDPAddr{Port: g.port}
	if addr, err := netip.ParseAddr(g.groupAddr); err == nil {
		local.IP, local.Zone = addr.AsSlice(), addr.Zone()
	}
	return &packetConn{g: g, local: local, read: newMovingDeadline()}
}

type packetConn struct {
	g     *Group
	local *net.UDPAddr
	read  *movingDeadline
	write atomic.Pointer[time.Time]
}

func (c *packetConn) ReadFrom(p []byte) (int, net.Addr, error) {
	if at, _ := c.read.get(); !at.IsZero() && !time.Now().Before(at) {
		return 0, nil, c.opError("read", nil, os.ErrDeadlineExceeded)
	}
	var n int
	var source string
	var err error
	l := limits{dynamic: c.read}
	got := func(gotN int, gotSource string, e error) { n, source, err = gotN, gotSource, e }
	werr := c.g.await(&l, func(wait float64) bool { return c.g.receiveInto(wait, p, got) })
	switch {
	case werr == errWaitTimeout:
		return 0, nil, c.opError("read", nil, os.ErrDeadlineExceeded)
	case werr != nil:
		return 0, nil, c.opError("read", nil, werr)
	case err != nil:
		return 0, nil, c.opError("read", nil, err)
	}
	from, perr := netip.ParseAddrPort(source)
	if perr != nil {
		return n, nil, c.opError("read", nil, perr)
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

func (c *packetConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if !c.isGroup(addr) {
		return 0, c.opError("write", addr, fmt.Errorf(
			"a multicast group sends only to itself (%s), not to %v", c.local, addr))
	}
	if at := c.write.Load(); at != nil && !at.IsZero() && !time.Now().Before(*at) {
		return 0, c.opError("write", addr, os.ErrDeadlineExceeded)
	}
	if err := c.g.SendBytes(p); err != nil {
		return 0, c.opError("write", addr, err)
	}
	return len(p), nil
}

// isGroup says whether addr is the group's own address and port.
func (c *packetConn) isGroup(addr net.Addr) bool {
	var to netip.AddrPort
	switch a := addr.(type) {
	case *net.UDPAddr:
		if a == nil {
			return false
		}
		to = a.AddrPort()
	default:
		if addr == nil {
			return false
		}
		parsed, err := netip.ParseAddrPort(addr.String())
		if err != nil {
			return false
		}
		to = parsed
	}
	return to.Addr().Unmap().WithZone("") == c.local.AddrPort().Addr().Unmap().WithZone("") &&
		int(to.Port()) == c.local.Port
}

// Read receives the next datagram's payload, as ReadFrom does.
func (c *packetConn) Read(p []byte) (int, error) {
	n, _, err := c.ReadFrom(p)
	return n, err
}

// Write sends p to the group, as WriteTo the group's address does.
func (c *packetConn) Write(p []byte) (int, error) { return c.WriteTo(p, c.local) }

// RemoteAddr is the group, where Write sends: the same address as LocalAddr.
func (c *packetConn) RemoteAddr() net.Addr { return c.local }

func (c *packetConn) Close() error { return c.g.Close() }

func (c *packetConn) LocalAddr() net.Addr { return c.local }

func (c *packetConn) SetDeadline(t time.Time) error {
	c.SetWriteDeadline(t)
	return c.SetReadDeadline(t)
}

// SetReadDeadline also moves the deadline of a read already waiting.
func (c *packetConn) SetReadDeadline(t time.Time) error {
	c.read.set(t)
	c.g.waiting.kickMoving(c.read)
	return nil
}

// SetWriteDeadline: sends do not wait (beyond a full send buffer), so only a deadline
// already passed fails a write.
func (c *packetConn) SetWriteDeadline(t time.Time) error {
	c.write.Store(&t)
	return nil
}

// opError wraps err as net.UDPConn reports its errors.
func (c *packetConn) opError(op string, addr net.Addr, err error) error {
	return &net.OpError{Op: op, Net: "udp", Source: c.local, Addr: addr, Err: err}
}
