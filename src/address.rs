//! Parsing and validation of what a caller names: group addresses, ports, timeouts.
//!
//! Only literals are accepted: a multicast library that resolved host names would block
//! on DNS inside `join` and could silently pick a unicast address.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::error::{excerpt, Error, ErrorKind, Result};

/// Parses an IPv4 multicast group literal (224.0.0.0/4).
///
/// Text that is no IPv4 address is [`ErrorKind::InvalidArgument`]; a valid address
/// outside 224.0.0.0/4 is [`ErrorKind::NotMulticast`].
pub fn parse_group(text: &str) -> Result<Ipv4Addr> {
    let addr: Ipv4Addr = text.trim().parse().map_err(|_| {
        let hint = if text.contains(':') {
            " (IPv6 groups are not supported yet)"
        } else {
            ""
        };
        Error::invalid(format!(
            "invalid multicast address: {} is not an IPv4 address literal{hint}",
            excerpt(text)
        ))
    })?;
    if !addr.is_multicast() {
        return Err(Error::new(
            ErrorKind::NotMulticast,
            format!("address {addr} is not a multicast address"),
        ));
    }
    Ok(addr)
}

/// Checks that `port` is a usable UDP port (1..65535).
pub fn parse_port(port: i64) -> Result<u16> {
    match u16::try_from(port) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(Error::invalid("port must be between 1 and 65535")),
    }
}

/// How long a receive may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// Wait until a datagram arrives or the group is closed.
    Never,
    /// Wait at most this long; zero means "only what is already queued".
    After(Duration),
}

impl Timeout {
    /// The C convention: `> 0` waits that many seconds, `0` does not wait, `< 0` (and
    /// `+inf`, and values too large for a `Duration`) wait without limit, NaN is invalid.
    pub fn from_seconds(seconds: f64) -> Result<Timeout> {
        if seconds.is_nan() {
            return Err(Error::invalid(
                "timeout must be a number of seconds, not NaN",
            ));
        }
        if seconds < 0.0 {
            return Ok(Timeout::Never);
        }
        Ok(Duration::try_from_secs_f64(seconds).map_or(Timeout::Never, Timeout::After))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_multicast_range_edges() {
        assert_eq!(
            parse_group("224.0.0.0").unwrap(),
            Ipv4Addr::new(224, 0, 0, 0)
        );
        assert_eq!(
            parse_group("239.255.255.255").unwrap(),
            Ipv4Addr::new(239, 255, 255, 255)
        );
        assert_eq!(
            parse_group(" 239.1.1.1 ").unwrap(),
            Ipv4Addr::new(239, 1, 1, 1)
        );
    }

    #[test]
    fn unicast_is_not_multicast() {
        for text in [
            "192.168.1.1",
            "223.255.255.255",
            "240.0.0.0",
            "127.0.0.1",
            "0.0.0.0",
        ] {
            let e = parse_group(text).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotMulticast, "{text}");
            assert_eq!(
                e.message(),
                format!("address {text} is not a multicast address")
            );
        }
    }

    #[test]
    fn garbage_is_invalid() {
        for text in [
            "",
            "not-an-ip",
            "239.1.1",
            "239.1.1.1.1",
            "239.1.1.256",
            "localhost",
            "239.1.1.1:80",
        ] {
            let e = parse_group(text).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{text}");
            assert!(e.message().starts_with("invalid multicast address"), "{e}");
        }
        assert!(parse_group("ff02::1")
            .unwrap_err()
            .message()
            .contains("IPv6"));
    }

    #[test]
    fn ports() {
        assert_eq!(parse_port(1).unwrap(), 1);
        assert_eq!(parse_port(65535).unwrap(), 65535);
        for bad in [0, -1, 65536, i64::MIN, i64::MAX] {
            let e = parse_port(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert_eq!(e.message(), "port must be between 1 and 65535");
        }
    }

    #[test]
    fn timeouts() {
        assert_eq!(
            Timeout::from_seconds(0.0).unwrap(),
            Timeout::After(Duration::ZERO)
        );
        assert_eq!(
            Timeout::from_seconds(1.5).unwrap(),
            Timeout::After(Duration::from_millis(1500))
        );
        assert_eq!(Timeout::from_seconds(-1.0).unwrap(), Timeout::Never);
        assert_eq!(
            Timeout::from_seconds(f64::INFINITY).unwrap(),
            Timeout::Never
        );
        assert_eq!(
            Timeout::from_seconds(f64::NEG_INFINITY).unwrap(),
            Timeout::Never
        );
        assert_eq!(Timeout::from_seconds(1e300).unwrap(), Timeout::Never);
        assert_eq!(
            Timeout::from_seconds(f64::NAN).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }
}
