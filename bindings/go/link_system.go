//go:build !multicast_tree && !multicast_tree_shared && !multicast_system_static && (multicast_system || !((linux && (amd64 || arm64 || (arm && arm.7))) || (windows && amd64)))

package multicast

// The installed libmulticast, found by pkg-config, linked as a shared library: with
// -tags multicast_system (a distribution's package, such as the .deb, or your own
// `make install`; set PKG_CONFIG_PATH for a prefix pkg-config does not search), and on
// every platform the released module carries no prebuilt library for (macOS, FreeBSD,
// ...), where fallback.go says so if pkg-config finds nothing.

// #cgo pkg-config: multicast
import "C"
