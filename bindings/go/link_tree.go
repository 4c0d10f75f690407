//go:build multicast_tree && !multicast_tree_shared

package multicast

// -tags multicast_tree: the static library staged in this checkout by `make lib` (for
// Windows, cross-built into build/windows by scripts/test-windows), for developing the
// binding inside the repository. The libraries after it are Rust's native-static-libs
// for each system (see docs/install.md).

// #cgo CFLAGS: -I${SRCDIR}/../../include
// #cgo linux LDFLAGS: ${SRCDIR}/../../build/lib/libmulticast.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
// #cgo darwin LDFLAGS: ${SRCDIR}/../../build/lib/libmulticast.a -liconv -lSystem -lc -lm
// #cgo freebsd LDFLAGS: ${SRCDIR}/../../build/lib/libmulticast.a -lrt -lutil -lexecinfo -lkvm -lmemstat -lprocstat -ldevstat -lpthread -lgcc_s -lc -lm
// #cgo windows LDFLAGS: ${SRCDIR}/../../build/windows/libmulticast.a -lbcrypt -ladvapi32 -lkernel32 -lntdll -luserenv -lws2_32 -ldbghelp
import "C"
