// Package include holds multicast.h, the C header the libraries were built with, in the released
// module only: scripts/go-prebuilt builds it from the commit the module is tagged at
// (make go-prebuilt stages it in a checkout). It has no Go code; it is a package so that
// `go mod vendor` copies the directory.
package include
