//! A relay's hold on one interface for one IP version: an AF_PACKET datagram socket that
//! reads every UDP packet to a multicast address arriving there (all groups of a range,
//! all ports, without joining each) and writes packets out as a router does, with the
//! sender's addresses. Exact groups are also joined, on a socket that receives nothing,
//! so that IGMP/MLD-snooping switches forward them to the relay.

use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use socket2::{
    Domain, InterfaceIndexOrAddress, Protocol, SockAddr, SockAddrStorage, SockFilter, Socket, Type,
};

use super::limits::LinkAddress;
use super::packet;

/// A packet read from a tap.
pub struct Arrival {
    pub len: usize,
    /// Its UDP checksum is still to be computed (sent from this host, or through
    /// virtual links that leave it to the hardware: veth, bridges, tun).
    pub partial_checksum: bool,
    /// The link-layer address it came from (zeros where the link has none).
    pub from: LinkAddress,
}

pub struct Tap {
    pub index: u32,
    pub v6: bool,
    socket: Socket,
    /// Whether the link has Ethernet addresses (else, as on tun or WireGuard, none).
    ethernet: bool,
    /// The interface's own link-layer address (zeros where it has none).
    pub address: LinkAddress,
    /// Holds the joins of exact groups; never read.
    _memberships: Socket,
}

impl Tap {
    /// Opens `interface` for IPv4 (`v6` false) or IPv6 packets and joins `groups` there.
    pub fn open(interface: &str, v6: bool, groups: &[IpAddr]) -> Result<Tap, String> {
        let resolved = multicast::interface::resolve(interface)
            .map_err(|e| format!("interface {interface:?}: {}", e.message()))?;
        let index = resolved.index;
        let ethertype = if v6 { libc::ETH_P_IPV6 } else { libc::ETH_P_IP } as u16;
        let socket = Socket::new(
            Domain::PACKET,
            Type::DGRAM,
            Some(Protocol::from(i32::from(ethertype.to_be()))),
        )
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EPERM) => format!(
                "cannot open a packet socket on {interface}: {e} (mcat relay needs root or CAP_NET_RAW)"
            ),
            _ => format!("cannot open a packet socket on {interface}: {e}"),
        })?;
        let failed = |what: &str, e: io::Error| format!("{interface}: cannot {what}: {e}");
        socket
            .attach_filter(if v6 { &FILTER_V6 } else { &FILTER_V4 })
            .map_err(|e| failed("attach the packet filter", e))?;
        socket
            .bind(&link_address(index, ethertype, None))
            .map_err(|e| failed("bind the packet socket", e))?;
        // Every multicast frame, not only the groups some socket joined: ranges and ports
        // are matched here, not by the interface's filter.
        all_multicast(&socket, index).map_err(|e| failed("receive all multicast", e))?;
        // Each packet says whether its checksum is complete (see receive).
        set_int(&socket, libc::SOL_PACKET, libc::PACKET_AUXDATA, 1)
            .map_err(|e| failed("ask for packet status", e))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| failed("make the socket non-blocking", e))?;
        // A receive buffer that rides out a burst while the relay sends: past
        // net.core.rmem_max where allowed (CAP_NET_ADMIN), else up to it.
        if set_int(
            &socket,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            RECEIVE_BUFFER as libc::c_int,
        )
        .is_err()
        {
            let _ = socket.set_recv_buffer_size(RECEIVE_BUFFER);
        }
        let memberships = join_exact(interface, index, v6, groups)?;
        let (ethernet, address) =
            link_of(&socket, interface).map_err(|e| failed("read the link type", e))?;
        Ok(Tap {
            index,
            v6,
            socket,
            ethernet,
            address,
            _memberships: memberships,
        })
    }

    pub fn fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.socket)
    }

    /// The next packet, or None when none is waiting.
    pub fn receive(&self, buf: &mut [u8]) -> io::Result<Option<Arrival>> {
        // u64s: cmsghdr alignment; room for one tpacket_auxdata.
        let mut control = [0u64; 8];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: all-zero msghdr and sockaddr_ll are valid; pointers are set below.
        let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        message.msg_name = (&mut from as *mut libc::sockaddr_ll).cast();
        message.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        message.msg_iov = &mut iov;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr().cast();
        message.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: the iovec and control buffer outlive the call and have those lengths.
        let n = unsafe { libc::recvmsg(self.fd(), &mut message, libc::MSG_DONTWAIT) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        let mut partial = false;
        // SAFETY: the kernel filled the control buffer; the CMSG macros walk it within
        // msg_controllen, and the data of a PACKET_AUXDATA message is a tpacket_auxdata.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&message);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_PACKET
                    && (*cmsg).cmsg_type == libc::PACKET_AUXDATA
                {
                    let aux: libc::tpacket_auxdata =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    partial = aux.tp_status & libc::TP_STATUS_CSUMNOTREADY != 0;
                }
                cmsg = libc::CMSG_NXTHDR(&message, cmsg);
            }
        }
        let mut address = LinkAddress::default();
        let length = usize::from(from.sll_halen).min(address.len());
        address[..length].copy_from_slice(&from.sll_addr[..length]);
        Ok(Some(Arrival {
            len: n as usize,
            partial_checksum: partial,
            from: address,
        }))
    }

    /// Sends a whole IP packet to `group` out of this interface. A full queue (EAGAIN,
    /// or ENOBUFS, which is also what an egress filter or a zero-limit qdisc answers,
    /// and then for good) is waited for up to `wait`, then the send fails with it: no
    /// datagram may hold the other legs, or a signal, for longer.
    pub fn send(&self, packet: &[u8], group: IpAddr, wait: Duration) -> io::Result<()> {
        let ethertype = if self.v6 {
            libc::ETH_P_IPV6
        } else {
            libc::ETH_P_IP
        } as u16;
        let mac = self.ethernet.then(|| packet::ethernet_group_address(group));
        let deadline = Instant::now() + wait;
        loop {
            match self
                .socket
                .send_to(packet, &link_address(self.index, ethertype, mac))
            {
                Ok(_) => return Ok(()),
                Err(e) if is_queue_full(&e) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(e);
                    }
                    wait_writable(self.fd(), left);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// A send that a full queue refused (or an egress filter, which answers the same).
pub fn is_queue_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::ENOBUFS)
}

const RECEIVE_BUFFER: usize = 4 << 20;

/// setsockopt with a plain-data value (an int, a packet_mreq).
fn set_option<T: Copy>(
    socket: &Socket,
    level: libc::c_int,
    option: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` is a T of its own size, the type the option takes (callers' duty).
    let done = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(socket),
            level,
            option,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn set_int(
    socket: &Socket,
    level: libc::c_int,
    option: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    set_option(socket, level, option, &value)
}

/// Whether the interface has Ethernet addresses (its hardware address family), and its own.
fn link_of(socket: &Socket, interface: &str) -> io::Result<(bool, LinkAddress)> {
    // SAFETY: an all-zero ifreq is valid.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (to, from) in request
        .ifr_name
        .iter_mut()
        .zip(interface.bytes().take(libc::IFNAMSIZ - 1))
    {
        *to = from as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR reads the name and writes the union's hardware address.
    let done = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(socket),
            libc::SIOCGIFHWADDR,
            &mut request,
        )
    };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFHWADDR filled ifru_hwaddr.
    let hardware = unsafe { request.ifr_ifru.ifru_hwaddr };
    let ethernet = hardware.sa_family == libc::ARPHRD_ETHER;
    let mut address = LinkAddress::default();
    if ethernet {
        for (to, from) in address.iter_mut().zip(&hardware.sa_data[..6]) {
            *to = *from as u8;
        }
    }
    Ok((ethernet, address))
}

/// Waits until `fd` is writable or `most` has passed (at least a millisecond).
fn wait_writable(fd: std::os::fd::RawFd, most: Duration) {
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    let millis = most.as_millis().clamp(1, 1000) as libc::c_int;
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut pollfd, 1, millis) };
}

/// A `sockaddr_ll` for `index` and `ethertype`, with a destination link address.
fn link_address(index: u32, ethertype: u16, mac: Option<[u8; 6]>) -> SockAddr {
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: sockaddr_ll is one of this platform's sockaddr types.
    let ll = unsafe { storage.view_as::<libc::sockaddr_ll>() };
    ll.sll_family = libc::AF_PACKET as u16;
    ll.sll_protocol = ethertype.to_be();
    ll.sll_ifindex = index as i32;
    if let Some(mac) = mac {
        ll.sll_halen = 6;
        ll.sll_addr[..6].copy_from_slice(&mac);
    }
    let len = std::mem::size_of::<libc::sockaddr_ll>() as socket2::socklen_t;
    // SAFETY: the storage holds an initialized sockaddr_ll of that length.
    unsafe { SockAddr::new(storage, len) }
}

fn all_multicast(socket: &Socket, index: u32) -> io::Result<()> {
    let request = libc::packet_mreq {
        mr_ifindex: index as i32,
        mr_type: libc::PACKET_MR_ALLMULTI as u16,
        mr_alen: 0,
        mr_address: [0; 8],
    };
    set_option(
        socket,
        libc::SOL_PACKET,
        libc::PACKET_ADD_MEMBERSHIP,
        &request,
    )
}

/// Joins each exact group on a UDP socket bound to no port (so nothing queues on it).
fn join_exact(interface: &str, index: u32, v6: bool, groups: &[IpAddr]) -> Result<Socket, String> {
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| format!("cannot open a socket for joins: {e}"))?;
    for group in groups {
        let joined = match group {
            IpAddr::V4(g) => socket.join_multicast_v4_n(g, &InterfaceIndexOrAddress::Index(index)),
            IpAddr::V6(g) => socket.join_multicast_v6(g, index),
        };
        joined.map_err(|e| format!("cannot join {group} on {interface}: {e}"))?;
    }
    Ok(socket)
}

// Classic BPF over the network-layer packet (offset 0 is the IP header): accept UDP to a
// multicast address, drop the rest in the kernel. packet::parse checks again.
const LDB: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const AND: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

const FILTER_V4: [SockFilter; 7] = [
    SockFilter::new(LDB, 0, 0, 9),  // protocol
    SockFilter::new(JEQ, 0, 4, 17), // UDP, else drop
    SockFilter::new(LDB, 0, 0, 16), // first octet of the destination
    SockFilter::new(AND, 0, 0, 0xf0),
    SockFilter::new(JEQ, 0, 1, 0xe0),    // 224.0.0.0/4, else drop
    SockFilter::new(RET, 0, 0, 0x40000), // accept (up to 256 KiB)
    SockFilter::new(RET, 0, 0, 0),
];

const FILTER_V6: [SockFilter; 6] = [
    SockFilter::new(LDB, 0, 0, 6),  // next header
    SockFilter::new(JEQ, 0, 3, 17), // UDP, else drop
    SockFilter::new(LDB, 0, 0, 24), // first octet of the destination
    SockFilter::new(JEQ, 0, 1, 0xff),
    SockFilter::new(RET, 0, 0, 0x40000),
    SockFilter::new(RET, 0, 0, 0),
];

/// This host's address on interface `index` to send from: IPv4, the interface's; IPv6, a
/// global one if it has one, else its link-local one (/proc/net/if_inet6).
pub fn own_address(index: u32, v6: bool) -> Option<IpAddr> {
    if !v6 {
        let interface = multicast::interface::resolve_index(index).ok()?;
        return interface.ipv4.map(IpAddr::V4);
    }
    let table = std::fs::read_to_string("/proc/net/if_inet6").ok()?;
    let mut found: Vec<std::net::Ipv6Addr> = table
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let on_index = u32::from_str_radix(fields.get(1)?, 16).ok()? == index;
            let bits = u128::from_str_radix(fields.first()?, 16).ok()?;
            on_index.then_some(std::net::Ipv6Addr::from(bits))
        })
        .collect();
    // Global addresses first (a link-local one starts fe80::/10).
    found.sort_by_key(|a| (a.segments()[0] & 0xffc0) == 0xfe80);
    found.first().copied().map(IpAddr::V6)
}
