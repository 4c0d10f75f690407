package multicast_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	multicast "github.com/libmulticast/libmulticast/bindings/go"
)

func joinKeyed(t *testing.T, port int, key []byte, id uint8) *multicast.Group {
	t.Helper()
	g, err := multicast.JoinWithOptions("239.4.7.1", port, multicast.JoinOptions{Key: key, KeyID: id})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func TestAuthenticatedGroup(t *testing.T) {
	key, err := multicast.GenerateKey()
	if err != nil || len(key) != multicast.KeySize {
		t.Fatalf("GenerateKey: %d bytes, %v", len(key), err)
	}
	port := uniquePort()
	a, b := joinKeyed(t, port, key, 1), joinKeyed(t, port, key, 1)
	tap, err := multicast.Join("239.4.7.1", port, "")
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Close()

	if err := a.Send("sealed hello"); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, b); string(m.Data) != "sealed hello" {
		t.Fatalf("member got %q", m.Data)
	}
	wire := receive(t, tap).Data
	if len(wire) != len("sealed hello")+multicast.AuthOverhead || bytes.Contains(wire, []byte("hello")) {
		t.Fatalf("on the wire: %q", wire)
	}
	// Forged and replayed datagrams are dropped and counted; the marker after them
	// arrives, so by then each has been judged.
	tap.Send("forged")
	tap.SendBytes(wire)
	a.Send("marker")
	if m := receive(t, b); string(m.Data) != "marker" {
		t.Fatalf("member got %q", m.Data)
	}
	counts, err := b.AuthCounters()
	if err != nil || counts != (multicast.AuthCounters{Unauthenticated: 1, Replayed: 1}) {
		t.Fatalf("counters %+v, %v", counts, err)
	}

	// Rotation: b first (keeping the old key), then a.
	next, _ := multicast.GenerateKey()
	if err := b.RotateKey(next, 2, true); err != nil {
		t.Fatal(err)
	}
	a.Send("old key")
	if m := receive(t, b); string(m.Data) != "old key" {
		t.Fatalf("member got %q", m.Data)
	}
	if err := a.RotateKey(next, 2, false); err != nil {
		t.Fatal(err)
	}
	a.Send("new key")
	if m := receive(t, b); string(m.Data) != "new key" {
		t.Fatalf("member got %q", m.Data)
	}
}

func TestBadKeys(t *testing.T) {
	port := uniquePort()
	for _, opts := range []multicast.JoinOptions{
		{Key: []byte{}},
		{Key: make([]byte, 16)},
		{PreviousKey: make([]byte, 32)},
		{Key: make([]byte, 32), PreviousKey: make([]byte, 32)},
	} {
		_, err := multicast.JoinWithOptions("239.4.7.2", port, opts)
		if !errors.Is(err, multicast.ErrInvalidArgument) {
			t.Fatalf("key %d bytes, previous %d: %v", len(opts.Key), len(opts.PreviousKey), err)
		}
	}
	_, err := multicast.JoinWithOptions("239.4.7.2", port, multicast.JoinOptions{Key: []byte{}})
	if !strings.Contains(err.Error(), "32 bytes, not 0") {
		t.Fatalf("empty key: %v", err)
	}
	plain := join(t, "239.4.7.2")
	if err := plain.RotateKey(make([]byte, 32), 1, true); !errors.Is(err, multicast.ErrInvalidArgument) {
		t.Fatalf("RotateKey on a plain group: %v", err)
	}
	keyed := joinKeyed(t, port, make([]byte, 32), 1)
	if err := keyed.RotateKey(nil, 2, true); !errors.Is(err, multicast.ErrInvalidArgument) {
		t.Fatalf("RotateKey(nil): %v", err)
	}
}
