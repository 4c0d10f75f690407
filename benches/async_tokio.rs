//! make bench's tokio row: receives on an AsyncGroup against tokio's own UdpSocket on
//! the same group, while mcbench's raw sender floods it (benches/run.py starts it). Both
//! on a current-thread runtime, one task awaiting each datagram.
//!
//! `async_tokio lib|std SECONDS`: prints {"rate": datagrams per second}.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use multicast::AsyncGroup;

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 77, 0, 1);
const PORT: u16 = 47001; // mcbench blast's

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let (impl_name, seconds) = match args.as_slice() {
        [_, i, s] => (i.clone(), s.parse::<f64>().expect("SECONDS")),
        _ => panic!("usage: async_tokio lib|std SECONDS"),
    };
    assert_eq!(
        std::env::var("MC_NETNS").as_deref(),
        Ok("1"),
        "run inside scripts/netns"
    );
    let interface: Ipv4Addr = std::env::var("MC_TEST_ADDR")
        .expect("MC_TEST_ADDR")
        .parse()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rate = runtime.block_on(async move {
        let span = Duration::from_secs_f64(seconds);
        let mut buf = vec![0u8; 65_536];
        let mut count = 0u64;
        let start;
        if impl_name == "lib" {
            let g = AsyncGroup::join(&GROUP.to_string(), PORT, &interface.to_string()).unwrap();
            g.receive(&mut buf).await.unwrap(); // the flood has begun
            start = Instant::now();
            while start.elapsed() < span {
                g.receive(&mut buf).await.unwrap();
                count += 1;
            }
        } else {
            let socket = std_socket(interface);
            socket.recv_from(&mut buf).await.unwrap();
            start = Instant::now();
            while start.elapsed() < span {
                socket.recv_from(&mut buf).await.unwrap();
                count += 1;
            }
        }
        count as f64 / start.elapsed().as_secs_f64()
    });
    println!("{{\"impl\": \"{}\", \"rate\": {rate:.1}}}", args[1]);
}

/// tokio's UdpSocket on the group's port, joined on the test interface, as a tokio
/// program would set it up (SO_REUSEADDR so that it can share the port).
fn std_socket(interface: Ipv4Addr) -> tokio::net::UdpSocket {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    socket.set_reuse_address(true).unwrap();
    socket.set_nonblocking(true).unwrap();
    socket
        .bind(&SocketAddr::from((GROUP, PORT)).into())
        .unwrap();
    socket.join_multicast_v4(&GROUP, &interface).unwrap();
    tokio::net::UdpSocket::from_std(socket.into()).unwrap()
}
