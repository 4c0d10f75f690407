//! Parsing and validation of what a caller names: group addresses, ports, timeouts.
//!
//! Only literals are accepted: a multicast library that resolved host names would block
//! on DNS inside `join` and could silently pick a unicast address.

use std::net::IpAddr;
use std::time::Duration;

use crate::error::{excerpt, Error, ErrorKind, Result};

/// Parses a group as a caller spells it: an IPv4 or IPv6 literal, an IPv6 literal with
/// a zone (`ff02::1%eth0`, `ff02::1%3`), or either in brackets (`[ff02::1]`,
/// `[ff02::1%eth0]`, `[239.1.1.1]`), the form Go's `host:port` resolver (and so
/// scriptling's module) takes. Returns the group and the zone, if any.
///
/// The text is exact: surrounding whitespace is not an address, as with Go's parser.
/// Errors quote the whole text as given. Text that is no address (or an empty zone) is
/// [`ErrorKind::InvalidArgument`]; a valid address outside the multicast ranges is
/// [`ErrorKind::NotMulticast`].
pub fn parse_group_spec(text: &str) -> Result<(IpAddr, Option<&str>)> {
    let invalid = || {
        Error::invalid(format!(
            "invalid multicast address: {} is not an IPv4 or IPv6 address literal",
            excerpt(text)
        ))
    };
    let inner = match text.strip_prefix('[') {
        Some(rest) => rest.strip_suffix(']').ok_or_else(invalid)?,
        None => text,
    };
    let (addr, zone) = split_zone(inner);
    if zone == Some("") {
        return Err(Error::invalid(format!(
            "invalid multicast address: {} has an empty zone after %; name an interface or leave the % out",
            excerpt(text)
        )));
    }
    let group = parse_literal(addr).ok_or_else(invalid)?;
    check_multicast(group)?;
    Ok((group, zone))
}

/// Parses a multicast group literal: IPv4 (224.0.0.0/4) or IPv6 (ff00::/8), exactly as
/// written, without a zone or brackets (see [`parse_group_spec`] for those).
///
/// Text that is no IP address is [`ErrorKind::InvalidArgument`]; a valid address
/// outside the multicast ranges is [`ErrorKind::NotMulticast`].
pub fn parse_group(text: &str) -> Result<IpAddr> {
    let addr = parse_literal(text).ok_or_else(|| {
        Error::invalid(format!(
            "invalid multicast address: {} is not an IPv4 or IPv6 address literal",
            excerpt(text)
        ))
    })?;
    check_multicast(addr)?;
    Ok(addr)
}

fn parse_literal(text: &str) -> Option<IpAddr> {
    text.parse().ok()
}

fn check_multicast(addr: IpAddr) -> Result<()> {
    if addr.is_multicast() {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::NotMulticast,
        format!("address {addr} is not a multicast address"),
    ))
}

/// Splits an IPv6 `%zone` suffix (`ff02::1%eth0`, `ff02::1%3`) off a group literal,
/// exactly as written (no trimming).
pub fn split_zone(text: &str) -> (&str, Option<&str>) {
    match text.split_once('%') {
        Some((addr, zone)) if addr.contains(':') => (addr, Some(zone)),
        _ => (text, None),
    }
}

/// Whether a group's scope is tied to one link, so that joining it needs an interface:
/// IPv6 interface-local (ff01::/16-style scope 1) and link-local (scope 2) groups.
pub fn needs_interface(group: &IpAddr) -> bool {
    match group {
        IpAddr::V6(v6) => matches!(v6.segments()[0] & 0x000f, 1 | 2),
        IpAddr::V4(_) => false,
    }
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

    use std::net::Ipv4Addr;

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
        assert_eq!(parse_group("ff02::1").unwrap().to_string(), "ff02::1");
        assert_eq!(
            parse_group("ff3e::8000:1").unwrap().to_string(),
            "ff3e::8000:1"
        );
    }

    #[test]
    fn zones_and_scopes() {
        assert_eq!(split_zone("ff02::1%eth0"), ("ff02::1", Some("eth0")));
        assert_eq!(split_zone("ff02::1%3"), ("ff02::1", Some("3")));
        assert_eq!(split_zone("ff02::1"), ("ff02::1", None));
        assert_eq!(split_zone("239.1.1.1%eth0"), ("239.1.1.1%eth0", None));
        for (text, link) in [
            ("ff02::1", true),
            ("ff01::1", true),
            ("ff12::1", true),
            ("ff05::1", false),
            ("ff0e::1", false),
            ("ff3e::1", false),
            ("239.1.1.1", false),
        ] {
            assert_eq!(needs_interface(&parse_group(text).unwrap()), link, "{text}");
        }
    }

    #[test]
    fn brackets_as_go_writes_hosts() {
        let v6: IpAddr = "ff02::1".parse().unwrap();
        assert_eq!(parse_group_spec("[ff02::1]").unwrap(), (v6, None));
        assert_eq!(
            parse_group_spec("[ff02::1%mc0]").unwrap(),
            (v6, Some("mc0"))
        );
        assert_eq!(parse_group_spec("ff02::1%mc0").unwrap(), (v6, Some("mc0")));
        assert_eq!(parse_group_spec("ff02::1").unwrap(), (v6, None));
        assert_eq!(
            parse_group_spec("[239.1.1.1]").unwrap(),
            (IpAddr::V4(Ipv4Addr::new(239, 1, 1, 1)), None)
        );
        for bad in [
            "[ff02::1",
            "ff02::1]",
            "[ff02::1%mc0",
            "[[ff02::1]]",
            "[]",
            "[ ff02::1]",
        ] {
            let e = parse_group_spec(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}");
            assert_eq!(
                e.message(),
                format!(
                    "invalid multicast address: \"{bad}\" is not an IPv4 or IPv6 address literal"
                ),
                "the whole text is quoted"
            );
        }
        for empty_zone in ["ff02::1%", "[ff02::1%]"] {
            let e = parse_group_spec(empty_zone).unwrap_err();
            assert!(e.message().contains("has an empty zone"), "{e}");
        }
        assert_eq!(
            parse_group_spec("[fe80::1]").unwrap_err().kind(),
            ErrorKind::NotMulticast
        );
    }

    #[test]
    fn whitespace_is_not_part_of_an_address() {
        for text in [
            " 239.1.1.1",
            "\t239.1.1.1",
            "239.1.1.1\n",
            "239.1.1.1 ",
            " ff02::1%mc0",
        ] {
            let e = parse_group_spec(text).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{text:?}");
        }
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
        assert_eq!(
            parse_group("fe80::1").unwrap_err().kind(),
            ErrorKind::NotMulticast
        );
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
