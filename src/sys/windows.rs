//! Windows: the Winsock and IP Helper calls socket2 does not offer, each wrapped in a
//! safe function. What differs from Unix, and why:
//!
//! - A socket cannot be bound to a multicast address, so a group's socket binds the
//!   wildcard address of its port and the receive path drops datagrams sent to any
//!   other destination (platform/windows.rs reads each one's with IP_PKTINFO).
//! - There is no per-call MSG_DONTWAIT: group sockets are non-blocking, and every
//!   receive waits in WSAPoll (milliseconds, rounded up so a wait never ends early).
//! - Interfaces are named as `ipconfig` and the Settings app show them (the adapter's
//!   friendly name, "Ethernet 2"); indexes are the IPv4 and IPv6 interface indexes.
//! - There is no fork, so no handle is ever inherited by a child.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::windows::io::{AsRawSocket, RawSocket};
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};
use windows_sys::Win32::NetworkManagement::IpHelper::{
    GetAdaptersAddresses, GAA_FLAG_SKIP_ANYCAST, GAA_FLAG_SKIP_DNS_SERVER, GAA_FLAG_SKIP_MULTICAST,
    IP_ADAPTER_ADDRESSES_LH, IP_ADAPTER_NO_MULTICAST,
};
use windows_sys::Win32::NetworkManagement::Ndis::IfOperStatusUp;
use windows_sys::Win32::Networking::WinSock as ws;

use super::InterfaceAddr;
use crate::group::Group;

/// No flag makes one receive return at once: group sockets are non-blocking instead.
pub(crate) const DONT_WAIT: i32 = 0;

/// Receives never wait inside recv (the sockets are non-blocking): they wait in WSAPoll.
pub(crate) const BLOCKING_RECEIVE: bool = false;

/// Nothing wakes a WSAPoll on a UDP socket when another thread closes the group
/// (shutdown of an unconnected socket is refused), so receivers wait in slices of this
/// and look at the group between them: a receive notices a close within 50 ms.
pub(crate) const CLOSE_WAKE_SLICE: Option<Duration> = Some(Duration::from_millis(50));

/// The options and levels of a source-specific membership (RFC 3678).
pub(crate) const MCAST_JOIN_SOURCE_GROUP: i32 = ws::MCAST_JOIN_SOURCE_GROUP as i32;
pub(crate) const MCAST_LEAVE_SOURCE_GROUP: i32 = ws::MCAST_LEAVE_SOURCE_GROUP as i32;
pub(crate) const IPPROTO_IP: i32 = ws::IPPROTO_IP;
pub(crate) const IPPROTO_IPV6: i32 = ws::IPPROTO_IPV6;

/// Joins (or leaves) `group` for datagrams from `source` only, on interface `index`:
/// IP_ADD_SOURCE_MEMBERSHIP for IPv4, MCAST_JOIN_SOURCE_GROUP for IPv6. The IPv4
/// interface is named by its address where it has one (Windows also reads an index in
/// 0.0.0.0/8 there, wine does not), else by index. Wine carries the IPv4 option but not
/// the RFC 3678 one.
pub(crate) fn source_membership(
    socket: &Socket,
    index: u32,
    group: IpAddr,
    source: IpAddr,
    join: bool,
) -> io::Result<()> {
    let (IpAddr::V4(group), IpAddr::V4(source)) = (group, source) else {
        return super::group_source_membership(socket, index, group, source, join);
    };
    let in_addr = |bytes: [u8; 4]| ws::IN_ADDR {
        S_un: ws::IN_ADDR_0 {
            S_addr: u32::from_ne_bytes(bytes),
        },
    };
    let request = ws::IP_MREQ_SOURCE {
        imr_multiaddr: in_addr(group.octets()),
        imr_sourceaddr: in_addr(source.octets()),
        imr_interface: in_addr(ipv4_of(index).map_or(index.to_be_bytes(), |a| a.octets())),
    };
    let name = if join {
        ws::IP_ADD_SOURCE_MEMBERSHIP
    } else {
        ws::IP_DROP_SOURCE_MEMBERSHIP
    };
    setsockopt(socket, ws::IPPROTO_IP, name, &request)
}

/// An IPv4 address of interface `index` (none for 0, the system's choice).
fn ipv4_of(index: u32) -> Option<Ipv4Addr> {
    if index == 0 {
        return None;
    }
    interface_addrs()
        .ok()?
        .into_iter()
        .find_map(|a| match a.addr {
            Some(IpAddr::V4(v4)) if a.index == index => Some(v4),
            _ => None,
        })
}

/// The address a group's socket binds: the wildcard address of the group's family and
/// its port, since Windows refuses to bind a multicast address.
pub(crate) fn bind_address(group_and_port: SockAddr) -> SockAddr {
    match group_and_port.as_socket() {
        Some(SocketAddr::V4(a)) => {
            SockAddr::from(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), a.port()))
        }
        Some(SocketAddr::V6(a)) => {
            SockAddr::from(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), a.port()))
        }
        None => group_and_port,
    }
}

/// The command that gives the system a multicast route, for error messages.
pub(crate) fn multicast_route_hint(group: IpAddr) -> &'static str {
    match group {
        IpAddr::V4(_) => "netsh interface ipv4 add route 224.0.0.0/4 \"IFACE\"",
        IpAddr::V6(_) => "netsh interface ipv6 add route ff00::/8 \"IFACE\"",
    }
}

/// The command that brings interface `name` up, for error messages.
pub(crate) fn link_up_hint(name: &str) -> String {
    format!("netsh interface set interface \"{name}\" admin=enabled")
}

fn os_error(err: &io::Error, codes: &[i32]) -> bool {
    err.raw_os_error().is_some_and(|code| codes.contains(&code))
}

/// A join refused because no interface leads to the group.
pub(crate) fn is_no_device(err: &io::Error) -> bool {
    os_error(err, &[ws::WSAEADDRNOTAVAIL])
}

/// The interface a send went through is down.
pub(crate) fn is_network_down(err: &io::Error) -> bool {
    os_error(err, &[ws::WSAENETDOWN])
}

/// No route leads to the destination.
pub(crate) fn is_unreachable(err: &io::Error) -> bool {
    os_error(err, &[ws::WSAENETUNREACH, ws::WSAEHOSTUNREACH])
}

/// Never: there are no GSO sends here.
pub(crate) fn is_message_size(_err: &io::Error) -> bool {
    false
}

/// Never: there are no GSO sends here.
pub(crate) fn is_unsupported(_err: &io::Error) -> bool {
    false
}

/// An error for "no route to the group" as this system words it.
#[cfg(test)]
pub(crate) fn unreachable_error() -> io::Error {
    io::Error::from_raw_os_error(ws::WSAENETUNREACH)
}

/// Two connected UDP sockets on the loopback interface: a byte sent on one wakes a
/// waiter on the other (Windows has no socketpair).
pub(crate) fn waker_pair() -> io::Result<(Socket, Socket)> {
    let loopback = SockAddr::from(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
    let a = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    let b = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    a.bind(&loopback)?;
    b.bind(&loopback)?;
    a.connect(&b.local_addr()?)?;
    b.connect(&a.local_addr()?)?;
    Ok((a, b))
}

impl Group {
    /// The socket's handle, or `None` once closed. Valid only until `close`.
    pub fn raw_socket(&self) -> Option<RawSocket> {
        self.with_open_socket(AsRawSocket::as_raw_socket)
    }

    /// The SOCKET as a number, for the C API's mc_fd.
    #[cfg(feature = "capi")]
    pub(crate) fn handle_number(&self) -> Option<i64> {
        self.raw_socket().and_then(|s| i64::try_from(s).ok())
    }
}

/// The socket's handle, for registering with an event loop (readable while a datagram
/// is queued). Reads INVALID_SOCKET once the group is closed. Valid only while the
/// group is open: do not read from it or close it.
impl AsRawSocket for Group {
    fn as_raw_socket(&self) -> RawSocket {
        self.raw_socket().unwrap_or(ws::INVALID_SOCKET as RawSocket)
    }
}

/// The name of the interface with index `index` (for IPv6 zones), if any.
pub(crate) fn interface_name(index: u32) -> Option<String> {
    interface_addrs()
        .ok()?
        .into_iter()
        .find(|a| a.index == index)
        .map(|a| a.name)
}

/// Sends to IPv4 groups through interface `index`, whatever its addresses: Windows reads
/// an IP_MULTICAST_IF value in 0.0.0.0/8 as an interface index (network byte order).
pub(crate) fn set_multicast_if_v4_index(socket: &Socket, index: u32) -> io::Result<()> {
    if index >= 1 << 24 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface index out of range",
        ));
    }
    setsockopt(socket, ws::IPPROTO_IP, ws::IP_MULTICAST_IF, &index.to_be())
}

/// setsockopt with one plain-data option value (no padding Winsock could read).
pub(crate) fn setsockopt<T: Copy>(
    socket: &Socket,
    level: i32,
    name: i32,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` is one live, initialised T, passed with its exact size; Winsock
    // only reads it during the call.
    let rc = unsafe {
        ws::setsockopt(
            socket.as_raw_socket() as ws::SOCKET,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as i32,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Waits until one of `sockets` (at most 4) is readable, or `timeout` passes (see
/// [`super::wait_readable`]); WSAPoll takes milliseconds, rounded up.
pub(crate) fn wait_readable_any(
    sockets: &[&Socket],
    timeout: Option<Duration>,
) -> io::Result<bool> {
    wait(sockets, ws::POLLRDNORM, timeout)
}

/// Waits until `socket`'s send buffer has room, or `timeout` passes.
pub(crate) fn wait_writable(socket: &Socket, timeout: Option<Duration>) -> io::Result<bool> {
    wait(&[socket], ws::POLLWRNORM, timeout)
}

/// WSAPoll for `events` on `sockets` (at most 4) until one is ready or `timeout` passes.
fn wait(sockets: &[&Socket], events: i16, timeout: Option<Duration>) -> io::Result<bool> {
    let mut fds = [ws::WSAPOLLFD {
        fd: ws::INVALID_SOCKET,
        events,
        revents: 0,
    }; 4];
    let count = sockets.len().min(fds.len());
    for (fd, socket) in fds.iter_mut().zip(sockets) {
        fd.fd = socket.as_raw_socket() as ws::SOCKET;
    }
    super::retry_for(timeout, |left| {
        // SAFETY: `fds` is a valid, exclusively borrowed array of at least `count`
        // entries for the whole call.
        let n = unsafe {
            ws::WSAPoll(
                fds.as_mut_ptr(),
                count as u32,
                super::millis_rounded_up(left),
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n)
        }
    })
}

/// No fork on Windows: no handle is ever inherited by a child process.
pub(crate) fn fork_generation() -> u64 {
    0
}

/// Lists every interface address (one entry per address, and one with `addr: None` for
/// the adapter itself), from GetAdaptersAddresses.
pub(crate) fn interface_addrs() -> io::Result<Vec<InterfaceAddr>> {
    let flags = GAA_FLAG_SKIP_ANYCAST | GAA_FLAG_SKIP_MULTICAST | GAA_FLAG_SKIP_DNS_SERVER;
    // The list's size changes between calls when adapters come and go: ask again.
    let mut size: u32 = 16 * 1024;
    for _ in 0..4 {
        // u64 words keep the buffer 8-aligned, as the list's structures need.
        let mut buf = vec![0u64; (size as usize).div_ceil(8)];
        let head = buf.as_mut_ptr().cast::<IP_ADAPTER_ADDRESSES_LH>();
        // SAFETY: `buf` has `size` writable, aligned bytes; the call writes the list
        // into it (or the size it needs into `size`).
        let rc = unsafe {
            GetAdaptersAddresses(
                u32::from(ws::AF_UNSPEC),
                flags,
                std::ptr::null(),
                head,
                &mut size,
            )
        };
        match rc {
            0 => {
                // SAFETY: on success `buf` holds a valid list starting at `head`.
                return Ok(unsafe { walk_adapters(head) });
            }
            // ERROR_BUFFER_OVERFLOW: `size` now says how much is needed.
            111 => continue,
            // ERROR_NO_DATA: no adapters at all.
            232 => return Ok(Vec::new()),
            code => return Err(io::Error::from_raw_os_error(code as i32)),
        }
    }
    Err(io::Error::other("the adapter list kept changing"))
}

/// # Safety
/// `adapter` must be NULL or the head of a list GetAdaptersAddresses wrote, alive for
/// the call.
unsafe fn walk_adapters(mut adapter: *const IP_ADAPTER_ADDRESSES_LH) -> Vec<InterfaceAddr> {
    let mut out = Vec::new();
    while let Some(a) = adapter.as_ref() {
        adapter = a.Next;
        let index = match a.Anonymous1.Anonymous.IfIndex {
            0 => a.Ipv6IfIndex,
            v4 => v4,
        };
        let entry = InterfaceAddr {
            name: wide_string(a.FriendlyName),
            index,
            addr: None,
            up: a.OperStatus == IfOperStatusUp,
            multicast: a.Anonymous2.Flags & IP_ADAPTER_NO_MULTICAST == 0,
        };
        let mut unicast = a.FirstUnicastAddress;
        while let Some(u) = unicast.as_ref() {
            unicast = u.Next;
            if let Some(addr) = socket_address_ip(&u.Address) {
                out.push(InterfaceAddr {
                    addr: Some(addr),
                    ..entry.clone()
                });
            }
        }
        out.push(entry);
    }
    out
}

/// # Safety
/// `text` must be NULL or a NUL-terminated UTF-16 string.
unsafe fn wide_string(text: *const u16) -> String {
    if text.is_null() {
        return String::new();
    }
    let len = (0..).take_while(|&i| *text.add(i) != 0).count();
    String::from_utf16_lossy(std::slice::from_raw_parts(text, len))
}

/// # Safety
/// `address` must point to a valid sockaddr of `iSockaddrLength` bytes, or be NULL.
unsafe fn socket_address_ip(address: &ws::SOCKET_ADDRESS) -> Option<IpAddr> {
    let sa = address.lpSockaddr;
    if sa.is_null() {
        return None;
    }
    match (*sa).sa_family {
        ws::AF_INET
            if address.iSockaddrLength as usize >= std::mem::size_of::<ws::SOCKADDR_IN>() =>
        {
            let sin = &*(sa as *const ws::SOCKADDR_IN);
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.S_un.S_addr,
            ))))
        }
        ws::AF_INET6
            if address.iSockaddrLength as usize >= std::mem::size_of::<ws::SOCKADDR_IN6>() =>
        {
            let sin6 = &*(sa as *const ws::SOCKADDR_IN6);
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.u.Byte)))
        }
        _ => None,
    }
}
