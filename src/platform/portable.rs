//! The portable path: what every Unix offers through socket2, with batch calls as loops
//! and the Linux-only capabilities reported absent (see [`Capabilities`]). Linux runs
//! it too with `--features portable`, so the tests exercise it here.

use std::io;
use std::net::IpAddr;

use socket2::{MaybeUninitSlice, MsgHdrMut, SockAddr, Socket};

use super::fallback;
use super::{Capabilities, RecvMeta};

pub(crate) use super::fallback::{meta_of, sendmmsg, MmsgResult, MMSG_MAX};
use crate::sys;

pub(crate) const CAPABILITIES: Capabilities = Capabilities {
    drop_count: false,
    packet_info: false,
    gro: false,
    gso: false,
    batch_syscalls: false,
    interface_events: false,
};

/// Without GSO a batch is sent one datagram per call; the group code never forms runs
/// longer than this.
pub(crate) const MAX_GSO_SEGMENTS: usize = 1;

/// Socket options every group socket gets. Linux delivers datagrams of groups joined on
/// other interfaces or by other sockets unless IP_MULTICAST_ALL is off; the BSDs and
/// macOS never do, and need SO_REUSEPORT (beside SO_REUSEADDR) for a second listener on
/// the same group and port.
pub(crate) fn configure(socket: &Socket, group: IpAddr) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    match group {
        IpAddr::V4(_) => socket.set_multicast_all_v4(false)?,
        IpAddr::V6(_) => socket.set_multicast_all_v6(false)?,
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = group;
        socket.set_reuse_port(true)?;
    }
    Ok(())
}

/// Accepted; the destination and interface of a datagram stay unknown here.
pub(crate) fn enable_packet_info(_socket: &Socket, _group: IpAddr) -> io::Result<()> {
    Ok(())
}

/// Accepted; datagrams arrive one by one here.
pub(crate) fn enable_gro(_socket: &Socket) -> io::Result<()> {
    Ok(())
}

/// No kernel announcements here: groups are checked when their status is asked for.
pub(crate) fn subscribe_interface_changes() -> io::Result<Socket> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

pub(crate) use crate::sys::queued_len_of as queued_len;

/// No route lookup here: a link-scoped IPv6 group needs its interface named.
pub(crate) fn route_interface(_group: IpAddr) -> io::Result<u32> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Receives one datagram into `buf`; the sender and truncation, no other metadata.
pub(crate) fn recv_with_meta(
    socket: &Socket,
    _group: IpAddr,
    buf: &mut [u8],
    flags: libc::c_int,
) -> io::Result<RecvMeta> {
    let mut from = sys::empty_sockaddr();
    let mut bufs = [MaybeUninitSlice::new(sys::as_uninit_mut(buf))];
    let mut msg = MsgHdrMut::new()
        .with_addr(&mut from)
        .with_buffers(&mut bufs);
    let len = socket.recvmsg(&mut msg, flags)?;
    let truncated = msg.flags().is_truncated();
    Ok(RecvMeta {
        len,
        source: from.as_socket(),
        truncated,
        ..RecvMeta::default()
    })
}

/// Never called with more than one segment ([`MAX_GSO_SEGMENTS`] is 1); refuses, so
/// the group code sends datagram by datagram.
pub(crate) fn send_gso(_socket: &Socket, _segments: &[&[u8]], _dest: &SockAddr) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
}

/// Receives queued datagrams without waiting, one per buffer, until none is left.
pub(crate) fn recvmmsg(
    socket: &Socket,
    group: IpAddr,
    bufs: &mut [&mut [u8]],
    out: &mut [MmsgResult],
) -> io::Result<usize> {
    fallback::recvmmsg(socket, bufs, out, |socket, buf| {
        recv_with_meta(socket, group, buf, libc::MSG_DONTWAIT)
    })
}
