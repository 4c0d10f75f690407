package multicast

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	mc "github.com/libmulticast/libmulticast/bindings/go"
)

// Options is a host's policy for what the scripts of one interpreter may do with
// multicast, in the spirit of scriptling's AllowedPaths for files: scripts may be
// untrusted (LLM-written ones among them). The zero value allows everything, as
// Register does. Every rule is checked before any socket is opened; a script that
// steps outside gets an error naming the rule, e.g.
// "group 239.9.9.9 is not allowed by the host's policy".
type Options struct {
	// AllowedGroups are the group prefixes scripts may join (IPv4 and IPv6 CIDRs, e.g.
	// 239.255.0.0/16 or ff15::/16); nil allows every group.
	AllowedGroups []netip.Prefix
	// AllowedPorts are the port ranges scripts may join on; nil allows every port.
	AllowedPorts []PortRange
	// AllowedInterfaces are the interfaces (names, or addresses as the library takes
	// them) scripts may join on; nil allows any, and the kernel's choice. When set, a
	// script must name one of them.
	AllowedInterfaces []string
	// MaxTTL caps the TTL (IPv6 hop limit) scripts may ask for; 0 leaves 1..255.
	MaxTTL int
	// MaxOpenGroups caps how many groups this interpreter's scripts may hold open at
	// once; 0 for no limit.
	MaxOpenGroups int
	// MaxDatagramsPerSecond and MaxBytesPerSecond are the send budget of each group and
	// port (a token bucket holding one second's worth, as the core library's); 0 for no
	// limit. The budget is the interpreter's: closing a group and joining it again does
	// not renew it. A send over it fails with "send failed: over the send limit of ...".
	MaxDatagramsPerSecond uint32
	MaxBytesPerSecond     uint32
	// GroupKeys authenticate groups: a script's join of a group inside a rule's prefix
	// is sealed under that rule's key (the first rule that matches), so scripts on
	// hosts holding the key hear only each other. Keys come from the host only: scripts
	// can neither see nor set them. With RequireKeys, a join of a group no rule covers
	// is refused ("group 239.1.1.1 has no key in the host's policy").
	GroupKeys   []GroupKeyRule
	RequireKeys bool
}

// GroupKeyRule is the key (and, during a rotation, the previous key) of a group prefix.
// See the core binding's JoinOptions.Key; keys are KeySize (32) bytes.
type GroupKeyRule struct {
	Groups        netip.Prefix
	KeyID         uint8
	Key           []byte
	PreviousKeyID uint8
	PreviousKey   []byte
}

// PortRange is an inclusive range of ports; {9999, 9999} is one port.
type PortRange struct{ First, Last int }

// policy is Options checked and in force for one registration.
type policy struct {
	Options
	mu      sync.Mutex
	open    int
	budgets *sendBudgets
}

func newPolicy(opts Options) (*policy, error) {
	for _, r := range opts.AllowedPorts {
		if r.First < 1 || r.Last > 65535 || r.First > r.Last {
			return nil, fmt.Errorf("scriptling multicast options: port range %d-%d is not within 1..65535", r.First, r.Last)
		}
	}
	for _, p := range opts.AllowedGroups {
		if !p.IsValid() || !p.Addr().IsMulticast() {
			return nil, fmt.Errorf("scriptling multicast options: group prefix %v is not a multicast prefix", p)
		}
	}
	if opts.MaxTTL < 0 || opts.MaxTTL > 255 || opts.MaxOpenGroups < 0 {
		return nil, fmt.Errorf("scriptling multicast options: MaxTTL %d (0..255) or MaxOpenGroups %d (>= 0) out of range", opts.MaxTTL, opts.MaxOpenGroups)
	}
	// The rules are copied, so the host changing its slices later changes nothing here.
	rules := make([]GroupKeyRule, len(opts.GroupKeys))
	for i, r := range opts.GroupKeys {
		switch {
		case !r.Groups.IsValid() || !r.Groups.Addr().IsMulticast():
			return nil, fmt.Errorf("scriptling multicast options: key prefix %v is not a multicast prefix", r.Groups)
		case len(r.Key) != mc.KeySize:
			return nil, fmt.Errorf("scriptling multicast options: the key for %v is %d bytes, not %d", r.Groups, len(r.Key), mc.KeySize)
		case r.PreviousKey != nil && len(r.PreviousKey) != mc.KeySize:
			return nil, fmt.Errorf("scriptling multicast options: the previous key for %v is %d bytes, not %d", r.Groups, len(r.PreviousKey), mc.KeySize)
		case r.PreviousKey != nil && r.PreviousKeyID == r.KeyID:
			return nil, fmt.Errorf("scriptling multicast options: the previous key for %v has the key's id %d", r.Groups, r.KeyID)
		}
		rules[i] = GroupKeyRule{r.Groups, r.KeyID, bytes.Clone(r.Key), r.PreviousKeyID, bytes.Clone(r.PreviousKey)}
	}
	opts.GroupKeys = rules
	return &policy{Options: opts, budgets: newSendBudgets(opts.MaxDatagramsPerSecond, opts.MaxBytesPerSecond)}, nil
}

// keyFor sets the key of the first rule covering groupAddr on opts; without one, it
// refuses the join if the policy requires keys.
func (p *policy) keyFor(groupAddr string, opts *mc.JoinOptions) error {
	addr, _, literal := groupLiteral(groupAddr)
	for _, r := range p.GroupKeys {
		if literal && r.Groups.Contains(addr) {
			opts.Key, opts.KeyID = r.Key, r.KeyID
			opts.PreviousKey, opts.PreviousKeyID = r.PreviousKey, r.PreviousKeyID
			return nil
		}
	}
	if p.RequireKeys && literal {
		return fmt.Errorf("group %s has no key in the host's policy", addr)
	}
	return nil
}

// check refuses a join the policy does not allow, before any socket is opened.
func (p *policy) check(groupAddr string, port int, iface string, ttl int) error {
	addr, zone, literal := groupLiteral(groupAddr)
	if zone != "" && iface == "" {
		iface = zone // the zone names the interface of a link-scoped group
	}
	if len(p.AllowedGroups) > 0 {
		if !literal {
			return fmt.Errorf("invalid multicast address: %q is not an IPv4 or IPv6 address literal", groupAddr)
		}
		if !p.groupAllowed(addr) {
			return fmt.Errorf("group %s is not allowed by the host's policy", addr)
		}
	}
	if len(p.AllowedPorts) > 0 && !p.portAllowed(port) {
		return fmt.Errorf("port %d is not allowed by the host's policy", port)
	}
	if len(p.AllowedInterfaces) > 0 {
		switch {
		case iface == "":
			return fmt.Errorf("the host's policy requires an interface: one of %s", strings.Join(p.AllowedInterfaces, ", "))
		case !contains(p.AllowedInterfaces, iface):
			return fmt.Errorf("interface %s is not allowed by the host's policy", iface)
		}
	}
	if p.MaxTTL > 0 && ttl > p.MaxTTL {
		return fmt.Errorf("ttl %d is above the host's limit of %d", ttl, p.MaxTTL)
	}
	return nil
}

func (p *policy) groupAllowed(addr netip.Addr) bool {
	for _, prefix := range p.AllowedGroups {
		if prefix.Contains(addr) {
			return true
		}
	}
	return false
}

func (p *policy) portAllowed(port int) bool {
	for _, r := range p.AllowedPorts {
		if port >= r.First && port <= r.Last {
			return true
		}
	}
	return false
}

// reserve takes one of the open-group slots, or says why not.
func (p *policy) reserve() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.MaxOpenGroups > 0 && p.open >= p.MaxOpenGroups {
		return fmt.Errorf("at most %d groups may be open at once (the host's policy)", p.MaxOpenGroups)
	}
	p.open++
	return nil
}

func (p *policy) release() {
	p.mu.Lock()
	if p.open > 0 {
		p.open--
	}
	p.mu.Unlock()
}

// groupLiteral reads a group as the library spells it: a literal, with an IPv6 zone,
// or in Go's brackets. Exact text, as the library takes it.
func groupLiteral(text string) (netip.Addr, string, bool) {
	if strings.HasPrefix(text, "[") {
		if !strings.HasSuffix(text, "]") {
			return netip.Addr{}, "", false
		}
		text = text[1 : len(text)-1]
	}
	zone := ""
	if i := strings.IndexByte(text, '%'); i >= 0 && strings.Contains(text[:i], ":") {
		text, zone = text[:i], text[i+1:]
	}
	addr, err := netip.ParseAddr(text)
	if err != nil || addr.Zone() != "" {
		return netip.Addr{}, "", false
	}
	return addr, zone, true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
