//! Errors of the core: a kind (what went wrong, stable and matchable) and a one-line
//! message (what a person needs to fix it).

use std::fmt;
use std::io;
use std::sync::Arc;

/// What went wrong. Each kind maps to exactly one C status (`mc_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A malformed argument: bad address text, port outside 1..65535, NaN timeout, ...
    InvalidArgument,
    /// A valid IP address that is not a multicast group.
    NotMulticast,
    /// The interface does not exist, has no usable address, or no route leads to the group.
    Interface,
    /// A message longer than the largest UDP payload.
    MessageTooLarge,
    /// The caller's buffer is smaller than the queued datagram, which stays queued.
    BufferTooSmall,
    /// Text that is not valid JSON.
    InvalidJson,
    /// The group was closed before or during the call.
    Closed,
    /// The operating system refused; the message carries its text.
    Io,
    /// A send over the group's send-rate limit (a join option); nothing was sent.
    RateLimited,
}

/// An error with its kind and a one-line message naming the cause; for
/// [`ErrorKind::Io`], the operating system's error as its [`source`](std::error::Error::source).
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    needed_len: Option<usize>,
    cause: Option<Arc<io::Error>>,
}

impl PartialEq for Error {
    /// Kind, message and needed length; the OS error behind an `Io` error is in the message.
    fn eq(&self, other: &Self) -> bool {
        (self.kind, &self.message, self.needed_len)
            == (other.kind, &other.message, other.needed_len)
    }
}

impl Eq for Error {}

/// The result type of the core.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            needed_len: None,
            cause: None,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    pub(crate) fn closed(operation: &str) -> Self {
        Self::new(
            ErrorKind::Closed,
            format!("{operation} failed: group is closed"),
        )
    }

    /// An OS error during `context` (e.g. "send failed"), keeping the OS text.
    pub(crate) fn io(context: &str, err: &io::Error) -> Self {
        let cause = match err.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(err.kind(), err.to_string()),
        };
        Error {
            cause: Some(Arc::new(cause)),
            ..Self::new(ErrorKind::Io, format!("{context}: {err}"))
        }
    }

    pub(crate) fn buffer_too_small(needed: usize, capacity: usize) -> Self {
        Error {
            kind: ErrorKind::BufferTooSmall,
            message: format!(
                "receive buffer of {capacity} bytes is too small for the queued {needed}-byte datagram; \
                 it stays queued, retry with a larger buffer"
            ),
            needed_len: Some(needed),
            cause: None,
        }
    }

    /// The kind of error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The one-line message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// For [`ErrorKind::BufferTooSmall`]: the size of the queued datagram.
    pub fn needed_len(&self) -> Option<usize> {
        self.needed_len
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// For callers that speak `io::Result`: the kind maps to the nearest `io::ErrorKind`
/// (an OS error keeps its own), and the message and source stay.
impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        let kind = match (err.kind, &err.cause) {
            (_, Some(cause)) => cause.kind(),
            (ErrorKind::InvalidArgument | ErrorKind::NotMulticast, _) => {
                io::ErrorKind::InvalidInput
            }
            (ErrorKind::MessageTooLarge | ErrorKind::BufferTooSmall, _) => {
                io::ErrorKind::InvalidInput
            }
            (ErrorKind::Interface, _) => io::ErrorKind::AddrNotAvailable,
            (ErrorKind::InvalidJson, _) => io::ErrorKind::InvalidData,
            (ErrorKind::Closed, _) => io::ErrorKind::NotConnected,
            (ErrorKind::RateLimited, _) => io::ErrorKind::WouldBlock,
            (ErrorKind::Io, None) => io::ErrorKind::Other,
        };
        io::Error::new(kind, err)
    }
}

/// Caller text quoted for a message, cut to a readable length so a megabyte of garbage
/// does not become a megabyte of error message.
pub(crate) fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 64;
    match text.char_indices().nth(MAX_CHARS) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}... ({} bytes)", &text[..cut], text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_cuts_long_text() {
        assert_eq!(excerpt("abc"), "\"abc\"");
        let long = "x".repeat(10_000);
        let e = excerpt(&long);
        assert!(e.len() < 100 && e.ends_with("(10000 bytes)"), "{e}");
    }

    #[test]
    fn buffer_too_small_carries_needed_len() {
        let e = Error::buffer_too_small(100, 10);
        assert_eq!(e.kind(), ErrorKind::BufferTooSmall);
        assert_eq!(e.needed_len(), Some(100));
        assert!(e.message().contains("100-byte"));
    }

    #[test]
    fn closed_message_names_operation() {
        assert_eq!(
            Error::closed("send").to_string(),
            "send failed: group is closed"
        );
    }

    #[test]
    fn io_keeps_os_text() {
        let e = Error::io("send failed", &crate::sys::unreachable_error());
        assert_eq!(e.kind(), ErrorKind::Io);
        assert!(
            e.message()
                .starts_with("send failed: Network is unreachable"),
            "{e}"
        );
        let source = std::error::Error::source(&e).expect("the OS error as source");
        assert_eq!(
            source.to_string(),
            crate::sys::unreachable_error().to_string()
        );
        let as_io = io::Error::from(e);
        assert_eq!(as_io.raw_os_error(), None);
        assert_eq!(as_io.kind(), io::ErrorKind::NetworkUnreachable);
        assert!(as_io
            .to_string()
            .starts_with("send failed: Network is unreachable"));
    }

    #[test]
    fn into_io_error_keeps_message_and_maps_kind() {
        let closed = io::Error::from(Error::closed("receive"));
        assert_eq!(closed.kind(), io::ErrorKind::NotConnected);
        assert_eq!(closed.to_string(), "receive failed: group is closed");
        assert!(std::error::Error::source(&Error::closed("send")).is_none());
        let json = io::Error::from(Error::new(ErrorKind::InvalidJson, "invalid JSON: x"));
        assert_eq!(json.kind(), io::ErrorKind::InvalidData);
    }
}
