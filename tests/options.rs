//! Join options and event-loop integration over real sockets, in the private namespace.

mod common;

use std::os::fd::RawFd;
use std::time::Duration;

use common::{require_private_netns, test_addr, test_iface, unique_port};
use multicast::{ErrorKind, Group, JoinOptions, Timeout};

const WAIT: Timeout = Timeout::After(Duration::from_secs(5));
const NO_WAIT: Timeout = Timeout::After(Duration::ZERO);

fn join_with(group: &str, port: u16, options: &JoinOptions) -> Group {
    require_private_netns();
    Group::join_with(group, port, options).unwrap()
}

fn int_option(fd: RawFd, level: libc::c_int, name: libc::c_int) -> libc::c_int {
    let mut value: libc::c_int = -1;
    let mut size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and size are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut size,
        )
    };
    assert_eq!(rc, 0, "getsockopt: {}", std::io::Error::last_os_error());
    value
}

fn interface_index(name: &str) -> u32 {
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: name is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert_ne!(index, 0, "no interface {name:?}");
    index
}

fn poll_readable(fd: RawFd, timeout_ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    assert!(n >= 0, "poll: {}", std::io::Error::last_os_error());
    n == 1 && p.revents & libc::POLLIN != 0
}

#[test]
fn ttl_is_set_on_the_socket() {
    let port = unique_port();
    let default = join_with("239.2.1.1", port, &JoinOptions::default());
    assert_eq!(
        int_option(
            default.raw_fd().unwrap(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_TTL
        ),
        1
    );
    let wide = join_with("239.2.1.1", port, &JoinOptions::default().ttl(64));
    assert_eq!(
        int_option(
            wide.raw_fd().unwrap(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_TTL
        ),
        64
    );
}

#[test]
fn ttl_outside_1_to_255_is_refused() {
    require_private_netns();
    for ttl in [0, 256] {
        let e = Group::join_with("239.2.1.2", unique_port(), &JoinOptions::default().ttl(ttl))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "ttl {ttl}");
        assert_eq!(
            e.message(),
            format!("ttl must be between 1 and 255, not {ttl}")
        );
    }
}

#[test]
fn loopback_off_keeps_sends_from_local_members() {
    let port = unique_port();
    let sender = join_with("239.2.1.3", port, &JoinOptions::default().loopback(false));
    let listener = join_with("239.2.1.3", port, &JoinOptions::default());
    sender.send(b"unheard").unwrap();
    assert_eq!(
        listener
            .receive_message(Timeout::After(Duration::from_millis(300)))
            .unwrap(),
        None
    );
    assert_eq!(sender.receive_message(NO_WAIT).unwrap(), None);
    listener.send(b"heard").unwrap();
    assert_eq!(
        sender.receive_message(WAIT).unwrap().unwrap().data,
        b"heard"
    );
}

#[test]
fn interface_by_index_pins_membership_and_source() {
    let port = unique_port();
    let index = interface_index(&test_iface());
    let g = join_with(
        "239.2.1.4",
        port,
        &JoinOptions::default().interface_index(index),
    );
    assert_eq!(g.interface().unwrap().name, test_iface());
    g.send(b"x").unwrap();
    let msg = g.receive_message(WAIT).unwrap().unwrap();
    assert_eq!(msg.source.to_string(), format!("{}:{port}", test_addr()));
}

#[test]
fn unknown_index_and_name_plus_index_are_refused() {
    require_private_netns();
    let e = Group::join_with(
        "239.2.1.5",
        unique_port(),
        &JoinOptions::default().interface_index(999_999),
    )
    .unwrap_err();
    assert_eq!(
        (e.kind(), e.message()),
        (
            ErrorKind::Interface,
            "interface not found: no interface has index 999999"
        )
    );
    let both = JoinOptions::default()
        .interface(&test_iface())
        .interface_index(1);
    let e = Group::join_with("239.2.1.5", unique_port(), &both).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn receive_buffer_is_granted_and_read_back() {
    let port = unique_port();
    let small = join_with(
        "239.2.1.6",
        port,
        &JoinOptions::default().receive_buffer(4096),
    );
    // Linux stores twice the request (the doubled value covers its bookkeeping).
    assert_eq!(small.receive_buffer_size().unwrap(), 8192);
    let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let huge = join_with(
        "239.2.1.6",
        port,
        &JoinOptions::default().receive_buffer(rmem_max * 4),
    );
    // Capped silently at rmem_max: the read-back shows what was really granted.
    assert_eq!(huge.receive_buffer_size().unwrap(), rmem_max * 2);
}

#[test]
fn descriptor_is_readable_exactly_while_datagrams_are_queued() {
    let g = join_with("239.2.1.7", unique_port(), &JoinOptions::default());
    let fd = g.raw_fd().unwrap();
    assert_eq!(std::os::fd::AsRawFd::as_raw_fd(&g), fd);
    assert!(!poll_readable(fd, 0));
    for i in 0..3u8 {
        g.send(&[i]).unwrap();
    }
    assert!(poll_readable(fd, 5000));
    let mut drained = Vec::new();
    while let Some(msg) = g.receive_message(NO_WAIT).unwrap() {
        drained.push(msg.data[0]);
    }
    assert_eq!(drained, [0, 1, 2]);
    assert!(!poll_readable(fd, 0));
    g.close().unwrap();
    assert_eq!(g.raw_fd(), None);
    assert_eq!(std::os::fd::AsRawFd::as_raw_fd(&g), -1);
    assert_eq!(
        g.receive_buffer_size().unwrap_err().kind(),
        ErrorKind::Closed
    );
}

#[test]
fn timeouts_hold_when_an_event_loop_made_the_descriptor_non_blocking() {
    let g = join_with("239.2.1.8", unique_port(), &JoinOptions::default());
    let fd = g.raw_fd().unwrap();
    // What adopting mc_fd into a non-blocking event loop does to the shared description.
    // SAFETY: fcntl on a descriptor the group keeps open.
    unsafe {
        libc::fcntl(
            fd,
            libc::F_SETFL,
            libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK,
        )
    };
    let start = std::time::Instant::now();
    assert_eq!(
        g.receive_message(Timeout::After(Duration::from_millis(200)))
            .unwrap(),
        None
    );
    assert!(
        start.elapsed() >= Duration::from_millis(200),
        "returned after {:?}",
        start.elapsed()
    );
    g.send(b"still works").unwrap();
    assert_eq!(
        g.receive_message(WAIT).unwrap().unwrap().data,
        b"still works"
    );
}
