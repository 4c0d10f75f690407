//! What `mcat relay` relays, from its TOML file (`--config`) or its flags: groups and
//! ranges, interfaces, per-direction rules, the site link and the limits. Everything is
//! checked here, so a bad file is refused at start (and on SIGHUP, where the old
//! configuration stays) with a message that names the entry.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;

use multicast::GroupKey;
use serde::Deserialize;

/// The direction name of the site link in rules (`from = "site"`, `to = ["site"]`).
pub const SITE: &str = "site";

/// The file as written; see docs/relay.md for every key.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub interfaces: Vec<String>,
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleFile>,
    pub site: Option<SiteFile>,
    #[serde(default)]
    pub limits: LimitsFile,
    /// Datagrams sent with TTL 1 (what discovery protocols and most multicast APIs send
    /// by default) relayed between this host's interfaces, still with TTL 1.
    #[serde(default = "yes")]
    pub forward_ttl_1: bool,
    /// "original" (the sender's address) or "relay" (this relay's, on that interface).
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub from: String,
    pub to: Vec<String>,
    pub groups: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteFile {
    pub listen: String,
    pub key_file: String,
    #[serde(default)]
    pub key_id: u8,
    #[serde(default)]
    pub peers: Vec<String>,
    #[serde(default = "one")]
    pub hop_limit: u8,
    #[serde(default)]
    pub forward_ttl_1: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    #[serde(default = "default_rate")]
    pub group_rate: f64,
    #[serde(default = "default_rate")]
    pub peer_rate: f64,
    #[serde(default = "default_max_groups")]
    pub max_groups: usize,
}

impl Default for LimitsFile {
    fn default() -> LimitsFile {
        LimitsFile {
            group_rate: default_rate(),
            peer_rate: default_rate(),
            max_groups: default_max_groups(),
        }
    }
}

fn yes() -> bool {
    true
}
fn one() -> u8 {
    1
}
fn default_rate() -> f64 {
    10_000.0
}
fn default_max_groups() -> usize {
    1024
}

/// A checked configuration.
pub struct Config {
    pub groups: Vec<GroupRange>,
    pub interfaces: Vec<String>,
    /// Explicit rules; none means every input may send into every other destination.
    pub rules: Vec<Rule>,
    pub site: Option<Site>,
    pub limits: Limits,
    pub forward_ttl_1: bool,
    pub source_is_relay: bool,
}

pub struct Rule {
    pub from: String,
    pub to: Vec<String>,
    pub groups: Option<Vec<GroupRange>>,
}

pub struct Site {
    pub listen: SocketAddr,
    pub key: GroupKey,
    /// The peers as written and their addresses.
    pub peers: Vec<(String, SocketAddr)>,
    pub hop_limit: u8,
    pub forward_ttl_1: bool,
}

#[derive(Clone, Copy)]
pub struct Limits {
    pub group_rate: f64,
    pub peer_rate: f64,
    pub max_groups: usize,
}

/// A group or a range of them, on one port or all: `239.1.1.1:9999`, `239.0.0.0/8:*`,
/// `[ff02::fb%eth1]:5353` (a zone limits the entry to what arrives on that interface).
#[derive(Clone, Debug, PartialEq)]
pub struct GroupRange {
    pub network: IpAddr,
    pub prefix: u8,
    pub port: Option<u16>,
    pub zone: Option<String>,
}

impl GroupRange {
    pub fn parse(text: &str) -> Result<GroupRange, String> {
        let bad = |why: &str| {
            format!(
                "group {text:?}: {why} (say 239.1.1.1:9999, 239.0.0.0/8:* or [ff02::fb%eth0]:5353)"
            )
        };
        let (address, port) = text.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let port = match port {
            "*" => None,
            p => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad("the port is not 1..65535 or *"))?,
            ),
        };
        let address = match address.strip_prefix('[') {
            Some(inner) => inner
                .strip_suffix(']')
                .ok_or_else(|| bad("an unclosed bracket"))?,
            None if address.contains(':') => return Err(bad("an IPv6 group goes in brackets")),
            None => address,
        };
        let (address, zone) = match address.split_once('%') {
            Some((a, z)) if !z.is_empty() => (a, Some(z.to_owned())),
            Some(_) => return Err(bad("an empty zone")),
            None => (address, None),
        };
        let (address, prefix) = match address.split_once('/') {
            Some((a, p)) => (
                a,
                Some(
                    p.parse::<u8>()
                        .map_err(|_| bad("the prefix length is not a number"))?,
                ),
            ),
            None => (address, None),
        };
        let network: IpAddr = address.parse().map_err(|_| bad("not an IP address"))?;
        let (bits, least) = match network {
            IpAddr::V4(_) => (32u8, 4u8),
            IpAddr::V6(_) => (128, 8),
        };
        let prefix = prefix.unwrap_or(bits);
        if prefix > bits || prefix < least {
            return Err(bad(&format!(
                "the prefix length must be {least}..{bits} (within the multicast range)"
            )));
        }
        if !network.is_multicast() {
            return Err(bad("not a multicast address"));
        }
        if masked(network, prefix) != network {
            return Err(bad("the address has bits set past the prefix length"));
        }
        if zone.is_some() && network.is_ipv4() {
            return Err(bad("only IPv6 groups take a zone"));
        }
        Ok(GroupRange {
            network,
            prefix,
            port,
            zone,
        })
    }

    /// Whether a datagram to `group:port` that arrived on `interface` (None: from the
    /// site link) belongs to this entry.
    pub fn contains(&self, group: IpAddr, port: u16, interface: Option<&str>) -> bool {
        self.port.is_none_or(|p| p == port)
            && group.is_ipv4() == self.network.is_ipv4()
            && masked(group, self.prefix) == self.network
            && match (&self.zone, interface) {
                (Some(zone), Some(interface)) => zone == interface,
                _ => true,
            }
    }
}

impl std::fmt::Display for GroupRange {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let full = if self.network.is_ipv4() { 32 } else { 128 };
        let mut address = self.network.to_string();
        if self.prefix != full {
            address += &format!("/{}", self.prefix);
        }
        if let Some(zone) = &self.zone {
            address += &format!("%{zone}");
        }
        if self.network.is_ipv6() {
            address = format!("[{address}]");
        }
        match self.port {
            Some(port) => write!(f, "{address}:{port}"),
            None => write!(f, "{address}:*"),
        }
    }
}

fn masked(address: IpAddr, prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}

impl Config {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let file: File = toml::from_str(&text)
            .map_err(|e| format!("{}: {}", path.display(), e.to_string().trim_end()))?;
        Config::check(file).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn check(file: File) -> Result<Config, String> {
        let groups = parse_groups(&file.groups)?;
        if groups.is_empty() {
            return Err("no groups to relay (groups = [\"239.255.255.250:1900\", ...])".into());
        }
        let mut interfaces = Vec::new();
        for name in &file.interfaces {
            if name == SITE {
                return Err(format!(
                    "{SITE:?} names the site link in rules, not an interface"
                ));
            }
            if interfaces.contains(name) {
                return Err(format!("interface {name:?} is listed twice"));
            }
            multicast::interface::resolve(name)
                .map_err(|e| format!("interface {name:?}: {}", e.message()))?;
            interfaces.push(name.clone());
        }
        let site = file.site.map(check_site).transpose()?;
        let directions = interfaces.len() + usize::from(site.is_some());
        if directions < 2 {
            return Err(
                "nothing to relay between: name two interfaces, or one and a [site]".into(),
            );
        }
        let known =
            |name: &str| interfaces.iter().any(|i| i == name) || (name == SITE && site.is_some());
        let mut rules = Vec::new();
        for rule in file.rules {
            for name in std::iter::once(&rule.from).chain(&rule.to) {
                if !known(name) {
                    return Err(format!(
                        "rule from {:?}: {name:?} is neither a listed interface nor \"site\" (with a [site])",
                        rule.from
                    ));
                }
            }
            let groups = rule.groups.as_deref().map(parse_groups).transpose()?;
            rules.push(Rule {
                from: rule.from,
                to: rule.to,
                groups,
            });
        }
        let limits = file.limits;
        for (name, rate) in [
            ("group_rate", limits.group_rate),
            ("peer_rate", limits.peer_rate),
        ] {
            if !(rate > 0.0 && rate <= 1e9) {
                return Err(format!(
                    "limits.{name} must be datagrams per second, more than 0 up to 1e9, not {rate}"
                ));
            }
        }
        if limits.max_groups == 0 {
            return Err("limits.max_groups must be at least 1".into());
        }
        let source_is_relay = match file.source.as_deref() {
            None | Some("original") => false,
            Some("relay") => true,
            Some(other) => {
                return Err(format!(
                    "source must be \"original\" or \"relay\", not {other:?}"
                ))
            }
        };
        Ok(Config {
            groups,
            interfaces,
            rules,
            site,
            limits: Limits {
                group_rate: limits.group_rate,
                peer_rate: limits.peer_rate,
                max_groups: limits.max_groups,
            },
            forward_ttl_1: file.forward_ttl_1,
            source_is_relay,
        })
    }

    /// The entry a datagram to `group:port` arriving on `interface` belongs to.
    pub fn relays(&self, group: IpAddr, port: u16, interface: Option<&str>) -> bool {
        self.groups
            .iter()
            .any(|g| g.contains(group, port, interface))
    }

    /// Whether a datagram of `group:port` from `from` may go into `to`.
    pub fn allows(&self, from: &str, to: &str, group: IpAddr, port: u16) -> bool {
        if self.rules.is_empty() {
            return from != to;
        }
        let interface = (from != SITE).then_some(from);
        self.rules.iter().any(|rule| {
            rule.from == from
                && rule.to.iter().any(|t| t == to)
                && rule
                    .groups
                    .as_ref()
                    .is_none_or(|groups| groups.iter().any(|g| g.contains(group, port, interface)))
        })
    }
}

fn parse_groups(texts: &[String]) -> Result<Vec<GroupRange>, String> {
    texts.iter().map(|t| GroupRange::parse(t)).collect()
}

fn check_site(site: SiteFile) -> Result<Site, String> {
    let listen = site.listen.parse::<SocketAddr>().map_err(|_| {
        format!(
            "site.listen {:?} is not ADDRESS:PORT (say 0.0.0.0:7400)",
            site.listen
        )
    })?;
    let path = Path::new(&site.key_file);
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the key file {}: {e}", path.display()))?;
    let key = crate::key_from_text(&text, path, site.key_id)?;
    let mut peers = Vec::new();
    for peer in &site.peers {
        let address = peer
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.find(|a| a.is_ipv4() == listen.is_ipv4()))
            .ok_or_else(|| {
                format!(
                    "site peer {peer:?} is not HOST:PORT reachable over {}",
                    family(listen)
                )
            })?;
        peers.push((peer.clone(), address));
    }
    if site.hop_limit == 0 {
        return Err("site.hop_limit must be at least 1".into());
    }
    Ok(Site {
        listen,
        key,
        peers,
        hop_limit: site.hop_limit,
        forward_ttl_1: site.forward_ttl_1,
    })
}

fn family(address: SocketAddr) -> &'static str {
    if address.is_ipv4() {
        "IPv4 (as site.listen)"
    } else {
        "IPv6 (as site.listen)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_match() {
        let all = GroupRange::parse("239.0.0.0/8:*").unwrap();
        assert!(all.contains("239.7.7.7".parse().unwrap(), 4321, Some("a")));
        assert!(!all.contains("238.7.7.7".parse().unwrap(), 4321, Some("a")));
        assert!(!all.contains("ff15::1".parse().unwrap(), 4321, Some("a")));
        let one = GroupRange::parse("239.255.255.250:1900").unwrap();
        assert!(one.contains("239.255.255.250".parse().unwrap(), 1900, None));
        assert!(!one.contains("239.255.255.250".parse().unwrap(), 1901, None));
        let zoned = GroupRange::parse("[ff02::fb%br10]:5353").unwrap();
        assert!(zoned.contains("ff02::fb".parse().unwrap(), 5353, Some("br10")));
        assert!(!zoned.contains("ff02::fb".parse().unwrap(), 5353, Some("br20")));
        assert!(GroupRange::parse("[ff00::/8]:*").is_ok());
    }

    #[test]
    fn bad_groups_say_why() {
        for (text, why) in [
            ("239.1.1.1", "no port"),
            ("10.0.0.1:9", "not a multicast address"),
            ("239.1.1.1/8:*", "bits set past"),
            ("239.0.0.0/33:*", "prefix length must be"),
            ("0.0.0.0/0:*", "prefix length must be"),
            ("ff02::1:9", "in brackets"),
            ("239.1.1.1:0", "not 1..65535"),
            ("239.1.1.1%eth0:9", "only IPv6"),
            ("[ff02::1:9", "unclosed"),
        ] {
            let e = GroupRange::parse(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    /// Each mistake in a file is refused with a message naming it.
    #[test]
    fn bad_files_say_what_is_wrong() {
        let dir = std::env::temp_dir().join(format!("mcat-relay-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("site.key");
        std::fs::write(&key, "ab".repeat(32)).unwrap();
        let short_key = dir.join("short.key");
        std::fs::write(&short_key, "abcd").unwrap();
        let site = |extra: &str, key: &Path| {
            format!(
                "[site]\nlisten = \"127.0.0.1:0\"\nkey_file = \"{}\"\n{extra}",
                key.display()
            )
        };
        let cases: Vec<(String, &str)> = vec![
            ("groups = [\"239.1.1.1:9\"]\ninterfaces = [\"lo\"]\ncolour = 1\n".into(), "unknown field `colour`"),
            ("interfaces = [\"lo\"]\n".into(), "no groups to relay"),
            ("groups = [\"239.1.1.1:9\"]\ninterfaces = [\"no-such-if\"]\n".into(), "interface \"no-such-if\""),
            ("groups = [\"239.1.1.1:9\"]\ninterfaces = [\"lo\", \"lo\"]\n".into(), "listed twice"),
            ("groups = [\"239.1.1.1:9\"]\ninterfaces = [\"site\", \"lo\"]\n".into(), "names the site link"),
            (format!("groups = [\"239.1.1.1:9\"]\ninterfaces = [\"lo\"]\nsource = \"peer\"\n{}", site("", &key)), "source must be"),
            (format!("groups = [\"239.1.1.1:9\"]\ninterfaces = [\"lo\"]\n[[rule]]\nfrom = \"lo\"\nto = [\"eth9\"]\n{}", site("", &key)), "\"eth9\" is neither"),
            (format!("groups = [\"239.1.1.1:9\"]\ninterfaces = [\"lo\"]\n[limits]\ngroup_rate = 0\n{}", site("", &key)), "limits.group_rate"),
            (format!("groups = [\"239.1.1.1:9\"]\ninterfaces = [\"lo\"]\n{}", site("hop_limit = 0", &key)), "hop_limit"),
            (format!("groups = [\"239.1.1.1:9\"]\ninterfaces = [\"lo\"]\n{}", site("", &short_key)), "must be 32 bytes"),
            (format!("groups = [\"239.1.1.1:9\"]\ninterfaces = [\"lo\"]\n{}", site("", &dir.join("none"))), "cannot read the key file"),
            (format!("groups = [\"239.1.1.1:9\"]\ninterfaces = [\"lo\"]\n{}", site("peers = [\"nowhere\"]", &key)), "site peer \"nowhere\""),
        ];
        for (text, why) in cases {
            let path = dir.join("relay.toml");
            std::fs::write(&path, &text).unwrap();
            let refused = Config::load(&path)
                .err()
                .unwrap_or_else(|| panic!("accepted: {text}"));
            assert!(
                refused.contains(why),
                "{text}\n-> {refused}\n(expected {why:?})"
            );
        }
        let path = dir.join("relay.toml");
        std::fs::write(
            &path,
            format!(
                "groups = [\"239.0.0.0/8:*\"]\ninterfaces = [\"lo\"]\n{}",
                site("peers = [\"127.0.0.1:7400\"]", &key)
            ),
        )
        .unwrap();
        assert!(Config::load(&path).is_ok(), "a good file");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rules_decide_each_direction() {
        let file = File {
            groups: vec!["239.0.0.0/8:*".into()],
            interfaces: vec!["lo".into()],
            rules: vec![],
            site: None,
            limits: LimitsFile::default(),
            forward_ttl_1: true,
            source: None,
        };
        // One interface and no site: nothing to relay between.
        let refused = Config::check(file).err().expect("refused");
        assert!(refused.contains("nothing to relay between"), "{refused}");
        let config = Config {
            groups: vec![GroupRange::parse("239.0.0.0/8:*").unwrap()],
            interfaces: vec!["a".into(), "b".into()],
            rules: vec![Rule {
                from: "a".into(),
                to: vec!["b".into()],
                groups: Some(vec![GroupRange::parse("239.1.1.1:9").unwrap()]),
            }],
            site: None,
            limits: Limits {
                group_rate: 1.0,
                peer_rate: 1.0,
                max_groups: 1,
            },
            forward_ttl_1: true,
            source_is_relay: false,
        };
        let g = "239.1.1.1".parse().unwrap();
        assert!(config.allows("a", "b", g, 9));
        assert!(!config.allows("b", "a", g, 9));
        assert!(!config.allows("a", "b", g, 10));
    }
}
