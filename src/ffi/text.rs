//! Text written into caller-provided C buffers without allocating.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};

use crate::message::SourceText;

/// Writes `addr` as `ip:port` into `out` without allocating; returns the text length.
/// Fails if `out` cannot hold the text.
pub(super) fn format_source(
    addr: &SocketAddr,
    out: &mut [u8],
) -> std::result::Result<usize, fmt::Error> {
    let mut w = SliceWriter { buf: out, len: 0 };
    write!(w, "{}", SourceText(addr))?;
    Ok(w.len)
}

/// Writes an IP address as text into `out`; returns the bytes written.
pub(super) fn format_source_ip(
    addr: &IpAddr,
    out: &mut [u8],
) -> std::result::Result<usize, fmt::Error> {
    let mut w = SliceWriter { buf: out, len: 0 };
    write!(w, "{addr}")?;
    Ok(w.len)
}

struct SliceWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::SOURCE_MAX_V4;

    #[test]
    fn source_text() {
        let mut buf = [0u8; SOURCE_MAX_V4];
        let addr: SocketAddr = "255.255.255.255:65535".parse().unwrap();
        let n = format_source(&addr, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"255.255.255.255:65535");
        assert_eq!(n + 1, SOURCE_MAX_V4);
        assert!(format_source(&addr, &mut buf[..10]).is_err());
    }
}
