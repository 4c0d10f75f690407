//! Windows: the portable path's shape (batches as loops, no GSO/GRO, no drop counter,
//! no interface announcements), with every datagram received through WSARecvMsg and
//! its IP_PKTINFO. Windows cannot bind a socket to a multicast address, so a group's
//! socket is bound to the wildcard address of its port (sys/windows.rs) and would hear
//! every group joined on the port and unicast to it: the destination of each datagram
//! says whether it is the group's, and the others are dropped here, unseen by callers.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::windows::io::AsRawSocket;
use std::sync::OnceLock;

use socket2::{SockAddr, Socket};
use windows_sys::Win32::Networking::WinSock as ws;

use super::fallback;
use super::{Capabilities, RecvMeta};
use crate::sys;

pub(crate) use super::fallback::{
    enable_gro, meta_of, read_changes, route_interface, send_gso, sendmmsg,
    subscribe_interface_changes, MmsgResult, MAX_GSO_SEGMENTS, MMSG_MAX,
};

pub(crate) const CAPABILITIES: Capabilities = Capabilities {
    drop_count: false,
    // Every receive reads the destination and arrival interface (to drop other groups').
    packet_info: true,
    gro: false,
    gso: false,
    batch_syscalls: false,
    interface_events: false,
};

/// Socket options every group socket gets here: non-blocking (Windows has no
/// MSG_DONTWAIT), and the destination of each datagram, which the receive path checks.
pub(crate) fn configure(socket: &Socket, group: IpAddr) -> io::Result<()> {
    socket.set_nonblocking(true)?;
    let on: u32 = 1;
    match group {
        IpAddr::V4(_) => sys::setsockopt(socket, ws::IPPROTO_IP, ws::IP_PKTINFO, &on),
        IpAddr::V6(_) => sys::setsockopt(socket, ws::IPPROTO_IPV6, ws::IPV6_PKTINFO, &on),
    }
}

/// Always on here (see [`configure`]).
pub(crate) fn enable_packet_info(_socket: &Socket, _group: IpAddr) -> io::Result<()> {
    Ok(())
}

/// Receives the next datagram sent to `group` into `buf`, dropping any other before it.
pub(crate) fn recv_with_meta(
    socket: &Socket,
    group: IpAddr,
    buf: &mut [u8],
    flags: i32,
) -> io::Result<RecvMeta> {
    loop {
        let meta = recv_msg(socket, buf, flags)?;
        if is_for(&meta, group) {
            return Ok(meta);
        }
    }
}

/// Receives queued datagrams of `group` without waiting, one per buffer.
pub(crate) fn recvmmsg(
    socket: &Socket,
    group: IpAddr,
    bufs: &mut [&mut [u8]],
    out: &mut [MmsgResult],
) -> io::Result<usize> {
    fallback::recvmmsg(socket, bufs, out, |socket, buf| {
        recv_with_meta(socket, group, buf, sys::DONT_WAIT)
    })
}

/// The size of the next datagram of `group` without taking it; `None` when nothing is
/// queued. Other destinations' datagrams at the head of the queue are taken and dropped.
/// A peek into a short buffer does not tell the size here, so it peeks into a full one.
pub(crate) fn queued_len(socket: &Socket, group: IpAddr) -> io::Result<Option<usize>> {
    let mut whole = vec![0u8; 65_536];
    loop {
        let meta = match recv_msg(socket, &mut whole, ws::MSG_PEEK) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        };
        if is_for(&meta, group) {
            return Ok(Some(meta.len));
        }
        recv_msg(socket, &mut whole, 0)?;
    }
}

/// Whether a datagram was sent to the group (or its destination is unknown: a datagram
/// after shutdown, which has none, ends the receive as closed).
fn is_for(meta: &RecvMeta, group: IpAddr) -> bool {
    meta.source.is_none() || meta.destination.is_none_or(|d| d == group)
}

/// WSARecvMsg has no import library entry: Winsock hands out its address (the same for
/// every socket of a provider), looked up once.
fn wsa_recvmsg(socket: &Socket) -> io::Result<RecvMsgFn> {
    static FUNCTION: OnceLock<Option<RecvMsgFn>> = OnceLock::new();
    let found = *FUNCTION.get_or_init(|| {
        let guid = ws::WSAID_WSARECVMSG;
        let mut function: ws::LPFN_WSARECVMSG = None;
        let mut returned = 0u32;
        // SAFETY: the input is one GUID and the output one function pointer, each
        // passed with its size; no overlapped I/O.
        let rc = unsafe {
            ws::WSAIoctl(
                socket.as_raw_socket() as ws::SOCKET,
                ws::SIO_GET_EXTENSION_FUNCTION_POINTER,
                (&guid as *const windows_sys::core::GUID).cast(),
                std::mem::size_of_val(&guid) as u32,
                (&mut function as *mut ws::LPFN_WSARECVMSG).cast(),
                std::mem::size_of_val(&function) as u32,
                &mut returned,
                std::ptr::null_mut(),
                None,
            )
        };
        if rc == 0 {
            function
        } else {
            None
        }
    });
    found.ok_or_else(|| io::Error::new(io::ErrorKind::Unsupported, "WSARecvMsg is not available"))
}

type RecvMsgFn = unsafe extern "system" fn(
    ws::SOCKET,
    *mut ws::WSAMSG,
    *mut u32,
    *mut windows_sys::Win32::System::IO::OVERLAPPED,
    ws::LPWSAOVERLAPPED_COMPLETION_ROUTINE,
) -> i32;

/// One WSARecvMsg into `buf`: the sender, the length (the buffer's, with `truncated`,
/// when the datagram was longer) and, from IP_PKTINFO, destination and interface.
fn recv_msg(socket: &Socket, buf: &mut [u8], flags: i32) -> io::Result<RecvMeta> {
    let recvmsg = wsa_recvmsg(socket)?;
    // u64 words keep the control buffer aligned for its headers.
    let mut control = [0u64; 16];
    let control_bytes = std::mem::size_of_val(&control) as u32;
    let mut data = ws::WSABUF {
        len: u32::try_from(buf.len()).unwrap_or(u32::MAX),
        buf: buf.as_mut_ptr(),
    };
    // SAFETY: try_init hands over zeroed address storage and its length; WSARecvMsg
    // writes at most that many bytes there and the new length back, and writes the
    // datagram into `buf` (at most `data.len` bytes) and the control messages into
    // `control` (at most `control_bytes`), all alive for the call. No overlapped I/O.
    let result = unsafe {
        SockAddr::try_init(|storage, len| {
            let mut msg = ws::WSAMSG {
                name: storage.cast(),
                namelen: *len,
                lpBuffers: &mut data,
                dwBufferCount: 1,
                Control: ws::WSABUF {
                    len: control_bytes,
                    buf: control.as_mut_ptr().cast(),
                },
                dwFlags: flags as u32,
            };
            let mut received = 0u32;
            let rc = recvmsg(
                socket.as_raw_socket() as ws::SOCKET,
                &mut msg,
                &mut received,
                std::ptr::null_mut(),
                None,
            );
            *len = msg.namelen;
            let truncated = msg.dwFlags & ws::MSG_TRUNC != 0;
            match rc {
                0 => Ok((received as usize, truncated, msg.Control.len as usize)),
                _ => {
                    let err = io::Error::last_os_error();
                    if err.raw_os_error() == Some(ws::WSAEMSGSIZE) {
                        Ok((buf.len(), true, msg.Control.len as usize))
                    } else {
                        Err(err)
                    }
                }
            }
        })
    };
    let ((len, truncated, control_len), from) = result?;
    let mut meta = RecvMeta {
        len,
        source: from.as_socket(),
        truncated,
        ..RecvMeta::default()
    };
    // SAFETY: `control` is plain integers; viewing its bytes is always sound.
    let control_bytes = unsafe {
        std::slice::from_raw_parts(
            control.as_ptr().cast::<u8>(),
            std::mem::size_of_val(&control),
        )
    };
    parse_control(
        &control_bytes[..control_len.min(control_bytes.len())],
        &mut meta,
    );
    Ok(meta)
}

const WORD: usize = std::mem::size_of::<usize>();
const HEADER: usize = std::mem::size_of::<ws::CMSGHDR>();

fn align(n: usize) -> usize {
    (n + WORD - 1) & !(WORD - 1)
}

/// Reads IP_PKTINFO / IPV6_PKTINFO out of the control messages, byte by byte
/// (WSA_CMSG_FIRSTHDR, WSA_CMSG_DATA and WSA_CMSG_NXTHDR of ws2def.h).
fn parse_control(control: &[u8], meta: &mut RecvMeta) {
    let mut at = 0;
    while at + HEADER <= control.len() {
        let word = |i: usize| control[at + i..at + i + WORD].try_into().ok();
        let Some(len) = word(0).map(usize::from_ne_bytes) else {
            return;
        };
        let int =
            |i: usize| i32::from_ne_bytes(control[at + i..at + i + 4].try_into().expect("4 bytes"));
        let (level, kind) = (int(WORD), int(WORD + 4));
        let data_at = at + align(HEADER);
        let data_len = len.saturating_sub(align(HEADER));
        if len < HEADER || data_at + data_len > control.len() {
            return;
        }
        let data = &control[data_at..data_at + data_len];
        match (level, kind) {
            (ws::IPPROTO_IP, ws::IP_PKTINFO) if data.len() >= 8 => {
                let addr: [u8; 4] = data[..4].try_into().expect("4 bytes");
                meta.destination = Some(IpAddr::V4(Ipv4Addr::from(addr)));
                meta.interface_index =
                    Some(u32::from_ne_bytes(data[4..8].try_into().expect("4 bytes")));
            }
            (ws::IPPROTO_IPV6, ws::IPV6_PKTINFO) if data.len() >= 20 => {
                let addr: [u8; 16] = data[..16].try_into().expect("16 bytes");
                meta.destination = Some(IpAddr::V6(Ipv6Addr::from(addr)));
                meta.interface_index = Some(u32::from_ne_bytes(
                    data[16..20].try_into().expect("4 bytes"),
                ));
            }
            _ => {}
        }
        at += align(len);
    }
}
