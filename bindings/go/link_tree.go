//go:build multicast_tree && !multicast_tree_shared

package multicast

// -tags multicast_tree: the static library staged in this checkout by `make lib`, for
// developing the binding inside the repository. The libraries after it are Rust's
// native-static-libs (see docs/install.md).

// #cgo CFLAGS: -I${SRCDIR}/../../include
// #cgo LDFLAGS: ${SRCDIR}/../../build/lib/libmulticast.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
import "C"
