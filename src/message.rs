//! What travels in a datagram: size limits, the JSON form of scriptling's dict
//! messages, and the text form of a sender's address.

use std::fmt::{self, Write as _};
use std::io;
use std::net::SocketAddr;

use crate::error::{Error, ErrorKind, Result};

/// The largest UDP payload over IPv4: 65535 - 20 (IP header) - 8 (UDP header).
pub const MAX_MESSAGE_SIZE: usize = 65_507;

/// The largest UDP payload over IPv6 (without jumbograms): 65535 - 8 (UDP header); the
/// 40-byte IPv6 header is not counted in its payload length.
pub const MAX_MESSAGE_SIZE_V6: usize = 65_527;

/// The longest `ip:port` text of an IPv4 source ("255.255.255.255:65535") plus its NUL.
pub const SOURCE_MAX_V4: usize = 22;

/// The longest `[ip%zone]:port` text of an IPv6 source: 39 address characters, a zone
/// of up to 15 (IFNAMSIZ - 1), brackets, colon, 5-digit port, NUL.
pub const SOURCE_MAX_V6: usize = 64;

/// A received datagram, for Rust callers that want an owned copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The payload, byte for byte.
    pub data: Vec<u8>,
    /// The sender's address and port.
    pub source: SocketAddr,
}

/// Checks `len` against the payload limit of a group's family (`max`).
pub(crate) fn check_size_for(len: usize, max: usize) -> Result<()> {
    if len > max {
        return Err(Error::new(
            ErrorKind::MessageTooLarge,
            format!("message of {len} bytes is larger than the {max}-byte UDP limit"),
        ));
    }
    Ok(())
}

/// Re-encodes JSON text the way Go's `encoding/json` writes a decoded value (what
/// scriptling sends for a dict): compact, object keys sorted, `<`, `>`, `&`, U+2028 and
/// U+2029 escaped, and whole-number floats without a fraction (`1.0` becomes `1`).
///
/// Invalid JSON is [`ErrorKind::InvalidJson`] with serde's line and column. The size
/// limit is the group's (it differs for IPv4 and IPv6), checked when the bytes are sent.
pub fn canonical_json(text: &str) -> Result<Vec<u8>> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Error::new(ErrorKind::InvalidJson, format!("invalid JSON: {e}")))?;
    let mut out = Vec::with_capacity(text.len());
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    serde::Serialize::serialize(&value, &mut ser)
        .map_err(|e| Error::new(ErrorKind::InvalidJson, format!("cannot encode JSON: {e}")))?;
    Ok(out)
}

/// serde_json's compact output with Go's escaping and number format.
struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escape = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            w.write_all(&fragment.as_bytes()[start..i])?;
            w.write_all(escape.as_bytes())?;
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        w.write_all(go_float(value).as_bytes())
    }
}

/// Go's `strconv.FormatFloat(f, 'f' or 'e', -1, 64)` as encoding/json chooses it:
/// shortest round-trip digits, exponent form only below 1e-6 or from 1e21 on.
fn go_float(value: f64) -> String {
    let abs = value.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust writes "1e21" / "1.5e-7"; Go writes "1e+21" / "1.5e-7" (encoding/json
        // trims strconv's "e-07" back to "e-7", and positive exponents are >= 21 here).
        let s = format!("{value:e}");
        let (mantissa, exp) = s.split_once('e').expect("exponent form");
        let sign = if exp.starts_with('-') { "" } else { "+" };
        return format!("{mantissa}e{sign}{exp}");
    }
    // `{}` on f64 prints the shortest round-trip digits and never an exponent.
    let s = format!("{value}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

/// Writes `addr` as `ip:port` into `out` without allocating; returns the text length.
/// Fails if `out` cannot hold the text.
pub(crate) fn format_source(
    addr: &SocketAddr,
    out: &mut [u8],
) -> std::result::Result<usize, fmt::Error> {
    let mut w = SliceWriter { buf: out, len: 0 };
    write!(w, "{}", SourceText(addr))?;
    Ok(w.len)
}

/// An address as users read it: `ip:port`, or `[ip]:port` for IPv6 with the zone as
/// the interface's name where one applies (`[fe80::1%eth0]:9999`).
pub struct SourceText<'a>(pub &'a SocketAddr);

impl fmt::Display for SourceText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            SocketAddr::V6(v6) if v6.scope_id() != 0 => {
                match crate::sys::interface_name(v6.scope_id()) {
                    Some(name) => write!(f, "[{}%{name}]:{}", v6.ip(), v6.port()),
                    None => write!(f, "[{}%{}]:{}", v6.ip(), v6.scope_id(), v6.port()),
                }
            }
            SocketAddr::V6(v6) => write!(f, "[{}]:{}", v6.ip(), v6.port()),
            SocketAddr::V4(v4) => write!(f, "{v4}"),
        }
    }
}

/// Writes an IP address as text into `out`; returns the bytes written.
pub(crate) fn format_source_ip(
    addr: &std::net::IpAddr,
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

    #[test]
    fn json_sorted_compact_go_escapes() {
        let out = canonical_json(r#"{ "node": "worker-1", "action": "heartbeat", "n": {"b": 1, "a": [1, 2.5, true, null]} }"#)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"action":"heartbeat","n":{"a":[1,2.5,true,null],"b":1},"node":"worker-1"}"#
        );
        let out = canonical_json(r#"{"html": "<a href=\"x\">&</a>", "ls": "\u2028"}"#).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"html":"\u003ca href=\"x\"\u003e\u0026\u003c/a\u003e","ls":"\u2028"}"#
        );
    }

    #[test]
    fn json_numbers_like_go() {
        let out =
            canonical_json("[1.0, 1234, -0.5, 1e21, 1e-7, 123456789.0, 0.000001, 2.5e20, 1.5e300]")
                .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[1,1234,-0.5,1e+21,1e-7,123456789,0.000001,250000000000000000000,1.5e+300]"
        );
    }

    #[test]
    fn invalid_json_has_position() {
        let e = canonical_json("{\"a\": }").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidJson);
        assert!(e.message().contains("line 1 column 7"), "{e}");
        assert_eq!(
            canonical_json("").unwrap_err().kind(),
            ErrorKind::InvalidJson
        );
    }

    #[test]
    fn size_limit() {
        assert!(check_size_for(MAX_MESSAGE_SIZE, MAX_MESSAGE_SIZE).is_ok());
        assert_eq!(
            check_size_for(MAX_MESSAGE_SIZE + 1, MAX_MESSAGE_SIZE)
                .unwrap_err()
                .kind(),
            ErrorKind::MessageTooLarge
        );
        assert!(check_size_for(MAX_MESSAGE_SIZE_V6, MAX_MESSAGE_SIZE_V6).is_ok());
    }

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
