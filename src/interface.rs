//! Choosing the network interface a group is joined on and sent from.
//!
//! On a multi-homed host the kernel's choice follows the routing table, which is often
//! not the LAN the user means; naming the interface (by name or by one of its addresses)
//! pins both the membership and the outgoing interface.

use std::net::{IpAddr, Ipv4Addr};

use crate::error::{excerpt, Error, ErrorKind, Result};
use crate::sys;

/// A resolved interface: its name, kernel index and the IPv4 address sends use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// The interface name, e.g. `eth0`.
    pub name: String,
    /// The kernel's interface index.
    pub index: u32,
    /// The IPv4 address multicast is sent from.
    pub ipv4: Ipv4Addr,
}

/// Resolves `spec`, an interface name (`eth0`) or one of this host's IPv4 addresses
/// (`10.0.0.5`). An unknown name or address, or an interface without an IPv4 address,
/// is [`ErrorKind::Interface`].
pub fn resolve(spec: &str) -> Result<Interface> {
    let addrs =
        sys::interface_addrs().map_err(|e| Error::io("cannot list network interfaces", &e))?;
    resolve_in(spec, &addrs)
}

/// Resolves a kernel interface index (as `ip link` or `if_nametoindex` gives it). An
/// unknown index, or an interface without an IPv4 address, is [`ErrorKind::Interface`].
pub fn resolve_index(index: u32) -> Result<Interface> {
    let addrs =
        sys::interface_addrs().map_err(|e| Error::io("cannot list network interfaces", &e))?;
    resolve_index_in(index, &addrs)
}

fn resolve_index_in(index: u32, addrs: &[sys::InterfaceAddr]) -> Result<Interface> {
    let entry = addrs.iter().find(|a| a.index == index).ok_or_else(|| {
        Error::new(
            ErrorKind::Interface,
            format!("interface not found: no interface has index {index}"),
        )
    })?;
    resolve_in(&entry.name, addrs)
}

fn resolve_in(spec: &str, addrs: &[sys::InterfaceAddr]) -> Result<Interface> {
    let spec = spec.trim();
    if let Ok(ip) = spec.parse::<IpAddr>() {
        let found = addrs.iter().find(|a| a.addr == Some(ip)).ok_or_else(|| {
            Error::new(
                ErrorKind::Interface,
                format!("interface not found: no interface has the address {ip}"),
            )
        })?;
        let IpAddr::V4(ipv4) = ip else {
            return Err(Error::new(
                ErrorKind::Interface,
                format!(
                    "interface address {ip} is IPv6; an IPv4 group needs an IPv4 interface address"
                ),
            ));
        };
        return Ok(Interface {
            name: found.name.clone(),
            index: found.index,
            ipv4,
        });
    }
    let mut of_name = addrs.iter().filter(|a| a.name == spec).peekable();
    let first = of_name.peek().cloned().ok_or_else(|| {
        Error::new(
            ErrorKind::Interface,
            format!("interface not found: {}", shown(spec)),
        )
    })?;
    let ipv4 = of_name
        .find_map(|a| match a.addr {
            Some(IpAddr::V4(v4)) => Some(v4),
            _ => None,
        })
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Interface,
                format!(
                    "interface {} has no IPv4 address; add one or name another interface",
                    shown(spec)
                ),
            )
        })?;
    Ok(Interface {
        name: first.name.clone(),
        index: first.index,
        ipv4,
    })
}

/// Interface names are short; anything longer is caller garbage and is quoted cut.
fn shown(spec: &str) -> String {
    if spec.len() <= 64 && !spec.contains(|c: char| c.is_control()) {
        spec.to_owned()
    } else {
        excerpt(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Vec<sys::InterfaceAddr> {
        let entry = |name: &str, index, addr: Option<&str>| sys::InterfaceAddr {
            name: name.into(),
            index,
            addr: addr.map(|a| a.parse().unwrap()),
            up: true,
            multicast: true,
        };
        vec![
            entry("lo", 1, None),
            entry("lo", 1, Some("127.0.0.1")),
            entry("eth0", 2, None),
            entry("eth0", 2, Some("fe80::1")),
            entry("eth0", 2, Some("10.0.0.5")),
            entry("wg0", 3, None),
        ]
    }

    #[test]
    fn by_name_takes_ipv4() {
        let i = resolve_in("eth0", &table()).unwrap();
        assert_eq!(
            (i.name.as_str(), i.index, i.ipv4),
            ("eth0", 2, Ipv4Addr::new(10, 0, 0, 5))
        );
    }

    #[test]
    fn by_address() {
        let i = resolve_in("10.0.0.5", &table()).unwrap();
        assert_eq!(i.name, "eth0");
    }

    #[test]
    fn by_index() {
        assert_eq!(resolve_index_in(2, &table()).unwrap().name, "eth0");
        let e = resolve_index_in(9, &table()).unwrap_err();
        assert_eq!(
            (e.kind(), e.message()),
            (
                ErrorKind::Interface,
                "interface not found: no interface has index 9"
            )
        );
        let e = resolve_index_in(3, &table()).unwrap_err();
        assert!(
            e.message().contains("has no IPv4 address"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn unknown_name_and_address() {
        let e = resolve_in("eth9", &table()).unwrap_err();
        assert_eq!(
            (e.kind(), e.message()),
            (ErrorKind::Interface, "interface not found: eth9")
        );
        let e = resolve_in("10.9.9.9", &table()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Interface);
        assert!(e.message().contains("10.9.9.9"));
    }

    #[test]
    fn no_ipv4_address() {
        let e = resolve_in("wg0", &table()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Interface);
        assert!(e.message().contains("has no IPv4 address"), "{e}");
        let e = resolve_in("fe80::1", &table()).unwrap_err();
        assert!(e.message().contains("IPv6"), "{e}");
    }
}
