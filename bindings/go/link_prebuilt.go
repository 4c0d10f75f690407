//go:build !multicast_tree && !multicast_tree_shared && !multicast_system && !multicast_system_static && ((linux && (amd64 || arm64 || (arm && arm.7))) || (windows && amd64))

package multicast

// Default: the static library the released module carries for this platform
// (internal/prebuilt, built from the same commit by scripts/go-prebuilt), linked
// into the program, so `go get` and `go build` need nothing but cgo and a C compiler.
// The libraries after it are what Rust's standard library needs on each system
// (rustc's native-static-libs). linux/arm means GOARM=7 (the library is ARMv7); GOARM=5
// or 6 builds take the pkg-config way (link_system.go). In a checkout, `make
// go-prebuilt` stages the libraries.

// #cgo CFLAGS: -I${SRCDIR}/internal/prebuilt/include
// #cgo linux,amd64 LDFLAGS: ${SRCDIR}/internal/prebuilt/linux_amd64/libmulticast.a
// #cgo linux,arm64 LDFLAGS: ${SRCDIR}/internal/prebuilt/linux_arm64/libmulticast.a
// #cgo linux,arm LDFLAGS: ${SRCDIR}/internal/prebuilt/linux_armv7/libmulticast.a
// #cgo linux LDFLAGS: -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
// #cgo windows,amd64 LDFLAGS: ${SRCDIR}/internal/prebuilt/windows_amd64/libmulticast.a
// #cgo windows LDFLAGS: -lbcrypt -ladvapi32 -lkernel32 -lntdll -luserenv -lws2_32 -ldbghelp
import "C"

// The directories holding the libraries are packages of their own, imported here so
// that `go mod vendor` copies them (it copies only the directories of packages).
import (
	_ "github.com/libmulticast/libmulticast/bindings/go/internal/prebuilt/include"
	_ "github.com/libmulticast/libmulticast/bindings/go/internal/prebuilt/linux_amd64"
	_ "github.com/libmulticast/libmulticast/bindings/go/internal/prebuilt/linux_arm64"
	_ "github.com/libmulticast/libmulticast/bindings/go/internal/prebuilt/linux_armv7"
	_ "github.com/libmulticast/libmulticast/bindings/go/internal/prebuilt/windows_amd64"
)
