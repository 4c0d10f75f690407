//go:build multicast_shared && !multicast_pkgconfig

package multicast

// -tags multicast_shared: the shared library staged by `make lib`.

// #cgo CFLAGS: -I${SRCDIR}/../../include
// #cgo LDFLAGS: -L${SRCDIR}/../../build/lib -Wl,-rpath,${SRCDIR}/../../build/lib -lmulticast
import "C"
