//! The Linux fast paths: runs of equal-sized datagrams sent in one call with UDP
//! generic segmentation offload (GSO), recvmsg with what the kernel attaches to a
//! datagram (GRO segment size, destination group and arrival interface, the socket's
//! drop counter), sendmmsg/recvmmsg, and rtnetlink for the kernel's routes and its
//! announcements of interface changes. The control messages are built and parsed byte
//! by byte; the mmsg arrays are the only `unsafe` here, each block saying why it is sound.

use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd};

use socket2::{MaybeUninitSlice, MsgHdr, MsgHdrMut, SockAddr, Socket};

use super::{Capabilities, RecvMeta};
use crate::sys;

pub(crate) const CAPABILITIES: Capabilities = Capabilities {
    drop_count: true,
    packet_info: true,
    gro: true,
    gso: true,
    batch_syscalls: true,
    interface_events: true,
};

pub(crate) use super::route::interface_for as route_interface;
pub(crate) use crate::sys::queued_len_of as queued_len;

/// Socket options every group socket gets here: no datagrams of groups joined on other
/// interfaces or by other sockets (IP_MULTICAST_ALL off), and the drop counter.
///
/// Every Linux since 2.6.39 has both; an emulator that does not know an option
/// (Debian's qemu-user answers ENOPROTOOPT) goes without it: the socket is still bound
/// to its group, and the drop counter then reads 0.
pub(crate) fn configure(socket: &Socket, group: IpAddr) -> io::Result<()> {
    let unknown_is_fine = |result: io::Result<()>| match result {
        Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => Ok(()),
        other => other,
    };
    unknown_is_fine(match group {
        IpAddr::V4(_) => socket.set_multicast_all_v4(false),
        IpAddr::V6(_) => socket.set_multicast_all_v6(false),
    })?;
    // Free until something is dropped: the kernel attaches it only then.
    unknown_is_fine(set_int_option(
        socket,
        libc::SOL_SOCKET,
        libc::SO_RXQ_OVFL,
        1,
    ))
}

/// Asks for each datagram's destination and arrival interface (IP_PKTINFO).
pub(crate) fn enable_packet_info(socket: &Socket, group: IpAddr) -> io::Result<()> {
    let (level, name) = match group {
        IpAddr::V4(_) => (libc::IPPROTO_IP, libc::IP_PKTINFO),
        IpAddr::V6(_) => (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO),
    };
    set_int_option(socket, level, name, 1)
}

/// Lets the kernel hand over runs of datagrams in one read (UDP_GRO).
pub(crate) fn enable_gro(socket: &Socket) -> io::Result<()> {
    set_int_option(socket, libc::SOL_UDP, UDP_GRO, 1)
}

/// An rtnetlink socket that hears link, address and route changes (for upkeep.rs).
pub(crate) fn subscribe_interface_changes() -> io::Result<Socket> {
    let socket = super::route::netlink_socket()?;
    // Bound first: bind sets the first 32 groups from its address, clearing any added.
    bind_netlink(&socket)?;
    for group in [
        libc::RTNLGRP_LINK,
        libc::RTNLGRP_IPV4_IFADDR,
        libc::RTNLGRP_IPV6_IFADDR,
        libc::RTNLGRP_IPV4_ROUTE,
        libc::RTNLGRP_IPV6_ROUTE,
    ] {
        set_int_option(
            &socket,
            libc::SOL_NETLINK,
            libc::NETLINK_ADD_MEMBERSHIP,
            group as libc::c_int,
        )?;
    }
    socket.set_nonblocking(true)?;
    // Room for a burst (a container host adds interfaces by the dozen): an overrun costs
    // a look at every group.
    let _ = socket.set_recv_buffer_size(1 << 20);
    Ok(socket)
}

/// Sets an integer socket option socket2 has no setter for.
fn set_int_option(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    sys::setsockopt(socket, level, name, &value)
}

/// linux/udp.h: the GSO segment size of a send, and receive coalescing. libc defines
/// them only for uClibc.
pub(crate) const UDP_SEGMENT: libc::c_int = 103;
pub(crate) const UDP_GRO: libc::c_int = 104;
/// The kernel's limit on segments in one GSO send (UDP_MAX_SEGMENTS).
pub(crate) const MAX_GSO_SEGMENTS: usize = 64;

/// Room for every control message we ask for: GRO size, IP_PKTINFO, SO_RXQ_OVFL.
const CONTROL_SPACE: usize = 128;
const LEN_SIZE: usize = std::mem::size_of::<libc::size_t>();
const HEADER: usize = std::mem::size_of::<libc::cmsghdr>();

fn align(n: usize) -> usize {
    (n + LEN_SIZE - 1) & !(LEN_SIZE - 1)
}

/// Receives one datagram (or GRO run) into `buf` with its metadata.
pub(crate) fn recv_with_meta(
    socket: &Socket,
    _group: IpAddr,
    buf: &mut [u8],
    flags: libc::c_int,
) -> io::Result<RecvMeta> {
    let mut control = [0u8; CONTROL_SPACE];
    let mut from = sys::empty_sockaddr();
    let mut bufs = [MaybeUninitSlice::new(sys::as_uninit_mut(buf))];
    let mut msg = MsgHdrMut::new()
        .with_addr(&mut from)
        .with_buffers(&mut bufs)
        .with_control(sys::as_uninit_mut(&mut control));
    let len = socket.recvmsg(&mut msg, flags)?;
    let truncated = msg.flags().is_truncated();
    let control_len = msg.control_len().min(CONTROL_SPACE);
    let mut meta = RecvMeta {
        len,
        source: from.as_socket(),
        truncated,
        ..RecvMeta::default()
    };
    parse_control(&control[..control_len], &mut meta);
    Ok(meta)
}

/// The metadata of one recvmmsg result.
pub(crate) fn meta_of(result: &MmsgResult) -> RecvMeta {
    let mut meta = RecvMeta {
        len: result.len,
        source: result.source.as_socket(),
        truncated: result.flags & libc::MSG_TRUNC != 0,
        ..RecvMeta::default()
    };
    parse_control(&result.control[..result.control_len], &mut meta);
    meta
}

fn parse_control(mut control: &[u8], meta: &mut RecvMeta) {
    while control.len() >= HEADER {
        let len = usize::from_ne_bytes(control[..LEN_SIZE].try_into().unwrap_or_default());
        let level = i32::from_ne_bytes(
            control[LEN_SIZE..LEN_SIZE + 4]
                .try_into()
                .unwrap_or_default(),
        );
        let kind = i32::from_ne_bytes(
            control[LEN_SIZE + 4..LEN_SIZE + 8]
                .try_into()
                .unwrap_or_default(),
        );
        if len < HEADER || len > control.len() {
            return;
        }
        let data = &control[HEADER..len];
        let int = |at: usize| {
            data.get(at..at + 4)
                .map(|b| i32::from_ne_bytes(b.try_into().unwrap_or_default()))
        };
        match (level, kind) {
            (libc::SOL_UDP, UDP_GRO) => meta.segment = int(0).and_then(|s| usize::try_from(s).ok()),
            (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                // struct in_pktinfo { int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr; }
                meta.interface_index = int(0).and_then(|i| u32::try_from(i).ok());
                meta.destination = data
                    .get(8..12)
                    .map(|b| IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])));
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                // struct in6_pktinfo { in6_addr ipi6_addr; int ipi6_ifindex; }
                meta.destination = data
                    .get(..16)
                    .and_then(|b| <[u8; 16]>::try_from(b).ok())
                    .map(|b| IpAddr::V6(Ipv6Addr::from(b)));
                meta.interface_index = int(16).and_then(|i| u32::try_from(i).ok());
            }
            (libc::SOL_SOCKET, libc::SO_RXQ_OVFL) => meta.dropped = int(0).map(|d| d as u32),
            _ => {}
        }
        control = control.get(align(len)..).unwrap_or_default();
    }
}

/// Sends `segments`, all of `segments[0]`'s length but the last (which may be shorter),
/// as that many datagrams in one sendmsg with UDP_SEGMENT. At most MAX_GSO_SEGMENTS.
pub(crate) fn send_gso(socket: &Socket, segments: &[&[u8]], dest: &SockAddr) -> io::Result<()> {
    debug_assert!(!segments.is_empty() && segments.len() <= MAX_GSO_SEGMENTS);
    let mut iovs = [IoSlice::new(&[]); MAX_GSO_SEGMENTS];
    for (iov, segment) in iovs.iter_mut().zip(segments) {
        *iov = IoSlice::new(segment);
    }
    let size = u16::try_from(segments[0].len())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut control = [0u8; HEADER + LEN_SIZE];
    let used = put_control(
        &mut control,
        libc::SOL_UDP,
        UDP_SEGMENT,
        &size.to_ne_bytes(),
    );
    let msg = MsgHdr::new()
        .with_addr(dest)
        .with_buffers(&iovs[..segments.len()])
        .with_control(&control[..used]);
    socket.sendmsg(&msg, libc::MSG_NOSIGNAL).map(|_| ())
}

/// Writes one control message into `out`; returns the space it takes (CMSG_SPACE).
fn put_control(out: &mut [u8], level: libc::c_int, kind: libc::c_int, payload: &[u8]) -> usize {
    let len = HEADER + payload.len();
    out[..LEN_SIZE].copy_from_slice(&len.to_ne_bytes());
    out[LEN_SIZE..LEN_SIZE + 4].copy_from_slice(&level.to_ne_bytes());
    out[LEN_SIZE + 4..LEN_SIZE + 8].copy_from_slice(&kind.to_ne_bytes());
    out[HEADER..len].copy_from_slice(payload);
    align(len)
}

/// Sends each of `datagrams` to `dest` as its own datagram with one sendmmsg call per
/// up to 64; returns how many the kernel took (fewer on a later error).
pub(crate) fn sendmmsg(socket: &Socket, datagrams: &[&[u8]], dest: &SockAddr) -> io::Result<usize> {
    let fd = socket.as_fd();
    const CHUNK: usize = 64;
    let mut sent = 0;
    for chunk in datagrams.chunks(CHUNK) {
        let mut iovs: [libc::iovec; CHUNK] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; CHUNK];
        // SAFETY: mmsghdr is plain data; all-zero is a valid empty header.
        let mut msgs: [libc::mmsghdr; CHUNK] = unsafe { std::mem::zeroed() };
        for (i, data) in chunk.iter().enumerate() {
            iovs[i] = libc::iovec {
                iov_base: data.as_ptr() as *mut libc::c_void,
                iov_len: data.len(),
            };
        }
        for (i, msg) in msgs.iter_mut().take(chunk.len()).enumerate() {
            msg.msg_hdr.msg_name = dest.as_ptr() as *mut libc::c_void;
            msg.msg_hdr.msg_namelen = dest.len();
            msg.msg_hdr.msg_iov = &mut iovs[i];
            msg.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: each header points at one iovec over a live caller slice and at `dest`,
        // all valid for the duration of the call; the kernel only reads the payloads.
        let n = unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                chunk.len() as libc::c_uint,
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return if sent > 0 { Ok(sent) } else { Err(err) };
        }
        sent += n as usize;
        if (n as usize) < chunk.len() {
            break;
        }
    }
    Ok(sent)
}

/// What recvmmsg reported for one message: its length, sender, flags and control bytes.
pub(crate) struct MmsgResult {
    pub len: usize,
    pub source: SockAddr,
    pub flags: libc::c_int,
    pub control: [u8; MMSG_CONTROL],
    pub control_len: usize,
}

impl MmsgResult {
    pub(crate) fn new() -> MmsgResult {
        MmsgResult {
            len: 0,
            source: sys::empty_sockaddr(),
            flags: 0,
            control: [0; MMSG_CONTROL],
            control_len: 0,
        }
    }
}

/// Control space per message of recvmmsg (IP_PKTINFO, SO_RXQ_OVFL, UDP_GRO).
pub(crate) const MMSG_CONTROL: usize = 128;
/// Messages per recvmmsg call. Its arrays live on the caller's stack, and every export
/// must fit a 32 KiB thread stack: 16 keeps them near 6 KiB, and the system call cost
/// is already spread thin at 16.
pub(crate) const MMSG_MAX: usize = 16;

/// Receives up to `bufs.len()` (at most 64) queued datagrams in one recvmmsg call without
/// waiting, one per buffer; fills `out` in order and returns how many arrived.
pub(crate) fn recvmmsg(
    socket: &Socket,
    _group: IpAddr,
    bufs: &mut [&mut [u8]],
    out: &mut [MmsgResult],
) -> io::Result<usize> {
    let fd = socket.as_fd();
    let count = bufs.len().min(out.len()).min(MMSG_MAX);
    let mut iovs: [libc::iovec; MMSG_MAX] = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MMSG_MAX];
    // SAFETY: mmsghdr is plain data; all-zero is a valid empty header.
    let mut msgs: [libc::mmsghdr; MMSG_MAX] = unsafe { std::mem::zeroed() };
    for i in 0..count {
        iovs[i] = libc::iovec {
            iov_base: bufs[i].as_mut_ptr().cast(),
            iov_len: bufs[i].len(),
        };
        let hdr = &mut msgs[i].msg_hdr;
        hdr.msg_name = out[i].source.as_ptr() as *mut libc::c_void;
        hdr.msg_namelen = out[i].source.len();
        hdr.msg_iov = &mut iovs[i];
        hdr.msg_iovlen = 1;
        hdr.msg_control = out[i].control.as_mut_ptr().cast();
        hdr.msg_controllen = MMSG_CONTROL as _;
    }
    // SAFETY: every header points at live, exclusively borrowed buffers (payload, address
    // storage, control) of the lengths given, for the duration of the call.
    let n = unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            count as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    for i in 0..n as usize {
        out[i].len = msgs[i].msg_len as usize;
        out[i].flags = msgs[i].msg_hdr.msg_flags;
        out[i].control_len = (msgs[i].msg_hdr.msg_controllen as usize).min(MMSG_CONTROL);
    }
    Ok(n as usize)
}

/// Binds a netlink socket to an address the kernel picks (port id 0 asks for one): the
/// kernel delivers its announcements only to bound sockets.
fn bind_netlink(socket: &Socket) -> io::Result<()> {
    let fd = socket.as_fd();
    // SAFETY: all-zero is a valid sockaddr_nl; family is then set.
    let mut address: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    address.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: `address` is one sockaddr_nl, passed with its exact size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&address as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages_round_trip_through_the_parser() {
        let mut control = [0u8; CONTROL_SPACE];
        let mut at = put_control(&mut control, libc::SOL_UDP, UDP_GRO, &1200i32.to_ne_bytes());
        let mut pktinfo = [0u8; 12];
        pktinfo[..4].copy_from_slice(&7i32.to_ne_bytes());
        pktinfo[8..12].copy_from_slice(&[239, 1, 2, 3]);
        at += put_control(
            &mut control[at..],
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            &pktinfo,
        );
        at += put_control(
            &mut control[at..],
            libc::SOL_SOCKET,
            libc::SO_RXQ_OVFL,
            &42u32.to_ne_bytes(),
        );
        let mut meta = RecvMeta::default();
        parse_control(&control[..at], &mut meta);
        assert_eq!(meta.segment, Some(1200));
        assert_eq!(meta.interface_index, Some(7));
        assert_eq!(
            meta.destination,
            Some(IpAddr::V4(Ipv4Addr::new(239, 1, 2, 3)))
        );
        assert_eq!(meta.dropped, Some(42));
    }

    #[test]
    fn malformed_control_is_ignored() {
        let mut meta = RecvMeta::default();
        parse_control(&[0xff; 40], &mut meta);
        parse_control(&[1, 0, 0], &mut meta);
        assert_eq!(meta, RecvMeta::default());
    }
}
