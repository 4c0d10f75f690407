//! The one status enum of the C API and this thread's last-error message.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, CString};

use super::ffi_panic_boundary;
use crate::error::{Error, ErrorKind};

/// The result of every fallible call. Values are never renumbered; new ones are only
/// added. Negative values are errors, `MC_OK` and `MC_TIMEOUT` are not.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mc_status {
    /// Success.
    MC_OK = 0,
    /// mc_receive: nothing arrived in time (scriptling's None). Not an error.
    MC_TIMEOUT = 1,
    /// A NULL pointer, non-UTF-8 text, a port outside 1..65535, a NaN timeout, a
    /// malformed address, or a buffer too small for the source text.
    MC_ERR_INVALID_ARGUMENT = -1,
    /// A valid IP address that is not a multicast group.
    MC_ERR_NOT_MULTICAST = -2,
    /// The interface was not found, has no usable address, or no route leads to groups.
    MC_ERR_INTERFACE = -3,
    /// A message over the group's limit (MC_MAX_MESSAGE_SIZE, or MC_MAX_MESSAGE_SIZE_V6
    /// for IPv6; MC_AUTH_OVERHEAD less for an authenticated group); nothing was sent.
    MC_ERR_MESSAGE_TOO_LARGE = -4,
    /// mc_receive: *out_len holds the size needed; the datagram stays queued.
    MC_ERR_BUFFER_TOO_SMALL = -5,
    /// mc_send_json: the text is not JSON; the message gives serde's line and column.
    MC_ERR_INVALID_JSON = -6,
    /// The group was closed, before or during the call.
    MC_ERR_CLOSED = -7,
    /// The operating system refused; mc_last_error gives its text.
    MC_ERR_IO = -8,
    /// A bug in libmulticast (a caught panic); never expected.
    MC_ERR_INTERNAL = -9,
    /// A send over the group's send-rate limit (mc_join_options.max_datagrams_per_second
    /// or max_bytes_per_second); nothing was sent. Sending may succeed again once the
    /// budget refills.
    MC_ERR_RATE_LIMITED = -10,
}

// The constants below reach C through the header only, hence dead code to rustc.

/// The largest message mc_send accepts: the largest UDP payload over IPv4.
#[allow(dead_code)]
pub const MC_MAX_MESSAGE_SIZE: usize = 65507;
const _: () = assert!(MC_MAX_MESSAGE_SIZE == crate::message::MAX_MESSAGE_SIZE);

/// The largest message mc_send accepts on an IPv6 group (the largest UDP payload over
/// IPv6 without jumbograms).
#[allow(dead_code)]
pub const MC_MAX_MESSAGE_SIZE_V6: usize = 65527;
const _: () = assert!(MC_MAX_MESSAGE_SIZE_V6 == crate::message::MAX_MESSAGE_SIZE_V6);

/// A source buffer of this many bytes holds any sender text ("ip:port") plus its NUL.
#[allow(dead_code)]
pub const MC_SOURCE_MAX: usize = 64;

impl From<ErrorKind> for mc_status {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::InvalidArgument => mc_status::MC_ERR_INVALID_ARGUMENT,
            ErrorKind::NotMulticast => mc_status::MC_ERR_NOT_MULTICAST,
            ErrorKind::Interface => mc_status::MC_ERR_INTERFACE,
            ErrorKind::MessageTooLarge => mc_status::MC_ERR_MESSAGE_TOO_LARGE,
            ErrorKind::BufferTooSmall => mc_status::MC_ERR_BUFFER_TOO_SMALL,
            ErrorKind::InvalidJson => mc_status::MC_ERR_INVALID_JSON,
            ErrorKind::Closed => mc_status::MC_ERR_CLOSED,
            ErrorKind::Io => mc_status::MC_ERR_IO,
            ErrorKind::RateLimited => mc_status::MC_ERR_RATE_LIMITED,
        }
    }
}

thread_local! {
    // The message needs a destructor, so it is gone during the thread's TLS teardown
    // (atexit handlers, pthread_key destructors). The status is a plain integer with a
    // const initialiser: no destructor, so it stays readable to the very end and lets
    // mc_last_error fall back to a static text instead of aborting.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
    static LAST_STATUS: Cell<c_int> = const { Cell::new(0) };
}

pub(crate) fn set_last_error(message: &str) {
    set_last_error_with_status(mc_status::MC_ERR_INTERNAL, message);
}

fn set_last_error_with_status(status: mc_status, message: &str) {
    let _ = LAST_STATUS.try_with(|last| last.set(status as c_int));
    // An interior NUL would cut the C string; OS texts and our messages have none, but
    // caller text quoted in a message might.
    let c = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    // During thread teardown the message cannot be kept; the status still is.
    let _ = LAST_ERROR.try_with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            *last = c;
        }
    });
}

/// Maps a core result to its status, keeping an error's message for `mc_last_error`.
pub(crate) fn status_of(result: Result<mc_status, Error>) -> mc_status {
    match result {
        Ok(status) => status,
        Err(e) => {
            let status = e.kind().into();
            set_last_error_with_status(status, e.message());
            status
        }
    }
}

/// What mc_last_error says when the thread's message is already destroyed.
fn teardown_text(status: c_int) -> &'static str {
    match status {
        -1 => "invalid argument (details unavailable: the thread is exiting)\0",
        -2 => "not a multicast address (details unavailable: the thread is exiting)\0",
        -3 => "interface error (details unavailable: the thread is exiting)\0",
        -4 => "message too large (details unavailable: the thread is exiting)\0",
        -5 => "buffer too small (details unavailable: the thread is exiting)\0",
        -6 => "invalid JSON (details unavailable: the thread is exiting)\0",
        -7 => "group is closed (details unavailable: the thread is exiting)\0",
        -8 => "operating system error (details unavailable: the thread is exiting)\0",
        -9 => "internal error (details unavailable: the thread is exiting)\0",
        -10 => "send rate limited (details unavailable: the thread is exiting)\0",
        _ => "\0",
    }
}

/// The message of the last call that failed on this thread, naming its cause
/// (for MC_ERR_IO, the operating system's text). "" if no call has failed yet.
///
/// Successful calls leave it unchanged. The pointer is owned by the library and stays
/// valid until the next failing libmulticast call on this thread or the thread's exit;
/// copy it to keep it. Never NULL. Safe to call while the thread exits (from an
/// atexit handler or a pthread_key destructor): the message is then a static text
/// naming the last failure's kind.
/// Thread-safety: each thread has its own message.
#[no_mangle]
pub extern "C" fn mc_last_error() -> *const c_char {
    ffi_panic_boundary! {
        LAST_ERROR
            .try_with(|last| last.try_borrow().map(|m| m.as_ptr()).ok())
            .ok()
            .flatten()
            .unwrap_or_else(|| {
                let status = LAST_STATUS.try_with(Cell::get).unwrap_or(0);
                teardown_text(status).as_ptr().cast()
            })
    }
}

/// The name of a status as static text, e.g. "MC_ERR_CLOSED"; "MC_UNKNOWN_STATUS" for
/// a value that is not an mc_status.
///
/// Never NULL; not to be freed. Thread-safety: safe from any thread.
#[no_mangle]
pub extern "C" fn mc_status_str(status: c_int) -> *const c_char {
    ffi_panic_boundary! {
        let name: &'static str = match status {
            0 => "MC_OK\0",
            1 => "MC_TIMEOUT\0",
            -1 => "MC_ERR_INVALID_ARGUMENT\0",
            -2 => "MC_ERR_NOT_MULTICAST\0",
            -3 => "MC_ERR_INTERFACE\0",
            -4 => "MC_ERR_MESSAGE_TOO_LARGE\0",
            -5 => "MC_ERR_BUFFER_TOO_SMALL\0",
            -6 => "MC_ERR_INVALID_JSON\0",
            -7 => "MC_ERR_CLOSED\0",
            -8 => "MC_ERR_IO\0",
            -9 => "MC_ERR_INTERNAL\0",
            -10 => "MC_ERR_RATE_LIMITED\0",
            _ => "MC_UNKNOWN_STATUS\0",
        };
        name.as_ptr().cast()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn name(status: c_int) -> String {
        // SAFETY: mc_status_str always returns a static NUL-terminated string.
        unsafe { CStr::from_ptr(mc_status_str(status)) }
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn every_status_names_itself() {
        let all = [
            (mc_status::MC_OK, "MC_OK"),
            (mc_status::MC_TIMEOUT, "MC_TIMEOUT"),
            (
                mc_status::MC_ERR_INVALID_ARGUMENT,
                "MC_ERR_INVALID_ARGUMENT",
            ),
            (mc_status::MC_ERR_NOT_MULTICAST, "MC_ERR_NOT_MULTICAST"),
            (mc_status::MC_ERR_INTERFACE, "MC_ERR_INTERFACE"),
            (
                mc_status::MC_ERR_MESSAGE_TOO_LARGE,
                "MC_ERR_MESSAGE_TOO_LARGE",
            ),
            (
                mc_status::MC_ERR_BUFFER_TOO_SMALL,
                "MC_ERR_BUFFER_TOO_SMALL",
            ),
            (mc_status::MC_ERR_INVALID_JSON, "MC_ERR_INVALID_JSON"),
            (mc_status::MC_ERR_CLOSED, "MC_ERR_CLOSED"),
            (mc_status::MC_ERR_IO, "MC_ERR_IO"),
            (mc_status::MC_ERR_INTERNAL, "MC_ERR_INTERNAL"),
            (mc_status::MC_ERR_RATE_LIMITED, "MC_ERR_RATE_LIMITED"),
        ];
        for (status, text) in all {
            assert_eq!(name(status as c_int), text);
            assert_eq!(format!("{status:?}"), text);
        }
        assert_eq!(name(42), "MC_UNKNOWN_STATUS");
        assert_eq!(name(c_int::MIN), "MC_UNKNOWN_STATUS");
    }

    #[test]
    fn last_error_is_per_thread() {
        set_last_error("here");
        std::thread::spawn(|| {
            // SAFETY: mc_last_error never returns NULL.
            assert_eq!(unsafe { CStr::from_ptr(mc_last_error()) }.to_bytes(), b"");
            set_last_error("there");
        })
        .join()
        .unwrap();
        // SAFETY: as above.
        assert_eq!(
            unsafe { CStr::from_ptr(mc_last_error()) }.to_bytes(),
            b"here"
        );
        set_last_error("a\0b");
        assert_eq!(
            unsafe { CStr::from_ptr(mc_last_error()) }.to_bytes(),
            b"a\\0b"
        );
    }
}
