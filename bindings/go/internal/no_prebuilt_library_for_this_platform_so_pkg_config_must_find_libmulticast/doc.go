// Package fallback is what a build on a platform the released module carries no
// prebuilt library for (anything but linux/amd64, linux/arm64 and windows/amd64) links
// through: the installed libmulticast, found by pkg-config. Its import path is the
// first line of the error such a build stops at when pkg-config finds no libmulticast,
// so that the error says why pkg-config was asked: install the library (make install,
// see docs/install.md) and build again.
package fallback
