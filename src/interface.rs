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
    /// The IPv4 address multicast is sent from; `None` where the interface has none,
    /// and then IPv4 groups are joined and sent through by index alone.
    pub ipv4: Option<Ipv4Addr>,
    /// Whether the interface is administratively up.
    pub up: bool,
}

/// Resolves `spec` for an IPv4 group: an interface name (`eth0`) or one of this host's
/// IPv4 addresses (`10.0.0.5`), exactly as written. An unknown name or address is
/// [`ErrorKind::Interface`] (`interface not found: SPEC`). An interface without an IPv4
/// address is accepted, as Go accepts it: the group is joined and sent to by index.
pub fn resolve(spec: &str) -> Result<Interface> {
    resolve_for(spec, false)
}

/// Resolves `spec` for a group of the given family (`v6`: IPv6, which needs no address
/// on the interface): a name, one of the interface's addresses, or (IPv6 zones) an index.
pub fn resolve_for(spec: &str, v6: bool) -> Result<Interface> {
    Interfaces::list()?.resolve(spec, v6)
}

/// This host's interfaces as listed once, so that many names are resolved against one
/// listing (the upkeep thread checks every group against one per burst of changes).
pub(crate) struct Interfaces(Vec<sys::InterfaceAddr>);

impl Interfaces {
    pub(crate) fn list() -> Result<Interfaces> {
        sys::interface_addrs()
            .map(Interfaces)
            .map_err(|e| Error::io("cannot list network interfaces", &e))
    }

    /// As [`resolve_for`].
    pub(crate) fn resolve(&self, spec: &str, v6: bool) -> Result<Interface> {
        match spec.parse::<u32>() {
            Ok(index) if v6 => resolve_index_in(index, &self.0, v6),
            _ => resolve_in(spec, &self.0, v6),
        }
    }

    /// As [`resolve_index_for`].
    pub(crate) fn resolve_index(&self, index: u32, v6: bool) -> Result<Interface> {
        resolve_index_in(index, &self.0, v6)
    }
}

/// Resolves a kernel interface index (as `ip link` or `if_nametoindex` gives it) for an
/// IPv4 group. An unknown index is [`ErrorKind::Interface`].
pub fn resolve_index(index: u32) -> Result<Interface> {
    resolve_index_for(index, false)
}

/// Resolves a kernel interface index for a group of the given family.
pub fn resolve_index_for(index: u32, v6: bool) -> Result<Interface> {
    Interfaces::list()?.resolve_index(index, v6)
}

fn resolve_index_in(index: u32, addrs: &[sys::InterfaceAddr], v6: bool) -> Result<Interface> {
    let entry = addrs.iter().find(|a| a.index == index).ok_or_else(|| {
        Error::new(
            ErrorKind::Interface,
            format!("interface not found: no interface has index {index}"),
        )
    })?;
    resolve_in(&entry.name, addrs, v6)
}

fn resolve_in(spec: &str, addrs: &[sys::InterfaceAddr], v6: bool) -> Result<Interface> {
    let mut by_address = None;
    if let Ok(ip) = spec.parse::<IpAddr>() {
        // The text scriptling's module gives for any unknown interface, which scripts
        // may match on; an address that no interface has is such an interface.
        let found = addrs
            .iter()
            .find(|a| a.addr == Some(ip))
            .ok_or_else(|| not_found(spec))?;
        match ip {
            // Sends to an IPv4 group leave from this very address.
            IpAddr::V4(ipv4) if !v6 => by_address = Some((found, ipv4)),
            IpAddr::V6(_) if !v6 => {
                return Err(Error::new(
                    ErrorKind::Interface,
                    format!(
                    "interface address {ip} is IPv6; an IPv4 group needs an IPv4 interface address"
                ),
                ))
            }
            _ => return resolve_in(&found.name.clone(), addrs, v6),
        }
    }
    if let Some((found, ipv4)) = by_address {
        return Ok(Interface {
            name: found.name.clone(),
            index: found.index,
            ipv4: Some(ipv4),
            up: found.up,
        });
    }
    let mut of_name = addrs.iter().filter(|a| a.name == spec).peekable();
    let first = of_name.peek().cloned().ok_or_else(|| not_found(spec))?;
    // None for an interface without IPv4: joins and sends then go by index alone.
    let ipv4 = of_name.find_map(|a| match a.addr {
        Some(IpAddr::V4(v4)) => Some(v4),
        _ => None,
    });
    Ok(Interface {
        name: first.name.clone(),
        index: first.index,
        ipv4,
        up: first.up,
    })
}

fn not_found(spec: &str) -> Error {
    Error::new(
        ErrorKind::Interface,
        format!("interface not found: {}", shown(spec)),
    )
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
        let i = resolve_in("eth0", &table(), false).unwrap();
        assert_eq!(
            (i.name.as_str(), i.index, i.ipv4),
            ("eth0", 2, Some(Ipv4Addr::new(10, 0, 0, 5)))
        );
    }

    #[test]
    fn by_address() {
        let i = resolve_in("10.0.0.5", &table(), false).unwrap();
        assert_eq!(i.name, "eth0");
    }

    #[test]
    fn by_index() {
        assert_eq!(resolve_index_in(2, &table(), false).unwrap().name, "eth0");
        let e = resolve_index_in(9, &table(), false).unwrap_err();
        assert_eq!(
            (e.kind(), e.message()),
            (
                ErrorKind::Interface,
                "interface not found: no interface has index 9"
            )
        );
        let i = resolve_index_in(3, &table(), false).unwrap();
        assert_eq!((i.name.as_str(), i.ipv4), ("wg0", None));
    }

    #[test]
    fn unknown_name_and_address() {
        let e = resolve_in("eth9", &table(), false).unwrap_err();
        assert_eq!(
            (e.kind(), e.message()),
            (ErrorKind::Interface, "interface not found: eth9")
        );
        let e = resolve_in("10.9.9.9", &table(), false).unwrap_err();
        assert_eq!(
            (e.kind(), e.message()),
            (ErrorKind::Interface, "interface not found: 10.9.9.9")
        );
    }

    #[test]
    fn names_are_exact() {
        for spec in ["eth0 ", " eth0", "eth0\n", "10.0.0.5 ", " 2"] {
            let e = resolve_in(spec, &table(), false).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Interface, "{spec:?}");
        }
        assert_eq!(
            resolve_in("eth0 ", &table(), false).unwrap_err().message(),
            "interface not found: eth0 "
        );
    }

    #[test]
    fn no_ipv4_address_joins_by_index() {
        let i = resolve_in("wg0", &table(), false).unwrap();
        assert_eq!((i.name.as_str(), i.index, i.ipv4), ("wg0", 3, None));
        let e = resolve_in("fe80::1", &table(), false).unwrap_err();
        assert!(e.message().contains("IPv6"), "{e}");
    }

    #[test]
    fn ipv6_groups_need_no_ipv4_address() {
        let i = resolve_in("wg0", &table(), true).unwrap();
        assert_eq!((i.index, i.ipv4), (3, None));
        let i = resolve_in("fe80::1", &table(), true).unwrap();
        assert_eq!(i.name, "eth0");
        assert_eq!(resolve_index_in(3, &table(), true).unwrap().name, "wg0");
    }
}
