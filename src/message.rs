//! What travels in a datagram: size limits, the JSON form of scriptling's dict
//! messages, and the text form of a sender's address.

use std::fmt;
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

/// The deepest nesting of arrays and objects accepted, as Go's `encoding/json` does.
pub const MAX_JSON_DEPTH: usize = 10_000;

/// Stack the helper thread gives parsing, encoding and dropping one level of nesting
/// (measured: about 400 bytes optimised, 1,800 unoptimised, several times that under
/// AddressSanitizer), and the rest of the call. Pages never touched cost only address
/// space, so the room is generous: Go's 10,000 levels reserve 80 MiB and use a fraction.
const STACK_PER_LEVEL: usize = 8 * 1024;
const STACK_BASE: usize = 64 * 1024;

/// Documents nested at most this deep are re-encoded on the caller's thread: they fit
/// any stack of 32 KiB or more (optimised). Deeper ones run on a thread of their own
/// sized for them, so every call fits a 32 KiB stack while accepting Go's depth, with
/// nothing but the standard library on every platform.
const INLINE_DEPTH: usize = 8;

/// Re-encodes JSON text the way Go's `encoding/json` writes a decoded value (what
/// scriptling sends for a dict): compact, object keys sorted, `<`, `>`, `&`, U+2028 and
/// U+2029 escaped, whole-number floats without a fraction (`1.0` becomes `1`), and a
/// lone UTF-16 surrogate escape (`"\ud800"`) turned into U+FFFD as Go does. Integers are
/// kept exactly (Go's decoder would round those beyond 2^53 through float64; scriptling's
/// integers are int64 and are sent exactly). Nesting up to [`MAX_JSON_DEPTH`].
///
/// Invalid JSON is [`ErrorKind::InvalidJson`] with serde's line and column. The size
/// limit is the group's (it differs for IPv4 and IPv6), checked when the bytes are sent.
/// Deep documents run on a helper thread with a stack sized for them, so this works on
/// any thread (a 32 KiB one included).
pub fn canonical_json(text: &str) -> Result<Vec<u8>> {
    let scan = scan_json(text);
    if scan.depth > MAX_JSON_DEPTH {
        return Err(Error::new(
            ErrorKind::InvalidJson,
            format!(
                "invalid JSON: nested {} levels deep; the limit is {MAX_JSON_DEPTH}, as in Go's encoding/json",
                scan.depth
            ),
        ));
    }
    let text = match scan.lone_surrogates {
        true => std::borrow::Cow::Owned(replace_lone_surrogates(text)),
        false => std::borrow::Cow::Borrowed(text),
    };
    if scan.depth <= INLINE_DEPTH {
        return reencode(&text);
    }
    // Parsing, encoding and dropping the value all recurse: all of it runs there.
    let stack = STACK_BASE + scan.depth * STACK_PER_LEVEL;
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("libmulticast-json".into())
            .stack_size(stack)
            .spawn_scoped(scope, || reencode(&text))
            .map_err(|e| Error::io("cannot start a thread for deeply nested JSON", &e))?;
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn reencode(text: &str) -> Result<Vec<u8>> {
    let mut de = serde_json::Deserializer::from_str(text);
    // The depth was checked by scan_json; serde's own limit (128) would refuse Go's.
    de.disable_recursion_limit();
    let value: serde_json::Value = serde::Deserialize::deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| Error::new(ErrorKind::InvalidJson, format!("invalid JSON: {e}")))?;
    let mut out = Vec::with_capacity(text.len());
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    serde::Serialize::serialize(&value, &mut ser)
        .map_err(|e| Error::new(ErrorKind::InvalidJson, format!("cannot encode JSON: {e}")))?;
    Ok(out)
}

/// What one pass over the text finds before parsing: how deep arrays and objects nest,
/// and whether a string holds a UTF-16 surrogate escape without its pair.
#[derive(Debug, Default, PartialEq, Eq)]
struct JsonScan {
    depth: usize,
    lone_surrogates: bool,
}

fn scan_json(text: &str) -> JsonScan {
    let bytes = text.as_bytes();
    let (mut scan, mut depth, mut i) = (JsonScan::default(), 0usize, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'[' | b'{' => {
                depth += 1;
                scan.depth = scan.depth.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += match bytes[i] {
                        b'\\' => {
                            scan.lone_surrogates |= lone_surrogate_at(bytes, i);
                            escape_len(bytes, i)
                        }
                        _ => 1,
                    };
                }
            }
            _ => {}
        }
        i += 1;
    }
    scan
}

/// The value of the `\uXXXX` escape at `at`, if it is one.
fn escape_at(bytes: &[u8], at: usize) -> Option<u16> {
    let hex = bytes.get(at..at + 6)?;
    if hex[0] != b'\\' || hex[1] != b'u' {
        return None;
    }
    u16::from_str_radix(std::str::from_utf8(&hex[2..]).ok()?, 16).ok()
}

/// Whether the escape at `at` is a `\uXXXX` surrogate without its pair (a high half not
/// followed by a low one, or a low half on its own).
fn lone_surrogate_at(bytes: &[u8], at: usize) -> bool {
    match escape_at(bytes, at) {
        Some(0xD800..=0xDBFF) => !matches!(escape_at(bytes, at + 6), Some(0xDC00..=0xDFFF)),
        Some(0xDC00..=0xDFFF) => true,
        _ => false,
    }
}

/// How many bytes the escape at `at` spans: a surrogate pair whole (12), so that its
/// low half is never taken for a lone one, a `\uXXXX` (6), or a one-letter escape (2).
fn escape_len(bytes: &[u8], at: usize) -> usize {
    match escape_at(bytes, at) {
        Some(0xD800..=0xDBFF) if !lone_surrogate_at(bytes, at) => 12,
        Some(_) => 6,
        None => 2,
    }
}

/// The text with each lone surrogate escape replaced by `\ufffd`, as Go's decoder reads
/// it. Proper pairs are skipped whole, so their low half is never taken for lone.
fn replace_lone_surrogates(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut copied, mut i, mut in_string) = (0, 0, false);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => in_string = !in_string,
            b'\\' if in_string => {
                let len = escape_len(bytes, i);
                if lone_surrogate_at(bytes, i) {
                    out.push_str(&text[copied..i]);
                    out.push_str("\\ufffd");
                    copied = i + len;
                }
                i += len;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
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

    fn reencoded(text: &str) -> String {
        String::from_utf8(canonical_json(text).unwrap()).unwrap()
    }

    #[test]
    fn lone_surrogates_become_replacement_characters_as_in_go() {
        assert_eq!(reencoded(r#""\ud800""#), "\"\u{fffd}\"");
        assert_eq!(reencoded(r#""\udc00x""#), "\"\u{fffd}x\"");
        assert_eq!(reencoded(r#"["\ud800\u0041"]"#), "[\"\u{fffd}A\"]");
        assert_eq!(
            reencoded(r#"{"\ud800":"\udbff\udbff"}"#),
            "{\"\u{fffd}\":\"\u{fffd}\u{fffd}\"}"
        );
        // A proper pair is one character; an escaped backslash before "ud800" is text.
        assert_eq!(reencoded(r#""\ud83d\ude00""#), "\"\u{1f600}\"");
        assert_eq!(reencoded(r#""\\ud800""#), r#""\\ud800""#);
        assert_eq!(reencoded(r#""\"\ud800""#), "\"\\\"\u{fffd}\"");
    }

    #[test]
    fn nesting_up_to_gos_limit() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(reencoded(&deep(MAX_JSON_DEPTH)), deep(MAX_JSON_DEPTH));
        let e = canonical_json(&deep(MAX_JSON_DEPTH + 1)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidJson);
        assert!(e.message().contains("limit is 10000"), "{e}");
        // Brackets inside strings do not count.
        assert_eq!(
            reencoded(&format!("\"{}\"", "[".repeat(20_000))).len(),
            20_002
        );
    }

    #[test]
    fn integers_beyond_two_to_the_53_stay_exact() {
        assert_eq!(
            reencoded("[9007199254740993, -9223372036854775808, 18446744073709551615]"),
            "[9007199254740993,-9223372036854775808,18446744073709551615]"
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
}
