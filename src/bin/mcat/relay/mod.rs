//! `mcat relay`: carries multicast groups between interfaces of one host (VLANs) and
//! between sites over unicast UDP, sealed with the site key (docs/relay.md).
//!
//! One thread, one poll loop: packets arrive from each interface's tap and from the site
//! socket; each is matched against the groups, checked for loops, rate-limited, and sent
//! at most once into each destination the rules allow.

mod config;
mod leg;
mod limits;
mod packet;
mod router;
mod site;
mod stats;
mod tap;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use multicast::auth;

use crate::interrupt;
use config::{Config, SITE};
use leg::Leg;
use limits::{Bucket, LinkAddress, SentMemory, FROM_SITE};
use packet::{Datagram, Skip};
use router::KernelRouter;
use site::{Origins, SiteDrop, SiteLink};
use stats::{Drop, Stats};

#[derive(Args)]
pub struct Relay {
    /// The configuration file (TOML; see docs/relay.md). SIGHUP reads it again.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["groups", "interfaces", "listen", "peers", "key_file"])]
    config: Option<PathBuf>,
    /// A group or range to relay (repeat for more): 239.255.255.250:1900,
    /// 239.0.0.0/8:* (every group of the range, every port), [ff02::fb%eth1]:5353 (a zone:
    /// that interface only).
    #[arg(long = "group", value_name = "GROUP:PORT")]
    groups: Vec<String>,
    /// An interface to relay between (repeat for each).
    #[arg(short, long = "interface", value_name = "IFACE")]
    interfaces: Vec<String>,
    /// The site link: the address and port to hear peer relays on (0.0.0.0:7400).
    #[arg(long, value_name = "ADDR:PORT", requires = "key_file")]
    listen: Option<String>,
    /// A peer relay, HOST:PORT (repeat for each).
    #[arg(long = "peer", value_name = "HOST:PORT", requires = "listen")]
    peers: Vec<String>,
    /// The site key: a file of 64 hex digits, the same at every site.
    #[arg(long, value_name = "FILE", requires = "listen")]
    key_file: Option<PathBuf>,
    /// How many relay-to-relay hops a datagram may take (1: a full mesh).
    #[arg(long, value_name = "N", default_value_t = 1, requires = "listen")]
    hop_limit: u8,
    /// Every SECONDS, and on exit, the counters per group and direction (standard error).
    #[arg(long, value_name = "SECONDS", value_parser = crate::positive_seconds)]
    stats: Option<Duration>,
    /// The counters as one JSON object per report, on standard output.
    #[arg(long)]
    json: bool,
    /// A line on standard error for each datagram dropped, saying why.
    #[arg(long)]
    debug: bool,
}

pub fn run(args: &Relay) -> Result<ExitCode, String> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::check(flags_as_file(args)).unwrap_or_else(|e| crate::usage_error(e)),
    };
    interrupt::catch();
    interrupt::catch_reload();
    let mut stats = Stats::new(config.limits.max_groups);
    let state = State {
        origins: Origins {
            this: auth::Sender::new().map_err(|e| e.message().to_owned())?,
            seen: auth::Replays::default(),
        },
        sent: SentMemory::new(),
        buckets: HashMap::new(),
        swept: Instant::now(),
    };
    let mut relay = Running::start(config, state, args.debug).map_err(|failed| failed.0)?;
    relay.announce();
    let every = args.stats;
    let mut next_report = every.map(|d| Instant::now() + d);
    while !interrupt::happened() {
        if interrupt::reload_requested() {
            relay = reload(relay, args, &mut stats)?;
        }
        let wait = next_report.map_or(TICK, |at| {
            at.saturating_duration_since(Instant::now()).min(TICK)
        });
        relay.poll_once(wait, &mut stats)?;
        if let (Some(at), Some(every)) = (next_report, every) {
            if Instant::now() >= at {
                stats.report(args.json, &relay.leg_states());
                next_report = Some(at + every);
            }
        }
    }
    if every.is_some() || args.json {
        stats.report(args.json, &relay.leg_states());
    }
    Ok(ExitCode::SUCCESS)
}

/// How often the loop looks for signals when nothing arrives.
const TICK: Duration = Duration::from_millis(100);
/// Packets taken from one socket before looking at the others.
const BURST: usize = 64;

fn flags_as_file(args: &Relay) -> config::File {
    config::File {
        groups: args.groups.clone(),
        interfaces: args.interfaces.clone(),
        site: args.listen.as_ref().map(|listen| config::SiteFile {
            listen: listen.clone(),
            key_file: args
                .key_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            key_id: 0,
            peers: args.peers.clone(),
            hop_limit: args.hop_limit,
            forward_ttl_1: false,
        }),
        forward_ttl_1: true,
        ..config::File::default()
    }
}

/// SIGHUP: the file read again; a file that does not check, or sockets that do not open,
/// leave the running configuration as it was.
fn reload(relay: Running, args: &Relay, stats: &mut Stats) -> Result<Running, String> {
    let Some(path) = &args.config else {
        eprintln!("mcat relay: SIGHUP: nothing to reload (no --config)");
        return Ok(relay);
    };
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("mcat relay: SIGHUP: kept the running configuration: {e}");
            return Ok(relay);
        }
    };
    let (old, state) = relay.stop();
    let max_groups = config.limits.max_groups;
    match Running::start(config, state, args.debug) {
        Ok(relay) => {
            stats.set_max_groups(max_groups);
            eprintln!("mcat relay: SIGHUP: reloaded {}", path.display());
            relay.announce();
            Ok(relay)
        }
        Err(failed) => {
            let (e, state) = *failed;
            eprintln!("mcat relay: SIGHUP: kept the running configuration: {e}");
            Running::start(old, state, args.debug)
                .map_err(|failed| format!("cannot restart the running configuration: {}", failed.0))
        }
    }
}

/// Where a datagram came from, for the loop check: the link-layer address it arrived
/// from (FROM_SITE from a peer) and its fingerprint as it arrived.
#[derive(Clone, Copy)]
struct Arrived {
    from: LinkAddress,
    fingerprint: u64,
}

/// What outlives a reload besides the counters.
struct State {
    origins: Origins,
    /// Fingerprints of what this relay sent: its own datagrams, when they come back.
    sent: SentMemory,
    /// Per group:port rate limits, at most limits.max_groups of them.
    buckets: HashMap<(IpAddr, u16), Bucket>,
    /// When the buckets were last swept for idle ones (at most once a second, so a flood
    /// of new groups past the cap does not scan them all per datagram).
    swept: Instant,
}

struct Running {
    config: Config,
    legs: Vec<Leg>,
    /// When the legs' interfaces were last looked at (leg::CHECK_EVERY).
    checked: Instant,
    /// This host's own multicast router, looked at as often as the legs.
    router: KernelRouter,
    site: Option<SiteLink>,
    /// After a receive error on the site socket, it is not polled until then (an error
    /// that does not clear would otherwise make poll return at once, for ever).
    site_paused_until: Option<Instant>,
    state: State,
    debug: bool,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl Running {
    fn start(config: Config, state: State, debug: bool) -> Result<Running, Box<(String, State)>> {
        match Running::open(&config) {
            Ok((legs, site)) => Ok(Running::with_router(Running {
                config,
                legs,
                checked: Instant::now(),
                router: KernelRouter::default(),
                site,
                site_paused_until: None,
                state,
                debug,
                buf: vec![0; 1 << 16],
                out: Vec::with_capacity(1 << 16),
            })),
            Err(e) => Err(Box::new((e, state))),
        }
    }

    /// The router is looked at before the first datagram, not a second after.
    fn with_router(mut running: Running) -> Running {
        running.look_at_router();
        running
    }

    fn open(config: &Config) -> Result<(Vec<Leg>, Option<SiteLink>), String> {
        let mut legs = Vec::new();
        for v6 in [false, true] {
            if !config.groups.iter().any(|g| g.network.is_ipv6() == v6) {
                continue;
            }
            for interface in &config.interfaces {
                let exact: Vec<IpAddr> = config
                    .groups
                    .iter()
                    .filter(|g| g.network.is_ipv6() == v6 && g.prefix == if v6 { 128 } else { 32 })
                    .filter(|g| g.zone.as_ref().is_none_or(|z| z == interface))
                    .map(|g| g.network)
                    .collect();
                legs.push(Leg::open(interface, v6, exact)?);
            }
        }
        if config.source_is_relay {
            if let Some(leg) = legs.iter().find(|l| l.own.is_none()) {
                return Err(format!(
                    "source = \"relay\": {} has no {} address to send from",
                    leg.interface,
                    if leg.v6 { "IPv6" } else { "IPv4" }
                ));
            }
        }
        let site = config
            .site
            .as_ref()
            .map(|site| SiteLink::open(site, config.limits.peer_rate))
            .transpose()?;
        Ok((legs, site))
    }

    /// Each leg's interface, family and whether it is up, for the reports.
    fn leg_states(&self) -> Vec<stats::LegState> {
        self.legs
            .iter()
            .map(|l| stats::LegState {
                interface: l.interface.clone(),
                v6: l.v6,
                up: l.is_up(),
            })
            .collect()
    }

    fn stop(self) -> (Config, State) {
        (self.config, self.state)
    }

    fn announce(&self) {
        let mut between: Vec<String> = self.config.interfaces.clone();
        if let Some(site) = &self.site {
            let at = site
                .local_address()
                .map(|a| a.to_string())
                .unwrap_or_default();
            between.push(format!(
                "the site link on {at} ({} peers)",
                site.peers.len()
            ));
        }
        let groups: Vec<String> = self
            .config
            .groups
            .iter()
            .map(config::GroupRange::to_string)
            .collect();
        eprintln!(
            "mcat relay: relaying {} between {}",
            groups.join(" "),
            between.join(", ")
        );
    }

    /// Reads which legs this host's multicast router holds; says so when that changes.
    fn look_at_router(&mut self) {
        let router = KernelRouter::read();
        if router == self.router {
            return;
        }
        let was = self.pairs_held_by(&self.router);
        let pairs = self.pairs_held_by(&router);
        self.router = router;
        // (A change in interfaces the router holds that are not pairs of legs is no news.)
        if pairs == was {
            return;
        }
        if !pairs.is_empty() {
            eprintln!("mcat relay: this host routes multicast between {} (smcroute, pimd or FRR holds them): the relay leaves datagrams between them to the router (counted as routed); a group it does not route wants a route there", pairs.join(", "));
        } else {
            eprintln!("mcat relay: this host's multicast router holds no two legs now: relaying between all of them");
        }
    }

    /// The pairs of legs `router` routes between, named for the relay's messages.
    fn pairs_held_by(&self, router: &KernelRouter) -> Vec<String> {
        let mut pairs = Vec::new();
        for (i, a) in self.legs.iter().enumerate() {
            for b in &self.legs[i + 1..] {
                if a.v6 == b.v6 && router.routes_between(a.v6, &a.interface, &b.interface) {
                    pairs.push(format!(
                        "{} and {} ({})",
                        a.interface,
                        b.interface,
                        if a.v6 { "IPv6" } else { "IPv4" }
                    ));
                }
            }
        }
        pairs
    }

    fn poll_once(&mut self, wait: Duration, stats: &mut Stats) -> Result<(), String> {
        if self.checked.elapsed() >= leg::CHECK_EVERY {
            self.legs.iter_mut().for_each(Leg::check);
            self.look_at_router();
            self.checked = Instant::now();
        }
        if self.site_paused_until.is_some_and(|t| Instant::now() >= t) {
            self.site_paused_until = None;
        }
        // (index of the leg, or usize::MAX for the site socket, and its descriptor)
        let polled: Vec<(usize, libc::c_int)> = self
            .legs
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.fd().map(|fd| (i, fd)))
            .chain(
                self.site
                    .as_ref()
                    .filter(|_| self.site_paused_until.is_none())
                    .map(|s| (usize::MAX, s.fd())),
            )
            .collect();
        let mut fds: Vec<libc::pollfd> = polled
            .iter()
            .map(|&(_, fd)| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // Down legs are looked at again within CHECK_EVERY, however quiet the others are.
        let millis = wait.min(leg::CHECK_EVERY).as_millis().clamp(1, 1000) as libc::c_int;
        // SAFETY: fds is a valid array of fds.len() pollfd structures.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };
        if ready <= 0 {
            return Ok(()); // timeout, or EINTR from a signal the loop looks at next
        }
        for (&(source, _), fd) in polled.iter().zip(&fds) {
            if fd.revents == 0 {
                continue;
            }
            for _ in 0..BURST {
                let more = match source {
                    usize::MAX => self.receive_from_site(stats),
                    i => self.receive_from_leg(i, stats),
                };
                if !more {
                    break;
                }
            }
        }
        Ok(())
    }

    /// One packet from leg `i`; false when none was waiting (or the leg went down).
    fn receive_from_leg(&mut self, i: usize, stats: &mut Stats) -> bool {
        let mut buf = std::mem::take(&mut self.buf);
        let received = self.legs[i].receive(&mut buf);
        if let Some(arrival) = &received {
            let packet = &mut buf[..arrival.len];
            if arrival.partial_checksum {
                packet::complete_checksum(packet);
            }
            self.relay_local(i, packet, arrival.from, stats);
        }
        self.buf = buf;
        received.is_some()
    }

    fn relay_local(&mut self, i: usize, packet: &[u8], link_from: LinkAddress, stats: &mut Stats) {
        let d = match packet::parse(packet) {
            Ok(d) => d,
            Err(Skip::Other) => return,
            Err(Skip::Fragment) => return stats.other("fragment"),
            Err(Skip::Malformed) => return stats.other("malformed"),
        };
        let from = self.legs[i].interface.clone();
        if !self.config.relays(d.group, d.port(), Some(&from)) {
            return;
        }
        let group = group_text(&d);
        let fingerprint = self.state.sent.fingerprint(d.source, d.group, d.udp);
        // Sent by this host (through a link that joins two of its interfaces), or a copy
        // of what it sent, passed back by another relay. (With `source = "relay"`, such a
        // copy carries one of this relay's addresses.)
        let own = (link_from != LinkAddress::default()
            && self.legs.iter().any(|l| l.address() == link_from))
            || self.legs.iter().any(|l| l.own == Some(d.source));
        if own || self.state.sent.is_loop(fingerprint, link_from) {
            return self.drop(stats, &d, &group, &from, "*", Drop::Loop);
        }
        if let Err(why) = self.take_token(&d) {
            return self.drop(stats, &d, &group, &from, "*", why);
        }
        for j in 0..self.legs.len() {
            let into = &self.legs[j];
            if j == i || into.v6 != self.legs[i].v6 {
                continue;
            }
            let into = into.interface.clone();
            if self.router.routes_between(self.legs[i].v6, &from, &into) {
                self.drop(stats, &d, &group, &from, &into, Drop::Routed);
                continue;
            }
            match self.may_send(&from, &into, &d, self.config.forward_ttl_1) {
                Ok(ttl) => {
                    let arrived = Arrived {
                        from: link_from,
                        fingerprint,
                    };
                    self.send_local(j, &d, ttl, &group, &from, arrived, stats)
                }
                Err(why) => self.drop(stats, &d, &group, &from, &into, why),
            }
        }
        let Some(forward_ttl_1) = self.site.as_ref().map(|s| s.forward_ttl_1) else {
            return;
        };
        match self.may_send(&from, SITE, &d, forward_ttl_1) {
            Ok(ttl) => {
                let site = self.site.as_mut().expect("checked above");
                match site.originate(&mut self.state.origins, &d, ttl) {
                    Ok(()) => self.send_to_peers(None, &d, &group, &from, stats),
                    Err(e) => {
                        self.log(&d, &from, SITE, &e);
                        stats.dropped(&group, &from, SITE, Drop::TooBig);
                    }
                }
            }
            Err(why) => self.drop(stats, &d, &group, &from, SITE, why),
        }
    }

    /// The TTL a datagram leaves with into `into`, or why it does not go there.
    fn may_send(
        &self,
        from: &str,
        into: &str,
        d: &Datagram,
        forward_ttl_1: bool,
    ) -> Result<u8, Drop> {
        if !self.config.allows(from, into, d.group, d.port()) {
            return Err(Drop::Rule);
        }
        match d.ttl {
            0 => Err(Drop::Ttl),
            1 if forward_ttl_1 => Ok(1),
            1 => Err(Drop::Ttl),
            ttl => Ok(ttl - 1),
        }
    }

    /// The group's token; a group beyond limits.max_groups takes a slot idle for a
    /// minute (swept for at most once a second), or is dropped.
    fn take_token(&mut self, d: &Datagram) -> Result<(), Drop> {
        let key = (d.group, d.port());
        let limits = self.config.limits;
        let state = &mut self.state;
        let buckets = &mut state.buckets;
        if !buckets.contains_key(&key) && buckets.len() >= limits.max_groups {
            if state.swept.elapsed() >= Duration::from_secs(1) {
                buckets.retain(|_, b| !b.idle_for(Duration::from_secs(60)));
                state.swept = Instant::now();
            }
            if buckets.len() >= limits.max_groups {
                return Err(Drop::GroupCap);
            }
        }
        match buckets
            .entry(key)
            .or_insert_with(|| Bucket::new(limits.group_rate))
            .take()
        {
            true => Ok(()),
            false => Err(Drop::Rate),
        }
    }

    /// Sends `d` out of tap `j`, remembering it (with where it came from) for the loop
    /// check.
    #[allow(clippy::too_many_arguments)]
    fn send_local(
        &mut self,
        j: usize,
        d: &Datagram,
        ttl: u8,
        group: &str,
        from: &str,
        arrived: Arrived,
        stats: &mut Stats,
    ) {
        let source = match self.config.source_is_relay {
            true => self.legs[j].own.unwrap_or(d.source),
            false => d.source,
        };
        packet::build(&mut self.out, d, source, ttl);
        // From the sender's address, the datagram goes out as it came (checksum and all),
        // so its fingerprint is the one taken on arrival; from the relay's, it is new.
        let fingerprint = match source == d.source {
            true => arrived.fingerprint,
            false => {
                let udp = &self.out[self.out.len() - d.udp.len()..];
                self.state.sent.fingerprint(source, d.group, udp)
            }
        };
        self.state.sent.remember(fingerprint, arrived.from);
        let leg = &mut self.legs[j];
        match leg.send(&self.out, d.group) {
            Ok(()) => stats.relayed(group, from, &leg.interface, d.payload().len()),
            Err((why, how)) => {
                let into = leg.interface.clone();
                self.log(d, from, &into, &how);
                stats.dropped(group, from, &into, why);
            }
        }
    }

    fn send_to_peers(
        &mut self,
        except: Option<usize>,
        d: &Datagram,
        group: &str,
        from: &str,
        stats: &mut Stats,
    ) {
        let site = self.site.as_ref().expect("only with a site link");
        for (peer, sent) in site.send_sealed(except) {
            let into = format!("{SITE}:{}", site.peers[peer].name);
            match sent {
                Ok(()) => stats.relayed(group, from, &into, d.payload().len()),
                Err(e) => {
                    if self.debug {
                        eprintln!(
                            "mcat relay: cannot send to peer {}: {e}",
                            site.peers[peer].name
                        );
                    }
                    stats.dropped(group, from, &into, Drop::SendError);
                }
            }
        }
    }

    /// One datagram from the site socket; false when none was waiting. A receive error
    /// pauses the socket for a second (said on standard error), not the relay.
    fn receive_from_site(&mut self, stats: &mut Stats) -> bool {
        let mut buf = std::mem::take(&mut self.buf);
        let site = self.site.as_mut().expect("polled only with a site link");
        let more = match site.receive(&mut self.state.origins, &mut buf) {
            Ok(None) => false,
            Ok(Some((peer, Err(why)))) => {
                self.site_drop(peer, why, stats);
                true
            }
            Ok(Some((peer, Ok(frame)))) => {
                let name = format!(
                    "{SITE}:{}",
                    self.site.as_ref().expect("open").peers[peer].name
                );
                self.relay_from_site(peer, &name, frame.hops_left, &frame.datagram, stats);
                true
            }
            Err(e) => {
                eprintln!("mcat relay: cannot receive from peers: {e}; trying again in a second");
                stats.other("site_receive_error");
                self.site_paused_until = Some(Instant::now() + leg::CHECK_EVERY);
                false
            }
        };
        self.buf = buf;
        more
    }

    fn site_drop(&self, peer: usize, why: SiteDrop, stats: &mut Stats) {
        let name = match why {
            SiteDrop::UnknownPeer => "unknown_peer",
            SiteDrop::PeerRate => "peer_rate",
            SiteDrop::Unauthenticated => "unauthenticated",
            SiteDrop::Duplicate => "duplicate",
            SiteDrop::Malformed => "malformed",
        };
        stats.other(name);
        if self.debug && why != SiteDrop::Duplicate {
            let site = self.site.as_ref().expect("open");
            let from = site
                .peers
                .get(peer)
                .map_or("an address that is not a peer", |p| p.name.as_str());
            eprintln!(
                "mcat relay: dropped a site datagram from {from}: {}",
                name.replace('_', " ")
            );
        }
    }

    fn relay_from_site(
        &mut self,
        peer: usize,
        from: &str,
        hops_left: u8,
        d: &Datagram,
        stats: &mut Stats,
    ) {
        let group = group_text(d);
        if !self.config.relays(d.group, d.port(), None) {
            return self.drop(stats, d, &group, from, "*", Drop::Rule);
        }
        if let Err(why) = self.take_token(d) {
            return self.drop(stats, d, &group, from, "*", why);
        }
        let arrived = Arrived {
            from: FROM_SITE,
            fingerprint: self.state.sent.fingerprint(d.source, d.group, d.udp),
        };
        for j in 0..self.legs.len() {
            if self.legs[j].v6 != d.group.is_ipv6() {
                continue;
            }
            let into = self.legs[j].interface.clone();
            // The TTL was counted down by the relay that took it in: the site link
            // between two relays is one hop, as a tunnel between two routers is.
            match self.config.allows(SITE, &into, d.group, d.port()) {
                true => self.send_local(j, d, d.ttl, &group, from, arrived, stats),
                false => self.drop(stats, d, &group, from, &into, Drop::Rule),
            }
        }
        if hops_left > 0 {
            let site = self.site.as_mut().expect("open");
            if site.pass_on(hops_left - 1).is_ok() {
                self.send_to_peers(Some(peer), d, &group, from, stats);
            }
        }
    }

    fn drop(
        &self,
        stats: &mut Stats,
        d: &Datagram,
        group: &str,
        from: &str,
        into: &str,
        why: Drop,
    ) {
        stats.dropped(group, from, into, why);
        if self.debug {
            let reason = match why {
                Drop::Rule if into == "*" => {
                    "this relay does not relay that group from a peer".to_owned()
                }
                Drop::Rule => format!("no rule lets {from} send this group into {into}"),
                Drop::Rate => "over the group's rate limit".to_owned(),
                Drop::Ttl => format!("TTL {} (TTL 1 goes there only with forward_ttl_1)", d.ttl),
                Drop::Loop => "this relay sent it: relaying it again would loop".to_owned(),
                Drop::GroupCap => "limits.max_groups groups are already tracked".to_owned(),
                Drop::TooBig | Drop::SendError => "it could not be sent".to_owned(),
                Drop::Down => format!("{into} is down"),
                Drop::Refused => format!("{into} refuses datagrams (ENOBUFS)"),
                Drop::Routed => {
                    format!("this host's multicast router carries it from {from} into {into}")
                }
            };
            self.log(d, from, into, &reason);
        }
    }

    fn log(&self, d: &Datagram, from: &str, into: &str, why: &str) {
        if self.debug {
            let into = if into == "*" {
                String::new()
            } else {
                format!(" into {into}")
            };
            eprintln!(
                "mcat relay: dropped {} -> {} from {from}{into}: {why}",
                socket_text(d.source, d.source_port()),
                group_text(d),
            );
        }
    }
}

fn socket_text(address: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(address, port).to_string()
}

fn group_text(d: &Datagram) -> String {
    socket_text(d.group, d.port())
}
