//! The operating-system calls socket2 does not offer, each wrapped in a safe function.
//!
//! With the Linux fast paths (platform/linux.rs: the mmsg arrays), this is the only
//! module of the core with `unsafe`; every block says why it is sound.
//! The concept modules (`address`, `interface`, `message`, `group`) call only these safe
//! wrappers and socket2.

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

/// Views an initialised byte buffer as the `MaybeUninit` buffer socket2's receive calls take.
pub(crate) fn as_uninit_mut(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and socket2 only ever writes
    // initialised bytes through the slice, so `buf` stays fully initialised.
    unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) }
}

/// An address buffer for recvmsg that reads as "no address" (AF_UNSPEC) unless the kernel
/// writes a sender into it: after a shutdown, recvmsg returns with no sender at all.
pub(crate) fn empty_sockaddr() -> socket2::SockAddr {
    let len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: an all-zero sockaddr_storage is a valid AF_UNSPEC address of that length.
    unsafe { socket2::SockAddr::new(socket2::SockAddrStorage::zeroed(), len) }
}

/// The name of the interface with kernel index `index` (for IPv6 zones), if any.
pub(crate) fn interface_name(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname may write, NUL included.
    let name = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if name.is_null() {
        return None;
    }
    // SAFETY: on success `buf` holds a NUL-terminated name.
    Some(
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// struct group_source_req of <netinet/in.h> (RFC 3678), as bytes: the two addresses
/// are sockaddr_storage, 8-aligned after the interface on Linux and the BSDs, packed to
/// 4 on Apple's systems. Byte arrays keep every byte of them (a typed sockaddr_storage
/// moved by value may lose the bytes libc declares as padding, where the address is).
#[repr(C)]
#[derive(Clone, Copy)]
struct GroupSourceReq {
    interface: u32,
    padding: [u8; GSR_PADDING],
    group: [u8; SOCKADDR_STORAGE],
    source: [u8; SOCKADDR_STORAGE],
}

const SOCKADDR_STORAGE: usize = std::mem::size_of::<libc::sockaddr_storage>();
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
pub(crate) fn source_membership(
    fd: BorrowedFd<'_>,
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
        libc::IPPROTO_IP
    } else {
        libc::IPPROTO_IPV6
    };
    let name = if join {
        libc::MCAST_JOIN_SOURCE_GROUP
    } else {
        libc::MCAST_LEAVE_SOURCE_GROUP
    };
    setsockopt(fd, level, name, &request)
}

/// Sends to IPv4 groups through interface `index`, whatever its addresses: IP_MULTICAST_IF
/// with an `ip_mreqn` (socket2 only sets it by address, which an interface without IPv4
/// does not have; this is how Go sends there).
pub(crate) fn set_multicast_if_v4_index(fd: BorrowedFd<'_>, index: u32) -> io::Result<()> {
    let index = libc::c_int::try_from(index)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index out of range"))?;
    let request = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr { s_addr: 0 },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: index,
    };
    setsockopt(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &request)
}

/// setsockopt with one plain-data option value (no padding the kernel could read).
pub(crate) fn setsockopt<T: Copy>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` is one live, initialised T, passed with its exact size; the kernel
    // only reads it during the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Waits until `fd` is readable (or hung up), or `timeout` passes. `None` waits forever.
/// Returns whether it became readable. Retries on EINTR with the time that is left.
/// ppoll takes nanoseconds, so the wait ends within the kernel's timer slack (50 us),
/// not rounded up to a millisecond or a scheduler tick.
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    wait_readable_any(&[fd], timeout)
}

/// Waits until one of `fds` (at most 4) is readable, or `timeout` passes; as
/// [`wait_readable`].
pub(crate) fn wait_readable_any(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> io::Result<bool> {
    let mut pfds = [libc::pollfd {
        fd: -1,
        events: libc::POLLIN,
        revents: 0,
    }; 4];
    let count = fds.len().min(pfds.len());
    for (pfd, fd) in pfds.iter_mut().zip(fds) {
        pfd.fd = fd.as_raw_fd();
    }
    let deadline = timeout.map(|t| Instant::now().checked_add(t));
    loop {
        let left = match deadline {
            None | Some(None) => None,
            Some(Some(d)) => Some(d.saturating_duration_since(Instant::now())),
        };
        match poll(&mut pfds[..count], left) {
            Ok(n) => return Ok(n > 0),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
}

/// One poll: ppoll (nanoseconds) where the system has it, poll (milliseconds, rounded
/// up so a wait never ends early) elsewhere.
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
fn poll(pfds: &mut [libc::pollfd], left: Option<Duration>) -> io::Result<libc::c_int> {
    let spec = left.map(|left| libc::timespec {
        tv_sec: left.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
        tv_nsec: left.subsec_nanos() as _,
    });
    let spec_ptr = spec
        .as_ref()
        .map_or(std::ptr::null(), |s| s as *const libc::timespec);
    // SAFETY: `pfds` is a valid, exclusively borrowed array of its length and `spec_ptr`
    // NULL or a live timespec, for the whole call; a NULL signal mask leaves the mask alone.
    let n = unsafe {
        libc::ppoll(
            pfds.as_mut_ptr(),
            pfds.len() as libc::nfds_t,
            spec_ptr,
            std::ptr::null(),
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
fn poll(pfds: &mut [libc::pollfd], left: Option<Duration>) -> io::Result<libc::c_int> {
    let millis = left.map_or(-1, |left| {
        let rounded_up = left.as_nanos().div_ceil(1_000_000);
        libc::c_int::try_from(rounded_up).unwrap_or(libc::c_int::MAX)
    });
    // SAFETY: `pfds` is a valid, exclusively borrowed array of its length for the call.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, millis) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n)
    }
}

/// How many times this process (or one of its ancestors since it loaded the library)
/// has forked: a handle remembers the value at join, so a forked child can tell that a
/// handle is inherited and must not touch the socket it shares with the parent.
pub(crate) fn fork_generation() -> u64 {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // SAFETY: the handler only increments an atomic, which is async-signal-safe as
        // a fork child handler must be. A failure (ENOMEM) leaves fork detection off.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
    FORK_GENERATION.load(std::sync::atomic::Ordering::Relaxed)
}

static FORK_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

extern "C" fn after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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

/// Lists every interface address of this network namespace (one entry per address, and
/// one with `addr: None` for the link itself).
pub(crate) fn interface_addrs() -> io::Result<Vec<InterfaceAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head into `head`, which we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let cname = unsafe { CStr::from_ptr(ifa.ifa_name) };
        // SAFETY: if_nametoindex reads the NUL-terminated name only.
        let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        let flags = ifa.ifa_flags;
        out.push(InterfaceAddr {
            name: cname.to_string_lossy().into_owned(),
            index,
            // SAFETY: ifa_addr is NULL or points to a sockaddr of the family it names.
            addr: unsafe { sockaddr_ip(ifa.ifa_addr) },
            up: flags & libc::IFF_UP as libc::c_uint != 0,
            multicast: flags & libc::IFF_MULTICAST as libc::c_uint != 0,
        });
    }
    // SAFETY: `head` came from getifaddrs and is freed exactly once, after the last use.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// # Safety
/// `sa` must be NULL or point to a valid sockaddr whose size matches its family.
unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    match i32::from((*sa).sa_family) {
        libc::AF_INET => {
            let sin = &*(sa as *const libc::sockaddr_in);
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))))
        }
        libc::AF_INET6 => {
            let sin6 = &*(sa as *const libc::sockaddr_in6);
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsFd;

    #[test]
    fn wait_readable_times_out_and_sees_data() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let start = Instant::now();
        assert!(!wait_readable(a.as_fd(), Some(Duration::from_millis(20))).unwrap());
        assert!(start.elapsed() >= Duration::from_millis(20));
        a.send_to(b"x", a.local_addr().unwrap()).unwrap();
        assert!(wait_readable(a.as_fd(), Some(Duration::from_secs(5))).unwrap());
    }

    #[test]
    fn uninit_view_keeps_contents() {
        let mut buf = [7u8; 4];
        let view = as_uninit_mut(&mut buf);
        view[0] = MaybeUninit::new(1);
        assert_eq!(buf, [1, 7, 7, 7]);
    }
}
