//! The operating-system calls socket2 does not offer, each wrapped in a safe function.
//!
//! This is the only module of the core with `unsafe`; every block says why it is sound.
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

/// struct group_source_req of <netinet/in.h> (RFC 3678), which libc does not define.
#[repr(C)]
struct GroupSourceReq {
    interface: u32,
    group: libc::sockaddr_storage,
    source: libc::sockaddr_storage,
}

/// Writes `addr` (port 0) into `storage` in place. Never moved by value afterwards: Rust
/// may drop the bytes that libc's sockaddr_storage declares as padding, which is where
/// sockaddr_in keeps its address.
fn write_sockaddr(storage: &mut libc::sockaddr_storage, addr: IpAddr) {
    let at = (storage as *mut libc::sockaddr_storage).cast::<u8>();
    match addr {
        IpAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from(v4).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(at.cast::<libc::sockaddr_in>(), sin) };
        }
        IpAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write(at.cast::<libc::sockaddr_in6>(), sin6) };
        }
    }
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
    // Zeroed first (the kernel reads every byte, padding included), then filled in place.
    // SAFETY: all-zero is a valid group_source_req.
    let mut request: GroupSourceReq = unsafe { std::mem::zeroed() };
    request.interface = index;
    write_sockaddr(&mut request.group, group);
    write_sockaddr(&mut request.source, source);
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
    // SAFETY: the option value is one group_source_req, passed with its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&request as *const GroupSourceReq).cast(),
            std::mem::size_of::<GroupSourceReq>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
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
    // SAFETY: the option value is one ip_mreqn, passed with its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            (&request as *const libc::ip_mreqn).cast(),
            std::mem::size_of::<libc::ip_mreqn>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Binds a netlink socket to an address the kernel picks (port id 0 asks for one): the
/// kernel delivers its announcements only to bound sockets.
pub(crate) fn bind_netlink(fd: BorrowedFd<'_>) -> io::Result<()> {
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

/// Sets an integer socket option socket2 has no setter for.
pub(crate) fn set_int_option(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the option value is one c_int, passed with its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sends each of `datagrams` to `dest` as its own datagram with one sendmmsg call per
/// up to 64; returns how many the kernel took (fewer on a later error).
pub(crate) fn sendmmsg(
    fd: BorrowedFd<'_>,
    datagrams: &[&[u8]],
    dest: &socket2::SockAddr,
) -> io::Result<usize> {
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
    pub source: socket2::SockAddr,
    pub flags: libc::c_int,
    pub control: [u8; MMSG_CONTROL],
    pub control_len: usize,
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
    fd: BorrowedFd<'_>,
    bufs: &mut [&mut [u8]],
    out: &mut [MmsgResult],
) -> io::Result<usize> {
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

/// Waits until `fd` is readable (or hung up), or `timeout` passes. `None` waits forever.
/// Returns whether it became readable. Retries on EINTR with the time that is left.
/// ppoll takes nanoseconds, so the wait ends within the kernel's timer slack (50 us),
/// not rounded up to a millisecond or a scheduler tick.
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    let deadline = timeout.map(|t| Instant::now().checked_add(t));
    loop {
        let left = match deadline {
            None | Some(None) => None,
            Some(Some(d)) => Some(d.saturating_duration_since(Instant::now())),
        };
        let spec = left.map(|left| libc::timespec {
            tv_sec: left.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
            tv_nsec: left.subsec_nanos() as _,
        });
        let spec_ptr = spec
            .as_ref()
            .map_or(std::ptr::null(), |s| s as *const libc::timespec);
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid, exclusively borrowed pollfd and `spec_ptr` NULL or a
        // live timespec, for the whole call; a NULL signal mask leaves the mask alone.
        let n = unsafe { libc::ppoll(&mut pfd, 1, spec_ptr, std::ptr::null()) };
        match n {
            n if n > 0 => return Ok(true),
            0 => return Ok(false),
            _ => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
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
