//go:build !multicast_shared && !multicast_pkgconfig

package multicast

// Default: the static library staged by `make lib`, so a Go program ships as one binary.
// The libraries after it are Rust's native-static-libs (see the README).

// #cgo CFLAGS: -I${SRCDIR}/../../include
// #cgo LDFLAGS: ${SRCDIR}/../../build/lib/libmulticast.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
import "C"
