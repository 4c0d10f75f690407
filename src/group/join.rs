//! Joining: choosing the interface, opening the membership, building the handle.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize};
use std::sync::{Arc, Mutex, RwLock};

use super::receive::Coalesced;
use super::sealed::Sealed;
use super::Group;
use crate::address;
use crate::auth;
use crate::budget::Budget;
use crate::error::{Error, ErrorKind, Result};
use crate::interface::{self, Interface};
use crate::membership::Membership;
use crate::message;
use crate::options::JoinOptions;
use crate::platform;
use crate::sys;
use crate::upkeep::{Wanted, Watched};

impl Group {
    /// Joins `group_addr` (an IPv4 or IPv6 multicast literal; an IPv6 one may carry a
    /// zone, `ff02::1%eth0`) on `port`, on `interface` (a name such as `eth0`, one of this
    /// host's addresses, or `""` for the kernel's choice, by the multicast route). Go's
    /// spellings `[ff02::1]` and `[ff02::1%eth0]` are taken too; the text is exact.
    ///
    /// The socket is bound to the group address with `SO_REUSEADDR`, so several handles
    /// on one host each receive every datagram, and with `IP_MULTICAST_ALL` off, so no
    /// other group joined on the same port leaks in. Loopback is on and the TTL (hop
    /// limit) is 1.
    pub fn join(group_addr: &str, port: u16, interface: &str) -> Result<Group> {
        Group::join_with(
            group_addr,
            port,
            &JoinOptions::default().interface(interface),
        )
    }

    /// Joins as [`join`](Self::join) does, with the interface, TTL, loopback and receive
    /// buffer taken from `options`.
    pub fn join_with(group_addr: &str, port: u16, options: &JoinOptions) -> Result<Group> {
        let (group, zone) = address::parse_group_spec(group_addr)?;
        let port = address::parse_port(i64::from(port))?;
        options.validate()?;
        let interface = choose_interface(group, zone, options)?;
        let membership = Membership {
            group,
            source: source_of(group, &options.source)?,
            by_address: options.interface.parse::<IpAddr>().is_ok(),
            interface,
        };
        let wanted = wanted_interface(&membership, zone, options);
        let socket = membership.open(port, options)?;
        // The group and port, also where the socket is bound to the wildcard address
        // (Windows): what the handle receives.
        let local_addr = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .filter(|a| !a.ip().is_unspecified())
            .or_else(|| membership.destination(port).as_socket())
            .ok_or_else(|| Error::new(ErrorKind::Io, "join failed: socket has no local address"))?;
        let max_message = match group {
            IpAddr::V4(_) => message::MAX_MESSAGE_SIZE,
            IpAddr::V6(_) => message::MAX_MESSAGE_SIZE_V6,
        };
        let sealed = Sealed::new(options, auth::Destination { group, port }, max_message)?;
        let socket = Arc::new(RwLock::new(Some(socket)));
        let upkeep = Watched::new(
            socket.clone(),
            membership.clone(),
            wanted,
            options.rejoin,
            options.reannounce,
        );
        Ok(Group {
            socket,
            closed: AtomicBool::new(false),
            receive_lock: Mutex::new(()),
            queue_was_empty: AtomicBool::new(false),
            blocking_receiver: Mutex::new(None),
            coalesced: options.gro.then(|| {
                Mutex::new(Coalesced {
                    buf: vec![0; 65_535],
                    len: 0,
                    offset: 0,
                    segment: 0,
                    remaining: 0,
                    meta: platform::RecvMeta::default(),
                })
            }),
            gso: AtomicBool::new(true),
            gso_size_limit: AtomicUsize::new(usize::MAX),
            dropped: AtomicU32::new(0),
            budget: Budget::new(
                options.max_datagrams_per_second,
                options.max_bytes_per_second,
            )
            .map(Mutex::new),
            sealed,
            destination: membership.destination(port),
            group,
            upkeep,
            max_message,
            port,
            local_addr,
            fork_generation: sys::fork_generation(),
        })
    }
}

/// The interface a group is joined on: named in the options (name, address or index)
/// or by an IPv6 zone, and refused when down. None is the kernel's choice, by the
/// multicast route, for every group: link-scoped IPv6 groups too, as Go and scriptling
/// join them.
fn choose_interface(
    group: IpAddr,
    zone: Option<&str>,
    options: &JoinOptions,
) -> Result<Option<Interface>> {
    let v6 = group.is_ipv6();
    let named = match (options.interface.as_str(), options.interface_index) {
        ("", 0) => None,
        ("", index) => Some(interface::resolve_index_for(index, v6)?),
        (spec, _) => Some(interface::resolve_for(spec, v6)?),
    };
    let zoned = zone.map(|z| interface::resolve_for(z, true)).transpose()?;
    let chosen = match (named, zoned) {
        (Some(n), Some(z)) if n.index != z.index => {
            return Err(Error::invalid(format!(
                "the zone %{} and the interface {} differ; name one interface",
                z.name, n.name
            )))
        }
        (n, z) => n.or(z),
    };
    // A link-scoped group is bound with its zone, so the kernel's choice is asked for
    // here rather than left to the join (the interface Go's join ends up on).
    let chosen = match chosen {
        None if address::needs_interface(&group) => Some(routed_interface(group)?),
        chosen => chosen,
    };
    if let Some(i) = chosen.as_ref().filter(|i| !i.up) {
        return Err(Error::new(
            ErrorKind::Interface,
            format!(
                "interface {} is down; bring it up (ip link set {} up) or name another interface",
                i.name, i.name
            ),
        ));
    }
    Ok(chosen)
}

/// How the upkeep thread finds the group's interface again. A link-scoped IPv6 group is
/// bound to its interface's index (its zone), which a re-created interface never has
/// again: it is followed by that index, and reported gone once the interface is.
fn wanted_interface(membership: &Membership, zone: Option<&str>, options: &JoinOptions) -> Wanted {
    if address::needs_interface(&membership.group) {
        return Wanted::Index(membership.interface.as_ref().map_or(0, |i| i.index));
    }
    match (options.interface.as_str(), options.interface_index, zone) {
        ("", 0, None) => Wanted::Route,
        ("", 0, Some(zone)) => Wanted::Spec(zone.to_owned()),
        ("", index, _) => Wanted::Index(index),
        (spec, _, _) => Wanted::Spec(spec.to_owned()),
    }
}

/// The interface the kernel's multicast route for `group` leaves through.
fn routed_interface(group: IpAddr) -> Result<Interface> {
    let index = platform::route_interface(group).map_err(|e| {
        if e.kind() == std::io::ErrorKind::Unsupported {
            return Error::new(
                ErrorKind::Interface,
                format!(
                    "IPv6 group {group} is link-scoped (it exists once per link): name the interface \
                     (an interface name or index, or {group}%IFACE)"
                ),
            );
        }
        Error::new(
            ErrorKind::Interface,
            format!(
                "cannot join {group}: no interface has a route to multicast groups; name an interface \
                 or add a multicast route ({}) ({e})",
                sys::multicast_route_hint(group)
            ),
        )
    })?;
    interface::resolve_index_for(index, true)
}

/// The sender a source-specific join admits, of the group's family.
fn source_of(group: IpAddr, text: &str) -> Result<Option<IpAddr>> {
    if text.is_empty() {
        return Ok(None);
    }
    let source: IpAddr = text.parse().map_err(|_| {
        Error::invalid(format!(
            "invalid source address: {} is not an IP address literal",
            crate::error::excerpt(text)
        ))
    })?;
    let broadcast = matches!(source, IpAddr::V4(v4) if v4.is_broadcast());
    if source.is_ipv4() != group.is_ipv4()
        || source.is_multicast()
        || source.is_unspecified()
        || broadcast
    {
        return Err(Error::invalid(format!(
            "source {source} cannot send to group {group}: a source must be a unicast address of the group's family"
        )));
    }
    Ok(Some(source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn bad_arguments_fail_before_any_socket() {
        assert_eq!(
            Group::join("10.0.0.1", 9999, "").unwrap_err().kind(),
            ErrorKind::NotMulticast
        );
        assert_eq!(
            Group::join("nope", 9999, "").unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            Group::join("239.1.1.1", 0, "").unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        let e = Group::join("239.1.1.1", 9999, "no-such-if0").unwrap_err();
        assert_eq!(
            (e.kind(), e.message()),
            (ErrorKind::Interface, "interface not found: no-such-if0")
        );
    }
}
