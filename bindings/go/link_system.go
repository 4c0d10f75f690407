//go:build !multicast_tree && !multicast_tree_shared && !multicast_static

package multicast

// Default: the installed libmulticast, found by pkg-config (`make install` puts
// multicast.pc in $(PREFIX)/lib/pkgconfig; set PKG_CONFIG_PATH for a non-standard
// prefix). Links the shared library, as cgo wrappers of C libraries do.

// #cgo pkg-config: multicast
import "C"
