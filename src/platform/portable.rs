//! The portable path: what every Unix offers through socket2, with batch calls as loops
//! and the Linux-only capabilities reported absent (see [`Capabilities`]). Linux runs
//! it too with `--features portable`, so the tests exercise it here.

use std::io;
use std::net::IpAddr;

use socket2::{MaybeUninitSlice, MsgHdrMut, Socket};

use super::fallback;
use super::{Capabilities, RecvMeta};

pub(crate) use super::fallback::{
    enable_gro, meta_of, read_changes, route_interface, send_gso, sendmmsg,
    subscribe_interface_changes, MmsgResult, MAX_GSO_SEGMENTS, MMSG_MAX,
};
use crate::sys;

pub(crate) const CAPABILITIES: Capabilities = Capabilities {
    drop_count: false,
    packet_info: false,
    gro: false,
    gso: false,
    batch_syscalls: false,
    interface_events: false,
};

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

pub(crate) use crate::sys::queued_len_of as queued_len;

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
