//! `mcat doctor`: why would datagrams of a group not arrive here? Each check reads what
//! the host already says (iproute2's `ip -j`, /proc, /sys, nftables) and prints one line:
//! `ok:`, `skipped:` (with why), or `finding:` with the command that fixes it. Only the
//! querier check opens a socket, a raw one that listens for IGMP or MLD queries; and with
//! `--probe`, the routed checks (routed.rs) send TTL-limited probes toward the sender and
//! join the group to hear it.
//!
//! Linux only: other systems keep these facts elsewhere (doctor says so and stops).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, ExitCode};
use std::time::Duration;

use clap::Args;
use serde_json::Value;

use crate::{firewall, group_and_port, EXIT_PROBLEM};

mod routed;

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
    /// Count the routers toward --sender with UDP probes of TTL 1, 2, ... (as traceroute
    /// does; this sends), and listen --listen seconds for its datagrams to GROUP:PORT
    /// (the sender must be sending): a TTL too small for them, or a router that forwards
    /// unicast but not the group.
    #[arg(long, requires = "sender")]
    probe: bool,
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
        // (With --probe the TTL is judged by the routers counted, not by the gateway.)
        Some(sender) => check_sender(
            &link,
            sender,
            (!doctor.probe).then_some(doctor.ttl),
            &mut report,
        )?,
        None => report.skipped("reverse-path filter and TTL: name the sender with --sender ADDR"),
    }
    let path = match doctor.sender {
        Some(sender) if doctor.probe => routed::check_hops(sender, doctor.ttl, &mut report)?,
        _ => None,
    };
    let querier_version_found =
        source_specific(group) && check_igmp_version(&link, group, &mut report);
    match port {
        Some(port) => {
            let datagram = firewall::Datagram {
                group,
                port,
                sender: doctor.sender,
                interface: link.name.clone(),
            };
            check_firewall(&datagram, &mut report);
            check_membership(&link, group, port, &mut report);
        }
        None => report.skipped("firewall and membership: name GROUP:PORT"),
    }
    // The listen for the sender's datagrams, when asked, runs beside the querier's.
    let arrival = match (doctor.sender, port) {
        (Some(sender), Some(port)) if doctor.probe && !doctor.listen.is_zero() => {
            Some((sender, port))
        }
        _ => None,
    };
    let heard = std::thread::scope(|scope| {
        let listening = arrival.map(|(sender, port)| {
            let name = link.name.clone();
            scope.spawn(move || routed::hears_sender(group, port, &name, sender, doctor.listen))
        });
        let querier = Querier {
            group,
            router: gateway_toward(&link, doctor.sender)?,
            version_found: querier_version_found,
        };
        check_querier(&link, &querier, doctor.listen, &mut report)?;
        listening
            .map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|_| Err("the listen for the sender failed".into()))
            })
            .transpose()
    })?;
    if let (Some(heard), Some((sender, port))) = (heard, arrival) {
        routed::judge_arrival(
            heard,
            path.as_ref(),
            (group, port, sender),
            doctor.ttl,
            doctor.listen,
            &mut report,
        );
    }
    Ok(finish(&report))
}

/// 232.0.0.0/8 and ff3x::/32, where routers carry only source-specific joins.
fn source_specific(group: IpAddr) -> bool {
    match group {
        IpAddr::V4(ip) => ip.octets()[0] == 232,
        IpAddr::V6(ip) => ip.octets()[1] >> 4 == 3,
    }
}

/// The router on this link toward the sender (its gateway there), if any.
fn gateway_toward(link: &Link, sender: Option<IpAddr>) -> Result<Option<IpAddr>, String> {
    let Some(sender) = sender else {
        return Ok(None);
    };
    Ok(match route_to(sender)? {
        Ok((dev, Some(gateway))) if dev == link.name => gateway.parse().ok(),
        _ => None,
    })
}

/// What reports without a source do to a source-specific group, said by both findings.
const UNSOURCED_REPORTS: &str =
    "a router serving it as source-specific ignores them, and one that takes them carries it from every sender";

/// A source-specific group needs IGMPv3 (MLDv2) on the link: an older version's reports
/// carry no source, which a source-specific router ignores (one that takes them serves
/// every sender). Linux falls back to the version of the oldest querier it heard
/// (/proc/net/igmp's Querier column), or one forced by sysctl.
/// True when it found the link speaking an older one.
fn check_igmp_version(link: &Link, group: IpAddr, report: &mut Report) -> bool {
    let name = &link.name;
    let (forced_key, newest) = if group.is_ipv6() {
        ("ipv6", 2)
    } else {
        ("ipv4", 3)
    };
    let setting = if group.is_ipv6() {
        "force_mld_version"
    } else {
        "force_igmp_version"
    };
    let forced = |conf: &str| -> u8 {
        std::fs::read_to_string(format!("/proc/sys/net/{forced_key}/conf/{conf}/{setting}"))
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let (kind, ssm) = if group.is_ipv6() {
        ("MLD", "MLDv2")
    } else {
        ("IGMP", "IGMPv3")
    };
    for conf in ["all", name.as_str()] {
        let version = forced(conf);
        if version != 0 && version < newest {
            report.finding(
                &format!("{setting} is {version} on {conf}: reports for the source-specific {group} go out as {kind}v{version}, without the source: {UNSOURCED_REPORTS}"),
                &format!("sysctl -w net.{forced_key}.conf.{conf}.{setting}=0"),
            );
            return true;
        }
    }
    if let Some(version) = (!group.is_ipv6())
        .then(|| igmp_compat_version(name))
        .flatten()
    {
        if version < 3 {
            report.finding(
                &format!("{name} speaks IGMPv{version}: the kernel heard an IGMPv{version} querier there, so its reports for the source-specific {group} carry no source: {UNSOURCED_REPORTS}"),
                &querier_upgrade_fix(false),
            );
            return true;
        }
    }
    if group.is_ipv6() {
        // Linux shows no MLD fallback in /proc: the querier check below tells the version.
        report.ok(&format!("{name} is not held to MLDv1 ({setting})"));
    } else {
        report.ok(&format!(
            "{name} speaks {ssm}, which source-specific joins need"
        ));
    }
    false
}

fn querier_upgrade_fix(v6: bool) -> String {
    if v6 {
        "make the LAN's querier MLDv2 (FRR: ipv6 mld version 2; a Linux bridge: ip link set BRIDGE type bridge mcast_mld_version 2)".to_owned()
    } else {
        "make the LAN's querier IGMPv3 (pimd: phyint IFACE igmpv3, its default; FRR: ip igmp version 3; a Linux bridge: ip link set BRIDGE type bridge mcast_igmp_version 3)".to_owned()
    }
}

/// The IGMP version Linux speaks on the interface: /proc/net/igmp's device line
/// ("2 eth0 : 3 V3").
fn igmp_compat_version(name: &str) -> Option<u8> {
    let text = std::fs::read_to_string("/proc/net/igmp").ok()?;
    text.lines().skip(1).find_map(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        (words.get(1) == Some(&name) && words.get(2) == Some(&":"))
            .then(|| words.get(4)?.strip_prefix('V')?.parse().ok())
            .flatten()
    })
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
                let fix = route_fix(group, &candidate_interface(group.is_ipv6())?.fix_name());
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
                match candidate_interface(group.is_ipv6())? {
                    Candidate::Down(name) => report.finding(
                        &format!("no multicast route for {group}: {name}, the interface that could carry it, is down (and took its routes along)"),
                        &format!("ip link set {name} up && {}", route_fix(group, &name)),
                    ),
                    candidate => report.finding(
                        &format!("no multicast route for {group} and no interface named ({why})"),
                        &format!(
                            "{} (or name the interface: -i {})",
                            route_fix(group, &candidate.fix_name()),
                            candidate.fix_name()
                        ),
                    ),
                }
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

/// The interface a multicast route should name.
enum Candidate {
    /// Up, with carrier, multicast-capable and an address of the group's family.
    Ready(String),
    /// Such an interface, but down: it is the cause.
    Down(String),
    /// None at all.
    Missing,
}

impl Candidate {
    fn fix_name(&self) -> String {
        match self {
            Candidate::Ready(name) | Candidate::Down(name) => name.clone(),
            Candidate::Missing => "IFACE".to_owned(),
        }
    }
}

/// The first non-loopback, multicast-capable interface with an address of the family
/// (one that can carry the group), preferring one that is up with carrier.
fn candidate_interface(v6: bool) -> Result<Candidate, String> {
    let links = ip_json(&["addr", "show"])?.unwrap_or_default();
    let has = |link: &Value, flag: &str| {
        link["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == flag))
    };
    let of_family = |link: &Value| {
        link["addr_info"].as_array().into_iter().flatten().any(|a| {
            a["family"].as_str() == Some(if v6 { "inet6" } else { "inet" })
                && a["scope"].as_str() != Some("host")
        })
    };
    let capable: Vec<&Value> = links
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| has(l, "MULTICAST") && !has(l, "LOOPBACK") && of_family(l))
        .collect();
    let name = |l: &Value| l["ifname"].as_str().unwrap_or_default().to_owned();
    Ok(
        match capable.iter().find(|l| has(l, "UP") && has(l, "LOWER_UP")) {
            Some(ready) => Candidate::Ready(name(ready)),
            None => capable
                .iter()
                .find(|l| !has(l, "UP"))
                .map_or(Candidate::Missing, |down| Candidate::Down(name(down))),
        },
    )
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
        // Linux delivers and joins on such an interface all the same: not a cause.
        println!("note: {name} lacks the MULTICAST flag; Linux delivers multicast on it anyway, but some drivers and programs go by the flag (ip link set {name} multicast on)");
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
            "{name} is up, has carrier and an {} address",
            if v6 { "IPv6" } else { "IPv4" }
        ));
    }
}

/// The reverse-path filter for the sender, and, given `ttl`, whether a router on this
/// link stands between it and here.
fn check_sender(
    link: &Link,
    sender: IpAddr,
    ttl: Option<u32>,
    report: &mut Report,
) -> Result<(), String> {
    let name = &link.name;
    let back = route_to(sender)?;
    // A router between only when the way back leaves by this interface through a
    // gateway: a sender whose datagrams arrive here off-subnet but by a direct path
    // (the reverse-path case) reaches this host with TTL 1.
    let router = match &back {
        Ok((dev, Some(gateway))) if dev == name => Some(gateway.clone()),
        _ => None,
    };
    match (router, ttl) {
        (_, None) => {}
        _ if link.on_subnet(sender) => report.ok(&format!(
            "the sender {sender} is on {name}'s subnet (TTL 1 reaches here)"
        )),
        (Some(gateway), Some(ttl)) if ttl <= 1 => report.finding(
            &format!("the sender {sender} is behind the router {gateway} on {name} and sends with TTL {ttl}: the router drops its datagrams"),
            "on the sender: a TTL above the routers between (mcat send --ttl 8; mc_join_options.ttl = 8), and multicast routing on those routers",
        ),
        (Some(gateway), Some(ttl)) => report.ok(&format!(
            "the sender {sender} is behind the router {gateway} and sends with TTL {ttl} (--probe counts the routers)"
        )),
        (None, Some(ttl)) => report.ok(&format!(
            "the sender {sender} is off {name}'s subnets, with no router toward it on {name}: TTL {ttl} is not checked"
        )),
    }
    if sender.is_ipv6() {
        return Ok(()); // rp_filter is IPv4's
    }
    let mode = rp_filter("all").max(rp_filter(name)); // what the kernel applies
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

pub(crate) fn same_prefix(a: IpAddr, b: IpAddr, prefix: u8) -> bool {
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

/// What nftables does to a datagram of the group arriving on the interface (see
/// `firewall`): each rule or chain policy that drops it, with the command that removes
/// exactly that cause. (iptables-nft's rules are nftables rules too; legacy iptables is
/// not read.)
fn check_firewall(datagram: &firewall::Datagram, report: &mut Report) {
    let port = datagram.port;
    let ruleset = match nft(&["-j", "list", "ruleset"]) {
        Ok(out) => out,
        Err(why) => return report.skipped(&format!("firewall: {why}")),
    };
    let Ok(mut ruleset) = serde_json::from_str::<Value>(&ruleset) else {
        return report.skipped("firewall: nft -j printed no JSON");
    };
    let (texts, devices) = read_listing(&nft(&["-a", "list", "ruleset"]).unwrap_or_default());
    add_devices(&mut ruleset, &devices);
    let verdicts = firewall::judge(&ruleset, datagram);
    let shown = |p: &firewall::Place| {
        let rule = p
            .handle
            .and_then(|h| texts.get(&(p.family.clone(), p.table.clone(), p.chain.clone(), h)))
            .map_or(String::new(), |t| format!(": {t}"));
        format!("{} {} {}{rule}", p.family, p.table, p.chain)
    };
    for place in &verdicts.drops {
        let chain = format!("{} {} {}", place.family, place.table, place.chain);
        match place.handle {
            Some(handle) => report.finding(
                &format!("the firewall drops UDP port {port} to {}: {}", datagram.group, shown(place)),
                &format!("nft delete rule {chain} handle {handle}"),
            ),
            None => report.finding(
                &format!("the firewall's chain {chain} drops by default and no rule accepts UDP port {port}"),
                &format!("nft insert rule {chain} udp dport {port} accept"),
            ),
        }
    }
    for place in &verdicts.maybe {
        println!(
            "note: the firewall may drop UDP port {port} (a match doctor cannot settle, such as a mark or a rate limit, decides): {} handle {}",
            shown(place),
            place.handle.map_or("(policy)".to_owned(), |h| h.to_string())
        );
    }
    if verdicts.drops.is_empty() {
        report.ok(&format!(
            "the firewall (nftables) lets UDP port {port} to {} in on {}",
            datagram.group, datagram.interface
        ));
    }
}

/// `nft ARGS...`'s output, or why it could not list the ruleset.
fn nft(args: &[&str]) -> Result<String, String> {
    match Command::new("nft").args(args).output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => Err(format!(
            "nft cannot list the ruleset ({}); run as root",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(_) => Err("nft is not installed (nftables)".into()),
    }
}

type RuleTexts = HashMap<(String, String, String, u64), String>;
type ChainDevices = HashMap<(String, String, String), Vec<String>>;

/// From `nft -a list ruleset`: each rule's text by family, table, chain and handle, and
/// the devices of each ingress chain (nft's JSON leaves them out).
fn read_listing(listing: &str) -> (RuleTexts, ChainDevices) {
    let (mut texts, mut devices) = (HashMap::new(), HashMap::new());
    let (mut table, mut chain) = (None::<(String, String)>, None::<String>);
    for line in listing.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["table", family, name, ..] => table = Some(((*family).to_owned(), (*name).to_owned())),
            ["chain", name, ..] => chain = Some((*name).to_owned()),
            ["type", ..] if line.contains(" device") => {
                if let (Some((family, name)), Some(chain)) = (&table, &chain) {
                    let key = (family.clone(), name.clone(), chain.clone());
                    devices.insert(key, chain_devices(line));
                }
            }
            _ => {
                let (Some((family, name)), Some(chain), Some((rule, handle))) =
                    (&table, &chain, line.rsplit_once(" # handle "))
                else {
                    continue;
                };
                if let Ok(handle) = handle.trim().parse() {
                    let key = (family.clone(), name.clone(), chain.clone(), handle);
                    texts.insert(key, rule.trim().to_owned());
                }
            }
        }
    }
    (texts, devices)
}

/// The devices of a chain's `type` line: `device "mc0"` or `devices = { "a", "b" }`.
fn chain_devices(line: &str) -> Vec<String> {
    let after = line.split_once(" device").map_or("", |(_, rest)| rest);
    let spec = match after.split_once('{') {
        Some((_, set)) if after.trim_start().starts_with("s") => {
            set.split('}').next().unwrap_or("")
        }
        _ => after.split(" priority").next().unwrap_or(""),
    };
    spec.split(',')
        .map(|d| d.trim().trim_matches('"').trim().to_owned())
        .filter(|d| !d.is_empty())
        .collect()
}

/// Puts each ingress chain's devices into the JSON ruleset, as "dev".
fn add_devices(ruleset: &mut Value, devices: &ChainDevices) {
    for item in ruleset["nftables"].as_array_mut().into_iter().flatten() {
        let Some(chain) = item.get_mut("chain") else {
            continue;
        };
        let key = (
            chain["family"].as_str().unwrap_or_default().to_owned(),
            chain["table"].as_str().unwrap_or_default().to_owned(),
            chain["name"].as_str().unwrap_or_default().to_owned(),
        );
        if let (Some(found), true) = (devices.get(&key), chain.get("dev").is_none()) {
            chain["dev"] = serde_json::json!(found);
        }
    }
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
    // Each line: sl, local address:port (hexadecimal), ..., and last the socket's drops.
    let on_port: Vec<Vec<&str>> = sockets
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|words| {
            words
                .get(1)
                .and_then(|local| local.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok())
                == Some(port)
        })
        .collect();
    if on_port.is_empty() {
        return println!(
            "note: nothing listens on UDP port {port} here (start the receiver, then ask again)"
        );
    }
    let drops: u64 = on_port
        .iter()
        .filter_map(|words| words.last()?.parse::<u64>().ok())
        .sum();
    if drops > 0 {
        check_receive_buffer(port, drops, report);
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

/// The kernel dropped datagrams for a socket on the port: its receive buffer was full.
/// The fix depends on whether net.core.rmem_max capped what the program asked for (the
/// kernel then grants twice rmem_max, which `ss -m` shows as rb).
fn check_receive_buffer(port: u16, drops: u64, report: &mut Report) {
    let rmem_max: u64 = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let granted = Command::new("ss")
        .args([
            "-u",
            "-a",
            "-n",
            "-m",
            "-H",
            "sport",
            "=",
            &format!(":{port}"),
        ])
        .output()
        .ok()
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let at = text.find("rb")? + 2;
            let digits: String = text[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse::<u64>().ok()
        });
    let capped = granted.is_some_and(|rb| rmem_max > 0 && rb >= 2 * rmem_max);
    let problem = format!(
        "the kernel dropped {drops} datagrams for the socket on UDP port {port}: its receive buffer ({} bytes) was full, the program reads slower than they arrive",
        granted.map_or("?".to_owned(), |b| b.to_string())
    );
    let fix = if capped {
        format!("sysctl -w net.core.rmem_max={} (the program asked for more than the cap {rmem_max}), then restart the receiver", rmem_max * 4)
    } else {
        format!("restart the receiver asking for a larger receive buffer (mc_join_options.receive_buffer, JoinOptions::receive_buffer; up to net.core.rmem_max, {rmem_max}) or reading faster (mc_receive_batch)")
    };
    report.finding(&problem, &fix);
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

/// What the querier check judges a query by.
struct Querier {
    group: IpAddr,
    /// The router toward the sender on this link, which should be the LAN's querier or
    /// hear its reports.
    router: Option<IpAddr>,
    /// check_igmp_version already found the link on an old version.
    version_found: bool,
}

/// Listens on the interface for a general or group query (IGMP type 0x11, MLD type 130).
fn check_querier(
    link: &Link,
    querier: &Querier,
    listen: Duration,
    report: &mut Report,
) -> Result<(), String> {
    let v6 = querier.group.is_ipv6();
    let kind = if v6 { "MLD" } else { "IGMP" };
    if listen.is_zero() {
        report.skipped(&format!("{kind} querier: not listened for (--listen 0)"));
        return Ok(());
    }
    eprintln!(
        "mcat doctor: listening {:.0} s for an {kind} querier on {} (queries come every 125 s; --listen 0 skips)",
        listen.as_secs_f64(),
        link.name
    );
    match heard_query(&link.name, v6, listen) {
        Ok(Some((from, version))) => {
            let spoken = format!("{kind}v{version}");
            let role = match querier.router {
                Some(router) if router == from => " (the router toward the sender)".to_owned(),
                Some(router) => format!(" (not {router}, the router toward the sender: it hears the reports as a member of the LAN)"),
                None => String::new(),
            };
            let newest = if v6 { 2 } else { 3 };
            if version < newest && source_specific(querier.group) && !querier.version_found {
                report.finding(
                    &format!("the {kind} querier {from} on {} speaks {spoken}{role}: members answer it in {spoken}, without sources, so joins of the source-specific {} reach no router", link.name, querier.group),
                    &querier_upgrade_fix(v6),
                );
            } else {
                report.ok(&format!(
                    "an {spoken} querier ({from}) asks on {}{role}",
                    link.name
                ));
            }
            return Ok(());
        }
        Ok(None) => {}
        Err(RawListen::NotAllowed(e)) => {
            report.skipped(&format!(
                "{kind} querier: listening for queries needs root (CAP_NET_RAW): {e}"
            ));
            return Ok(());
        }
        Err(RawListen::Failed(e)) => return Err(e),
    }
    let (name, seconds) = (&link.name, listen.as_secs_f64());
    if let Some(bridge) = snooping_bridge_without_querier(name)? {
        report.finding(
            &format!("no {kind} querier heard on {name} in {seconds:.0} s, and the bridge {bridge} here snoops {kind} with its own querier off: it forgets members and stops forwarding to them"),
            &format!("ip link set {bridge} type bridge mcast_querier 1"),
        );
    } else if listen >= QUERY_INTERVAL {
        report.finding(
            &format!("no {kind} querier heard on {name} in {seconds:.0} s (queries come every 125 s): switches that snoop {kind} then forget members and stop forwarding"),
            "enable the querier of the LAN's switch or multicast router (a Linux bridge: ip link set BRIDGE type bridge mcast_querier 1)",
        );
    } else {
        println!(
            "note: no {kind} querier heard on {name} in {seconds:.0} s: a hint, not proof (queries come every 125 s; --listen 130 to be sure). Without one, switches that snoop {kind} forget members"
        );
    }
    Ok(())
}

/// Queriers' default interval: a listen this long without a query proves there is none.
const QUERY_INTERVAL: Duration = Duration::from_secs(125);

/// The bridge this interface is (or is a port of), if it snoops IGMP/MLD with its own
/// querier off (`ip -d -j link`).
fn snooping_bridge_without_querier(name: &str) -> Result<Option<String>, String> {
    let details = |dev: &str| -> Result<Value, String> {
        Ok(ip_json(&["-d", "link", "show", "dev", dev])?.unwrap_or_default()[0].clone())
    };
    let link = details(name)?;
    let bridge = match link["linkinfo"]["info_kind"].as_str() {
        Some("bridge") => link,
        _ if link["linkinfo"]["info_slave_kind"].as_str() == Some("bridge") => {
            details(link["master"].as_str().unwrap_or_default())?
        }
        _ => return Ok(None),
    };
    let data = &bridge["linkinfo"]["info_data"];
    let snooping = data["mcast_snooping"].as_u64() == Some(1);
    let querier = data["mcast_querier"].as_u64() == Some(1);
    Ok((snooping && !querier).then(|| bridge["ifname"].as_str().unwrap_or_default().to_owned()))
}

// Elsewhere only the stub below, which never runs, makes one.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
enum RawListen {
    NotAllowed(std::io::Error),
    Failed(String),
}

/// The sender and version of the first IGMP (MLD) query heard on the interface within
/// `listen`.
#[cfg(target_os = "linux")]
fn heard_query(name: &str, v6: bool, listen: Duration) -> Result<Option<(IpAddr, u8)>, RawListen> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::time::Instant;
    let (domain, protocol) = if v6 {
        (Domain::IPV6, 58)
    } else {
        (Domain::IPV4, 2)
    };
    let socket = Socket::new(domain, Type::RAW, Some(Protocol::from(protocol)))
        .map_err(RawListen::NotAllowed)?;
    socket
        .bind_device(Some(name.as_bytes()))
        .map_err(|e| RawListen::Failed(format!("cannot listen on {name}: {e}")))?;
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
            .map_err(|e| RawListen::Failed(e.to_string()))?;
        let Ok((len, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        if let Some(version) = query_version(&buf[..len], v6) {
            return Ok(Some((from.ip(), version)));
        }
    }
    Ok(None)
}

/// The version of an IGMP (MLD) query, told by its length (RFC 3376 7.1, RFC 3810 8.1):
/// IGMP 8 bytes is v1 (no maximum response time) or v2, 12 or more v3; MLD 24 bytes is
/// v1, 28 or more v2. IPv4 raw sockets see the IP header; IPv6 ones only the message.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))] // only Linux's heard_query reads
fn query_version(packet: &[u8], v6: bool) -> Option<u8> {
    if v6 {
        return match (packet.first()?, packet.len()) {
            (130, 24) => Some(1),
            (130, 28..) => Some(2),
            _ => None,
        };
    }
    let igmp = packet.get(usize::from(packet.first()? & 0x0f) * 4..)?;
    match (igmp.first()?, igmp.len()) {
        (0x11, 8) if igmp[1] == 0 => Some(1),
        (0x11, 8) => Some(2),
        (0x11, 12..) => Some(3),
        _ => None,
    }
}

#[cfg(not(target_os = "linux"))]
fn heard_query(
    _name: &str,
    _v6: bool,
    _listen: Duration,
) -> Result<Option<(IpAddr, u8)>, RawListen> {
    // Never reached: run() stops first on other systems.
    Err(RawListen::NotAllowed(
        std::io::ErrorKind::Unsupported.into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingress_devices_and_rule_texts_from_the_listing() {
        let listing = "table netdev n {\n\tchain in {\n\t\ttype filter hook ingress device \"mc0\" priority filter; policy accept;\n\t\tudp dport 9999 drop # handle 3\n\t}\n\tchain two {\n\t\ttype filter hook ingress devices = { \"a\", \"b\" } priority 0; policy accept;\n\t}\n}\n";
        let (texts, devices) = read_listing(listing);
        let key = |c: &str| ("netdev".to_owned(), "n".to_owned(), c.to_owned());
        assert_eq!(devices[&key("in")], vec!["mc0"]);
        assert_eq!(devices[&key("two")], vec!["a", "b"]);
        let rule = ("netdev".to_owned(), "n".to_owned(), "in".to_owned(), 3);
        assert_eq!(texts[&rule], "udp dport 9999 drop");
    }

    #[test]
    fn query_versions_by_length() {
        // An IPv4 header with the router-alert option (24 bytes), then the query.
        let ip = |igmp: &[u8]| [&[0x46u8; 1][..], &[0u8; 23], igmp].concat();
        assert_eq!(
            query_version(&ip(&[0x11, 0, 0, 0, 0, 0, 0, 0]), false),
            Some(1)
        );
        assert_eq!(
            query_version(&ip(&[0x11, 100, 0, 0, 0, 0, 0, 0]), false),
            Some(2)
        );
        assert_eq!(
            query_version(&ip(&[0x11, 100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), false),
            Some(3)
        );
        assert_eq!(
            query_version(&ip(&[0x16, 0, 0, 0, 0, 0, 0, 0]), false),
            None
        ); // a report
        assert_eq!(query_version(&[130; 24], true), Some(1));
        assert_eq!(query_version(&[130; 28], true), Some(2));
        assert_eq!(query_version(&[131; 24], true), None);
    }

    #[test]
    fn source_specific_ranges() {
        for ssm in ["232.1.2.3", "ff35::1", "ff3e::8000:1"] {
            assert!(source_specific(ssm.parse().unwrap()), "{ssm}");
        }
        for any in ["239.1.1.1", "233.0.0.1", "ff05::1", "ff15::1"] {
            assert!(!source_specific(any.parse().unwrap()), "{any}");
        }
    }
}
