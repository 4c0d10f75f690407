//! Batch send (GSO runs, sendmmsg), batch and GRO receive, delivery metadata and the
//! drop counter, over real sockets in the private namespace.

mod common;

use std::time::Duration;

use common::{require_private_netns, test_addr, test_iface, unique_port};
use multicast::{capabilities, Group, JoinOptions, Received, Timeout};

const WAIT: Timeout = Timeout::After(Duration::from_secs(5));

fn join_with(group: &str, port: u16, options: JoinOptions) -> Group {
    require_private_netns();
    Group::join_with(group, port, &options).unwrap()
}

/// Receives until `count` datagrams or a quiet second; returns their payloads.
fn drain(g: &Group, count: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while out.len() < count {
        match g
            .receive_message(Timeout::After(Duration::from_secs(1)))
            .unwrap()
        {
            Some(m) => out.push(m.data),
            None => break,
        }
    }
    out
}

fn payloads(sizes: &[usize]) -> Vec<Vec<u8>> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| (0..n).map(|j| (i * 31 + j) as u8).collect())
        .collect()
}

/// Every mix of runs: equal sizes (GSO), a shorter last, singles, empty datagrams.
fn mixes() -> Vec<Vec<usize>> {
    vec![
        vec![64; 64],
        vec![1200; 10].into_iter().chain([700]).collect(),
        vec![10, 2000, 10, 10, 10, 0, 0, 65_507, 5, 5],
        vec![100; 200],
        (1..50).collect(),
    ]
}

#[test]
fn batch_sends_arrive_as_single_sends_would() {
    for (n, sizes) in mixes().into_iter().enumerate() {
        let port = unique_port();
        let sender = join_with("239.5.1.1", port, JoinOptions::default().loopback(true));
        let plain = join_with(
            "239.5.1.1",
            port,
            JoinOptions::default().receive_buffer(8 << 20),
        );
        let gro = join_with(
            "239.5.1.1",
            port,
            JoinOptions::default().gro(true).receive_buffer(8 << 20),
        );
        let data = payloads(&sizes);
        let views: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        assert_eq!(sender.send_batch(&views).unwrap(), views.len(), "mix {n}");
        assert_eq!(drain(&plain, data.len()), data, "mix {n}, plain receiver");
        assert_eq!(drain(&gro, data.len()), data, "mix {n}, GRO receiver");
        assert_eq!(drain(&sender, data.len()).len(), data.len());
    }
}

#[test]
fn receive_batch_fills_slots_with_metadata() {
    let port = unique_port();
    let g = join_with(
        "239.5.1.2",
        port,
        JoinOptions::default()
            .interface(&test_iface())
            .packet_info(true),
    );
    let data = payloads(&[10, 20, 30, 40, 50]);
    let views: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    assert_eq!(g.send_batch(&views).unwrap(), 5);
    let mut storage = vec![[0u8; 128]; 8];
    let mut bufs: Vec<&mut [u8]> = storage.iter_mut().map(|b| &mut b[..]).collect();
    let mut received: Vec<Option<Received>> = vec![None; 8];
    let mut got = Vec::new();
    while got.len() < 5 {
        let n = g.receive_batch(WAIT, &mut bufs, &mut received).unwrap();
        assert!(n > 0, "timed out after {} datagrams", got.len());
        for (buf, r) in bufs.iter().zip(&received).take(n) {
            let r = r.expect("filled slot");
            assert_eq!(r.source.to_string(), format!("{}:{port}", test_addr()));
            if capabilities().packet_info {
                assert_eq!(r.destination.unwrap().to_string(), "239.5.1.2");
                assert_eq!(r.interface_index, Some(g.interface().unwrap().index));
            } else {
                // The documented stand-in where the system reports neither.
                assert_eq!((r.destination, r.interface_index), (None, None));
            }
            got.push(buf[..r.len].to_vec());
        }
    }
    assert_eq!(got, data);
    // Nothing left: a zero timeout returns at once with none.
    assert_eq!(
        g.receive_batch(Timeout::After(Duration::ZERO), &mut bufs, &mut received)
            .unwrap(),
        0
    );
}

#[test]
fn gro_receiver_keeps_a_too_large_datagram_for_a_larger_buffer() {
    let port = unique_port();
    let g = join_with("239.5.1.3", port, JoinOptions::default().gro(true));
    let data = payloads(&[300; 8]);
    let views: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    g.send_batch(&views).unwrap();
    let mut small = [0u8; 100];
    let e = g.receive(WAIT, &mut small).unwrap_err();
    assert_eq!(e.needed_len(), Some(300));
    assert_eq!(drain(&g, 8), data);
}

#[test]
fn dropped_counter_shows_overflow() {
    let port = unique_port();
    let small = join_with(
        "239.5.1.4",
        port,
        JoinOptions::default().receive_buffer(4096),
    );
    let sender = join_with("239.5.1.4", port, JoinOptions::default());
    assert_eq!(small.dropped(), 0);
    let data = vec![0u8; 1000];
    let views: Vec<&[u8]> = vec![&data[..]; 500];
    sender.send_batch(&views).unwrap();
    let received = drain(&small, 500).len();
    assert!(
        received < 500,
        "a 4 KiB buffer held {received} of 500 datagrams"
    );
    // The kernel reports the count with the next datagram queued after the drops.
    sender.send(b"after").unwrap();
    assert_eq!(small.receive_message(WAIT).unwrap().unwrap().data, b"after");
    let expected = if capabilities().drop_count {
        500 - received
    } else {
        0 // the documented value where the system counts no drops
    };
    assert_eq!(
        small.dropped() as usize,
        expected,
        "dropped + received = sent"
    );
}

#[test]
fn oversized_datagram_fails_the_batch_before_sending() {
    let g = join_with("239.5.1.5", unique_port(), JoinOptions::default());
    let big = vec![0u8; 65_508];
    let e = g.send_batch(&[b"fine", &big]).unwrap_err();
    assert_eq!(e.kind(), multicast::ErrorKind::MessageTooLarge);
    assert_eq!(
        g.receive_message(Timeout::After(Duration::from_millis(200)))
            .unwrap(),
        None
    );
}

#[test]
fn receive_batch_with_large_buffers_uses_one_call_and_loses_nothing() {
    let port = unique_port();
    let g = join_with(
        "239.5.1.6",
        port,
        JoinOptions::default()
            .receive_buffer(4 << 20)
            .packet_info(true),
    );
    let data = payloads(&[1, 64, 1400, 0, 9000, 200, 65_507, 3]);
    let views: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    assert_eq!(g.send_batch(&views).unwrap(), data.len());
    let mut storage = vec![vec![0u8; 65_507]; 5];
    let mut got = Vec::new();
    while got.len() < data.len() {
        let mut bufs: Vec<&mut [u8]> = storage.iter_mut().map(|b| &mut b[..]).collect();
        let mut received: Vec<Option<Received>> = vec![None; 5];
        let n = g.receive_batch(WAIT, &mut bufs, &mut received).unwrap();
        assert!(n > 0);
        for (buf, r) in bufs.iter().zip(&received).take(n) {
            let r = r.unwrap();
            if capabilities().packet_info {
                assert_eq!(r.destination.unwrap().to_string(), "239.5.1.6");
            }
            assert_eq!(r.source.to_string(), format!("{}:{port}", test_addr()));
            got.push(buf[..r.len].to_vec());
        }
    }
    assert_eq!(got, data);
}

#[test]
fn metadata_is_empty_without_packet_info() {
    let g = join_with("239.5.1.7", unique_port(), JoinOptions::default());
    g.send(b"x").unwrap();
    let mut buf = [0u8; 16];
    let r = g.receive(WAIT, &mut buf).unwrap().unwrap();
    assert_eq!((r.destination, r.interface_index), (None, None));
}
