//! A group whose descriptor another party switched to O_NONBLOCK keeps the library's
//! semantics. The descriptor is shared: an event loop (libuv sets O_NONBLOCK on what it
//! polls) or the Go binding's poller may do so. Sends then wait out a full send buffer,
//! as on a blocking socket, instead of failing; batches send everything; receives keep
//! their timeouts and still deliver.
//!
//! One test in its own binary: it creates a slow link (a veth pair shaped by a token
//! bucket) that no other test should see.

mod common;

use std::os::fd::{AsRawFd, RawFd};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ip, require_private_netns, test_iface, unique_port};
use multicast::{Group, JoinOptions, Timeout};

/// A veth pair whose sending end passes 8 Mbit/s: datagrams wait in its queue, charged
/// to the sending socket's buffer, so a small send buffer fills at once.
struct SlowLink;

impl SlowLink {
    fn create() -> SlowLink {
        for args in [
            "link add mcnb0 type veth peer name mcnb1",
            "addr add 10.209.0.1/24 dev mcnb0",
            "link set mcnb0 up",
            "link set mcnb1 up",
        ] {
            ip(args);
        }
        let tc = Command::new("tc")
            .args("qdisc add dev mcnb0 root tbf rate 8mbit burst 4kb latency 10s".split(' '))
            .status()
            .expect("tc (iproute2) runs");
        assert!(tc.success(), "tc could not shape mcnb0");
        SlowLink
    }
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", "mcnb0"]).status();
    }
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on a descriptor the group keeps open for the whole test.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        assert!(flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0);
    }
}

fn set_send_buffer(fd: RawFd, bytes: libc::c_int) {
    // SAFETY: one int option value, passed with its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

/// Sends raw datagrams on `fd` until the kernel says the buffer is full; proves the
/// condition the library must wait out is really reached here.
fn fill_until_would_block(fd: RawFd, to: &socket2::SockAddr) -> usize {
    let payload = [0u8; 1000];
    for sent in 0..10_000 {
        // SAFETY: `payload` and `to` are live for the call; the kernel only reads them.
        let n = unsafe {
            libc::sendto(
                fd,
                payload.as_ptr().cast(),
                payload.len(),
                0,
                to.as_ptr().cast(),
                to.len(),
            )
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock, "{err}");
            return sent;
        }
    }
    panic!("10,000 datagrams went out without the send buffer ever filling");
}

#[test]
fn a_nonblocking_descriptor_keeps_blocking_semantics() {
    require_private_netns();
    let _link = SlowLink::create();
    let port = unique_port();
    let slow = Group::join_with(
        "239.9.0.1",
        port,
        &JoinOptions::default().interface("mcnb0").loopback(false),
    )
    .unwrap();
    let fd = slow.as_raw_fd();
    set_send_buffer(fd, 4096);
    set_nonblocking(fd);
    let to = socket2::SockAddr::from(slow.local_addr());

    let before = fill_until_would_block(fd, &to);
    assert!(
        before < 100,
        "the buffer took {before} datagrams before filling"
    );
    for i in 0..200 {
        slow.send(&[7u8; 1000])
            .unwrap_or_else(|e| panic!("send {i} on a full, non-blocking descriptor: {e}"));
    }
    fill_until_would_block(fd, &to);
    let batch: Vec<&[u8]> = vec![&[9u8; 1000]; 200];
    assert_eq!(slow.send_batch(&batch).unwrap(), 200);

    // Receives on a non-blocking descriptor: a datagram still arrives through a wait
    // without limit, and an empty queue still waits out the timeout.
    let local = Group::join("239.9.0.2", port, &test_iface()).unwrap();
    set_nonblocking(local.as_raw_fd());
    local.send(b"still delivered").unwrap();
    let mut buf = [0u8; 65_535];
    let got = local.receive(Timeout::Never, &mut buf).unwrap().unwrap();
    assert_eq!(&buf[..got.len], b"still delivered");
    let start = Instant::now();
    let timeout = Duration::from_millis(50);
    assert_eq!(
        local.receive(Timeout::After(timeout), &mut buf).unwrap(),
        None
    );
    assert!(
        start.elapsed() >= timeout,
        "returned after {:?}",
        start.elapsed()
    );
}
