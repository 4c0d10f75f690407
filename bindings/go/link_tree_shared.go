//go:build multicast_tree_shared

package multicast

// -tags multicast_tree_shared: the shared library staged in this checkout by `make lib`.

// #cgo CFLAGS: -I${SRCDIR}/../../include
// #cgo LDFLAGS: -L${SRCDIR}/../../build/lib -Wl,-rpath,${SRCDIR}/../../build/lib -lmulticast
import "C"
