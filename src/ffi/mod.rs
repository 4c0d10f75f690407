//! The C boundary. It only converts C arguments into Rust values, delegates to the core,
//! and converts results back into an `mc_status` plus this thread's last-error message.
//!
//! Every exported function runs inside [`ffi_panic_boundary!`], so no panic unwinds into
//! C. Every pointer argument is checked for NULL by the helpers below before use.

#![allow(non_camel_case_types)]

use std::any::Any;
use std::ffi::{c_char, c_void, CStr};

use crate::error::{Error, ErrorKind};

mod auth;
mod batch;
mod capabilities;
mod group;
mod membership;
mod options;
mod status;
mod text;
mod version;

pub use status::mc_status;

/// Runs the body, turning a panic into the function's "internal error" value
/// ([`PanicValue`]) and recording the panic message as this thread's last error.
macro_rules! ffi_panic_boundary {
    ($($body:tt)*) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| { $($body)* })) {
            Ok(value) => value,
            Err(payload) => $crate::ffi::on_panic(payload),
        }
    };
}

/// An exported function whose body returns `Result<mc_status, Error>`: panics are
/// caught, and an `Err` becomes its status with the message kept for `mc_last_error`.
macro_rules! ffi_status {
    ($($body:tt)*) => {
        ffi_panic_boundary! {
            let result: ::std::result::Result<$crate::ffi::mc_status, $crate::error::Error> =
                (|| { $($body)* })();
            $crate::ffi::status::status_of(result)
        }
    };
}

pub(crate) use {ffi_panic_boundary, ffi_status};

/// What an exported function returns when a panic was caught.
pub(crate) trait PanicValue {
    fn panic_value() -> Self;
}

impl PanicValue for mc_status {
    fn panic_value() -> Self {
        mc_status::MC_ERR_INTERNAL
    }
}

impl PanicValue for *const c_char {
    fn panic_value() -> Self {
        std::ptr::null()
    }
}

impl PanicValue for i32 {
    fn panic_value() -> Self {
        -1
    }
}

impl PanicValue for () {
    fn panic_value() -> Self {}
}

pub(crate) fn on_panic<T: PanicValue>(payload: Box<dyn Any + Send>) -> T {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    status::set_last_error(&format!(
        "internal error (a bug in libmulticast, please report it): {what}"
    ));
    T::panic_value()
}

fn null_argument(name: &str) -> Error {
    Error::new(ErrorKind::InvalidArgument, format!("{name} is NULL"))
}

/// Borrows `*ptr`, or fails with MC_ERR_INVALID_ARGUMENT naming the argument.
///
/// # Safety
/// `ptr` must be NULL or point to a live `T` for the returned lifetime.
pub(crate) unsafe fn try_ref<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, Error> {
    ptr.as_ref().ok_or_else(|| null_argument(name))
}

/// Borrows `*ptr` mutably, or fails naming the argument.
///
/// # Safety
/// `ptr` must be NULL or point to a live, writable `T` not aliased for the lifetime.
pub(crate) unsafe fn try_mut<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T, Error> {
    ptr.as_mut().ok_or_else(|| null_argument(name))
}

/// Borrows a NUL-terminated UTF-8 string, or fails on NULL or non-UTF-8 bytes.
///
/// # Safety
/// `ptr` must be NULL or point to a NUL-terminated string live for the lifetime.
pub(crate) unsafe fn try_str<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Error> {
    if ptr.is_null() {
        return Err(null_argument(name));
    }
    CStr::from_ptr(ptr).to_str().map_err(|e| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "{name} is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

/// Like [`try_str`], but NULL means "".
///
/// # Safety
/// As for [`try_str`].
pub(crate) unsafe fn try_str_or_empty<'a>(
    ptr: *const c_char,
    name: &str,
) -> Result<&'a str, Error> {
    if ptr.is_null() {
        Ok("")
    } else {
        try_str(ptr, name)
    }
}

/// Borrows `len` bytes at `ptr`; NULL is allowed only when `len` is 0.
///
/// # Safety
/// `ptr` must be NULL or point to `len` readable bytes live for the lifetime.
pub(crate) unsafe fn try_bytes<'a>(
    ptr: *const c_void,
    len: usize,
    name: &str,
) -> Result<&'a [u8], Error> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(null_argument(name))
        };
    }
    if len > isize::MAX as usize {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("{name} length {len} is impossible"),
        ));
    }
    Ok(std::slice::from_raw_parts(ptr.cast::<u8>(), len))
}

/// Borrows `len` writable bytes at `ptr`; NULL is allowed only when `len` is 0.
///
/// # Safety
/// `ptr` must be NULL or point to `len` writable bytes, unaliased, live for the lifetime.
pub(crate) unsafe fn try_bytes_mut<'a>(
    ptr: *mut c_void,
    len: usize,
    name: &str,
) -> Result<&'a mut [u8], Error> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&mut [])
        } else {
            Err(null_argument(name))
        };
    }
    if len > isize::MAX as usize {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("{name} capacity {len} is impossible"),
        ));
    }
    Ok(std::slice::from_raw_parts_mut(ptr.cast::<u8>(), len))
}

/// Borrows `count` elements at `ptr`; NULL is allowed only when `count` is 0.
///
/// # Safety
/// `ptr` must be NULL or point to `count` initialised `T`s live for the lifetime.
pub(crate) unsafe fn try_slice<'a, T>(
    ptr: *const T,
    count: usize,
    name: &str,
) -> Result<&'a [T], Error> {
    if ptr.is_null() {
        return if count == 0 {
            Ok(&[])
        } else {
            Err(null_argument(name))
        };
    }
    if count > isize::MAX as usize / std::mem::size_of::<T>().max(1) {
        return Err(Error::invalid(format!(
            "{name} count {count} is impossible"
        )));
    }
    Ok(std::slice::from_raw_parts(ptr, count))
}

/// Borrows `count` writable elements at `ptr`; NULL is allowed only when `count` is 0.
///
/// # Safety
/// `ptr` must be NULL or point to `count` initialised, unaliased `T`s live for the lifetime.
pub(crate) unsafe fn try_slice_mut<'a, T>(
    ptr: *mut T,
    count: usize,
    name: &str,
) -> Result<&'a mut [T], Error> {
    if ptr.is_null() {
        return if count == 0 {
            Ok(&mut [])
        } else {
            Err(null_argument(name))
        };
    }
    if count > isize::MAX as usize / std::mem::size_of::<T>().max(1) {
        return Err(Error::invalid(format!(
            "{name} count {count} is impossible"
        )));
    }
    Ok(std::slice::from_raw_parts_mut(ptr, count))
}
