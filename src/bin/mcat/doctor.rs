//! `mcat doctor`: why would datagrams of a group not arrive here? Each check reads what
//! the host already says (iproute2's `ip -j`, /proc, /sys, nftables) and prints one line:
//! `ok:`, `skipped:` (with why), or `finding:` with the command that fixes it. Only the
//! querier check opens a socket: a raw one that listens for IGMP or MLD queries.
//!
//! Linux only: other systems keep these facts elsewhere (doctor says so and stops).

use std::net::{IpAddr, SocketAddr};
use std::process::{Command, ExitCode};
use std::time::Duration;

use clap::Args;
use serde_json::Value;

use crate::{group_and_port, EXIT_PROBLEM};

#[derive(Args)]
pub struct Doctor {
    /// The group and port that do not arrive (without it: the checks of the interface
    /// and route, for IPv4).
    #[arg(value_name = "GROUP:PORT", value_parser = crate::group_port_arg)]
    group: Option<String>,
    /// The interface the datagrams should arrive on (default: the multicast route's).
    #[arg(short, long, value_name = "IFACE")]
    interface: Option<String>,
    /// Where the datagrams come from: enables the reverse-path and TTL checks.
    #[arg(long, value_name = "ADDR")]
    sender: Option<IpAddr>,
    /// The TTL (hop limit) the sender uses (libmulticast's default is 1).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = crate::ttl_arg)]
    ttl: u32,
    /// Seconds to listen for an IGMP/MLD querier (0: do not; queries usually come every
    /// 125 s, so a short listen that hears none is a hint, a full one is proof).
    #[arg(long, value_name = "SECONDS", default_value = "3", value_parser = crate::seconds)]
    listen: Duration,
}

/// What the checks found, printed as they go.
#[derive(Default)]
struct Report {
    findings: usize,
}

impl Report {
    fn ok(&self, text: &str) {
        println!("ok: {text}");
    }

    fn skipped(&self, text: &str) {
        println!("skipped: {text}");
    }

    fn finding(&mut self, problem: &str, fix: &str) {
        self.findings += 1;
        println!("finding: {problem}; fix: {fix}");
    }
}

/// The interface under examination, as `ip -j addr show dev NAME` describes it.
struct Link {
    name: String,
    flags: Vec<String>,
    addrs: Vec<(IpAddr, u8)>,
}

impl Link {
    fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    fn on_subnet(&self, ip: IpAddr) -> bool {
        self.addrs
            .iter()
            .any(|&(local, prefix)| same_prefix(local, ip, prefix))
    }
}

pub fn run(doctor: &Doctor) -> Result<ExitCode, String> {
    if !cfg!(target_os = "linux") {
        return Err(
            "mcat doctor reads Linux's /proc, /sys and ip(8); on this system use mcat ping".into(),
        );
    }
    let (group, port) = match &doctor.group {
        Some(spec) => {
            let (_, ip, port) = group_and_port(spec)?;
            (ip, Some(port))
        }
        None => (IpAddr::from([239, 255, 0, 1]), None),
    };
    let v6 = group.is_ipv6();
    let mut report = Report::default();
    println!(
        "mcat doctor: {}",
        describe(group, port, doctor.interface.as_deref())
    );
    let Some(link) = find_interface(doctor, group, &mut report)? else {
        return Ok(finish(&report));
    };
    check_link(&link, v6, &mut report);
    match doctor.sender {
        Some(sender) if sender.is_ipv6() != v6 => {
            crate::usage_error(format!("--sender {sender} is not of the group's family"));
        }
        Some(sender) => check_sender(&link, sender, doctor.ttl, &mut report)?,
        None => report.skipped("reverse-path filter and TTL: name the sender with --sender ADDR"),
    }
    match port {
        Some(port) => {
            check_firewall(port, v6, &mut report);
            check_membership(&link, group, port, &mut report);
        }
        None => report.skipped("firewall and membership: name GROUP:PORT"),
    }
    check_querier(&link, v6, doctor.listen, &mut report)?;
    Ok(finish(&report))
}

fn describe(group: IpAddr, port: Option<u16>, interface: Option<&str>) -> String {
    let on = interface.map(|i| format!(" on {i}")).unwrap_or_default();
    match port {
        Some(port) => format!("{group} port {port}{on}"),
        None => format!("IPv4 multicast{on}"),
    }
}

fn finish(report: &Report) -> ExitCode {
    match report.findings {
        0 => {
            println!("no problems found");
            ExitCode::SUCCESS
        }
        n => {
            println!("{n} finding{}", if n == 1 { "" } else { "s" });
            ExitCode::from(EXIT_PROBLEM)
        }
    }
}

/// Runs `ip -j ARGS...`: its JSON, or its complaint (`Err` only when ip cannot run).
fn ip_json(args: &[&str]) -> Result<std::result::Result<Value, String>, String> {
    let out = Command::new("ip")
        .arg("-j")
        .args(args)
        .output()
        .map_err(|e| format!("mcat doctor needs iproute2's ip command: {e}"))?;
    if !out.status.success() {
        return Ok(Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
    }
    Ok(serde_json::from_slice(&out.stdout).map_err(|e| format!("ip -j printed no JSON: {e}")))
}

/// The route the kernel takes to `ip`: (device, gateway), or why there is none.
fn route_to(ip: IpAddr) -> Result<std::result::Result<(String, Option<String>), String>, String> {
    let family = if ip.is_ipv6() { "-6" } else { "-4" };
    Ok(
        ip_json(&[family, "route", "get", &ip.to_string()])?.map(|routes| {
            let route = &routes[0];
            let dev = route["dev"].as_str().unwrap_or_default().to_owned();
            (dev, route["gateway"].as_str().map(str::to_owned))
        }),
    )
}

/// The interface named with -i, or else the one the group's route leaves by.
fn find_interface(
    doctor: &Doctor,
    group: IpAddr,
    report: &mut Report,
) -> Result<Option<Link>, String> {
    let name = match &doctor.interface {
        Some(spec) => match multicast::interface::resolve_for(spec, group.is_ipv6()) {
            Ok(found) => found.name,
            Err(_) => {
                report.finding(
                    &format!("there is no interface {spec}"),
                    "ip -br link (lists the interfaces; name one with -i)",
                );
                return Ok(None);
            }
        },
        None => match route_to(group)? {
            Ok((dev, _)) if dev == "lo" => {
                let fix = route_fix(group, &candidate_interface()?);
                report.finding(
                    &format!("the route to {group} leads to lo: only this host hears the group"),
                    &fix,
                );
                dev
            }
            Ok((dev, _)) => {
                report.ok(&format!(
                    "the route to {group} leaves by {dev} (name another with -i)"
                ));
                dev
            }
            Err(why) => {
                let candidate = candidate_interface()?;
                report.finding(
                    &format!("no multicast route for {group} and no interface named ({why})"),
                    &format!(
                        "{} (or name the interface: -i {candidate})",
                        route_fix(group, &candidate)
                    ),
                );
                return Ok(None);
            }
        },
    };
    let link = &ip_json(&["addr", "show", "dev", &name])?
        .map_err(|why| format!("ip addr show dev {name}: {why}"))?[0];
    let strings = |v: &Value| {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    let addrs = link["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            Some((
                a["local"].as_str()?.parse().ok()?,
                u8::try_from(a["prefixlen"].as_u64()?).ok()?,
            ))
        })
        .collect();
    Ok(Some(Link {
        name,
        flags: strings(&link["flags"]),
        addrs,
    }))
}

fn route_fix(group: IpAddr, dev: &str) -> String {
    match group {
        IpAddr::V4(_) => format!("ip route replace 224.0.0.0/4 dev {dev}"),
        IpAddr::V6(_) => format!("ip -6 route replace ff00::/8 dev {dev} table local"),
    }
}

/// The interface a route should name: the first up, multicast-capable, non-loopback one.
fn candidate_interface() -> Result<String, String> {
    let links = ip_json(&["link", "show"])?.unwrap_or_default();
    let has = |link: &Value, flag: &str| {
        link["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == flag))
    };
    Ok(links
        .as_array()
        .into_iter()
        .flatten()
        .find(|link| has(link, "UP") && has(link, "MULTICAST") && !has(link, "LOOPBACK"))
        .and_then(|link| link["ifname"].as_str())
        .unwrap_or("IFACE")
        .to_owned())
}

fn check_link(link: &Link, v6: bool, report: &mut Report) {
    let name = &link.name;
    let mut healthy = true;
    if !link.has("UP") {
        healthy = false;
        report.finding(
            &format!("{name} is down"),
            &format!("ip link set {name} up"),
        );
    } else if !link.has("LOWER_UP") {
        healthy = false;
        report.finding(
            &format!("{name} is up but has no carrier (a cable is out, or the other end is down)"),
            &format!("connect {name} (ip link show {name} says NO-CARRIER until then)"),
        );
    }
    if !link.has("MULTICAST") {
        healthy = false;
        report.finding(
            &format!("{name} does not have the MULTICAST flag"),
            &format!("ip link set {name} multicast on"),
        );
    }
    let of_family = link.addrs.iter().any(|(ip, _)| ip.is_ipv6() == v6);
    if !of_family && v6 {
        healthy = false;
        let disabled =
            std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"))
                .is_ok_and(|v| v.trim() == "1");
        let fix = if disabled {
            format!("sysctl -w net.ipv6.conf.{name}.disable_ipv6=0")
        } else {
            format!("ip -6 addr add ADDRESS/64 dev {name}")
        };
        report.finding(
            &format!(
                "{name} has no IPv6 address (IPv6 is {})",
                if disabled { "disabled on it" } else { "on" }
            ),
            &fix,
        );
    } else if !of_family {
        healthy = false;
        report.finding(
            &format!("{name} has no IPv4 address: IGMP reports leave from 0.0.0.0, which switches and routers may ignore, and sends have no source"),
            &format!("ip addr add ADDRESS/PREFIX dev {name}"),
        );
    }
    if healthy {
        report.ok(&format!(
            "{name} is up, has carrier, the MULTICAST flag and an {} address",
            if v6 { "IPv6" } else { "IPv4" }
        ));
    }
}

fn check_sender(link: &Link, sender: IpAddr, ttl: u32, report: &mut Report) -> Result<(), String> {
    let name = &link.name;
    let on_subnet = link.on_subnet(sender);
    if on_subnet {
        report.ok(&format!(
            "the sender {sender} is on {name}'s subnet (TTL 1 reaches here)"
        ));
    } else if ttl <= 1 {
        report.finding(
            &format!("the sender {sender} is not on {name}'s subnet and sends with TTL {ttl}: the first router drops its datagrams"),
            "on the sender: a TTL above the routers between (mcat send --ttl 8; mc_join_options.ttl = 8), and multicast routing on those routers",
        );
    } else {
        report.ok(&format!(
            "the sender {sender} is off-subnet and sends with TTL {ttl}"
        ));
    }
    if sender.is_ipv6() {
        return Ok(()); // rp_filter is IPv4's
    }
    let mode = rp_filter("all").max(rp_filter(name)); // what the kernel applies
    let back = route_to(sender)?;
    match (mode, &back) {
        (1, Ok((dev, _))) if dev != name => {
            let mut fix = format!("sysctl -w net.ipv4.conf.{name}.rp_filter=2");
            if rp_filter("all") == 1 {
                fix = format!("sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.{name}.rp_filter=2");
            }
            report.finding(
                &format!("strict reverse-path filtering on {name} drops {sender}'s datagrams: the route back to it leaves by {dev}"),
                &format!("{fix} (loose), or route {sender} by {name}"),
            );
        }
        (1 | 2, Err(why)) => report.finding(
            &format!("reverse-path filtering on {name} drops {sender}'s datagrams: there is no route back to it ({why})"),
            &format!("ip route add {sender}/32 dev {name}"),
        ),
        (0, _) => report.ok(&format!("no reverse-path filtering on {name}")),
        _ => report.ok(&format!("reverse-path filtering on {name} lets {sender} in")),
    }
    Ok(())
}

/// One reverse-path filter setting (0 off, 1 strict, 2 loose) of an interface or "all";
/// the kernel applies the larger of the interface's and "all"'s.
fn rp_filter(conf: &str) -> u8 {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{conf}/rp_filter"))
        .ok()
        .and_then(|v| v.trim().parse::<u8>().ok())
        .unwrap_or(0)
}

fn same_prefix(a: IpAddr, b: IpAddr, prefix: u8) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// nftables rules in input chains that drop or reject the port, and input chains that
/// drop by default without accepting it. (iptables-nft's rules are nftables rules too;
/// legacy iptables is not read.)
fn check_firewall(port: u16, v6: bool, report: &mut Report) {
    let out = match Command::new("nft").args(["-a", "list", "ruleset"]).output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(out) => {
            let why = String::from_utf8_lossy(&out.stderr);
            return report.skipped(&format!(
                "firewall: nft cannot list the ruleset ({}); run as root",
                why.trim()
            ));
        }
        Err(_) => return report.skipped("firewall: nft is not installed (nftables)"),
    };
    let before = report.findings;
    for chain in input_chains(&out, v6) {
        for rule in &chain.rules {
            let verdict_drops = rule.contains(" drop") || rule.contains(" reject");
            if verdict_drops && matches_port(rule, port) {
                let handle = rule.rsplit("# handle ").next().unwrap_or("?").trim();
                report.finding(
                    &format!(
                        "the firewall drops UDP port {port}: {} {}: {}",
                        chain.table,
                        chain.name,
                        rule.split(" # handle").next().unwrap_or(rule).trim()
                    ),
                    &format!(
                        "nft delete rule {} {} handle {handle}",
                        chain.table, chain.name
                    ),
                );
            }
        }
        let accepted = chain
            .rules
            .iter()
            .any(|r| r.contains(" accept") && matches_port(r, port));
        if chain.policy_drop && !accepted {
            report.finding(
                &format!("the firewall's chain {} {} drops by default and no rule accepts UDP port {port}", chain.table, chain.name),
                &format!("nft insert rule {} {} udp dport {port} accept", chain.table, chain.name),
            );
        }
    }
    if report.findings == before {
        report.ok(&format!("the firewall (nftables) lets UDP port {port} in"));
    }
}

struct Chain {
    table: String,
    name: String,
    policy_drop: bool,
    rules: Vec<String>,
}

/// The chains of `nft -a list ruleset` that filter what this host receives (hook input
/// or prerouting), in tables of the group's family.
fn input_chains(ruleset: &str, v6: bool) -> Vec<Chain> {
    let mut chains = Vec::new();
    let (mut table, mut current): (Option<String>, Option<Chain>) = (None, None);
    let mut hooked = false;
    for line in ruleset.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["table", family, name, ..] => {
                let wanted = matches!(*family, "inet")
                    || (*family == "ip6") == v6 && matches!(*family, "ip" | "ip6");
                table = wanted.then(|| format!("{family} {name}"));
            }
            ["chain", name, ..] => {
                current = table.clone().map(|table| Chain {
                    table,
                    name: (*name).to_owned(),
                    policy_drop: false,
                    rules: Vec::new(),
                });
                hooked = false;
            }
            ["}"] | ["}", ..] => {
                if let Some(chain) = current.take().filter(|_| hooked) {
                    chains.push(chain);
                }
            }
            _ => {
                let Some(chain) = current.as_mut() else {
                    continue;
                };
                if line.starts_with("type ") {
                    hooked = line.contains("hook input") || line.contains("hook prerouting");
                    chain.policy_drop = line.contains("policy drop");
                } else if line.contains("# handle ") {
                    chain.rules.push(line.to_owned());
                }
            }
        }
    }
    chains
}

/// Whether an nft rule's destination port match (a number, range or set) takes `port`;
/// a rule that names no destination port matches every port only if it is about UDP.
fn matches_port(rule: &str, port: u16) -> bool {
    let Some(at) = rule.find("dport ") else {
        return false;
    };
    let rest = &rule[at + "dport ".len()..];
    let spec = if let Some(set) = rest.strip_prefix('{') {
        set.split('}').next().unwrap_or_default()
    } else {
        rest.split_whitespace().next().unwrap_or_default()
    };
    spec.split(',')
        .map(str::trim)
        .any(|item| match item.split_once('-') {
            Some((low, high)) => {
                low.parse::<u16>().is_ok_and(|l| l <= port)
                    && high.parse::<u16>().is_ok_and(|h| port <= h)
            }
            None => item.parse::<u16>() == Ok(port),
        })
}

/// If a program here listens on the port, is the group joined on this interface?
fn check_membership(link: &Link, group: IpAddr, port: u16, report: &mut Report) {
    let table = if group.is_ipv6() {
        "/proc/net/udp6"
    } else {
        "/proc/net/udp"
    };
    let Ok(sockets) = std::fs::read_to_string(table) else {
        return report.skipped(&format!("membership: cannot read {table}"));
    };
    let bound = sockets.lines().skip(1).any(|line| {
        let local = line.split_whitespace().nth(1).unwrap_or_default();
        local
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
            == Some(port)
    });
    if !bound {
        return println!(
            "note: nothing listens on UDP port {port} here (start the receiver, then ask again)"
        );
    }
    let joined_on = memberships(group);
    let name = &link.name;
    if joined_on.iter().any(|dev| dev == name) {
        report.ok(&format!(
            "{group} is joined on {name} (a program listens on port {port})"
        ));
    } else if joined_on.is_empty() {
        report.finding(
            &format!("a program listens on UDP port {port}, but no one here joined {group} (no membership in {})", igmp_table(group)),
            &format!("join the group on {name}: mcat listen {} -i {name} (mc_join_options.interface = \"{name}\")", SocketAddr::new(group, port)),
        );
    } else {
        report.finding(
            &format!(
                "{group} is joined on {}, not on {name} where it should arrive",
                joined_on.join(", ")
            ),
            &format!(
                "join on {name}: mcat listen {} -i {name} (mc_join_options.interface = \"{name}\")",
                SocketAddr::new(group, port)
            ),
        );
    }
}

fn igmp_table(group: IpAddr) -> &'static str {
    if group.is_ipv6() {
        "/proc/net/igmp6"
    } else {
        "/proc/net/igmp"
    }
}

/// The interfaces /proc/net/igmp (or igmp6) lists the group on.
fn memberships(group: IpAddr) -> Vec<String> {
    let text = std::fs::read_to_string(igmp_table(group)).unwrap_or_default();
    match group {
        IpAddr::V4(ip) => {
            // Per device a header line ("2 eth0 : 3 V3"), then its groups as the address
            // in memory order, printed as a hexadecimal number.
            let wanted = format!("{:08X}", u32::from_ne_bytes(ip.octets()));
            let mut device = String::new();
            let mut found = Vec::new();
            for line in text.lines().skip(1) {
                let words: Vec<&str> = line.split_whitespace().collect();
                if words.get(2) == Some(&":") {
                    device = words[1].to_owned();
                } else if words.first() == Some(&wanted.as_str()) {
                    found.push(device.clone());
                }
            }
            found
        }
        IpAddr::V6(ip) => {
            let wanted: String = ip.octets().iter().map(|b| format!("{b:02x}")).collect();
            text.lines()
                .filter_map(|line| {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    (words.get(2) == Some(&wanted.as_str())).then(|| words[1].to_owned())
                })
                .collect()
        }
    }
}

/// Listens on the interface for a general or group query (IGMP type 0x11, MLD type 130).
fn check_querier(
    link: &Link,
    v6: bool,
    listen: Duration,
    report: &mut Report,
) -> Result<(), String> {
    let kind = if v6 { "MLD" } else { "IGMP" };
    if listen.is_zero() {
        report.skipped(&format!("{kind} querier: not listened for (--listen 0)"));
        return Ok(());
    }
    match heard_query(&link.name, v6, listen) {
        Ok(Some(from)) => {
            report.ok(&format!("an {kind} querier ({from}) asks on {}", link.name));
            return Ok(());
        }
        Ok(None) => {}
        Err(QueryListen::NotAllowed(e)) => {
            report.skipped(&format!(
                "{kind} querier: listening for queries needs root (CAP_NET_RAW): {e}"
            ));
            return Ok(());
        }
        Err(QueryListen::Failed(e)) => return Err(e),
    }
    let bridge_fix = "ip link set BRIDGE type bridge mcast_querier 1";
    report.finding(
        &format!(
            "no {kind} querier heard on {} in {:.0} s (queries come every 125 s; --listen 130 to be sure): switches that snoop {kind} then forget members and stop forwarding",
            link.name,
            listen.as_secs_f64()
        ),
        &format!("enable the querier of the LAN's switch or multicast router (a Linux bridge: {bridge_fix})"),
    );
    Ok(())
}

// Elsewhere only the stub below, which never runs, makes one.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
enum QueryListen {
    NotAllowed(std::io::Error),
    Failed(String),
}

/// The sender of the first IGMP (MLD) query heard on the interface within `listen`.
#[cfg(target_os = "linux")]
fn heard_query(name: &str, v6: bool, listen: Duration) -> Result<Option<IpAddr>, QueryListen> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::time::Instant;
    let (domain, protocol) = if v6 {
        (Domain::IPV6, 58)
    } else {
        (Domain::IPV4, 2)
    };
    let socket = Socket::new(domain, Type::RAW, Some(Protocol::from(protocol)))
        .map_err(QueryListen::NotAllowed)?;
    socket
        .bind_device(Some(name.as_bytes()))
        .map_err(|e| QueryListen::Failed(format!("cannot listen on {name}: {e}")))?;
    // std's recvfrom reads a raw socket as well as a UDP one, without unsafe buffers.
    let socket = std::net::UdpSocket::from(socket);
    let deadline = Instant::now() + listen;
    let mut buf = [0u8; 1500];
    while let Some(left) = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
    {
        socket
            .set_read_timeout(Some(left))
            .map_err(|e| QueryListen::Failed(e.to_string()))?;
        let Ok((len, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let packet = &buf[..len];
        // IPv4 raw sockets see the IP header; IPv6 ones only the ICMPv6 message.
        let type_byte = if v6 {
            packet.first()
        } else {
            packet.get(usize::from(packet.first().map_or(0, |b| b & 0x0f)) * 4)
        };
        if type_byte == Some(&if v6 { 130 } else { 0x11 }) {
            return Ok(Some(from.ip()));
        }
    }
    Ok(None)
}

#[cfg(not(target_os = "linux"))]
fn heard_query(_name: &str, _v6: bool, _listen: Duration) -> Result<Option<IpAddr>, QueryListen> {
    // Never reached: run() stops first on other systems.
    Err(QueryListen::NotAllowed(
        std::io::ErrorKind::Unsupported.into(),
    ))
}
