// Package multicast is the Go binding of libmulticast: UDP multicast group messaging
// with the shape of scriptling's scriptling.net.multicast module.
//
//	g, err := multicast.Join("239.1.1.1", 9999, "")
//	if err != nil { ... }
//	defer g.Close()
//	g.Send("Hello group!")
//	msg, err := g.Receive(5 * time.Second) // nil, nil on timeout
//
// Every method is safe for concurrent use. Close wakes a goroutine blocked in Receive,
// which then returns an error matching ErrClosed.
package multicast

/*
#include "gomc.h"
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"strings"
	"time"
	"unsafe"
)

// MaxMessageSize is the largest message Send accepts (the largest IPv4 UDP payload).
const MaxMessageSize = C.MC_MAX_MESSAGE_SIZE

// Message is one received datagram.
type Message struct {
	Data   []byte // the payload, byte for byte
	Source string // the sender as "ip:port"
}

// Group is a joined multicast group. Close it when done; a Group that becomes
// unreachable without Close is closed and freed by the garbage collector.
type Group struct {
	handle    *C.mc_group
	groupAddr string
	port      int
	localAddr string
	waiting   *waitState
}

// Join joins groupAddr (a multicast literal: IPv4 "239.1.1.1" or IPv6 "ff05::1", with
// an optional %zone) on port, on iface: an interface name ("eth0"), one of this host's
// addresses, or "" for the kernel's choice. Loopback is on and the TTL is 1.
func Join(groupAddr string, port int, iface string) (*Group, error) {
	return JoinWithOptions(groupAddr, port, JoinOptions{Interface: iface})
}

// JoinOptions are the settings of JoinWithOptions. The zero value is what Join does.
type JoinOptions struct {
	Interface         string // interface name or one of its addresses; "" for none
	InterfaceIndex    int    // kernel interface index; 0 for none (at most one of the two)
	TTL               int    // time to live of sent datagrams, 1..255; 0 means 1
	DisableLoopback   bool   // true: members on this host do not hear this group's sends
	ReceiveBufferSize int    // requested SO_RCVBUF in bytes; 0 keeps the kernel's default
	GRO               bool   // let the kernel hand over runs of datagrams (UDP_GRO); see docs/api.md
	Source            string // source-specific multicast: only this sender's datagrams; "" for any
	// NoRejoin: do not join again when the interface comes back (deleted and created
	// again, or the kernel's multicast route moved); see Membership.
	NoRejoin bool
	// Reannounce: announce the membership again at this interval (whole seconds, at
	// least 1), for LANs whose snooping switches have no querier; 0 for never (the default).
	Reannounce time.Duration
	// MaxDatagramsPerSecond and MaxBytesPerSecond: a send budget (0: no limit), as a
	// token bucket holding one second's worth; a send over it fails with
	// ErrRateLimited and sends nothing.
	MaxDatagramsPerSecond uint32
	MaxBytesPerSecond     uint32
	// Key makes an authenticated group (KeySize bytes, id KeyID): every datagram sent is
	// sealed with ChaCha20-Poly1305 and only datagrams sealed by a key holder are
	// received (see AuthCounters, docs/authentication.md). nil: a plain group; any
	// other length, an empty slice included, is refused.
	Key   []byte
	KeyID uint8
	// PreviousKey (id PreviousKeyID, not KeyID) is accepted too, during a rotation.
	PreviousKey   []byte
	PreviousKeyID uint8
}

// JoinWithOptions joins as Join does, with the interface, TTL, loopback and receive
// buffer taken from opts. Linux caps the receive buffer silently; ReceiveBufferSize
// reports what was granted.
func JoinWithOptions(groupAddr string, port int, opts JoinOptions) (*Group, error) {
	if port < 1 || port > 65535 {
		// Checked here too: an int wider than int32 must not wrap into a valid port.
		return nil, &Error{Status: StatusInvalidArgument, Message: "port must be between 1 and 65535"}
	}
	// C strings end at a NUL: refuse one inside rather than join a truncated name.
	if strings.IndexByte(groupAddr, 0) >= 0 || strings.IndexByte(opts.Interface, 0) >= 0 ||
		strings.IndexByte(opts.Source, 0) >= 0 {
		return nil, &Error{Status: StatusInvalidArgument, Message: "group address or interface contains a NUL byte"}
	}
	ttl := opts.TTL
	if ttl == 0 {
		ttl = 1
	}
	if ttl < 0 || ttl > 255 || opts.InterfaceIndex < 0 || int64(opts.InterfaceIndex) > math.MaxUint32 ||
		opts.ReceiveBufferSize < 0 {
		return nil, &Error{Status: StatusInvalidArgument,
			Message: fmt.Sprintf("invalid join options: ttl %d (1..255), interface index %d, receive buffer %d",
				opts.TTL, opts.InterfaceIndex, opts.ReceiveBufferSize)}
	}
	reannounce := opts.Reannounce / time.Second
	if opts.Reannounce < 0 || (opts.Reannounce > 0 && reannounce == 0) || reannounce > math.MaxUint32 {
		return nil, &Error{Status: StatusInvalidArgument,
			Message: fmt.Sprintf("reannounce interval must be 0 (never) or at least 1 second, not %v", opts.Reannounce)}
	}
	cGroup := C.CString(groupAddr)
	defer C.free(unsafe.Pointer(cGroup))
	cIface := C.CString(opts.Interface)
	defer C.free(unsafe.Pointer(cIface))
	cSource := C.CString(opts.Source)
	defer C.free(unsafe.Pointer(cSource))
	key, keyLen := cKey(opts.Key)
	defer freeKey(key, keyLen)
	previous, previousLen := cKey(opts.PreviousKey)
	defer freeKey(previous, previousLen)
	r := C.gomc_join_with_options(cGroup, C.int32_t(port), cIface, C.uint32_t(opts.InterfaceIndex),
		C.int32_t(ttl), C.bool(!opts.DisableLoopback), C.size_t(opts.ReceiveBufferSize), C.bool(opts.GRO), cSource,
		C.bool(!opts.NoRejoin), C.uint32_t(reannounce),
		C.uint32_t(opts.MaxDatagramsPerSecond), C.uint32_t(opts.MaxBytesPerSecond),
		key, keyLen, C.uint8_t(opts.KeyID), previous, previousLen, C.uint8_t(opts.PreviousKeyID))
	if r.status != C.MC_OK {
		return nil, newError(r)
	}
	handle := r.group
	g := &Group{
		handle:    handle,
		groupAddr: C.GoString(C.mc_group_addr(handle)),
		port:      int(C.mc_port(handle)),
		localAddr: C.GoString(C.mc_local_addr(handle)),
		waiting:   newWaitState(),
	}
	// The cleanup runs only once g is unreachable, so never during a method call (each
	// keeps g alive until it returns) and only once. mc_free closes first.
	runtime.AddCleanup(g, func(o owned) {
		o.waiting.shutDown()
		C.mc_free(o.handle)
	}, owned{handle, g.waiting})
	return g, nil
}

// Send sends msg as one datagram: a string or []byte as it is, any other value encoded
// with encoding/json (so a map goes out as scriptling sends a dict).
func (g *Group) Send(msg any) error {
	var data []byte
	switch m := msg.(type) {
	case []byte:
		data = m
	case string:
		data = unsafe.Slice(unsafe.StringData(m), len(m))
	default:
		encoded, err := json.Marshal(m)
		if err != nil {
			return &Error{Status: StatusInvalidJSON, Message: "cannot encode message as JSON: " + err.Error()}
		}
		data = encoded
	}
	return g.SendBytes(data)
}

// SendBytes sends data as one datagram, byte for byte: Send for a []byte without the
// conversion to an interface value (which costs an allocation per call).
func (g *Group) SendBytes(data []byte) error {
	var ptr unsafe.Pointer
	if len(data) > 0 {
		ptr = unsafe.Pointer(&data[0])
	}
	r := C.gomc_send(g.handle, ptr, C.size_t(len(data)))
	runtime.KeepAlive(g)
	runtime.KeepAlive(data)
	if r.status != C.MC_OK {
		return newError(r)
	}
	return nil
}

// SendBatch sends each of msgs as its own datagram, in order, in as few system calls as
// the kernel allows (runs of equal sizes with UDP GSO, the rest with sendmmsg). It
// returns how many were sent: fewer than len(msgs) means the kernel stopped taking them.
// A message over MaxMessageSize fails the whole batch before anything is sent.
func (g *Group) SendBatch(msgs [][]byte) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	// The C array holds pointers into the messages: pinned, as cgo requires.
	var pinner runtime.Pinner
	defer pinner.Unpin()
	datagrams := make([]C.mc_datagram, len(msgs))
	for i, m := range msgs {
		if len(m) > 0 {
			pinner.Pin(&m[0])
			datagrams[i].data = unsafe.Pointer(&m[0])
		}
		datagrams[i].len = C.size_t(len(m))
	}
	r := C.gomc_send_batch(g.handle, &datagrams[0], C.size_t(len(datagrams)))
	runtime.KeepAlive(g)
	if r.status != C.MC_OK {
		return 0, newError(r)
	}
	return int(r.len), nil
}

// owned is what a Group's cleanup releases.
type owned struct {
	handle  *C.mc_group
	waiting *waitState
}

// Close leaves the group and closes its socket. Every goroutine waiting in a receive on
// the group returns at once with an error matching ErrClosed (and net.ErrClosed).
// Closing again does nothing.
func (g *Group) Close() error {
	r := C.gomc_close(g.handle)
	g.waiting.shutDown()
	runtime.KeepAlive(g)
	if r.status != C.MC_OK {
		return newError(r)
	}
	return nil
}

// Fd is the group's socket descriptor, for an event loop (poll, epoll, select): it is
// readable while a datagram is queued, and ReceiveNow then takes it without waiting. The descriptor belongs to the Group: never read, write or close it, and
// stop waiting on it before Close, which closes it.
func (g *Group) Fd() (int, error) {
	r := C.gomc_fd(g.handle)
	runtime.KeepAlive(g)
	if r.status != C.MC_OK {
		return -1, newError(r)
	}
	return int(r.len), nil
}

// ReceiveBufferSize is the socket receive buffer the kernel granted (SO_RCVBUF), which
// Linux reports doubled and caps at net.core.rmem_max.
func (g *Group) ReceiveBufferSize() (int, error) {
	r := C.gomc_receive_buffer_size(g.handle)
	runtime.KeepAlive(g)
	if r.status != C.MC_OK {
		return 0, newError(r)
	}
	return int(r.len), nil
}

// MembershipStatus says whether a group's membership is in place now.
type MembershipStatus int

const (
	// Joined: on an interface that is up; datagrams to the group arrive.
	Joined MembershipStatus = C.MC_MEMBERSHIP_JOINED
	// InterfaceDown: joined, but the interface is down; nothing arrives until it is up.
	InterfaceDown MembershipStatus = C.MC_MEMBERSHIP_INTERFACE_DOWN
	// InterfaceGone: the interface was deleted or no multicast route is left; nothing
	// arrives. Unless NoRejoin was set, the group joins again when it is back.
	InterfaceGone MembershipStatus = C.MC_MEMBERSHIP_INTERFACE_GONE
)

func (s MembershipStatus) String() string {
	switch s {
	case Joined:
		return "joined"
	case InterfaceDown:
		return "interface down"
	case InterfaceGone:
		return "interface gone"
	}
	return fmt.Sprintf("MembershipStatus(%d)", int(s))
}

// Membership says whether the group's membership is in place now and how many times
// the library has joined again on a re-created or re-routed interface. Receive keeps
// waiting while the interface is gone; this is how to learn why nothing arrives.
func (g *Group) Membership() (MembershipStatus, uint64, error) {
	var rejoins C.uint64_t
	r := C.gomc_membership(g.handle, &rejoins)
	runtime.KeepAlive(g)
	if r.status != C.MC_OK {
		return InterfaceGone, 0, newError(r)
	}
	return MembershipStatus(r.len), uint64(rejoins), nil
}

// KeySize is the length of a group key in bytes; AuthOverhead what sealing adds to each
// datagram of an authenticated group (its messages may be that much shorter).
const (
	KeySize      = C.MC_GROUP_KEY_SIZE
	AuthOverhead = C.MC_AUTH_OVERHEAD
)

// cKey copies a key into C memory (wiped and freed by freeKey): NULL for nil, so that
// an empty but non-nil slice is refused rather than taken for "no key".
func cKey(key []byte) (*C.uint8_t, C.size_t) {
	if key == nil {
		return nil, 0
	}
	p := (*C.uint8_t)(C.malloc(C.size_t(len(key) + 1)))
	copy(unsafe.Slice((*byte)(unsafe.Pointer(p)), len(key)), key)
	return p, C.size_t(len(key))
}

func freeKey(p *C.uint8_t, n C.size_t) {
	if p != nil {
		clear(unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n)))
		C.free(unsafe.Pointer(p))
	}
}

// GenerateKey returns a new random group key (KeySize bytes) from the operating system.
func GenerateKey() ([]byte, error) {
	key := make([]byte, KeySize)
	r := C.gomc_generate_key((*C.uint8_t)(unsafe.Pointer(&key[0])))
	if r.status != C.MC_OK {
		return nil, newError(r)
	}
	return key, nil
}

// RotateKey seals sends under key (KeySize bytes) with id (not the current key's) from
// now on; with keepPrevious the replaced key is still accepted while the other members
// change over, and a key kept from an earlier rotation is forgotten.
func (g *Group) RotateKey(key []byte, id uint8, keepPrevious bool) error {
	if key == nil {
		key = []byte{}
	}
	p, n := cKey(key)
	defer freeKey(p, n)
	r := C.gomc_rotate_key(g.handle, C.uint8_t(id), p, n, C.bool(keepPrevious))
	runtime.KeepAlive(g)
	if r.status != C.MC_OK {
		return newError(r)
	}
	return nil
}

// AuthCounters are the datagrams an authenticated group dropped since the join.
type AuthCounters struct {
	Unauthenticated uint64 // forged, altered or malformed
	UnknownKey      uint64 // sealed under a key id this handle does not hold
	Replayed        uint64 // authentic, but seen before or too far behind its sender
}

// AuthCounters reports the group's dropped datagrams by reason (all zero for a plain group).
func (g *Group) AuthCounters() (AuthCounters, error) {
	var counts [3]C.uint64_t
	r := C.gomc_auth_counters(g.handle, &counts[0])
	runtime.KeepAlive(g)
	if r.status != C.MC_OK {
		return AuthCounters{}, newError(r)
	}
	return AuthCounters{uint64(counts[0]), uint64(counts[1]), uint64(counts[2])}, nil
}

// GroupAddr is the group address, e.g. "239.1.1.1".
func (g *Group) GroupAddr() string { return g.groupAddr }

// Port is the group's port.
func (g *Group) Port() int { return g.port }

// LocalAddr is the socket's bound address as "ip:port" (the group address and port).
func (g *Group) LocalAddr() string { return g.localAddr }

// String describes the group for logs.
func (g *Group) String() string { return fmt.Sprintf("multicast.Group(%s)", g.localAddr) }

// Version is the version of the linked libmulticast.
func Version() string { return C.GoString(C.mc_version()) }

// Capabilities says what the linked libmulticast can do on this system beyond the
// portable baseline (all of it on Linux); where one is absent, the same calls work with
// the stand-in docs/platforms.md gives for it.
type Capabilities struct {
	DropCount       bool // Dropped counts datagrams lost to a full buffer; else it stays 0
	PacketInfo      bool // received datagrams carry their group and interface
	GRO             bool // the GRO option hands runs over in one read
	GSO             bool // SendBatch sends equal-sized runs in one call
	BatchSyscalls   bool // batches use one system call for many datagrams
	InterfaceEvents bool // groups rejoin by themselves when interfaces come back
}

// SystemCapabilities reports the linked library's Capabilities here.
func SystemCapabilities() Capabilities {
	var bits C.uint32_t
	C.mc_capabilities(&bits)
	has := func(c C.mc_capability) bool { return uint32(bits)&uint32(c) != 0 }
	return Capabilities{
		DropCount:       has(C.MC_CAP_DROP_COUNT),
		PacketInfo:      has(C.MC_CAP_PACKET_INFO),
		GRO:             has(C.MC_CAP_GRO),
		GSO:             has(C.MC_CAP_GSO),
		BatchSyscalls:   has(C.MC_CAP_BATCH_SYSCALLS),
		InterfaceEvents: has(C.MC_CAP_INTERFACE_EVENTS),
	}
}

// newError takes ownership of r.err, the C copy of the message.
func newError(r C.gomc_result) error {
	defer C.free(unsafe.Pointer(r.err))
	return &Error{Status: Status(r.status), Message: C.GoString(r.err)}
}
