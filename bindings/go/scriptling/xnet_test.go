package multicast_test

import (
	"net"
	"testing"
	"time"

	mc "github.com/libmulticast/libmulticast/bindings/go"
	"golang.org/x/net/ipv4"
)

// golang.org/x/net/ipv4 takes a group's PacketConn view without a panic (it needs a
// net.Conn, which the view is), but works only on a *net.UDPConn's descriptor: on the
// view each of its calls fails with an error, not a crash, and the group is untouched.
// The Go section of docs/api.md says so: use the view itself, and the group's options
// for TTL, loopback and interface.
func TestXNetIPv4PacketConnRefusesTheViewCleanly(t *testing.T) {
	g, err := mc.Join("239.1.1.46", 9979, "")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	pc := ipv4.NewPacketConn(g.PacketConn())
	to := &net.UDPAddr{IP: net.ParseIP("239.1.1.46"), Port: 9979}
	buf := make([]byte, 1500)
	_, writeErr := pc.WriteTo([]byte("x"), nil, to)
	_, _, _, readErr := pc.ReadFrom(buf)
	for name, err := range map[string]error{
		"WriteTo":         writeErr,
		"ReadFrom":        readErr,
		"SetReadDeadline": pc.SetReadDeadline(time.Now()),
		"SetMulticastTTL": pc.SetMulticastTTL(2),
		"Close":           pc.Close(),
	} {
		if err == nil {
			t.Errorf("x/net's %s on the view succeeded; docs/api.md says it fails: update both", name)
		}
	}
	if err := g.SendBytes([]byte("still open")); err != nil {
		t.Fatal(err)
	}
	if m, err := g.Receive(5 * time.Second); err != nil || m == nil || string(m.Data) != "still open" {
		t.Fatalf("Receive after x/net's calls = %v, %v", m, err)
	}
}
