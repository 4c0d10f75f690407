//! Batches as loops of single calls: what every platform without sendmmsg/recvmmsg
//! (the portable path, Windows) does for the batch calls.

use std::io;

use socket2::{SockAddr, Socket};

use super::RecvMeta;

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
