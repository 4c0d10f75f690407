//! The core's Rust API over real sockets, inside the private network namespace.

mod common;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{require_private_netns, test_addr, test_iface, unique_port};
use multicast::{ErrorKind, Group, JoinOptions, Timeout, MAX_MESSAGE_SIZE};

const WAIT: Timeout = Timeout::After(Duration::from_secs(5));

fn join(group: &str, port: u16) -> Group {
    require_private_netns();
    Group::join(group, port, "").unwrap()
}

#[test]
fn hears_its_own_send_with_source() {
    let port = unique_port();
    let g = join("239.1.1.1", port);
    g.send(b"Hello group!").unwrap();
    let msg = g.receive_message(WAIT).unwrap().expect("a message");
    assert_eq!(msg.data, b"Hello group!");
    assert_eq!(msg.source.to_string(), format!("{}:{port}", test_addr()));
}

#[test]
fn properties() {
    let port = unique_port();
    let g = join("239.1.2.3", port);
    assert_eq!(g.group_addr().to_string(), "239.1.2.3");
    assert_eq!(g.port(), port);
    assert_eq!(g.local_addr().to_string(), format!("239.1.2.3:{port}"));
}

#[test]
fn two_members_each_receive_every_datagram() {
    let port = unique_port();
    let a = join("239.1.1.2", port);
    let b = join("239.1.1.2", port);
    for i in 0..10u8 {
        a.send(&[i]).unwrap();
    }
    for member in [&a, &b] {
        for i in 0..10u8 {
            assert_eq!(member.receive_message(WAIT).unwrap().unwrap().data, [i]);
        }
    }
}

#[test]
fn other_group_on_same_port_does_not_leak_in() {
    let port = unique_port();
    let a = join("239.1.1.3", port);
    let b = join("239.1.1.4", port);
    b.send(b"for b").unwrap();
    assert_eq!(b.receive_message(WAIT).unwrap().unwrap().data, b"for b");
    assert_eq!(
        a.receive_message(Timeout::After(Duration::from_millis(200)))
            .unwrap(),
        None
    );
}

#[test]
fn timeout_zero_and_positive() {
    let g = join("239.1.1.5", unique_port());
    assert_eq!(
        g.receive_message(Timeout::After(Duration::ZERO)).unwrap(),
        None
    );
    let start = Instant::now();
    assert_eq!(
        g.receive_message(Timeout::After(Duration::from_millis(100)))
            .unwrap(),
        None
    );
    assert!(start.elapsed() >= Duration::from_millis(100));
}

#[test]
fn largest_and_empty_messages() {
    let g = join("239.1.1.6", unique_port());
    let big: Vec<u8> = (0..MAX_MESSAGE_SIZE).map(|i| (i % 251) as u8).collect();
    g.send(&big).unwrap();
    g.send(b"").unwrap();
    assert_eq!(g.receive_message(WAIT).unwrap().unwrap().data, big);
    assert_eq!(g.receive_message(WAIT).unwrap().unwrap().data, b"");
    let e = g.send(&vec![0; MAX_MESSAGE_SIZE + 1]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MessageTooLarge);
    // Nothing was sent for the refused message.
    assert_eq!(
        g.receive_message(Timeout::After(Duration::from_millis(100)))
            .unwrap(),
        None
    );
}

#[test]
fn small_buffer_keeps_datagram_queued() {
    let g = join("239.1.1.7", unique_port());
    g.send(b"0123456789").unwrap();
    let mut small = [0u8; 4];
    let e = g.receive(WAIT, &mut small).unwrap_err();
    assert_eq!(
        (e.kind(), e.needed_len()),
        (ErrorKind::BufferTooSmall, Some(10))
    );
    let mut exact = [0u8; 10];
    let r = g.receive(WAIT, &mut exact).unwrap().unwrap();
    assert_eq!((r.len, &exact), (10, b"0123456789"));
}

#[test]
fn send_json_is_go_shaped() {
    let g = join("239.1.1.8", unique_port());
    g.send_json(r#"{"node": "worker-1", "action": "heartbeat"}"#)
        .unwrap();
    let msg = g.receive_message(WAIT).unwrap().unwrap();
    assert_eq!(msg.data, br#"{"action":"heartbeat","node":"worker-1"}"#);
    assert_eq!(g.send_json("{").unwrap_err().kind(), ErrorKind::InvalidJson);
    assert_eq!(
        g.receive_message(Timeout::After(Duration::from_millis(100)))
            .unwrap(),
        None
    );
}

#[test]
fn interface_by_name_and_address() {
    require_private_netns();
    let port = unique_port();
    let by_name = Group::join("239.1.1.9", port, &test_iface()).unwrap();
    let by_addr = Group::join("239.1.1.9", port, &test_addr()).unwrap();
    assert_eq!(by_name.interface().unwrap().name, test_iface());
    assert_eq!(by_addr.interface().unwrap().name, test_iface());
    by_name.send(b"x").unwrap();
    assert_eq!(by_addr.receive_message(WAIT).unwrap().unwrap().data, b"x");
    let e = Group::join("239.1.1.9", port, "10.99.99.99").unwrap_err();
    assert_eq!(
        (e.kind(), e.message()),
        (ErrorKind::Interface, "interface not found: 10.99.99.99")
    );
    // Names and addresses are exact, as in Go: a trailing space is another interface.
    let e = Group::join("239.1.1.9", port, &format!("{} ", test_iface())).unwrap_err();
    assert_eq!(
        (e.kind(), e.message().to_owned()),
        (
            ErrorKind::Interface,
            format!("interface not found: {} ", test_iface())
        )
    );
    for group in [" 239.1.1.9", "\t239.1.1.9", "239.1.1.9\n", "239.1.1.9 "] {
        let e = Group::join(group, port, "").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{group:?}");
    }
}

/// mc1, the veth peer of mc0, has no IPv4 address. Joined there by index (as Go does),
/// a group is heard on mc1 and sent through mc1, in both directions across the pair.
#[test]
fn interface_without_ipv4_joins_and_sends_by_index() {
    require_private_netns();
    let port = unique_port();
    let quiet = JoinOptions::default().loopback(false);
    let on_mc1 = Group::join_with("239.1.1.19", port, &quiet.clone().interface("mc1")).unwrap();
    let on_mc0 = Group::join_with("239.1.1.19", port, &quiet.interface(&test_iface())).unwrap();
    let chosen = on_mc1.interface().unwrap();
    assert_eq!((chosen.name.as_str(), chosen.ipv4), ("mc1", None));

    on_mc1.send(b"out through mc1").unwrap();
    let heard = on_mc0.receive_message(WAIT).unwrap().unwrap();
    assert_eq!(heard.data, b"out through mc1");
    on_mc0.send(b"out through mc0").unwrap();
    let heard = on_mc1.receive_message(WAIT).unwrap().unwrap();
    assert_eq!(heard.data, b"out through mc0");
    // Each heard only the other: no copy through the wrong interface.
    let short = Timeout::After(Duration::from_millis(200));
    assert_eq!(on_mc0.receive_message(short).unwrap(), None);
    assert_eq!(on_mc1.receive_message(short).unwrap(), None);
}

#[test]
fn close_wakes_blocked_receivers_and_is_idempotent() {
    let g = Arc::new(join("239.1.1.10", unique_port()));
    let ready = Arc::new(Barrier::new(4));
    let receivers: Vec<_> = (0..3)
        .map(|_| {
            let (g, ready) = (g.clone(), ready.clone());
            thread::spawn(move || {
                ready.wait();
                g.receive_message(Timeout::Never)
            })
        })
        .collect();
    ready.wait();
    thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    g.close().unwrap();
    for r in receivers {
        assert_eq!(r.join().unwrap().unwrap_err().kind(), ErrorKind::Closed);
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "receivers were not woken promptly"
    );
    g.close().unwrap();
    assert_eq!(
        g.send(b"x").unwrap_err().message(),
        "send failed: group is closed"
    );
    // Closed comes before the size, as in Go's net and scriptling.
    let oversized = vec![0u8; 70_000];
    assert_eq!(
        g.send(&oversized).unwrap_err().message(),
        "send failed: group is closed"
    );
    assert_eq!(
        g.send_batch(&[b"x", &oversized]).unwrap_err().kind(),
        ErrorKind::Closed
    );
    assert_eq!(
        g.receive_message(WAIT).unwrap_err().message(),
        "receive failed: group is closed"
    );
    assert!(g.is_closed() && g.raw_fd().is_none());
}

#[test]
fn concurrent_receivers_get_distinct_datagrams() {
    let g = Arc::new(join("239.1.1.11", unique_port()));
    const N: u32 = 400;
    let receivers: Vec<_> = (0..4)
        .map(|_| {
            let g = g.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                while let Some(m) = g
                    .receive_message(Timeout::After(Duration::from_millis(500)))
                    .unwrap()
                {
                    got.push(u32::from_le_bytes(m.data.try_into().unwrap()));
                }
                got
            })
        })
        .collect();
    for i in 0..N {
        g.send(&i.to_le_bytes()).unwrap();
        if i % 50 == 0 {
            thread::sleep(Duration::from_millis(1));
        }
    }
    let mut all: Vec<u32> = receivers
        .into_iter()
        .flat_map(|r| r.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..N).collect::<Vec<_>>(),
        "each datagram exactly once"
    );
}

#[test]
fn each_concurrent_receiver_keeps_its_own_timeout() {
    // One receiver waits without limit inside a blocking recv; a second, with a short
    // timeout, must still time out on time, and a close wakes the first.
    let g = Arc::new(join("239.1.9.1", unique_port()));
    let forever = {
        let g = Arc::clone(&g);
        thread::spawn(move || g.receive_message(Timeout::Never))
    };
    thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    let short = g
        .receive_message(Timeout::After(Duration::from_millis(200)))
        .unwrap();
    let waited = start.elapsed();
    assert_eq!(short, None);
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    g.close().unwrap();
    assert_eq!(
        forever.join().unwrap().unwrap_err().kind(),
        ErrorKind::Closed
    );
}

#[test]
fn timed_receives_in_turn_each_honour_their_timeout() {
    let g = join("239.1.9.2", unique_port());
    for ms in [150, 30, 150] {
        let start = Instant::now();
        assert_eq!(
            g.receive_message(Timeout::After(Duration::from_millis(ms)))
                .unwrap(),
            None
        );
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(ms) && waited < Duration::from_millis(ms + 10_000),
            "{ms} ms: {waited:?}"
        );
    }
    g.send(b"after timeouts").unwrap();
    assert_eq!(
        g.receive_message(WAIT).unwrap().unwrap().data,
        b"after timeouts"
    );
}

/// A flood is held to the send budget: over any stretch, what goes out is at most one
/// second's worth plus the rate times the time elapsed, every refusal is RateLimited
/// with nothing sent, and the receiver gets exactly what was accepted.
#[test]
fn send_budget_holds_a_flood_to_its_rate() {
    require_private_netns();
    let port = unique_port();
    const RATE: u32 = 100;
    let listener = Group::join_with(
        "239.1.1.40",
        port,
        &JoinOptions::default().receive_buffer(4 << 20),
    )
    .unwrap();
    let sender = Group::join_with(
        "239.1.1.40",
        port,
        &JoinOptions::default().send_limit(RATE, 0),
    )
    .unwrap();
    let start = Instant::now();
    let (mut accepted, mut refused) = (0u64, 0u64);
    while start.elapsed() < Duration::from_millis(500) {
        match sender.send(b"flood") {
            Ok(()) => accepted += 1,
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
                refused += 1;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ceiling = f64::from(RATE) * (1.0 + elapsed) + 1.0;
    println!("{accepted} accepted, {refused} refused in {elapsed:.3} s (ceiling {ceiling:.0})");
    assert!(
        accepted as f64 <= ceiling,
        "{accepted} accepted over {elapsed} s"
    );
    assert!(accepted > u64::from(RATE), "the budget refills: {accepted}");
    assert!(refused > 0);
    let mut heard = 0u64;
    while listener
        .receive_message(Timeout::After(Duration::from_millis(300)))
        .unwrap()
        .is_some()
    {
        heard += 1;
    }
    // (The kernel may drop some for a full buffer; those it counts.)
    assert_eq!(
        heard + u64::from(listener.dropped()),
        accepted,
        "what was accepted went out, nothing else"
    );
}

/// The receive that does not wait: what is queued, else `None` at once.
#[test]
fn try_receive_takes_what_is_queued_without_waiting() {
    let g = join("239.1.2.9", unique_port());
    let mut buf = [0u8; 100];
    let start = Instant::now();
    assert_eq!(g.try_receive(&mut buf).unwrap(), None);
    assert!(start.elapsed() < Duration::from_secs(1));
    g.send(b"queued").unwrap();
    // Readable first (the datagram crosses the veth pair), then taken without waiting.
    let got = g.receive(WAIT, &mut buf).unwrap().unwrap();
    assert_eq!(&buf[..got.len], b"queued");
    g.send(b"next").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let got = loop {
        if let Some(got) = g.try_receive(&mut buf).unwrap() {
            break got;
        }
        assert!(Instant::now() < deadline, "nothing arrived in 5 s");
        thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(&buf[..got.len], b"next");
    g.close().unwrap();
    assert_eq!(
        g.try_receive(&mut buf).unwrap_err().kind(),
        ErrorKind::Closed
    );
}

/// A timeout counts from the call, whichever ways the wait is split (a blocking recv
/// for most of it, then poll): a 2 s receive on an empty group ends after 2 s, not
/// after the first part plus another 2 s (the bound leaves a second for a busy machine;
/// the precision itself is measured by `make bench`).
#[test]
fn a_timeout_counts_from_the_call() {
    let g = join("239.1.2.10", unique_port());
    let mut buf = [0u8; MAX_MESSAGE_SIZE];
    let start = Instant::now();
    let timeout = Duration::from_secs(2);
    assert_eq!(g.receive(Timeout::After(timeout), &mut buf).unwrap(), None);
    let elapsed = start.elapsed();
    assert!(
        elapsed >= timeout && elapsed < timeout + Duration::from_secs(1),
        "a 2 s receive returned after {elapsed:?}"
    );
}
