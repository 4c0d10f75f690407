//! `mcat ping`: omping's test of multicast between hosts, run on each of them at once.
//!
//! Every interval each host sends one probe to the group and one to each peer it knows by
//! unicast (UDP, to the peer's PORT+1 unless --unicast-port says otherwise). Whoever hears
//! a probe answers it the way it came: a multicast probe with a multicast answer to the
//! group, a unicast probe with a unicast answer. So each host measures, per peer, the
//! multicast round trip (group both ways) beside the unicast one: when unicast arrives and
//! multicast does not, the network (a switch, a router, a firewall) stops the multicast.
//!
//! Loss is counted from a peer's first answer (before it, the peer was not running yet)
//! to its goodbye (a peer that stops says so; one whose goodbye is lost keeps counting).
//! A host keeps answering for --wait seconds after its own last probe, so that peers
//! started a little later, or stopped a little earlier, lose nothing to the skew.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use multicast::{Group, JoinOptions, Timeout};
use serde_json::{json, Value};

use crate::{join, positive_seconds, seconds, Common, EXIT_PROBLEM, EXIT_TIMEOUT};

#[derive(Args)]
pub struct Ping {
    #[command(flatten)]
    common: Common,
    /// Seconds between probes.
    #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = positive_seconds)]
    interval: Duration,
    /// Stop after N probes (without it: until interrupted, Ctrl-C).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// A host expected to answer (an IP address; repeat for several). Peers that send
    /// probes are found without it; a listed peer is probed by unicast from the start
    /// and reported even if it never answers.
    #[arg(long, value_name = "ADDR")]
    peer: Vec<IpAddr>,
    /// The UDP port of unicast probes and answers (default: PORT+1).
    #[arg(long, value_name = "PORT")]
    unicast_port: Option<u16>,
    /// Seconds to keep answering and collecting answers after the last probe.
    #[arg(long, value_name = "SECONDS", default_value = "2", value_parser = seconds)]
    wait: Duration,
    /// Time to live (hops) of the multicast probes and answers, 1..255.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = crate::ttl_arg)]
    ttl: u32,
    /// Print only the summary, not a line per answer.
    #[arg(short, long)]
    quiet: bool,
    /// One JSON object per answer and per peer and path in the summary.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    Multicast,
    Unicast,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Multicast => "multicast",
            Path::Unicast => "unicast",
        }
    }
}

/// What the receiving threads tell the main loop.
enum Event {
    /// A peer's probe: it exists, and its unicast address.
    Probe { id: u64, addr: SocketAddr },
    /// A peer's answer to one of this host's probes.
    Answer {
        id: u64,
        addr: SocketAddr,
        path: Path,
        seq: u64,
        sent_ns: u64,
    },
    /// A peer stopped probing.
    Bye { id: u64, addr: SocketAddr },
    /// A receive failed for good (the reason).
    Failed(String),
}

/// One path's tally of answers from one peer.
#[derive(Default)]
struct Tally {
    answered: HashSet<u64>,
    duplicates: u64,
    rtt_ms: Vec<f64>,
}

struct Peer {
    id: Option<u64>,
    addr: SocketAddr,
    /// This host's next sequence number when the peer became known.
    known_from: u64,
    /// The first sequence number probed to the peer by unicast.
    unicast_from: Option<u64>,
    /// This host's next sequence number when the peer's goodbye arrived.
    bye_at: Option<u64>,
    multicast: Tally,
    unicast: Tally,
}

/// The most peers a ping keeps, and so probes each round: probes under ever new ids (a
/// forger's) cannot make it send to more.
const MAX_PEERS: usize = 256;
/// The most peers at one address (pings on one host, each with its --unicast-port): a
/// forger naming ever new ports costs this many peers.
const MAX_PEERS_PER_ADDRESS: usize = 4;
/// What one source address can make a ping answer on one path: a burst of this many,
/// then this many per second (a ping every 20 ms still gets every answer).
const ANSWERS_PER_SECOND: f64 = 50.0;
/// The most source addresses whose answer budget is tracked; past it, a new address gets
/// no answer until the table is swept of those that have been quiet.
const MAX_TRACKED: usize = 4096;

/// Who the receiving threads may answer and listen to (shared with the main loop).
struct Gate {
    /// A keyed ping learns peers only from authenticated multicast probes (and --peer):
    /// unicast datagrams from any other address are neither answered nor counted.
    keyed: bool,
    /// This ping's unicast port, named in its messages.
    unicast_port: u16,
    trusted: std::sync::RwLock<HashSet<IpAddr>>,
    budgets: std::sync::Mutex<std::collections::HashMap<(IpAddr, bool), (f64, Instant)>>,
}

impl Gate {
    fn trust(&self, ip: IpAddr) {
        if self.keyed {
            let mut trusted = self.trusted.write().unwrap_or_else(|e| e.into_inner());
            if trusted.len() < MAX_PEERS || trusted.contains(&ip) {
                trusted.insert(ip);
            }
        }
    }

    /// Whether `message` from `source` over `path` is to be heard at all. Unicast comes
    /// from a ping's unicast socket, so from the port its messages name: answers go
    /// back there, never to a port a datagram merely names.
    fn admits(&self, source: SocketAddr, path: Path, message: &Parsed) -> bool {
        match path {
            Path::Multicast => true, // a keyed group has authenticated it already
            Path::Unicast => {
                source.port() == message.unicast_port
                    && (!self.keyed
                        || self
                            .trusted
                            .read()
                            .unwrap_or_else(|e| e.into_inner())
                            .contains(&source.ip()))
            }
        }
    }

    /// Takes one answer from `ip`'s budget on `path`; false when it has none left.
    fn may_answer(&self, ip: IpAddr, path: Path) -> bool {
        let now = Instant::now();
        let mut budgets = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        if budgets.len() >= MAX_TRACKED && !budgets.contains_key(&(ip, path == Path::Unicast)) {
            // Whoever was quiet for a second has a full budget again: forget them.
            budgets.retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(1));
            if budgets.len() >= MAX_TRACKED {
                return false;
            }
        }
        let (tokens, at) = budgets
            .entry((ip, path == Path::Unicast))
            .or_insert((ANSWERS_PER_SECOND, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * ANSWERS_PER_SECOND)
            .min(ANSWERS_PER_SECOND);
        *at = now;
        if *tokens < 1.0 {
            return false;
        }
        *tokens -= 1.0;
        true
    }
}

pub fn run(ping: &Ping) -> Result<std::process::ExitCode, String> {
    let (interval, wait) = (ping.interval, ping.wait);
    let group = Arc::new(join(&ping.common, JoinOptions::default().ttl(ping.ttl))?);
    let (unicast, unicast_port) = open_unicast(&group, ping.unicast_port)?;
    let me = random_id();
    let gate = Arc::new(Gate {
        keyed: ping.common.key_file.is_some(),
        unicast_port,
        trusted: Default::default(),
        budgets: Default::default(),
    });
    for &ip in &ping.peer {
        gate.trust(ip);
    }
    let (events, inbox) = mpsc::channel();
    spawn_multicast_receiver(Arc::clone(&group), me, Arc::clone(&gate), events.clone());
    let unicast_rx = unicast.try_clone().map_err(|e| e.to_string())?;
    std::thread::spawn(move || receive_unicast(&unicast_rx, me, &gate, &events));
    crate::interrupt::catch();
    eprintln!(
        "mcat: pinging {} (unicast port {unicast_port}), every {interval:?}",
        group.local_addr()
    );
    let mut session = Session {
        me,
        unicast_port,
        started: Instant::now(),
        next_seq: 0,
        peers: Vec::new(),
        json: ping.json,
        quiet: ping.quiet,
        warned: HashSet::new(),
    };
    for &ip in &ping.peer {
        session.peer(None, SocketAddr::new(ip, unicast_port));
    }
    let sockets = (&*group, &unicast);
    session.probe_and_answer(sockets, &inbox, interval, ping.count, wait)?;
    let _ = group.close();
    session.summary(&group, &ping.common.group)
}

/// The unicast socket, on the port every host's pings use (PORT+1 unless told).
fn open_unicast(group: &Group, requested: Option<u16>) -> Result<(UdpSocket, u16), String> {
    let port = match requested {
        Some(port) => port,
        None => group
            .port()
            .checked_add(1)
            .unwrap_or_else(|| crate::usage_error("with port 65535, choose --unicast-port")),
    };
    let unspecified = match group.group_addr() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let socket = UdpSocket::bind((unspecified, port)).map_err(|e| {
        format!("cannot bind the unicast port {port} ({e}); is another mcat ping running here? (--unicast-port)")
    })?;
    Ok((socket, port))
}

struct Session {
    me: u64,
    unicast_port: u16,
    started: Instant,
    next_seq: u64,
    peers: Vec<Peer>,
    json: bool,
    quiet: bool,
    /// Send failures already reported (each kind once: a cut cable fails every send).
    warned: HashSet<String>,
}

impl Session {
    fn now_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    fn message(&self, kind: &str, seq: u64, sent_ns: u64) -> Vec<u8> {
        json!({"mcat": "ping", "type": kind, "id": self.me, "uport": self.unicast_port,
               "seq": seq, "t": sent_ns})
        .to_string()
        .into_bytes()
    }

    /// Probes every `interval` until `count` probes or Ctrl-C, then answers for `wait`
    /// more; meanwhile takes in what the receiving threads hear.
    fn probe_and_answer(
        &mut self,
        (group, unicast): (&Group, &UdpSocket),
        inbox: &mpsc::Receiver<Event>,
        interval: Duration,
        count: Option<u64>,
        wait: Duration,
    ) -> Result<(), String> {
        let mut next_round = self.started;
        let mut linger_until: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let done = count.is_some_and(|count| self.next_seq >= count);
            if linger_until.is_none() && (done || crate::interrupt::happened()) {
                self.say_goodbye(group, unicast);
                linger_until = Some(now + wait);
            }
            match linger_until {
                Some(until) if now >= until => return Ok(()),
                None if now >= next_round => {
                    self.probe(group, unicast);
                    next_round = (next_round + interval).max(now); // no burst after a stall
                    continue;
                }
                _ => {}
            }
            let until = linger_until.unwrap_or(next_round);
            // Wake at least every 100 ms to notice Ctrl-C.
            let slice = until
                .saturating_duration_since(now)
                .min(Duration::from_millis(100));
            match inbox.recv_timeout(slice) {
                Ok(event) => self.handle(event)?,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("the receivers stopped".into())
                }
            }
        }
    }

    fn probe(&mut self, group: &Group, unicast: &UdpSocket) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let probe = self.message("probe", seq, self.now_ns());
        if let Err(e) = group.send(&probe) {
            self.warn(format!("multicast probe not sent: {e}"));
        }
        let mut targets = Vec::with_capacity(self.peers.len());
        for peer in &mut self.peers {
            peer.unicast_from.get_or_insert(seq);
            targets.push(peer.addr);
        }
        for addr in targets {
            if let Err(e) = unicast.send_to(&probe, addr) {
                self.warn(format!("unicast probe to {addr} not sent: {e}"));
            }
        }
    }

    fn say_goodbye(&mut self, group: &Group, unicast: &UdpSocket) {
        let bye = self.message("bye", self.next_seq, 0);
        let _ = group.send(&bye);
        for peer in &self.peers {
            let _ = unicast.send_to(&bye, peer.addr);
        }
    }

    fn warn(&mut self, warning: String) {
        let kind = warning
            .split(':')
            .next_back()
            .unwrap_or_default()
            .to_owned();
        if self.warned.insert(kind) {
            eprintln!("mcat: {warning} (further failures like it are not shown)");
        }
    }

    /// The peer with this id, or else at this address, made known now if it was not;
    /// `None` once [`MAX_PEERS`] are known (said once).
    ///
    /// One peer per unicast address (a ping's socket): a new id there is that ping
    /// restarted, or a forger's next id, which then costs no new peer; and at most
    /// [`MAX_PEERS_PER_ADDRESS`] per host.
    fn peer(&mut self, id: Option<u64>, addr: SocketAddr) -> Option<&mut Peer> {
        let found = self
            .peers
            .iter()
            .position(|p| id.is_some() && p.id == id)
            .or_else(|| self.peers.iter().position(|p| p.addr == addr));
        if found.is_none() {
            let at_host = self
                .peers
                .iter()
                .filter(|p| p.addr.ip() == addr.ip())
                .count();
            if self.peers.len() >= MAX_PEERS || at_host >= MAX_PEERS_PER_ADDRESS {
                self.warn(format!(
                    "more than {MAX_PEERS} peers, or {MAX_PEERS_PER_ADDRESS} at one address: \
                     the others are ignored: peer limit"
                ));
                return None;
            }
        }
        let index = found.unwrap_or_else(|| {
            self.peers.push(Peer {
                id,
                addr,
                known_from: self.next_seq,
                unicast_from: None,
                bye_at: None,
                multicast: Tally::default(),
                unicast: Tally::default(),
            });
            self.peers.len() - 1
        });
        let peer = &mut self.peers[index];
        peer.id = id.or(peer.id);
        peer.addr = addr;
        Some(peer)
    }

    /// Takes in what a receiving thread heard; a receiver's failure ends the run.
    fn handle(&mut self, event: Event) -> Result<(), String> {
        let next_seq = self.next_seq;
        match event {
            Event::Probe { id, addr } => {
                self.peer(Some(id), addr);
            }
            Event::Bye { id, addr } => {
                if let Some(peer) = self.peer(Some(id), addr) {
                    peer.bye_at.get_or_insert(next_seq);
                }
            }
            Event::Answer {
                id,
                addr,
                path,
                seq,
                sent_ns,
            } => {
                self.answered(id, addr, path, seq, sent_ns);
            }
            Event::Failed(reason) => return Err(reason),
        }
        Ok(())
    }

    /// Counts a peer's answer to probe `seq` (sent at `sent_ns`) and prints its line.
    fn answered(&mut self, id: u64, addr: SocketAddr, path: Path, seq: u64, sent_ns: u64) {
        let now_ns = self.now_ns();
        if seq >= self.next_seq || sent_ns > now_ns {
            return; // not an answer to a probe of this run
        }
        let rtt_ms = (now_ns - sent_ns) as f64 / 1e6;
        let Some(peer) = self.peer(Some(id), addr) else {
            return;
        };
        let tally = match path {
            Path::Multicast => &mut peer.multicast,
            Path::Unicast => &mut peer.unicast,
        };
        let duplicate = !tally.answered.insert(seq);
        if duplicate {
            tally.duplicates += 1;
        } else {
            tally.rtt_ms.push(rtt_ms);
        }
        let ip = addr.ip();
        if self.json {
            println!(
                "{}",
                json!({"event": "answer", "peer": ip.to_string(), "path": path.name(),
                       "seq": seq, "rtt_ms": rtt_ms, "duplicate": duplicate})
            );
        } else if !self.quiet {
            let dup = if duplicate { "  (duplicate)" } else { "" };
            println!(
                "{ip:<16} {:>9}  seq={seq}  time={rtt_ms:.3} ms{dup}",
                path.name()
            );
        }
    }

    /// Prints the summary; `spec` is GROUP:PORT as the user wrote it (zone and all).
    fn summary(&self, group: &Group, spec: &str) -> Result<std::process::ExitCode, String> {
        let mut out = io::stdout().lock();
        let write_error = |e: io::Error| format!("cannot write standard output: {e}");
        if !self.json {
            writeln!(out, "--- {} ping summary ---", group.local_addr()).map_err(write_error)?;
        }
        let (mut multicast_never, mut answered_any) = (false, false);
        let mut peers: Vec<&Peer> = self.peers.iter().collect();
        peers.sort_by_key(|p| p.addr);
        let mut totals = [(0, 0); 2];
        for peer in peers {
            let counts = Counts::of(peer, self.next_seq);
            answered_any |= counts.multicast.1 + counts.unicast.1 > 0;
            multicast_never |= counts.multicast.1 == 0;
            for (total, (path, (sent, answered), tally)) in totals.iter_mut().zip([
                (Path::Multicast, counts.multicast, &peer.multicast),
                (Path::Unicast, counts.unicast, &peer.unicast),
            ]) {
                *total = (total.0 + sent, total.1 + answered);
                let line = summary_line(peer.addr.ip(), path, sent, answered, tally, self.json);
                writeln!(out, "{line}").map_err(write_error)?;
            }
            if counts.multicast_lost_more() {
                let hint = format!(
                    "multicast lost more than unicast: a switch, router or firewall stops it (try: mcat doctor {spec} -i IFACE)"
                );
                let line = if self.json {
                    json!({"event": "hint", "peer": peer.addr.ip().to_string(), "text": hint})
                        .to_string()
                } else {
                    format!("{:<16} {hint}", peer.addr.ip())
                };
                writeln!(out, "{line}").map_err(write_error)?;
            }
        }
        if !self.json && !self.peers.is_empty() {
            let loss = |(sent, answered): (u64, u64)| {
                sent.saturating_sub(answered) as f64 * 100.0 / sent.max(1) as f64
            };
            writeln!(
                out,
                "{} peer{}: multicast {}/{} answered ({:.1}% loss), unicast {}/{} ({:.1}% loss)",
                self.peers.len(),
                if self.peers.len() == 1 { "" } else { "s" },
                totals[0].1,
                totals[0].0,
                loss(totals[0]),
                totals[1].1,
                totals[1].0,
                loss(totals[1])
            )
            .map_err(write_error)?;
        }
        if self.peers.is_empty() && !self.json {
            writeln!(
                out,
                "no peer answered (run mcat ping on the other hosts too)"
            )
            .map_err(write_error)?;
        }
        out.flush().map_err(write_error)?;
        Ok(if !answered_any {
            std::process::ExitCode::from(EXIT_TIMEOUT)
        } else if multicast_never {
            std::process::ExitCode::from(EXIT_PROBLEM)
        } else {
            std::process::ExitCode::SUCCESS
        })
    }
}

/// Probes sent and answered per path, over the span the peer was there.
struct Counts {
    multicast: (u64, u64),
    unicast: (u64, u64),
}

impl Counts {
    fn of(peer: &Peer, next_seq: u64) -> Counts {
        let first_answer = peer
            .multicast
            .answered
            .iter()
            .chain(&peer.unicast.answered)
            .min();
        let first = first_answer.copied().unwrap_or(peer.known_from);
        let end = peer.bye_at.unwrap_or(next_seq).max(first);
        let within = |tally: &Tally| {
            tally
                .answered
                .iter()
                .filter(|&&s| s >= first && s < end)
                .count() as u64
        };
        let unicast_first = peer.unicast_from.unwrap_or(end).max(first).min(end);
        Counts {
            multicast: (end - first, within(&peer.multicast)),
            unicast: (end - unicast_first, within(&peer.unicast)),
        }
    }

    fn multicast_lost_more(&self) -> bool {
        let lost = |(sent, answered): (u64, u64)| {
            sent.saturating_sub(answered) as f64 / sent.max(1) as f64
        };
        self.unicast.1 > 0 && lost(self.multicast) > lost(self.unicast)
    }
}

fn summary_line(
    ip: IpAddr,
    path: Path,
    sent: u64,
    answered: u64,
    tally: &Tally,
    json: bool,
) -> String {
    let loss = if sent == 0 {
        0.0
    } else {
        sent.saturating_sub(answered) as f64 * 100.0 / sent as f64
    };
    let rtt = &tally.rtt_ms;
    let n = rtt.len().max(1) as f64;
    let avg = rtt.iter().sum::<f64>() / n;
    let stddev = (rtt.iter().map(|r| (r - avg) * (r - avg)).sum::<f64>() / n).sqrt();
    let min = rtt.iter().copied().fold(f64::INFINITY, f64::min);
    let max = rtt.iter().copied().fold(0.0, f64::max);
    if json {
        let rtt_ms = if rtt.is_empty() {
            Value::Null
        } else {
            json!({"min": min, "avg": avg, "max": max, "stddev": stddev})
        };
        return json!({"event": "summary", "peer": ip.to_string(), "path": path.name(),
                      "sent": sent, "answered": answered, "loss_percent": loss,
                      "duplicates": tally.duplicates, "rtt_ms": rtt_ms})
        .to_string();
    }
    let times = if rtt.is_empty() {
        "no answer".to_owned()
    } else {
        format!("min/avg/max/stddev = {min:.3}/{avg:.3}/{max:.3}/{stddev:.3} ms")
    };
    format!(
        "{ip:<16} {:>9}: {sent} sent, {answered} answered, {loss:.1}% loss, {} duplicates, rtt {times}",
        path.name(),
        tally.duplicates
    )
}

/// A random id, so a host tells its own probes (looped back) and the answers meant for
/// it from everyone else's.
pub(crate) fn random_id() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.finish()
}

/// A datagram of mcat ping's: its type, sender id, sender's unicast port, seq, time.
struct Parsed {
    kind: String,
    id: u64,
    unicast_port: u16,
    seq: u64,
    sent_ns: u64,
    to: Option<u64>,
}

fn parse(data: &[u8]) -> Option<Parsed> {
    let value: Value = serde_json::from_slice(data).ok()?;
    if value.get("mcat")? != "ping" {
        return None;
    }
    Some(Parsed {
        kind: value.get("type")?.as_str()?.to_owned(),
        id: value.get("id")?.as_u64()?,
        unicast_port: u16::try_from(value.get("uport")?.as_u64()?).ok()?,
        seq: value.get("seq")?.as_u64()?,
        sent_ns: value.get("t")?.as_u64()?,
        to: value.get("to").and_then(Value::as_u64),
    })
}

fn answer_to(probe: &Parsed, me: u64, unicast_port: u16) -> Vec<u8> {
    json!({"mcat": "ping", "type": "answer", "id": me, "uport": unicast_port, "to": probe.id,
           "seq": probe.seq, "t": probe.sent_ns})
    .to_string()
    .into_bytes()
}

/// What a peer's datagram means to the main loop (None: nothing to report).
fn event_for(message: &Parsed, me: u64, addr: SocketAddr, path: Path) -> Option<Event> {
    match message.kind.as_str() {
        "probe" => Some(Event::Probe {
            id: message.id,
            addr,
        }),
        "bye" => Some(Event::Bye {
            id: message.id,
            addr,
        }),
        "answer" if message.to == Some(me) => Some(Event::Answer {
            id: message.id,
            addr,
            path,
            seq: message.seq,
            sent_ns: message.sent_ns,
        }),
        _ => None,
    }
}

/// What both receiving threads do with a datagram of `path` from `source`: skip this
/// host's own, others' traffic and what the gate refuses, answer a probe the way it came
/// (`answer`, within the source's budget), and tell the main loop. False once the main
/// loop is gone.
fn hear(
    data: &[u8],
    source: SocketAddr,
    path: Path,
    (me, gate): (u64, &Gate),
    events: &mpsc::Sender<Event>,
    answer: impl FnOnce(&[u8]),
) -> bool {
    let Some(message) = parse(data).filter(|m| m.id != me) else {
        return true;
    };
    if !gate.admits(source, path, &message) {
        return true;
    }
    if path == Path::Multicast {
        gate.trust(source.ip());
    }
    if message.kind == "probe" && gate.may_answer(source.ip(), path) {
        answer(&answer_to(&message, me, gate.unicast_port));
    }
    let addr = SocketAddr::new(source.ip(), message.unicast_port);
    event_for(&message, me, addr, path).is_none_or(|event| events.send(event).is_ok())
}

fn spawn_multicast_receiver(
    group: Arc<Group>,
    me: u64,
    gate: Arc<Gate>,
    events: mpsc::Sender<Event>,
) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; group.max_message_size()];
        loop {
            let received = match group.receive(Timeout::Never, &mut buf) {
                Ok(Some(received)) => received,
                Ok(None) => continue,
                Err(e) if group.is_closed() => return drop(e),
                Err(e) => return drop(events.send(Event::Failed(e.to_string()))),
            };
            let data = &buf[..received.len];
            // A failure to answer is the peer's loss to see; the probes go on.
            let answer = |reply: &[u8]| drop(group.send(reply));
            if !hear(
                data,
                received.source,
                Path::Multicast,
                (me, &gate),
                &events,
                answer,
            ) {
                return;
            }
        }
    });
}

fn receive_unicast(socket: &UdpSocket, me: u64, gate: &Gate, events: &mpsc::Sender<Event>) {
    let mut buf = [0u8; 2048];
    loop {
        let (len, source) = match socket.recv_from(&mut buf) {
            Ok(received) => received,
            // ICMP errors of earlier sends surface here (a peer's port unreachable).
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
            Err(e) => {
                return drop(events.send(Event::Failed(format!("unicast receive failed: {e}"))))
            }
        };
        // The gate let it in only from the port it names: the answer goes back there.
        let answer = |reply: &[u8]| drop(socket.send_to(reply, source));
        if !hear(
            &buf[..len],
            source,
            Path::Unicast,
            (me, gate),
            events,
            answer,
        ) {
            return;
        }
    }
}
