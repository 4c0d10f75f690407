//! Unix: the calls socket2 does not offer (libc), each wrapped in a safe function.

use std::ffi::CStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use super::InterfaceAddr;
use crate::group::Group;

/// The flag that makes one receive return at once when nothing is queued.
pub(crate) const DONT_WAIT: libc::c_int = libc::MSG_DONTWAIT;

/// Receives may wait inside one blocking recv under SO_RCVTIMEO (one system call per
/// datagram, see Group::receive).
pub(crate) const BLOCKING_RECEIVE: bool = true;

/// Closing a group wakes its waiting receivers at once (shutdown ends their poll), so
/// they wait in one piece.
pub(crate) const CLOSE_WAKE_SLICE: Option<Duration> = None;

/// The size of the datagram at the head of the queue without taking it (MSG_PEEK with
/// MSG_TRUNC, which reports the whole size); `None` when nothing is queued. The socket
/// is bound to its group, so the head is always the group's.
pub(crate) fn queued_len_of(socket: &Socket, _group: IpAddr) -> io::Result<Option<usize>> {
    let flags = libc::MSG_DONTWAIT | libc::MSG_PEEK | libc::MSG_TRUNC;
    match socket.recv_from_with_flags(&mut [], flags) {
        Ok((n, _)) => Ok(Some(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// An address buffer for recvmsg that reads as "no address" (AF_UNSPEC) unless the kernel
/// writes a sender into it: after a shutdown, recvmsg returns with no sender at all.
pub(crate) fn empty_sockaddr() -> socket2::SockAddr {
    let len = std::mem::size_of::<socket2::SockAddrStorage>() as socket2::socklen_t;
    // SAFETY: an all-zero sockaddr_storage is a valid AF_UNSPEC address of that length.
    unsafe { socket2::SockAddr::new(socket2::SockAddrStorage::zeroed(), len) }
}

/// The command that gives the system a multicast route, for error messages.
pub(crate) fn multicast_route_hint(group: IpAddr) -> &'static str {
    match (group, cfg!(target_os = "linux")) {
        (IpAddr::V4(_), true) => "ip route add 224.0.0.0/4 dev IFACE",
        (IpAddr::V6(_), true) => "ip -6 route add ff00::/8 dev IFACE",
        (IpAddr::V4(_), false) => "route add -net 224.0.0.0/4 -interface IFACE",
        (IpAddr::V6(_), false) => "route add -inet6 -net ff00::/8 -interface IFACE",
    }
}

/// The command that brings interface `name` up, for error messages.
pub(crate) fn link_up_hint(name: &str) -> String {
    if cfg!(target_os = "linux") {
        format!("ip link set {name} up")
    } else {
        format!("ifconfig {name} up")
    }
}

/// The OS error codes the core explains to the user.
pub(crate) fn is_no_device(err: &io::Error) -> bool {
    err.raw_os_error() == Some(libc::ENODEV)
}

/// The interface a send went through is down.
pub(crate) fn is_network_down(err: &io::Error) -> bool {
    err.raw_os_error() == Some(libc::ENETDOWN)
}

/// No route leads to the destination.
pub(crate) fn is_unreachable(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENETUNREACH | libc::ENODEV))
}

/// A GSO send refused for its segment size.
pub(crate) fn is_message_size(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EMSGSIZE | libc::EINVAL))
}

/// A GSO send refused because the kernel or device does not do it.
pub(crate) fn is_unsupported(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EIO | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
    )
}

/// An error for "no route to the group" as this system words it.
#[cfg(test)]
pub(crate) fn unreachable_error() -> io::Error {
    io::Error::from_raw_os_error(libc::ENETUNREACH)
}

/// The address a group's socket binds: the group itself, so that no other group's
/// datagrams (nor unicast to the port) reach it.
pub(crate) fn bind_address(group_and_port: socket2::SockAddr) -> socket2::SockAddr {
    group_and_port
}

/// Registers a descriptor with tokio's reactor for readability (AsyncGroup).
#[cfg(feature = "tokio")]
pub(crate) fn register_readable(
    fd: std::os::fd::OwnedFd,
) -> io::Result<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    use tokio::io::unix::AsyncFd;
    // SAFETY: an OwnedFd holds one open descriptor for as long as it lives, always
    // reports that same descriptor, and is owned by the AsyncFd until it is dropped:
    // what register_with_interest requires.
    Ok(unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }?)
}

/// Two connected datagram sockets: a byte sent on one wakes a waiter on the other.
pub(crate) fn waker_pair() -> io::Result<(Socket, Socket)> {
    Socket::pair(Domain::UNIX, Type::DGRAM, None)
}

impl Group {
    /// The socket's descriptor, or `None` once closed. Valid only until `close`.
    pub fn raw_fd(&self) -> Option<RawFd> {
        self.with_open_socket(AsRawFd::as_raw_fd)
    }

    /// The descriptor as a number, for the C API's mc_fd.
    #[cfg(feature = "capi")]
    pub(crate) fn handle_number(&self) -> Option<i64> {
        self.raw_fd().map(i64::from)
    }
}

/// The socket's descriptor, for registering with an event loop (readable while a
/// datagram is queued). Reads -1 once the group is closed. Valid only while the group
/// is open: do not read from it or close it. `AsFd` is not offered: `close` (through
/// `&self`) may close the descriptor while a borrow would still be alive.
impl AsRawFd for Group {
    fn as_raw_fd(&self) -> RawFd {
        self.raw_fd().unwrap_or(-1)
    }
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

pub(crate) use super::group_source_membership as source_membership;

/// The options and levels of a source-specific membership (RFC 3678).
pub(crate) const MCAST_JOIN_SOURCE_GROUP: libc::c_int = libc::MCAST_JOIN_SOURCE_GROUP;
pub(crate) const MCAST_LEAVE_SOURCE_GROUP: libc::c_int = libc::MCAST_LEAVE_SOURCE_GROUP;
pub(crate) const IPPROTO_IP: libc::c_int = libc::IPPROTO_IP;
pub(crate) const IPPROTO_IPV6: libc::c_int = libc::IPPROTO_IPV6;

/// Sends to IPv4 groups through interface `index`, whatever its addresses: IP_MULTICAST_IF
/// with an `ip_mreqn` (socket2 only sets it by address, which an interface without IPv4
/// does not have; this is how Go sends there).
pub(crate) fn set_multicast_if_v4_index(socket: &Socket, index: u32) -> io::Result<()> {
    let index = libc::c_int::try_from(index)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index out of range"))?;
    let request = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr { s_addr: 0 },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: index,
    };
    setsockopt(socket, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &request)
}

/// setsockopt with one plain-data option value (no padding the kernel could read).
pub(crate) fn setsockopt<T: Copy>(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` is one live, initialised T, passed with its exact size; the kernel
    // only reads it during the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
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

/// Waits until one of `sockets` (at most 4) is readable (or hung up), or `timeout`
/// passes (see [`super::wait_readable`]). ppoll takes nanoseconds, so the wait ends
/// within the kernel's timer slack (50 us), not rounded up to a millisecond or a tick.
pub(crate) fn wait_readable_any(
    sockets: &[&Socket],
    timeout: Option<Duration>,
) -> io::Result<bool> {
    wait(sockets, libc::POLLIN, timeout)
}

/// Waits until `socket`'s send buffer has room (or it is hung up), or `timeout` passes.
pub(crate) fn wait_writable(socket: &Socket, timeout: Option<Duration>) -> io::Result<bool> {
    wait(&[socket], libc::POLLOUT, timeout)
}

/// Polls `sockets` (at most 4) for `events` until one is ready or `timeout` passes.
fn wait(sockets: &[&Socket], events: libc::c_short, timeout: Option<Duration>) -> io::Result<bool> {
    let mut pfds = [libc::pollfd {
        fd: -1,
        events,
        revents: 0,
    }; 4];
    let count = sockets.len().min(pfds.len());
    for (pfd, socket) in pfds.iter_mut().zip(sockets) {
        pfd.fd = socket.as_raw_fd();
    }
    super::retry_for(timeout, |left| poll(&mut pfds[..count], left))
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
    let millis = super::millis_rounded_up(left);
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
/// handle is inherited and must not touch the socket it shares with the parent (nor
/// seal under its parent's nonces).
///
/// `pthread_atfork` handlers see `fork()`, but not glibc's `_Fork()` or a raw `clone`,
/// so a second sign that works without them is checked on every call: a page the kernel
/// zeroes in every child (`MADV_WIPEONFORK`, as BoringSSL marks its generator's state),
/// or, where there is no such page, a change of process id.
pub(crate) fn fork_generation() -> u64 {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // SAFETY: the handler only increments an atomic, which is async-signal-safe as
        // a fork child handler must be. A failure (ENOMEM) leaves the other sign alone.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
    if forked_unseen() {
        FORK_GENERATION.fetch_add(1, Ordering::Release);
        mark_this_process();
    }
    FORK_GENERATION.load(Ordering::Acquire)
}

static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

extern "C" fn after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// The process's mark: a wipe-on-fork byte (1 in the process that set it, 0 in any
/// child), or else the process id that set it.
enum ProcessMark {
    WipedInChildren(&'static AtomicU8),
    Pid(AtomicU32),
}

fn process_mark() -> &'static ProcessMark {
    static MARK: std::sync::OnceLock<ProcessMark> = std::sync::OnceLock::new();
    MARK.get_or_init(|| match wipe_on_fork_byte() {
        Some(byte) => ProcessMark::WipedInChildren(byte),
        None => ProcessMark::Pid(AtomicU32::new(std::process::id())),
    })
}

/// Whether this process is a child that no fork handler has counted yet. Two threads
/// of a new child may both say so: each then counts it, and only a change matters.
fn forked_unseen() -> bool {
    match process_mark() {
        ProcessMark::WipedInChildren(byte) => byte.load(Ordering::Acquire) == 0,
        ProcessMark::Pid(pid) => pid.load(Ordering::Acquire) != std::process::id(),
    }
}

/// Marks the mark as this process's, after the generation it stands for was counted.
fn mark_this_process() {
    match process_mark() {
        ProcessMark::WipedInChildren(byte) => byte.store(1, Ordering::Release),
        ProcessMark::Pid(pid) => pid.store(std::process::id(), Ordering::Release),
    }
}

/// A byte on a page of its own that the kernel zeroes in every child (Linux 4.14+),
/// set to 1 here; `None` where the kernel offers no such page.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn wipe_on_fork_byte() -> Option<&'static AtomicU8> {
    // SAFETY: sysconf has no memory effects.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
    // SAFETY: a fresh private anonymous mapping, touched by no one else; it is never
    // unmapped, so the reference below lives as long as the process.
    unsafe {
        let at = libc::mmap(
            std::ptr::null_mut(),
            page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if at == libc::MAP_FAILED {
            return None;
        }
        if libc::madvise(at, page, libc::MADV_WIPEONFORK) != 0 {
            libc::munmap(at, page);
            return None;
        }
        let byte = &*(at as *const AtomicU8);
        byte.store(1, Ordering::Release);
        Some(byte)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn wipe_on_fork_byte() -> Option<&'static AtomicU8> {
    None
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
