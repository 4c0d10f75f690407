//! The operating-system calls socket2 does not offer, each wrapped in a safe function:
//! one module per system (`unix`, `windows`) behind this one, which holds what they share.
//!
//! With the Linux fast paths (platform/linux.rs: the mmsg arrays) and the Windows
//! receive path (platform/windows.rs), this is the only part of the core with `unsafe`;
//! every block says why it is sound. The concept modules (`address`, `interface`,
//! `message`, `group`) call only these safe wrappers and socket2.

use std::io;
use std::mem::MaybeUninit;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use socket2::Socket;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as os;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as os;
#[cfg(windows)]
pub(crate) use windows::*;

/// Views an initialised byte buffer as the `MaybeUninit` buffer socket2's receive calls take.
pub(crate) fn as_uninit_mut(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and socket2 only ever writes
    // initialised bytes through the slice, so `buf` stays fully initialised.
    unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) }
}

/// Waits until `socket` is readable (or hung up), or `timeout` passes. `None` waits
/// forever. Returns whether it became readable.
pub(crate) fn wait_readable(socket: &Socket, timeout: Option<Duration>) -> io::Result<bool> {
    os::wait_readable_any(&[socket], timeout)
}

/// Sends one datagram; while the send buffer is full, waits for room (see [`send_waiting`]).
pub(crate) fn send_to(socket: &Socket, data: &[u8], dest: &socket2::SockAddr) -> io::Result<usize> {
    send_waiting(socket, || socket.send_to(data, dest))
}

/// Runs `send` until the kernel takes what it sends, as a blocking socket would. A
/// group's socket may be non-blocking: Windows sockets always are, and on Unix an event
/// loop or the Go binding's poller may set O_NONBLOCK on the descriptor (it is shared);
/// a full send buffer then reports WouldBlock, and this waits until there is room (or,
/// once the group is closed, until the shutdown ends the wait and `send` fails).
pub(crate) fn send_waiting<T>(
    socket: &Socket,
    mut send: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    loop {
        match send() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                os::wait_writable(socket, os::CLOSE_WAKE_SLICE)?;
            }
            sent => return sent,
        }
    }
}

/// Runs one system wait (`wait`, given the time left: `None` for ever) until it
/// reports how many are ready; an interrupted one is tried again with the time that is
/// left of `timeout`. Returns whether any became ready.
fn retry_for(
    timeout: Option<Duration>,
    mut wait: impl FnMut(Option<Duration>) -> io::Result<i32>,
) -> io::Result<bool> {
    let deadline = timeout.map(|t| Instant::now().checked_add(t));
    loop {
        let left = match deadline {
            None | Some(None) => None,
            Some(Some(d)) => Some(d.saturating_duration_since(Instant::now())),
        };
        match wait(left) {
            Ok(n) => return Ok(n > 0),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
}

/// A wait in milliseconds (-1: for ever), rounded up so that it never ends early.
#[cfg(not(any(target_os = "linux", target_os = "freebsd")))] // ppoll there: nanoseconds
fn millis_rounded_up(left: Option<Duration>) -> i32 {
    left.map_or(-1, |left| {
        i32::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX)
    })
}

/// One address of one network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InterfaceAddr {
    pub name: String,
    pub index: u32,
    pub addr: Option<IpAddr>,
    pub up: bool,
    pub multicast: bool,
}

/// struct group_source_req of <netinet/in.h> (RFC 3678; GROUP_SOURCE_REQ on Windows), as
/// bytes: the two addresses are sockaddr_storage, 8-aligned after the interface on Linux,
/// the BSDs and Windows, packed to 4 on Apple's systems. Byte arrays keep every byte of them (a typed sockaddr_storage
/// moved by value may lose the bytes libc declares as padding, where the address is).
#[repr(C)]
#[derive(Clone, Copy)]
struct GroupSourceReq {
    interface: u32,
    padding: [u8; GSR_PADDING],
    group: [u8; SOCKADDR_STORAGE],
    source: [u8; SOCKADDR_STORAGE],
}

const SOCKADDR_STORAGE: usize = std::mem::size_of::<socket2::SockAddrStorage>();
#[cfg(target_vendor = "apple")]
const GSR_PADDING: usize = 0;
#[cfg(not(target_vendor = "apple"))]
const GSR_PADDING: usize = 4;

/// `addr` (port 0) as the system's sockaddr bytes (socket2 knows each system's layout).
fn sockaddr_bytes(addr: IpAddr) -> [u8; SOCKADDR_STORAGE] {
    let addr = socket2::SockAddr::from(std::net::SocketAddr::new(addr, 0));
    let len = (addr.len() as usize).min(SOCKADDR_STORAGE);
    // SAFETY: `as_ptr` points at the address's `len` initialised bytes, alive with `addr`.
    let bytes = unsafe { std::slice::from_raw_parts(addr.as_ptr().cast::<u8>(), len) };
    let mut out = [0u8; SOCKADDR_STORAGE];
    out[..len].copy_from_slice(bytes);
    out
}

/// Joins (or leaves) `group` for datagrams from `source` only, on interface `index`
/// (0: the kernel's choice): MCAST_JOIN_SOURCE_GROUP, the same call for IPv4 and IPv6.
pub(crate) fn group_source_membership(
    socket: &Socket,
    index: u32,
    group: IpAddr,
    source: IpAddr,
    join: bool,
) -> io::Result<()> {
    let request = GroupSourceReq {
        interface: index,
        padding: [0; GSR_PADDING],
        group: sockaddr_bytes(group),
        source: sockaddr_bytes(source),
    };
    let level = if group.is_ipv4() {
        os::IPPROTO_IP
    } else {
        os::IPPROTO_IPV6
    };
    let name = if join {
        os::MCAST_JOIN_SOURCE_GROUP
    } else {
        os::MCAST_LEAVE_SOURCE_GROUP
    };
    os::setsockopt(socket, level, name, &request)
}

/// Zeroes the vector registers. After sealing or opening a datagram they still hold the
/// cipher's state, the key's words among it, and whatever next saves them to memory (a
/// signal delivered to the thread, the dynamic linker's lazy binding) would leave a copy
/// of the key on the thread's stack, past `mc_free`.
#[inline]
pub(crate) fn clear_vector_registers() {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // glibc's AVX-512 memcpy and memset move data through ymm16-ymm31, which Rust
            // code built without AVX-512 never uses (so need not be declared): the key
            // was found in them, copied there by a move of the cipher's state.
            // SAFETY: zeroes zmm16-zmm31 only, registers this code never allocates.
            unsafe {
                std::arch::asm!(
                    "vpxord zmm16, zmm16, zmm16",
                    "vpxord zmm17, zmm17, zmm17",
                    "vpxord zmm18, zmm18, zmm18",
                    "vpxord zmm19, zmm19, zmm19",
                    "vpxord zmm20, zmm20, zmm20",
                    "vpxord zmm21, zmm21, zmm21",
                    "vpxord zmm22, zmm22, zmm22",
                    "vpxord zmm23, zmm23, zmm23",
                    "vpxord zmm24, zmm24, zmm24",
                    "vpxord zmm25, zmm25, zmm25",
                    "vpxord zmm26, zmm26, zmm26",
                    "vpxord zmm27, zmm27, zmm27",
                    "vpxord zmm28, zmm28, zmm28",
                    "vpxord zmm29, zmm29, zmm29",
                    "vpxord zmm30, zmm30, zmm30",
                    "vpxord zmm31, zmm31, zmm31",
                    options(nomem, nostack, preserves_flags)
                );
            }
        }
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: vzeroall zeroes ymm0-ymm15 and nothing else; all are declared
            // clobbered, so the compiler keeps no value in them across it.
            unsafe {
                std::arch::asm!("vzeroall",
                    out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
                    out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
                    out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
                    out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
                    options(nomem, nostack, preserves_flags));
            }
        } else {
            // SAFETY: as above, for the SSE registers every x86-64 has.
            unsafe {
                std::arch::asm!(
                    "xorps xmm0, xmm0", "xorps xmm1, xmm1", "xorps xmm2, xmm2", "xorps xmm3, xmm3",
                    "xorps xmm4, xmm4", "xorps xmm5, xmm5", "xorps xmm6, xmm6", "xorps xmm7, xmm7",
                    "xorps xmm8, xmm8", "xorps xmm9, xmm9", "xorps xmm10, xmm10", "xorps xmm11, xmm11",
                    "xorps xmm12, xmm12", "xorps xmm13, xmm13", "xorps xmm14, xmm14", "xorps xmm15, xmm15",
                    out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                    out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
                    out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
                    out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
                    options(nomem, nostack, preserves_flags));
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: zeroes v0-v31 (NEON, always present on aarch64), all declared clobbered.
    unsafe {
        std::arch::asm!(
            "movi v0.16b, #0", "movi v1.16b, #0", "movi v2.16b, #0", "movi v3.16b, #0",
            "movi v4.16b, #0", "movi v5.16b, #0", "movi v6.16b, #0", "movi v7.16b, #0",
            "movi v16.16b, #0", "movi v17.16b, #0", "movi v18.16b, #0", "movi v19.16b, #0",
            "movi v20.16b, #0", "movi v21.16b, #0", "movi v22.16b, #0", "movi v23.16b, #0",
            "movi v24.16b, #0", "movi v25.16b, #0", "movi v26.16b, #0", "movi v27.16b, #0",
            "movi v28.16b, #0", "movi v29.16b, #0", "movi v30.16b, #0", "movi v31.16b, #0",
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _,
            out("v6") _, out("v7") _, out("v16") _, out("v17") _, out("v18") _, out("v19") _,
            out("v20") _, out("v21") _, out("v22") _, out("v23") _, out("v24") _, out("v25") _,
            out("v26") _, out("v27") _, out("v28") _, out("v29") _, out("v30") _, out("v31") _,
            options(nomem, nostack, preserves_flags));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_readable_times_out_and_sees_data() {
        let (a, b) = waker_pair().unwrap();
        let start = Instant::now();
        assert!(!wait_readable(&a, Some(Duration::from_millis(20))).unwrap());
        assert!(start.elapsed() >= Duration::from_millis(20));
        b.send(b"x").unwrap();
        assert!(wait_readable(&a, Some(Duration::from_secs(5))).unwrap());
    }

    #[test]
    fn uninit_view_keeps_contents() {
        let mut buf = [7u8; 4];
        let view = as_uninit_mut(&mut buf);
        view[0] = MaybeUninit::new(1);
        assert_eq!(buf, [1, 7, 7, 7]);
    }
}
