//! doctor's checks for a sender behind routers (`--probe`): how many routers stand
//! between it and here, counted as traceroute counts them (UDP probes toward the sender
//! with TTL 1, 2, ..., each answered by the router where it expires, the last by the
//! sender itself), and whether the group's datagrams arrive from it while it sends. A
//! sender's multicast crosses N routers only with a TTL above N; a router that forwards
//! the unicast probes but not the group has no multicast route for it.
//!
//! The probes measure the way from here to the sender; multicast comes the other way,
//! which in most networks is the same routers.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use multicast::{Group, JoinOptions, Timeout};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::{RawListen, Report};

/// The routers toward the sender, nearest first, as the probes found them.
pub struct Path {
    /// Each router's address, `None` for one that did not answer its probe.
    pub routers: Vec<Option<IpAddr>>,
    /// The sender answered (its "port unreachable") after them.
    pub reached: bool,
}

impl Path {
    fn listed(&self) -> String {
        let names: Vec<String> = self
            .routers
            .iter()
            .map(|r| r.map_or("(one that did not answer)".to_owned(), |ip| ip.to_string()))
            .collect();
        names.join(", ")
    }
}

/// Probes stop at this TTL, as traceroute's default of 30 would be far more than any
/// multicast network's diameter.
const MAX_HOPS: u8 = 16;
/// Probes without an answer in a row after which the sender counts as not answering.
const SILENT_HOPS: usize = 3;
const PROBE_WAIT: Duration = Duration::from_secs(1);
/// traceroute's ports: nothing listens there, so the sender answers "port unreachable".
const BASE_PORT: u16 = 33434;

/// What came back for one probe.
#[derive(Debug, PartialEq)]
enum Answer {
    /// A router: the probe's TTL ran out there.
    TimeExceeded(IpAddr),
    /// The end of the way: from the sender itself, or a router that refuses it.
    Unreachable(IpAddr),
}

/// Sends the probes toward `sender` and reads the ICMP answers on a raw socket.
pub fn probe(sender: IpAddr) -> Result<Path, RawListen> {
    let v6 = sender.is_ipv6();
    let (domain, icmp) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    // std's recv_from reads a raw socket as well as a UDP one (as heard_query does).
    let answers =
        UdpSocket::from(Socket::new(domain, Type::RAW, Some(icmp)).map_err(RawListen::NotAllowed)?);
    let failed =
        |e: std::io::Error| RawListen::Failed(format!("cannot probe toward {sender}: {e}"));
    let prober = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(failed)?;
    let unspecified: IpAddr = if v6 {
        [0u16; 8].into()
    } else {
        [0u8; 4].into()
    };
    prober
        .bind(&SocketAddr::new(unspecified, 0).into())
        .map_err(failed)?;
    let local_port = prober
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map_or(0, |a| a.port());
    let mut path = Path {
        routers: Vec::new(),
        reached: false,
    };
    for ttl in 1..=MAX_HOPS {
        if v6 {
            prober.set_unicast_hops_v6(u32::from(ttl))
        } else {
            prober.set_ttl_v4(u32::from(ttl))
        }
        .map_err(failed)?;
        let port = BASE_PORT + u16::from(ttl);
        let to = SockAddr::from(SocketAddr::new(sender, port));
        prober
            .send_to(b"mcat doctor: hop probe", &to)
            .map_err(failed)?;
        match await_answer(&answers, v6, sender, local_port, port) {
            Some(Answer::TimeExceeded(router)) => path.routers.push(Some(router)),
            Some(Answer::Unreachable(from)) => {
                path.reached = from == sender;
                break;
            }
            None => path.routers.push(None),
        }
        if path.routers.len() >= SILENT_HOPS
            && path.routers[path.routers.len() - SILENT_HOPS..]
                .iter()
                .all(Option::is_none)
        {
            break;
        }
    }
    if !path.reached {
        // The silent probes at the end were no routers, only no answer.
        while path.routers.last() == Some(&None) {
            path.routers.pop();
        }
    }
    Ok(path)
}

/// The answer to the probe sent from `local_port` to `port`, within PROBE_WAIT.
fn await_answer(
    answers: &UdpSocket,
    v6: bool,
    sender: IpAddr,
    local_port: u16,
    port: u16,
) -> Option<Answer> {
    let deadline = Instant::now() + PROBE_WAIT;
    let mut buf = [0u8; 1500];
    while let Some(left) = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
    {
        answers.set_read_timeout(Some(left)).ok()?;
        let Ok((len, from)) = answers.recv_from(&mut buf) else {
            continue;
        };
        if let Some(answer) = read_answer(&buf[..len], from.ip(), v6, sender, local_port, port) {
            return Some(answer);
        }
    }
    None
}

/// An ICMP (ICMPv6) error that quotes our probe: the UDP datagram from `local_port` to
/// `sender`:`port`. IPv4 raw sockets see the IP header first; IPv6 ones do not.
fn read_answer(
    packet: &[u8],
    from: IpAddr,
    v6: bool,
    sender: IpAddr,
    local_port: u16,
    port: u16,
) -> Option<Answer> {
    let icmp = if v6 {
        packet
    } else {
        packet.get(usize::from(packet.first()? & 0x0f) * 4..)?
    };
    let (kind, quoted) = (*icmp.first()?, icmp.get(8..)?);
    // The quoted IP header: its protocol, destination and length, then the UDP ports.
    let (protocol, destination, udp) = if v6 {
        let destination: [u8; 16] = quoted.get(24..40)?.try_into().ok()?;
        (
            *quoted.get(6)?,
            IpAddr::from(destination),
            quoted.get(40..)?,
        )
    } else {
        let destination: [u8; 4] = quoted.get(16..20)?.try_into().ok()?;
        let header = usize::from(quoted.first()? & 0x0f) * 4;
        (
            *quoted.get(9)?,
            IpAddr::from(destination),
            quoted.get(header..)?,
        )
    };
    let ports = (
        u16::from_be_bytes([*udp.first()?, *udp.get(1)?]),
        u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]),
    );
    if protocol != 17 || destination != sender || ports != (local_port, port) {
        return None;
    }
    match (v6, kind) {
        (false, 11) | (true, 3) => Some(Answer::TimeExceeded(from)),
        (false, 3) | (true, 1) => Some(Answer::Unreachable(from)),
        _ => None,
    }
}

/// Reports the routers toward `sender` against its TTL; the path, when one was found.
pub fn check_hops(sender: IpAddr, ttl: u32, report: &mut Report) -> Result<Option<Path>, String> {
    eprintln!(
        "mcat doctor: probing the way to {sender} (UDP toward ports {}+, TTL 1 to {MAX_HOPS})",
        BASE_PORT + 1
    );
    let path = match probe(sender) {
        Ok(path) => path,
        Err(RawListen::NotAllowed(e)) => {
            report.skipped(&format!(
                "routers toward {sender}: reading ICMP answers needs root (CAP_NET_RAW): {e}"
            ));
            return Ok(None);
        }
        Err(RawListen::Failed(e)) => return Err(e),
    };
    let routers = path.routers.len();
    if !path.reached {
        report.skipped(&format!(
            "routers toward {sender}: it did not answer the probes (a firewall that drops them, or no route){}",
            if routers > 0 { format!("; routers on the way: {}", path.listed()) } else { String::new() }
        ));
        return Ok(Some(path));
    }
    let needed = routers + 1;
    if routers == 0 {
        report.ok(&format!(
            "{sender} is on a LAN of this host's (no router between: TTL {ttl} reaches here)"
        ));
    } else if (ttl as usize) < needed {
        report.finding(
            &format!("{sender} is {routers} router{} away ({}) and sends with TTL {ttl}: its datagrams stop at the {}", plural(routers), path.listed(), nth(ttl as usize)),
            &format!("on the sender: TTL {needed} or more (mcat send --ttl {needed}; mc_join_options.ttl = {needed}; JoinOptions.TTL = {needed}), and multicast routing on those routers"),
        );
    } else {
        report.ok(&format!(
            "{sender} is {routers} router{} away ({}): TTL {ttl} crosses them",
            plural(routers),
            path.listed()
        ));
    }
    Ok(Some(path))
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn nth(n: usize) -> String {
    match n {
        1 => "first (the gateway here)".to_owned(),
        2 => "second".to_owned(),
        3 => "third".to_owned(),
        n => format!("{n}th"),
    }
}

/// Joins the group on the interface (with the sender as its source, for a
/// source-specific group) and waits up to `listen` for a datagram from the sender.
pub fn hears_sender(
    group: IpAddr,
    port: u16,
    interface: &str,
    sender: IpAddr,
    listen: Duration,
) -> Result<bool, String> {
    let mut options = JoinOptions::default().interface(interface);
    if super::source_specific(group) {
        options = options.source(&sender.to_string());
    }
    let joined = Group::join_with(&group.to_string(), port, &options)
        .map_err(|e| format!("cannot join {group} on {interface} to listen for {sender}: {e}"))?;
    let deadline = Instant::now() + listen;
    let mut buf = vec![0u8; joined.max_message_size()];
    while let Some(left) = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
    {
        match joined.receive(Timeout::After(left), &mut buf) {
            Ok(Some(received)) if received.source.ip() == sender => return Ok(true),
            Ok(_) => {}
            Err(e) => return Err(format!("listening for {sender} on {group}: {e}")),
        }
    }
    Ok(false)
}

/// What the listen for the sender's datagrams says, against the probed path.
pub fn judge_arrival(
    heard: bool,
    path: Option<&Path>,
    datagram: (IpAddr, u16, IpAddr),
    ttl: u32,
    listen: Duration,
    report: &mut Report,
) {
    let (group, port, sender) = datagram;
    let seconds = listen.as_secs_f64();
    if heard {
        return report.ok(&format!(
            "{sender}'s datagrams to {} arrive here",
            SocketAddr::new(group, port)
        ));
    }
    let routers = path.filter(|p| p.reached).map_or(0, |p| p.routers.len());
    if routers == 0 || (ttl as usize) <= routers {
        // Nothing to add: no router between, or the TTL finding above explains it.
        return println!(
            "note: no datagram from {sender} to {} arrived in {seconds:.0} s (is it sending?)",
            SocketAddr::new(group, port)
        );
    }
    let path = path.map(Path::listed).unwrap_or_default();
    report.finding(
        &format!("no datagram from {sender} to {} arrived in {seconds:.0} s while it sends (if it does), though its TTL {ttl} crosses the {routers} router{} between ({path}) and they forward unicast to it: a router there has no multicast route for {group} (ip mroute show on each lists what it forwards)", SocketAddr::new(group, port), plural(routers)),
        &format!("on each router: a multicast route for {group} from the interface toward {sender} to the one toward here (smcroute: mroute from IN group {group} to OUT), or PIM on both interfaces (pimd: phyint IN enable, phyint OUT enable, and an rp-address for {group}{})", if super::source_specific(group) { "; a source-specific group needs none" } else { "" }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 ICMP error of `kind` from a router, quoting a UDP probe 5000 -> sender:33435.
    fn icmp4(kind: u8, destination: [u8; 4], ports: (u16, u16)) -> Vec<u8> {
        let mut packet = vec![
            0x45, 0, 0, 56, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        packet.extend([kind, 0, 0, 0, 0, 0, 0, 0]);
        let mut quoted = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 1, 17, 0, 0, 10, 0, 0, 2];
        quoted.extend(destination);
        packet.extend(quoted);
        packet.extend(ports.0.to_be_bytes());
        packet.extend(ports.1.to_be_bytes());
        packet.extend([0, 8, 0, 0]);
        packet
    }

    #[test]
    fn ipv4_answers_that_quote_the_probe() {
        let (router, sender) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 9, 9, 9]));
        let read = |p: &[u8], from| read_answer(p, from, false, sender, 5000, 33435);
        assert_eq!(
            read(&icmp4(11, [10, 9, 9, 9], (5000, 33435)), router),
            Some(Answer::TimeExceeded(router))
        );
        assert_eq!(
            read(&icmp4(3, [10, 9, 9, 9], (5000, 33435)), sender),
            Some(Answer::Unreachable(sender))
        );
        // Another program's probe, another destination, an echo reply, a short packet.
        assert_eq!(read(&icmp4(11, [10, 9, 9, 9], (5001, 33435)), router), None);
        assert_eq!(read(&icmp4(11, [10, 9, 9, 8], (5000, 33435)), router), None);
        assert_eq!(read(&icmp4(0, [10, 9, 9, 9], (5000, 33435)), router), None);
        assert_eq!(
            read(&icmp4(11, [10, 9, 9, 9], (5000, 33435))[..40], router),
            None
        );
    }

    #[test]
    fn ipv6_answers_that_quote_the_probe() {
        let sender: IpAddr = "fd00::9".parse().unwrap();
        let router: IpAddr = "fd00::1".parse().unwrap();
        let icmp6 = |kind: u8, next_header: u8| {
            let mut packet = vec![kind, 0, 0, 0, 0, 0, 0, 0];
            let mut quoted = vec![0x60, 0, 0, 0, 0, 8, next_header, 1];
            quoted.extend([0u8; 16]);
            if let IpAddr::V6(ip) = sender {
                quoted.extend(ip.octets());
            }
            packet.extend(quoted);
            packet.extend([0x13, 0x88, 0x82, 0x9b, 0, 8, 0, 0]); // 5000 -> 33435
            packet
        };
        let read = |p: &[u8], from| read_answer(p, from, true, sender, 5000, 33435);
        assert_eq!(
            read(&icmp6(3, 17), router),
            Some(Answer::TimeExceeded(router))
        );
        assert_eq!(
            read(&icmp6(1, 17), sender),
            Some(Answer::Unreachable(sender))
        );
        assert_eq!(read(&icmp6(3, 6), router), None);
        assert_eq!(read(&icmp6(128, 17), router), None);
    }
}
