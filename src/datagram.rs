//! Datagram I/O past one sendto/recvfrom: runs of equal-sized datagrams sent in one
//! call with UDP generic segmentation offload (GSO), and recvmsg with what the kernel
//! attaches to a datagram (GRO segment size, destination group and arrival interface,
//! the socket's drop counter). Safe code over socket2's sendmsg/recvmsg; the control
//! messages are built and parsed byte by byte.

use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{MaybeUninitSlice, MsgHdr, MsgHdrMut, SockAddr, Socket};

use crate::sys;

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

/// What one recvmsg returned besides the payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RecvMeta {
    /// Bytes written to the buffer (the whole coalesced run under GRO).
    pub len: usize,
    /// The sender; `None` when the socket was shut down.
    pub source: Option<SocketAddr>,
    /// The datagram did not fit the buffer (only possible when the caller allows it).
    pub truncated: bool,
    /// Under GRO, the size of each coalesced datagram but the last.
    pub segment: Option<usize>,
    /// The destination address of the datagram (the group), from IP_PKTINFO.
    pub destination: Option<IpAddr>,
    /// The interface it arrived on, from IP_PKTINFO.
    pub interface_index: Option<u32>,
    /// The socket's count of datagrams dropped for a full buffer (SO_RXQ_OVFL), when
    /// the kernel reports it (only once it is non-zero).
    pub dropped: Option<u32>,
}

/// Receives one datagram (or GRO run) into `buf` with its metadata.
pub(crate) fn recv_with_meta(
    socket: &Socket,
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
pub(crate) fn meta_of(result: &sys::MmsgResult) -> RecvMeta {
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
