//! What every platform without the Linux fast paths (the portable path, Windows) does
//! alike: batches as loops of single calls, and the stand-ins of the capabilities it
//! lacks (see [`Capabilities`](super::Capabilities)).

use std::io;
use std::net::IpAddr;

use socket2::{SockAddr, Socket};

use super::RecvMeta;

/// Without GSO a batch is sent one datagram per call; the group code never forms runs
/// longer than this.
pub(crate) const MAX_GSO_SEGMENTS: usize = 1;

/// Never called with more than one segment ([`MAX_GSO_SEGMENTS`] is 1); refuses, so
/// the group code sends datagram by datagram.
pub(crate) fn send_gso(_socket: &Socket, _segments: &[&[u8]], _dest: &SockAddr) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Accepted; datagrams arrive one by one.
pub(crate) fn enable_gro(_socket: &Socket) -> io::Result<()> {
    Ok(())
}

/// No kernel announcements of interface changes are read: groups are checked when
/// their status is asked for.
pub(crate) fn subscribe_interface_changes() -> io::Result<Socket> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Never called (there is no announcement socket to read); anything would be "everything".
pub(crate) fn read_changes(_buf: &[u8], changes: &mut super::InterfaceChanges) {
    changes.everything = true;
}

/// No route lookup: a link-scoped IPv6 group needs its interface named.
pub(crate) fn route_interface(_group: IpAddr) -> io::Result<u32> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Datagrams per [`recvmmsg`] call (a loop of single receives).
pub(crate) const MMSG_MAX: usize = 16;

/// Sends each datagram with its own call; returns how many went (fewer on a later error).
pub(crate) fn sendmmsg(socket: &Socket, datagrams: &[&[u8]], dest: &SockAddr) -> io::Result<usize> {
    for (sent, data) in datagrams.iter().enumerate() {
        if let Err(e) = crate::sys::send_to(socket, data, dest) {
            return if sent > 0 { Ok(sent) } else { Err(e) };
        }
    }
    Ok(datagrams.len())
}

/// What one receive of [`recvmmsg`] reported.
pub(crate) struct MmsgResult {
    meta: RecvMeta,
}

impl MmsgResult {
    pub(crate) fn new() -> MmsgResult {
        MmsgResult {
            meta: RecvMeta::default(),
        }
    }
}

/// Receives queued datagrams with `receive` (which must not wait), one per buffer,
/// until none is left.
pub(crate) fn recvmmsg(
    socket: &Socket,
    bufs: &mut [&mut [u8]],
    out: &mut [MmsgResult],
    receive: impl Fn(&Socket, &mut [u8]) -> io::Result<RecvMeta>,
) -> io::Result<usize> {
    let count = bufs.len().min(out.len()).min(MMSG_MAX);
    for i in 0..count {
        match receive(socket, bufs[i]) {
            Ok(meta) => out[i].meta = meta,
            Err(e) if i == 0 => return Err(e),
            Err(_) => return Ok(i),
        }
    }
    Ok(count)
}

/// The metadata of one [`recvmmsg`] result.
pub(crate) fn meta_of(result: &MmsgResult) -> RecvMeta {
    result.meta
}
