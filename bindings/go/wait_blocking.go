//go:build !unix && cgo

package multicast

// Where Go's runtime poller cannot take the group's socket (Windows: a Winsock SOCKET is
// not a descriptor the poller adopts this way), a waiting receive waits inside the C
// call, holding an OS thread as a blocking system call does.

type poller struct{}

func newPoller(*Group) (*poller, error) { return &poller{}, nil }

func (*poller) close() {}

// await runs receive, waiting inside it (see awaitBlocking).
func (g *Group) await(l *limits, receive func(wait float64) bool) error {
	return awaitBlocking(l, receive)
}

// kickMoving: each wait looks at its moving deadline at least every cancelSlice.
func (*poller) kickMoving(*movingDeadline) {}
