//go:build !cgo

package multicast

// The binding calls libmulticast, a C library, through cgo. Without cgo (CGO_ENABLED=0,
// or no C compiler found: Go then turns cgo off by itself when cross-compiling) the
// build stops at the name below, which says what to do.
var _ = libmulticast_needs_cgo__build_with_CGO_ENABLED_1_and_a_C_compiler_in_CC
