//! AsyncGroup on tokio (feature `tokio`): receives are tasks, not threads; cancel-safe;
//! closing ends waiting receives. Run in scripts/netns like every socket test.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{require_private_netns, test_iface, unique_port};
use multicast::{AsyncGroup, ErrorKind, GroupKey, JoinOptions};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

/// Runs a test's body on a fresh current-thread runtime; a body that waits 60 s (a lost
/// datagram it awaits) fails rather than hangs.
fn run<F: std::future::Future>(body: F) -> F::Output {
    runtime().block_on(async {
        tokio::time::timeout(Duration::from_secs(60), body)
            .await
            .expect("the test waited 60 s for something that never came")
    })
}

fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

const GROUP: &str = "239.8.1.1";

#[test]
fn send_and_receive_on_a_current_thread_runtime() {
    require_private_netns();
    let port = unique_port();
    run(async {
        let g = AsyncGroup::join(GROUP, port, &test_iface()).unwrap();
        g.send(b"hello").await.unwrap();
        let mut buf = [0u8; 64];
        let got = tokio::time::timeout(Duration::from_secs(10), g.receive(&mut buf))
            .await
            .expect("no datagram within 10 s")
            .unwrap();
        assert_eq!(&buf[..got.len], b"hello");
        // A buffer too small: the error, and the datagram stays for a larger one.
        g.send(b"sixteen bytes...").await.unwrap();
        let mut small = [0u8; 4];
        let e = g.receive(&mut small).await.unwrap_err();
        assert_eq!(
            (e.kind(), e.needed_len()),
            (ErrorKind::BufferTooSmall, Some(16))
        );
        let got = g.receive(&mut buf).await.unwrap();
        assert_eq!(&buf[..got.len], b"sixteen bytes...");
        g.close().unwrap();
    });
}

#[test]
fn a_batch_waits_for_the_first_then_takes_what_is_queued() {
    require_private_netns();
    let port = unique_port();
    run(async {
        let g = AsyncGroup::join(GROUP, port, &test_iface()).unwrap();
        for i in 0..5u8 {
            g.send(&[i; 10]).await.unwrap();
        }
        let mut storage = vec![vec![0u8; 100]; 8];
        let mut got = Vec::new();
        while got.len() < 5 {
            let mut bufs: Vec<&mut [u8]> = storage.iter_mut().map(Vec::as_mut_slice).collect();
            let mut received = vec![None; 8];
            let n = tokio::time::timeout(
                Duration::from_secs(10),
                g.receive_batch(&mut bufs, &mut received),
            )
            .await
            .expect("no batch within 10 s")
            .unwrap();
            assert!(n >= 1);
            for (buf, r) in bufs.iter().zip(&received[..n]) {
                got.push(buf[..r.unwrap().len].to_vec());
            }
        }
        assert_eq!(got, (0..5u8).map(|i| vec![i; 10]).collect::<Vec<_>>());
    });
}

/// Dropping receive futures (timeouts that fire, select! that takes the other branch)
/// while datagrams arrive loses none of them.
#[test]
fn cancelled_receives_lose_nothing() {
    require_private_netns();
    let port = unique_port();
    run(async {
        let g = Arc::new(AsyncGroup::join(GROUP, port, &test_iface()).unwrap());
        let sender = Arc::clone(&g);
        const SENT: u32 = 2000;
        let sending = tokio::spawn(async move {
            for i in 0..SENT {
                sender.send(&i.to_be_bytes()).await.unwrap();
                if i % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        });
        let (mut next, mut cancelled) = (0u32, 0u32);
        let mut buf = [0u8; 16];
        while next < SENT {
            tokio::select! {
                got = g.receive(&mut buf) => {
                    let got = got.unwrap();
                    assert_eq!(u32::from_be_bytes(buf[..got.len].try_into().unwrap()), next, "in order, none lost");
                    next += 1;
                }
                _ = tokio::task::yield_now() => cancelled += 1,
            }
        }
        sending.await.unwrap();
        assert!(
            cancelled > 0,
            "no receive was ever cancelled: the test proved nothing"
        );
        assert_eq!(
            g.group().dropped(),
            0,
            "the kernel dropped datagrams: the count is not the library's"
        );
    });
}

/// Receives that find datagrams queued return at once, yet a task draining a flood lets
/// the runtime run others (tokio's cooperative budget covers AsyncFd's readiness).
#[test]
fn draining_a_queue_does_not_starve_other_tasks() {
    require_private_netns();
    let port = unique_port();
    run(async {
        let g = AsyncGroup::join(GROUP, port, &test_iface()).unwrap();
        let ticks = Arc::new(AtomicUsize::new(0));
        let ticker = tokio::spawn({
            let ticks = Arc::clone(&ticks);
            async move {
                loop {
                    ticks.fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            }
        });
        tokio::task::yield_now().await;
        let before = ticks.load(Ordering::Relaxed);
        let mut buf = [0u8; 16];
        // 300 receives that find a datagram queued (100 at a time, which the buffer
        // holds), with no wait of this task's own in between.
        for _ in 0..3 {
            for _ in 0..100 {
                g.send(b"x").await.unwrap();
            }
            for _ in 0..100 {
                g.receive(&mut buf).await.unwrap();
            }
        }
        assert!(
            ticks.load(Ordering::Relaxed) > before,
            "300 receives of queued datagrams never let another task run"
        );
        ticker.abort();
    });
}

#[test]
fn closing_ends_waiting_receives() {
    require_private_netns();
    let port = unique_port();
    run(async {
        let g = Arc::new(AsyncGroup::join(GROUP, port, &test_iface()).unwrap());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let g = Arc::clone(&g);
                tokio::spawn(async move { g.receive(&mut [0u8; 64]).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        g.close().unwrap();
        for w in waiters {
            let e = tokio::time::timeout(Duration::from_secs(10), w)
                .await
                .expect("a waiting receive outlived close by 10 s")
                .unwrap()
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Closed);
        }
        assert_eq!(
            g.receive(&mut [0u8; 64]).await.unwrap_err().kind(),
            ErrorKind::Closed
        );
    });
}

/// 10,000 tasks wait on 50 groups on one thread; one datagram per group reaches exactly
/// one of its waiters; closing the groups ends the other 9,950.
#[test]
fn ten_thousand_waiting_tasks_on_one_thread() {
    require_private_netns();
    let before = threads();
    let ports: Vec<u16> = (0..50).map(|_| unique_port()).collect();
    run(async {
        let groups: Vec<Arc<AsyncGroup>> = ports
            .iter()
            .map(|&port| Arc::new(AsyncGroup::join(GROUP, port, &test_iface()).unwrap()))
            .collect();
        let delivered = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..10_000 {
            let g = Arc::clone(&groups[i % 50]);
            let delivered = Arc::clone(&delivered);
            tasks.push(tokio::spawn(async move {
                let mut buf = [0u8; 64];
                match g.receive(&mut buf).await {
                    Ok(_) => {
                        delivered.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                    Err(e) => {
                        assert_eq!(e.kind(), ErrorKind::Closed);
                        false
                    }
                }
            }));
        }
        tokio::task::yield_now().await; // every task has started waiting
        let during = threads();
        for g in &groups {
            g.send(b"one").await.unwrap();
        }
        let settled = async {
            while delivered.load(Ordering::Relaxed) < 50 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), settled)
            .await
            .expect("50 datagrams did not reach 50 waiters within 30 s");
        for g in &groups {
            g.close().unwrap();
        }
        let mut received = 0;
        for t in tasks {
            received += usize::from(t.await.unwrap());
        }
        assert_eq!(received, 50, "each group's datagram reaches one waiter");
        // Other tests of this binary run beside it, each on a thread of its own: a
        // margin for them, against the 10,000 a thread per receive would take.
        assert!(
            during <= before + 16,
            "10,000 waiting receives took threads: {before} before, {during} during"
        );
    });
}

#[test]
fn authenticated_groups_and_no_runtime() {
    require_private_netns();
    let port = unique_port();
    let key = GroupKey::generate(1).unwrap();
    let options = JoinOptions::default()
        .interface(&test_iface())
        .group_key(key);
    let e = AsyncGroup::join_with(GROUP, port, &options).unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::InvalidArgument,
        "outside a runtime: {e}"
    );
    assert!(e.message().contains("tokio runtime"), "{e}");
    run(async {
        let g = AsyncGroup::join_with(GROUP, port, &options).unwrap();
        g.send(b"sealed").await.unwrap();
        let mut buf = [0u8; 64];
        let got = g.receive(&mut buf).await.unwrap();
        assert_eq!(&buf[..got.len], b"sealed");
        assert!(g.group().is_authenticated());
    });
}
