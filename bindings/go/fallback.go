//go:build !multicast_tree && !multicast_tree_shared && !multicast_system && !multicast_system_static && !((linux && (amd64 || arm64 || (arm && arm.7))) || (windows && amd64))

package multicast

// No prebuilt library for this platform: link the installed one through pkg-config
// (link_system.go). The package imported here asks pkg-config first, so a build that
// finds no libmulticast stops at an error headed by its import path, which says so.
import _ "github.com/libmulticast/libmulticast/bindings/go/internal/no_prebuilt_library_for_this_platform_so_pkg_config_must_find_libmulticast"
