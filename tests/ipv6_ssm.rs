//! IPv6 groups, source-specific multicast and interface errors, over real sockets in
//! the private namespace (scripts/netns: mc0 with 10.203.0.1, 10.203.0.2, fd00:203::1,
//! fd00:203::2 and a link-local address, routes for 224.0.0.0/4 and ff00::/8).

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{require_private_netns, test_iface, unique_port};
use multicast::{ErrorKind, Group, JoinOptions, Timeout};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const WAIT: Timeout = Timeout::After(Duration::from_secs(5));
const BRIEF: Timeout = Timeout::After(Duration::from_millis(300));

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run inside scripts/netns"))
}

fn join_with(group: &str, port: u16, options: JoinOptions) -> Group {
    require_private_netns();
    Group::join_with(group, port, &options).unwrap_or_else(|e| panic!("join {group}: {e}"))
}

/// A plain socket sending from a chosen source address, as another host would.
fn send_from(source: &str, group: &str, port: u16, data: &[u8]) {
    let source: IpAddr = source.parse().unwrap();
    let group: IpAddr = group.parse().unwrap();
    let domain = if source.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    s.bind(&SockAddr::from(SocketAddr::new(source, 0))).unwrap();
    let index = multicast::interface::resolve_for(&test_iface(), true)
        .unwrap()
        .index;
    match source {
        IpAddr::V4(v4) => s.set_multicast_if_v4(&v4).unwrap(),
        IpAddr::V6(_) => s.set_multicast_if_v6(index).unwrap(),
    }
    s.send_to(data, &SockAddr::from(SocketAddr::new(group, port)))
        .unwrap();
}

#[test]
fn ipv6_site_scope_round_trip_with_hop_limit() {
    let port = unique_port();
    let g = join_with(
        "ff05::1:5",
        port,
        JoinOptions::default().interface(&test_iface()).ttl(7),
    );
    assert_eq!(g.group_addr().to_string(), "ff05::1:5");
    assert_eq!(g.max_message_size(), 65_527);
    g.send(b"over IPv6").unwrap();
    let msg = g.receive_message(WAIT).unwrap().unwrap();
    assert_eq!(msg.data, b"over IPv6");
    // Either of mc0's global addresses: the kernel's source selection picks one.
    let source = msg.source.ip().to_string();
    assert!(
        [env("MC_TEST_ADDR6"), env("MC_TEST_ADDR6_B")].contains(&source),
        "{source}"
    );
    let hops = socket2::SockRef::from(&FdRef(g.raw_fd().unwrap()))
        .multicast_hops_v6()
        .unwrap();
    assert_eq!(hops, 7);
}

struct FdRef(std::os::fd::RawFd);
impl std::os::fd::AsFd for FdRef {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY: the group keeps the descriptor open for the test's lifetime.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(self.0) }
    }
}

#[test]
fn ipv6_largest_message_is_65527_bytes() {
    let g = join_with(
        "ff05::1:6",
        unique_port(),
        JoinOptions::default().interface(&test_iface()),
    );
    let big = vec![7u8; 65_527];
    g.send(&big).unwrap();
    assert_eq!(g.receive_message(WAIT).unwrap().unwrap().data.len(), 65_527);
    let e = g.send(&vec![0u8; 65_528]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MessageTooLarge);
    assert!(e.message().contains("65527-byte"), "{e}");
}

#[test]
fn link_local_groups_take_a_zone() {
    require_private_netns();
    let port = unique_port();

    let zoned = join_with(
        &format!("ff02::1:7%{}", test_iface()),
        port,
        JoinOptions::default(),
    );
    let named = join_with(
        "ff02::1:7",
        port,
        JoinOptions::default().interface(&test_iface()),
    );
    named.send(b"link-local").unwrap();
    for g in [&zoned, &named] {
        let msg = g.receive_message(WAIT).unwrap().unwrap();
        assert_eq!(msg.data, b"link-local");
        // A link-local source carries its zone, shown as the interface name.
        let text = multicast::message::SourceText(&msg.source).to_string();
        assert!(
            text.starts_with("[fe80::") && text.ends_with(&format!("%{}]:{port}", test_iface())),
            "{text}"
        );
    }
    let e = Group::join_with(
        &format!("ff02::1:7%{}", test_iface()),
        port,
        &JoinOptions::default().interface("lo"),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

/// Without an interface or a zone, a link-scoped group is joined where the kernel routes
/// it (what `ip -6 route get` names, and where Go's join ends up), and is usable there.
#[test]
fn link_local_group_without_interface_follows_the_kernels_route() {
    require_private_netns();
    let port = unique_port();
    if !multicast::capabilities().interface_events {
        // No route lookup on the portable path: the interface must be named.
        let e = Group::join("[ff02::1:8]", port, "").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Interface);
        assert!(e.message().contains("name the interface"), "{e}");
        return;
    }
    let routed = join_with("[ff02::1:8]", port, JoinOptions::default());
    let out = std::process::Command::new("ip")
        .args(["-6", "route", "get", "ff02::1:8"])
        .output()
        .expect("ip runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let kernel = text
        .split_whitespace()
        .skip_while(|w| *w != "dev")
        .nth(1)
        .unwrap_or_else(|| panic!("no dev in {text:?}"));
    assert_eq!(routed.interface().map(|i| i.name), Some(kernel.to_owned()));
    routed.send(b"routed").unwrap();
    assert_eq!(
        routed.receive_message(WAIT).unwrap().unwrap().data,
        b"routed"
    );
}

#[test]
fn ipv4_source_specific_join_hears_only_that_source() {
    let port = unique_port();
    let (a, b) = (env("MC_TEST_ADDR"), env("MC_TEST_ADDR_B"));
    let only_b = join_with(
        "232.1.1.1",
        port,
        JoinOptions::default().interface(&test_iface()).source(&b),
    );
    let any = join_with(
        "232.1.1.1",
        port,
        JoinOptions::default().interface(&test_iface()),
    );
    send_from(&a, "232.1.1.1", port, b"from a");
    send_from(&b, "232.1.1.1", port, b"from b");
    let got = only_b.receive_message(WAIT).unwrap().unwrap();
    assert_eq!(
        (got.data.as_slice(), got.source.ip().to_string()),
        (&b"from b"[..], b.clone())
    );
    assert_eq!(
        only_b.receive_message(BRIEF).unwrap(),
        None,
        "a's datagram got through the filter"
    );
    // Without the filter both arrive: the filter, not the network, dropped a's.
    let mut heard: Vec<Vec<u8>> = (0..2)
        .map(|_| any.receive_message(WAIT).unwrap().unwrap().data)
        .collect();
    heard.sort();
    assert_eq!(heard, [b"from a".to_vec(), b"from b".to_vec()]);
}

#[test]
fn ipv6_source_specific_join_hears_only_that_source() {
    let port = unique_port();
    let (a, b) = (env("MC_TEST_ADDR6"), env("MC_TEST_ADDR6_B"));
    let only_a = join_with(
        "ff3e::8000:1",
        port,
        JoinOptions::default().interface(&test_iface()).source(&a),
    );
    send_from(&b, "ff3e::8000:1", port, b"from b");
    send_from(&a, "ff3e::8000:1", port, b"from a");
    let got = only_a.receive_message(WAIT).unwrap().unwrap();
    assert_eq!(got.data, b"from a");
    assert_eq!(
        only_a.receive_message(BRIEF).unwrap(),
        None,
        "b's datagram got through the filter"
    );
}

#[test]
fn bad_sources_are_refused() {
    require_private_netns();
    for (group, source) in [
        ("232.1.1.2", "fd00::1"),
        ("ff3e::1", "10.0.0.1"),
        ("232.1.1.2", "239.1.1.1"),
        ("232.1.1.2", "nope"),
        ("232.1.1.2", "255.255.255.255"),
        ("232.1.1.2", "0.0.0.0"),
    ] {
        let e = Group::join_with(group, unique_port(), &JoinOptions::default().source(source))
            .unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::InvalidArgument,
            "{group} from {source}: {e}"
        );
    }
}

#[test]
fn down_interface_says_what_to_do() {
    require_private_netns();
    // A fresh veth pair is down until brought up: it stands in for a NIC someone took
    // down. Created here and removed on drop, also when the test fails.
    struct DownPair;
    impl Drop for DownPair {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", "mcdown0"])
                .status();
        }
    }
    let ok = std::process::Command::new("ip")
        .args([
            "link", "add", "mcdown0", "type", "veth", "peer", "name", "mcdown1",
        ])
        .status()
        .unwrap();
    assert!(ok.success(), "cannot create a veth pair");
    let _pair = DownPair;
    let e = Group::join_with(
        "ff05::1:8",
        unique_port(),
        &JoinOptions::default().interface("mcdown0"),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Interface);
    assert_eq!(
        e.message(),
        "interface mcdown0 is down; bring it up (ip link set mcdown0 up) or name another interface"
    );
}

#[test]
fn ipv6_packet_info_reports_group_and_interface() {
    let port = unique_port();
    let g = join_with(
        "ff05::1:13",
        port,
        JoinOptions::default()
            .interface(&test_iface())
            .packet_info(true),
    );
    g.send(b"where").unwrap();
    let mut buf = [0u8; 64];
    let r = g.receive(WAIT, &mut buf).unwrap().unwrap();
    if !multicast::capabilities().packet_info {
        assert_eq!((r.destination, r.interface_index), (None, None));
        return;
    }
    assert_eq!(r.destination.unwrap().to_string(), "ff05::1:13");
    assert_eq!(r.interface_index, Some(g.interface().unwrap().index));
}

#[test]
fn ipv6_limit_applies_to_json_and_batches_too() {
    let g = join_with(
        "ff05::1:14",
        unique_port(),
        JoinOptions::default()
            .interface(&test_iface())
            .receive_buffer(1 << 20),
    );
    // A JSON string encoding to 65,520 bytes: over IPv4's limit, within IPv6's.
    let json = format!("\"{}\"", "j".repeat(65_518));
    g.send_json(&json).unwrap();
    assert_eq!(g.receive_message(WAIT).unwrap().unwrap().data.len(), 65_520);
    let big = vec![1u8; 65_527];
    assert_eq!(g.send_batch(&[&big, b"small"]).unwrap(), 2);
    assert_eq!(g.receive_message(WAIT).unwrap().unwrap().data.len(), 65_527);
    assert_eq!(g.receive_message(WAIT).unwrap().unwrap().data, b"small");
    let e = g
        .send_json(&format!("\"{}\"", "j".repeat(65_526)))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MessageTooLarge);
}
