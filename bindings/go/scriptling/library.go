// Package multicast is scriptling's scriptling.net.multicast module backed by
// libmulticast: a drop-in for github.com/paularlott/scriptling/extlibs/net/multicast.
//
//	import scriptlingmulticast "github.com/libmulticast/libmulticast/bindings/go/scriptling"
//	scriptlingmulticast.Register(p)
//
// Scripts keep working unchanged. Where scriptling's own module is wrong, this one is
// right, and says so in the README: no cross-talk between groups on one port, the
// interface may also be named by address, a receive interrupted by close() reports
// "group is closed", and an oversized message is refused with a clear error.
package multicast

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"sync"
	"time"

	mc "github.com/libmulticast/libmulticast/bindings/go"
	"github.com/paularlott/scriptling/conversion"
	scerrors "github.com/paularlott/scriptling/errors"
	"github.com/paularlott/scriptling/extlibs"
	"github.com/paularlott/scriptling/object"
)

const (
	// LibraryName is the name scripts import, the same as scriptling's own module.
	LibraryName = "scriptling.net.multicast"
	// LibraryDesc is the module's __doc__, scriptling's own word for word.
	LibraryDesc = "UDP multicast group messaging"
)

var (
	library     *object.Library
	libraryOnce sync.Once
	cleanupOnce sync.Once
	// open holds every group not yet closed, so extlibs.ResetRuntime can close them.
	open = struct {
		sync.Mutex
		m map[*mc.Group]*policy
	}{m: make(map[*mc.Group]*policy)}
)

// Register registers scriptling.net.multicast with registrar (a *scriptling.Scriptling),
// with no host policy. The library is built once per process; extlibs.ResetRuntime
// closes every open group.
func Register(registrar interface{ RegisterLibrary(*object.Library) }) {
	libraryOnce.Do(func() {
		library = buildLibrary(&policy{budgets: newSendBudgets(0, 0)})
		extlibs.RegisterCleanup(closeAll)
	})
	registrar.RegisterLibrary(library)
}

// RegisterWithOptions registers scriptling.net.multicast with registrar under the host's
// policy opts (see Options), which holds for every script that registrar runs. It fails
// only for options that make no sense (a port range outside 1..65535, a prefix that is
// not multicast). extlibs.ResetRuntime closes every open group.
func RegisterWithOptions(registrar interface{ RegisterLibrary(*object.Library) }, opts Options) error {
	p, err := newPolicy(opts)
	if err != nil {
		return err
	}
	cleanupOnce.Do(func() { extlibs.RegisterCleanup(closeAll) })
	registrar.RegisterLibrary(buildLibrary(p))
	return nil
}

func closeAll() {
	open.Lock()
	defer open.Unlock()
	for g, p := range open.m {
		g.Close()
		p.release()
	}
	open.m = make(map[*mc.Group]*policy)
}

// track records an open group and the policy whose open-group slot it holds.
func track(g *mc.Group, p *policy) {
	open.Lock()
	open.m[g] = p
	open.Unlock()
}

// untrack forgets a closed group and gives its slot back, once.
func untrack(g *mc.Group) {
	open.Lock()
	if p, ok := open.m[g]; ok {
		delete(open.m, g)
		p.release()
	}
	open.Unlock()
}

func buildLibrary(p *policy) *object.Library {
	return object.NewLibrary(LibraryName, map[string]*object.Builtin{
		"join": {Fn: joinFn(p), HelpText: joinHelp},
	}, nil, LibraryDesc)
}

// The help texts are scriptling's own, word for word, with what differs added after them.
const joinHelp = `join(group_addr, port, interface="", ttl=1) - Join a multicast group

Parameters:
  group_addr (string): Multicast group address (e.g., "239.1.1.1")
  port (int): Port number for the multicast group
  interface (string, optional): Network interface to bind to
  ttl (int, optional): Multicast TTL / hop limit (default: 1, local network only)

Returns:
  Group object with methods: send(), receive(), close()
  Properties: group_addr, port, local_addr

Example:
  import scriptling.net.multicast as mc
  group = mc.join("239.1.1.1", 9999)
  group.send("Hello group!")
  msg = group.receive(timeout=5)
  group.close()

libmulticast:
  group_addr may be IPv6 ("[ff02::1]", "[ff02::1%eth0]", "ff02::1%eth0"); host names are not resolved.
  interface may also be one of the interface's addresses; ttl must be 1..255.
  Only the group joined is received, never another group on the same port.`

// argument returns positional argument i, else keyword name, else nil.
func argument(args []object.Object, kwargs object.Kwargs, i int, name string) object.Object {
	if v := kwargs.Get(name); v != nil {
		return v
	}
	if i < len(args) {
		return args[i]
	}
	return nil
}

func joinFn(p *policy) func(context.Context, object.Kwargs, ...object.Object) object.Object {
	return func(ctx context.Context, kwargs object.Kwargs, args ...object.Object) object.Object {
		return join(ctx, p, kwargs, args...)
	}
}

func join(ctx context.Context, p *policy, kwargs object.Kwargs, args ...object.Object) object.Object {
	if err := scerrors.MinArgs(args, 1); err != nil {
		return err
	}
	groupAddr, errObj := args[0].AsString()
	if errObj != nil {
		return errObj
	}
	// As scriptling reads it: the positional port, then a keyword port only when it is an
	// integer (port="x" or port=None keeps the positional one).
	port := int64(0)
	if len(args) > 1 {
		if v, e := args[1].AsInt(); e == nil {
			port = v
		}
	}
	if p := kwargs.Get("port"); p != nil {
		if v, e := p.AsInt(); e == nil {
			port = v
		}
	}
	if port <= 0 || port > 65535 {
		return scerrors.NewError("port must be between 1 and 65535")
	}
	joinAddr, errObj := asGoReadsIt(groupAddr)
	if errObj != nil {
		return errObj
	}
	opts := mc.JoinOptions{TTL: 1}
	if i := argument(args, kwargs, 2, "interface"); i != nil {
		if v, e := i.AsString(); e == nil {
			opts.Interface = v
		}
	}
	if otherFamily(joinAddr, opts.Interface) {
		// scriptling finds interfaces by name only, and says this for any address; an
		// address is accepted here when it can carry the group, of the group's family.
		return scerrors.NewError("interface not found: %s", opts.Interface)
	}
	// As scriptling reads it: a value that is no number (None, a string, a bool) leaves
	// the TTL at 1, a float is truncated. A number outside 1..255 is refused, where
	// scriptling sets 0 or silently keeps 1 (see docs/scriptling.md).
	if t := argument(args, kwargs, 3, "ttl"); t != nil {
		if v, e := t.AsInt(); e == nil {
			if v < 1 || v > 255 {
				return scerrors.NewError("ttl must be between 1 and 255")
			}
			opts.TTL = int(v)
		}
	}
	if err := p.check(joinAddr, int(port), opts.Interface, opts.TTL); err != nil {
		return scerrors.NewError("%s", err.Error())
	}
	if err := p.keyFor(joinAddr, &opts); err != nil {
		return scerrors.NewError("%s", err.Error())
	}
	if err := p.reserve(); err != nil {
		return scerrors.NewError("%s", err.Error())
	}
	var g *mc.Group
	var err error
	object.RunBlocking(ctx, func() { g, err = mc.JoinWithOptions(joinAddr, int(port), opts) })
	if err != nil {
		p.release()
		return scerrors.NewError("%s", joinErrorText(groupAddr, err))
	}
	track(g, p)
	addr, zone, _ := groupLiteral(joinAddr)
	return groupObject(g, groupAddr, p.budgets, netip.AddrPortFrom(addr.WithZone(zone), uint16(port)))
}

// asGoReadsIt is the group scriptling's module joins for groupAddr (it resolves
// "host:port" with net.ResolveUDPAddr): an empty host ("", "[]") is no multicast address,
// and an IPv4-mapped IPv6 address ("[::ffff:239.1.1.1]") is the IPv4 group it maps.
func asGoReadsIt(groupAddr string) (string, object.Object) {
	if groupAddr == "" || groupAddr == "[]" {
		return "", scerrors.NewError("address %s is not a multicast address", groupAddr)
	}
	if addr, zone, ok := groupLiteral(groupAddr); ok && zone == "" && addr.Is4In6() {
		return addr.Unmap().String(), nil
	}
	return groupAddr, nil
}

// otherFamily reports whether iface is an address of the other family than the group's.
func otherFamily(groupAddr, iface string) bool {
	group, _, ok := groupLiteral(groupAddr)
	at, err := netip.ParseAddr(iface)
	return ok && err == nil && group.Is4() != at.Unmap().Is4()
}

// joinErrorText keeps scriptling's texts for the errors scripts may match on.
func joinErrorText(groupAddr string, err error) string {
	switch {
	case errors.Is(err, mc.ErrNotMulticast):
		return fmt.Sprintf("address %s is not a multicast address", groupAddr)
	case errors.Is(err, mc.ErrInterface), strings.HasPrefix(err.Error(), "invalid multicast address"):
		return err.Error()
	default:
		return "failed to join multicast group: " + err.Error()
	}
}

func groupObject(g *mc.Group, groupAddr string, budgets *sendBudgets, budget netip.AddrPort) *object.Builtin {
	return &object.Builtin{
		Attributes: map[string]object.Object{
			"send":       &object.Builtin{Fn: sendFn(g, budgets, budget), HelpText: sendHelp},
			"receive":    &object.Builtin{Fn: receiveFn(g), HelpText: receiveHelp},
			"close":      &object.Builtin{Fn: closeFn(g), HelpText: `close() - Leave the multicast group and close the connection`},
			"group_addr": object.NewString(groupAddr),
			"port":       object.NewInteger(int64(g.Port())),
			"local_addr": object.NewString(g.LocalAddr()),
		},
		HelpText: "Multicast group object",
	}
}

const sendHelp = `send(message) - Send a message to the multicast group

Parameters:
  message (string or dict): Message to send. Dicts are automatically JSON encoded.

libmulticast:
  bytes are sent as they are; a message larger than one UDP datagram is refused.`

func sendFn(g *mc.Group, budgets *sendBudgets, budget netip.AddrPort) func(context.Context, object.Kwargs, ...object.Object) object.Object {
	return func(ctx context.Context, kwargs object.Kwargs, args ...object.Object) object.Object {
		if err := scerrors.MinArgs(args, 1); err != nil {
			return err
		}
		data, errObj := messageBytes(args[0])
		if errObj != nil {
			return errObj
		}
		if len(data) <= mc.MaxMessageSize {
			if err := budgets.spend(budget, len(data)); err != nil {
				return scerrors.NewError("%s", err.Error())
			}
		}
		var err error
		object.RunBlocking(ctx, func() { err = g.SendBytes(data) })
		if err != nil {
			budgets.refund(budget, len(data))
			return scerrors.NewError("%s", prefixed("send failed: ", err))
		}
		return &object.Null{}
	}
}

// messageBytes is what goes on the wire, as scriptling sends it: a dict as Go's
// encoding/json writes it, bytes as they are, str as UTF-8, anything else as its text.
func messageBytes(msg object.Object) ([]byte, object.Object) {
	switch m := msg.(type) {
	case *object.Dict:
		encoded, err := json.Marshal(conversion.ToGo(m))
		if err != nil {
			return nil, scerrors.NewError("failed to encode JSON: %s", err.Error())
		}
		return encoded, nil
	case *object.Bytes:
		return m.BytesValue(), nil
	case *object.String:
		return []byte(m.StringValue()), nil
	}
	text, errObj := msg.CoerceString()
	if errObj != nil {
		return nil, scerrors.NewError("message must be string, bytes, or dict")
	}
	return []byte(text), nil
}

const receiveHelp = `receive(timeout=30) - Receive a message from the multicast group

Parameters:
  timeout (number, optional): Timeout in seconds (default: 30)

Returns:
  dict with "data" and "source" keys, or None on timeout

libmulticast:
  data is bytes; timeout <= 0 waits without limit.`

// maxTimeout is where a timeout stops fitting a time.Duration; beyond it, wait forever.
const maxTimeout = float64(math.MaxInt64) / float64(time.Second)

func receiveFn(g *mc.Group) func(context.Context, object.Kwargs, ...object.Object) object.Object {
	return func(ctx context.Context, kwargs object.Kwargs, args ...object.Object) object.Object {
		timeout := 30.0
		if t := argument(args, kwargs, 0, "timeout"); t != nil {
			if v, e := t.AsFloat(); e == nil {
				timeout = v
			}
		}
		if math.IsNaN(timeout) {
			return scerrors.NewError("receive failed: timeout must be a number of seconds, not NaN")
		}
		wait := time.Duration(0) // <= 0: without limit, as scriptling does
		if timeout > 0 && timeout < maxTimeout {
			wait = max(time.Duration(timeout*float64(time.Second)), time.Nanosecond)
		}
		var msg *mc.Message
		var err error
		object.RunBlocking(ctx, func() { msg, err = receiveWithin(ctx, g, wait) })
		if msg == nil && hostDone(ctx) {
			return hostEnded(ctx)
		}
		if err != nil {
			return scerrors.NewError("%s", prefixed("receive failed: ", err))
		}
		if msg == nil {
			return &object.Null{}
		}
		return object.NewStringDict(map[string]object.Object{
			"data":   object.NewBytes(msg.Data),
			"source": object.NewString(msg.Source),
		})
	}
}

// receiveWithin waits for a datagram until wait passes (nil, nil; wait 0: no limit) or
// the host's ctx ends (ctx's error): a waiting script costs a parked goroutine, and
// cancelling the script's Eval ends its receive at once.
func receiveWithin(ctx context.Context, g *mc.Group, wait time.Duration) (*mc.Message, error) {
	if wait > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, wait)
		defer cancel()
	}
	msg, err := g.ReceiveContext(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, nil // the receive's own timeout, or the host's (the caller looks)
	}
	return msg, err
}

// hostDone reports whether the host's ctx has ended, or reached its deadline a moment
// before its timer says so (the receive waits to the deadline itself).
func hostDone(ctx context.Context) bool {
	deadline, ok := ctx.Deadline()
	return ctx.Err() != nil || ok && !time.Now().Before(deadline)
}

// hostEnded is what a script sees when the host cancels it mid-receive, the error
// scriptling's own waits (time.sleep) return.
func hostEnded(ctx context.Context) object.Object {
	if !errors.Is(ctx.Err(), context.Canceled) {
		return scerrors.NewTimeoutError()
	}
	return scerrors.NewCancelledError()
}

func closeFn(g *mc.Group) func(context.Context, object.Kwargs, ...object.Object) object.Object {
	return func(ctx context.Context, kwargs object.Kwargs, args ...object.Object) object.Object {
		g.Close()
		untrack(g)
		return &object.Null{}
	}
}

// prefixed puts prefix before err's text unless libmulticast already did
// ("send failed: group is closed").
func prefixed(prefix string, err error) string {
	text := err.Error()
	if strings.HasPrefix(text, prefix) {
		return text
	}
	return prefix + text
}
