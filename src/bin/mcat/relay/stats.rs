//! The relay's counters: per group and direction (from an interface or the site link,
//! into another), what was relayed and what was dropped and why; plus drops that belong
//! to no group (fragments, unknown peers, forgeries). Printed by --stats, as text or
//! JSON lines with --json, and once more on exit.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use serde_json::json;

/// Why a datagram did not go into a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Drop {
    /// No rule lets its source send into that destination.
    Rule,
    /// Its group was over its rate limit.
    Rate,
    /// TTL 1 (not relayed there unless asked) or 0.
    Ttl,
    /// This relay sent it (or a copy of what it sent came back): relaying it would loop.
    Loop,
    /// Too large for the way out (the interface's MTU, a site datagram).
    TooBig,
    /// More groups than limits.max_groups are being tracked.
    GroupCap,
    /// The send failed (the log says how).
    SendError,
    /// The leg it would go into is down (its interface down, or gone).
    Down,
    /// The leg refused it (ENOBUFS after a brief wait: a full queue, an egress filter).
    Refused,
    /// This host's multicast router holds both interfaces: it carries the datagram.
    Routed,
}

impl Drop {
    pub fn name(self) -> &'static str {
        match self {
            Drop::Rule => "rule",
            Drop::Rate => "rate",
            Drop::Ttl => "ttl",
            Drop::Loop => "loop",
            Drop::TooBig => "too_big",
            Drop::GroupCap => "group_cap",
            Drop::SendError => "send_error",
            Drop::Down => "down",
            Drop::Refused => "refused",
            Drop::Routed => "routed",
        }
    }
}

/// A leg as the reports show it.
pub struct LegState {
    pub interface: String,
    pub v6: bool,
    pub up: bool,
}

impl LegState {
    fn family(&self) -> &'static str {
        if self.v6 {
            "ipv6"
        } else {
            "ipv4"
        }
    }
}

#[derive(Default, Clone)]
struct Flow {
    relayed: u64,
    bytes: u64,
    dropped: BTreeMap<Drop, u64>,
}

pub struct Stats {
    /// (group:port, from, into) -> counts; "*" as `into` for drops before a destination.
    flows: BTreeMap<(String, String, String), Flow>,
    /// Drops of no group: fragment, malformed, unknown_peer, peer_rate, unauthenticated,
    /// duplicate.
    other: BTreeMap<&'static str, u64>,
    groups: std::collections::HashSet<String>,
    max_groups: usize,
    started: Instant,
}

/// Where counts of groups past the cap go.
const OTHER_GROUPS: &str = "other";

impl Stats {
    pub fn new(max_groups: usize) -> Stats {
        Stats {
            flows: BTreeMap::new(),
            other: BTreeMap::new(),
            groups: Default::default(),
            max_groups,
            started: Instant::now(),
        }
    }

    pub fn set_max_groups(&mut self, max_groups: usize) {
        self.max_groups = max_groups;
    }

    fn flow(&mut self, group: &str, from: &str, into: &str) -> &mut Flow {
        let group = if self.groups.contains(group) || self.groups.len() < self.max_groups {
            self.groups.insert(group.to_owned());
            group
        } else {
            OTHER_GROUPS
        };
        self.flows
            .entry((group.to_owned(), from.to_owned(), into.to_owned()))
            .or_default()
    }

    pub fn relayed(&mut self, group: &str, from: &str, into: &str, bytes: usize) {
        let flow = self.flow(group, from, into);
        flow.relayed += 1;
        flow.bytes += bytes as u64;
    }

    pub fn dropped(&mut self, group: &str, from: &str, into: &str, why: Drop) {
        *self.flow(group, from, into).dropped.entry(why).or_default() += 1;
    }

    pub fn other(&mut self, why: &'static str) {
        *self.other.entry(why).or_default() += 1;
    }

    /// One report: text lines on standard error, or one JSON object on standard output.
    pub fn report(&self, json: bool, legs: &[LegState]) {
        let seconds = self.started.elapsed().as_secs_f64();
        if json {
            let flows: Vec<_> = self
                .flows
                .iter()
                .map(|((group, from, into), f)| {
                    let dropped: serde_json::Map<_, _> =
                        f.dropped.iter().map(|(d, n)| (d.name().to_owned(), json!(n))).collect();
                    json!({"group": group, "from": from, "to": into, "relayed": f.relayed, "bytes": f.bytes, "dropped": dropped})
                })
                .collect();
            let legs: Vec<_> = legs
                .iter()
                .map(|l| json!({"interface": l.interface, "family": l.family(), "up": l.up}))
                .collect();
            let line = json!({"seconds": (seconds * 1000.0).round() / 1000.0, "legs": legs, "flows": flows, "dropped": self.other});
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}").and_then(|()| out.flush());
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "mcat relay: after {seconds:.1} s");
        let legs: Vec<String> = legs
            .iter()
            .map(|l| {
                let state = if l.up { "up" } else { "down" };
                format!("{} ({}) {state}", l.interface, l.family())
            })
            .collect();
        let _ = writeln!(err, "  legs: {}", legs.join(", "));
        for ((group, from, into), f) in &self.flows {
            let dropped: Vec<String> = f
                .dropped
                .iter()
                .map(|(d, n)| format!("{} {n}", d.name()))
                .collect();
            let dropped = match dropped.is_empty() {
                true => String::new(),
                false => format!(", dropped: {}", dropped.join(", ")),
            };
            let _ = writeln!(
                err,
                "  {group} {from} -> {into}: {} relayed ({} bytes){dropped}",
                f.relayed, f.bytes
            );
        }
        if !self.other.is_empty() {
            let other: Vec<String> = self.other.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let _ = writeln!(err, "  dropped, no group: {}", other.join(", "));
        }
    }
}
