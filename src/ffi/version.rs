//! The library's version, for callers that must check what they loaded at run time.

use std::ffi::c_char;

use super::ffi_panic_boundary;

/// The version of the loaded library, e.g. `"0.1.0"`; compare it with the header's
/// `MC_VERSION` to detect a header/library mismatch.
///
/// Returns a static NUL-terminated string: never NULL, never freed by the caller.
/// Thread-safety: safe from any thread.
#[no_mangle]
pub extern "C" fn mc_version() -> *const c_char {
    ffi_panic_boundary! {
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
    }
}
