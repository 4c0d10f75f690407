//go:build multicast_pkgconfig

package multicast

// -tags multicast_pkgconfig: an installed libmulticast found by pkg-config (set
// PKG_CONFIG_PATH for a non-standard prefix). Links the shared library.

// #cgo pkg-config: multicast
import "C"
