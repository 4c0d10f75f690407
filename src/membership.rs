//! The socket of a group: opened, bound and joined as the options say, for IPv4 and
//! IPv6, any-source or source-specific, and left again.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4, SocketAddrV6};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};

use crate::error::{Error, ErrorKind, Result};
use crate::interface::Interface;
use crate::options::JoinOptions;
use crate::platform;
use crate::sys;

/// What a socket joined: enough to leave it again.
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    pub group: IpAddr,
    pub interface: Option<Interface>,
    /// The one sender of a source-specific join.
    pub source: Option<IpAddr>,
    /// Whether the interface was named by one of its IPv4 addresses: sends then leave
    /// from that very address. Otherwise they leave by the interface's index, so the
    /// kernel picks its current address (it may change: a DHCP renewal).
    pub by_address: bool,
}

impl Membership {
    /// The kernel interface index to join on (0: the kernel's choice).
    fn index(&self) -> u32 {
        self.interface.as_ref().map_or(0, |i| i.index)
    }

    /// Where sends go: the group and port, with the zone of a link-scoped IPv6 group.
    pub fn destination(&self, port: u16) -> SockAddr {
        match self.group {
            IpAddr::V4(v4) => SockAddr::from(SocketAddrV4::new(v4, port)),
            IpAddr::V6(v6) => SockAddr::from(SocketAddrV6::new(v6, port, 0, self.scope_id())),
        }
    }

    /// The zone of a link-scoped IPv6 group (its interface index), else 0.
    pub fn scope_id(&self) -> u32 {
        if crate::address::needs_interface(&self.group) {
            self.index()
        } else {
            0
        }
    }

    /// Opens the socket: bound to the group (so no other group's traffic arrives),
    /// joined, and set up for sending as `options` say.
    pub fn open(&self, port: u16, options: &JoinOptions) -> Result<Socket> {
        let setup = |what: &'static str| {
            move |e: std::io::Error| Error::io(&format!("join failed: {what}"), &e)
        };
        let domain = if self.group.is_ipv4() {
            Domain::IPV4
        } else {
            Domain::IPV6
        };
        let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))
            .map_err(setup("cannot create a UDP socket"))?;
        socket
            .set_reuse_address(true)
            .map_err(setup("SO_REUSEADDR"))?;
        if self.group.is_ipv6() {
            socket.set_only_v6(true).map_err(setup("IPV6_V6ONLY"))?;
        }
        platform::configure(&socket, self.group).map_err(setup("socket options"))?;
        if options.receive_buffer > 0 {
            // Before bind, so no datagram is queued against the default size.
            socket
                .set_recv_buffer_size(options.receive_buffer)
                .map_err(setup("SO_RCVBUF"))?;
        }
        let bound = sys::bind_address(self.destination(port));
        socket.bind(&bound).map_err(|e| {
            let shown = bound.as_socket().map(|a| a.to_string()).unwrap_or_default();
            Error::io(&format!("join failed: cannot bind {shown}"), &e)
        })?;
        self.join(&socket).map_err(|e| self.join_error(&e))?;
        self.set_up_sending(&socket, options)?;
        // Delivery metadata: the group and arrival interface on request.
        if options.packet_info {
            platform::enable_packet_info(&socket, self.group).map_err(setup("IP_PKTINFO"))?;
        }
        if options.gro {
            platform::enable_gro(&socket).map_err(setup("UDP_GRO"))?;
        }
        Ok(socket)
    }

    fn join(&self, socket: &Socket) -> std::io::Result<()> {
        self.join_on(socket, self.index())
    }

    /// Drops the membership now (closing the socket would too, but later).
    pub fn leave(&self, socket: &Socket) -> std::io::Result<()> {
        self.leave_on(socket, self.index())
    }

    /// Joins on interface `index` (0: the kernel's choice).
    pub fn join_on(&self, socket: &Socket, index: u32) -> std::io::Result<()> {
        self.change(socket, index, true)
    }

    /// Leaves the membership on interface `index`.
    pub fn leave_on(&self, socket: &Socket, index: u32) -> std::io::Result<()> {
        self.change(socket, index, false)
    }

    /// Joins (`join`) or leaves the membership on interface `index`.
    fn change(&self, socket: &Socket, index: u32, join: bool) -> std::io::Result<()> {
        match (self.group, self.source) {
            (group, Some(source)) => sys::source_membership(socket, index, group, source, join),
            (IpAddr::V4(group), None) => {
                let by_index = InterfaceIndexOrAddress::Index(index);
                let result = match join {
                    true => socket.join_multicast_v4_n(&group, &by_index),
                    false => socket.leave_multicast_v4_n(&group, &by_index),
                };
                result.or_else(|e| {
                    self.by_address(e, index, |a| match join {
                        true => socket.join_multicast_v4(&group, &a),
                        false => socket.leave_multicast_v4(&group, &a),
                    })
                })
            }
            (IpAddr::V6(group), None) if join => socket.join_multicast_v6(&group, index),
            (IpAddr::V6(group), None) => socket.leave_multicast_v6(&group, index),
        }
    }

    /// Where a system refuses IPv4 memberships by index (ip_mreqn; Debian's qemu-user
    /// does), the same membership by the interface's address (ip_mreq), which every
    /// system takes: the kernel's choice is 0.0.0.0 either way. An interface without an
    /// IPv4 address can only be named by index, so then the first error stands.
    fn by_address(
        &self,
        refused: std::io::Error,
        index: u32,
        call: impl FnOnce(Ipv4Addr) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let address = match &self.interface {
            _ if index == 0 => Some(Ipv4Addr::UNSPECIFIED),
            Some(i) if i.index == index => i.ipv4,
            _ => None,
        };
        match address {
            Some(address) if call(address).is_ok() => Ok(()),
            _ => Err(refused),
        }
    }

    /// Points sends at the named interface, if one is: by address where the interface
    /// was named by one, else by index (the kernel then sends from its current address).
    pub fn point_sends(&self, socket: &Socket) -> std::io::Result<()> {
        let Some(interface) = &self.interface else {
            return Ok(());
        };
        match (self.group, interface.ipv4) {
            (IpAddr::V4(_), Some(addr)) if self.by_address => socket.set_multicast_if_v4(&addr),
            (IpAddr::V4(_), address) => {
                sys::set_multicast_if_v4_index(socket, interface.index).or_else(|refused| {
                    // By address where by index is refused (see `by_address`).
                    address.map_or(Err(refused), |a| socket.set_multicast_if_v4(&a))
                })
            }
            (IpAddr::V6(_), _) => socket.set_multicast_if_v6(interface.index),
        }
    }

    fn set_up_sending(&self, socket: &Socket, options: &JoinOptions) -> Result<()> {
        let setup = |what: &'static str| {
            move |e: std::io::Error| Error::io(&format!("join failed: {what}"), &e)
        };
        self.point_sends(socket).map_err(setup(match self.group {
            IpAddr::V4(_) => "IP_MULTICAST_IF",
            IpAddr::V6(_) => "IPV6_MULTICAST_IF",
        }))?;
        match self.group {
            IpAddr::V4(_) => {
                socket
                    .set_multicast_loop_v4(options.loopback)
                    .map_err(setup("IP_MULTICAST_LOOP"))?;
                socket
                    .set_multicast_ttl_v4(options.ttl)
                    .map_err(setup("IP_MULTICAST_TTL"))?;
            }
            IpAddr::V6(_) => {
                socket
                    .set_multicast_loop_v6(options.loopback)
                    .map_err(setup("IPV6_MULTICAST_LOOP"))?;
                socket
                    .set_multicast_hops_v6(options.ttl)
                    .map_err(setup("IPV6_MULTICAST_HOPS"))?;
            }
        }
        Ok(())
    }

    /// A refused join, said so that the user knows what to change.
    fn join_error(&self, err: &std::io::Error) -> Error {
        let group = self.group;
        let no_device = sys::is_no_device(err);
        let route = sys::multicast_route_hint(group);
        match &self.interface {
            None if no_device => Error::new(
                ErrorKind::Interface,
                format!(
                    "cannot join {group}: no interface has a route to multicast groups; name an interface \
                     or add a multicast route ({route}) ({err})"
                ),
            ),
            Some(i) if no_device => Error::new(
                ErrorKind::Interface,
                format!("cannot join {group} on interface {}: {err}", i.name),
            ),
            _ => Error::io(&format!("join failed: cannot join {group}"), err),
        }
    }
}
