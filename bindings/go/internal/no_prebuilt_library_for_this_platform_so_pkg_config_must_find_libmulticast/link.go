//go:build cgo && !multicast_tree && !multicast_tree_shared && !multicast_system && !multicast_system_static && !((linux && (amd64 || arm64 || (arm && arm.7))) || (windows && amd64))

package fallback

// The same constraint as ../../fallback.go: only where the binding links through here.

// #cgo pkg-config: multicast
import "C"
