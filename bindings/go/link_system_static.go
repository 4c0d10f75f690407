//go:build multicast_system_static && !multicast_tree && !multicast_tree_shared

package multicast

// -tags multicast_system_static: the installed static library (multicast-static.pc
// names the archive itself, so the shared library is never picked instead), for a
// program linked against the system's copy that still ships as one binary.

// #cgo pkg-config: multicast-static
import "C"
