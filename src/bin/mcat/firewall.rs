//! doctor's firewall check: the nftables ruleset read as data (`nft -j list ruleset`) and
//! each rule interpreted for one datagram of the group: what it matches (protocol, ports
//! as numbers, ranges and sets, named sets too, the group and sender addresses, the input
//! interface, connection state) and what it decides (drop and reject against accept;
//! log, counter and other statements decide nothing). Base chains are walked in the
//! order the kernel runs them (netdev ingress of the interface, then ingress, prerouting
//! and input of the group's family, by priority), jumps and gotos followed.
//!
//! A rule whose match cannot be settled here (marks, rate limits, fib lookups) is not
//! a finding: it is named as a note, and any drop after it is a note too.

use std::collections::HashMap;
use std::net::IpAddr;

use serde_json::Value;

/// The datagram whose fate is asked.
pub struct Datagram {
    pub group: IpAddr,
    pub port: u16,
    pub sender: Option<IpAddr>,
    pub interface: String,
}

/// A rule or chain, as nft names it.
#[derive(Clone, Debug, PartialEq)]
pub struct Place {
    pub family: String,
    pub table: String,
    pub chain: String,
    /// The rule's handle; None: the chain's policy.
    pub handle: Option<u64>,
}

/// What the ruleset does to the datagram.
#[derive(Debug, Default)]
pub struct Verdicts {
    /// Rules (or chain policies) that certainly drop or reject it.
    pub drops: Vec<Place>,
    /// Rules that drop or reject it only if a match this check cannot settle holds, or
    /// that come after such a rule.
    pub maybe: Vec<Place>,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Truth {
    Yes,
    No,
    Unknown,
}

struct Chain {
    family: String,
    table: String,
    name: String,
    hook: Option<String>,
    priority: i64,
    policy_drop: bool,
    devices: Vec<String>,
    rules: Vec<Value>,
}

/// The ruleset's chains (rules in order) and named sets' elements.
struct Ruleset {
    chains: Vec<Chain>,
    sets: HashMap<(String, String, String), Vec<Value>>,
}

/// What `nft -j list ruleset` printed, interpreted for `datagram`.
pub fn judge(ruleset: &Value, datagram: &Datagram) -> Verdicts {
    let ruleset = parse(ruleset);
    let v6 = datagram.group.is_ipv6();
    let mut base: Vec<&Chain> = ruleset
        .chains
        .iter()
        .filter(|c| applies(c, v6, &datagram.interface))
        .collect();
    base.sort_by_key(|c| (hook_order(c.hook.as_deref()), c.priority));
    let mut verdicts = Verdicts::default();
    for chain in base {
        let mut walk = Walk {
            ruleset: &ruleset,
            datagram,
            uncertain: false,
            verdicts: &mut verdicts,
            depth: 0,
        };
        if let Outcome::FellThrough = walk.chain(chain) {
            if chain.policy_drop {
                let place = place(chain, None);
                walk.record(place);
            }
        }
    }
    verdicts
}

fn parse(ruleset: &Value) -> Ruleset {
    let items = ruleset["nftables"].as_array().cloned().unwrap_or_default();
    let mut chains: Vec<Chain> = Vec::new();
    let mut sets = HashMap::new();
    for item in &items {
        if let Some(c) = item.get("chain") {
            let devices = match &c["dev"] {
                Value::String(d) => vec![d.clone()],
                Value::Array(ds) => ds
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                _ => Vec::new(),
            };
            chains.push(Chain {
                family: text(&c["family"]),
                table: text(&c["table"]),
                name: text(&c["name"]),
                hook: c["hook"].as_str().map(str::to_owned),
                priority: c["prio"].as_i64().unwrap_or(0),
                policy_drop: c["policy"].as_str() == Some("drop"),
                devices,
                rules: Vec::new(),
            });
        } else if let Some(s) = item.get("set").or_else(|| item.get("map")) {
            let key = (text(&s["family"]), text(&s["table"]), text(&s["name"]));
            sets.insert(key, s["elem"].as_array().cloned().unwrap_or_default());
        }
    }
    for item in &items {
        if let Some(r) = item.get("rule") {
            let owner = chains.iter_mut().find(|c| {
                c.family == text(&r["family"])
                    && c.table == text(&r["table"])
                    && c.name == text(&r["chain"])
            });
            if let Some(chain) = owner {
                chain.rules.push(r.clone());
            }
        }
    }
    Ruleset { chains, sets }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// Whether a base chain sees datagrams arriving on `interface` for the family.
fn applies(chain: &Chain, v6: bool, interface: &str) -> bool {
    let Some(hook) = chain.hook.as_deref() else {
        return false; // a regular chain: reached by jumps only
    };
    let family_fits = match chain.family.as_str() {
        "inet" => true,
        "ip" => !v6,
        "ip6" => v6,
        "netdev" => true,
        _ => false, // bridge, arp
    };
    let device_fits = chain.devices.is_empty() || chain.devices.iter().any(|d| d == interface);
    family_fits && device_fits && matches!(hook, "ingress" | "prerouting" | "input")
}

fn hook_order(hook: Option<&str>) -> u8 {
    match hook {
        Some("ingress") => 0,
        Some("prerouting") => 1,
        _ => 2,
    }
}

fn place(chain: &Chain, handle: Option<u64>) -> Place {
    Place {
        family: chain.family.clone(),
        table: chain.table.clone(),
        chain: chain.name.clone(),
        handle,
    }
}

enum Outcome {
    Accept,
    Drop,
    FellThrough,
}

struct Walk<'a> {
    ruleset: &'a Ruleset,
    datagram: &'a Datagram,
    /// A rule that may have decided (its match unsettled) came before: what follows is
    /// a note, not a finding.
    uncertain: bool,
    verdicts: &'a mut Verdicts,
    depth: u8,
}

impl<'a> Walk<'a> {
    fn record(&mut self, place: Place) {
        if self.uncertain {
            self.verdicts.maybe.push(place);
        } else {
            self.verdicts.drops.push(place);
        }
    }

    fn chain(&mut self, chain: &Chain) -> Outcome {
        if self.depth > 16 {
            self.uncertain = true;
            return Outcome::FellThrough;
        }
        for rule in &chain.rules {
            let (truth, verdict) = self.rule(chain, rule);
            let Some(verdict) = verdict else { continue };
            let handle = rule["handle"].as_u64();
            match (truth, verdict) {
                (Truth::No, _) => {}
                (Truth::Unknown, Verdict::Drop) => self.verdicts.maybe.push(place(chain, handle)),
                (Truth::Unknown, _) => self.uncertain = true,
                (Truth::Yes, Verdict::Accept) => return Outcome::Accept,
                (Truth::Yes, Verdict::Drop) => {
                    self.record(place(chain, handle));
                    return Outcome::Drop;
                }
                (Truth::Yes, Verdict::Return) => return Outcome::FellThrough,
                (Truth::Yes, Verdict::Jump(target, goto)) => {
                    let Some(target) = self.find(chain, &target) else {
                        self.uncertain = true;
                        continue;
                    };
                    self.depth += 1;
                    let outcome = self.chain(target);
                    self.depth -= 1;
                    match outcome {
                        Outcome::FellThrough if !goto => {}
                        decided => return decided,
                    }
                }
                (Truth::Yes, Verdict::Unknown) => self.uncertain = true,
            }
        }
        Outcome::FellThrough
    }

    fn find(&self, from: &Chain, name: &str) -> Option<&'a Chain> {
        self.ruleset
            .chains
            .iter()
            .find(|c| c.family == from.family && c.table == from.table && c.name == name)
    }

    /// Whether the rule matches the datagram, and the verdict it gives (None: it only
    /// counts, logs or sets something).
    fn rule(&self, chain: &Chain, rule: &Value) -> (Truth, Option<Verdict>) {
        let mut truth = Truth::Yes;
        for expr in rule["expr"].as_array().into_iter().flatten() {
            let Some((kind, body)) = expr.as_object().and_then(|o| o.iter().next()) else {
                continue;
            };
            let step = match kind.as_str() {
                "match" => self.matches(chain, body),
                "accept" => return (truth, Some(Verdict::Accept)),
                "drop" | "reject" => return (truth, Some(Verdict::Drop)),
                "return" => return (truth, Some(Verdict::Return)),
                "jump" | "goto" => {
                    let target = text(&body["target"]);
                    return (truth, Some(Verdict::Jump(target, kind == "goto")));
                }
                "vmap" => return self.verdict_map(chain, body, truth),
                "queue" => return (truth, Some(Verdict::Unknown)),
                // Statements that decide nothing about this datagram.
                "counter" | "log" | "meta" | "mangle" | "notrack" | "ct" | "set" | "quota"
                | "comment" => Truth::Yes,
                // A rate limit matches some datagrams and not others.
                _ => Truth::Unknown,
            };
            truth = and(truth, step);
        }
        (truth, None)
    }

    /// `KEY vmap { VALUE : VERDICT, ... }`.
    fn verdict_map(&self, chain: &Chain, body: &Value, truth: Truth) -> (Truth, Option<Verdict>) {
        let Some(key) = self.value_of(&body["key"]) else {
            return (and(truth, Truth::Unknown), Some(Verdict::Unknown));
        };
        let entries = match &body["data"] {
            Value::Object(o) if o.contains_key("set") => {
                o["set"].as_array().cloned().unwrap_or_default()
            }
            Value::String(name) => self.named(chain, name).cloned().unwrap_or_default(),
            _ => return (and(truth, Truth::Unknown), Some(Verdict::Unknown)),
        };
        for entry in entries {
            let pair = entry
                .as_array()
                .cloned()
                .or_else(|| entry["elem"].as_array().cloned())
                .unwrap_or_default();
            let [k, verdict] = pair.as_slice() else {
                continue;
            };
            if key.within(k, self, chain) == Some(true) {
                let verdict = match verdict
                    .as_object()
                    .and_then(|o| o.keys().next())
                    .map(String::as_str)
                {
                    Some("accept") => Verdict::Accept,
                    Some("drop" | "reject") => Verdict::Drop,
                    Some("return") => Verdict::Return,
                    Some(kind @ ("jump" | "goto")) => {
                        Verdict::Jump(text(&verdict[kind]["target"]), kind == "goto")
                    }
                    _ => Verdict::Unknown,
                };
                return (truth, Some(verdict));
            }
        }
        (Truth::No, None)
    }

    fn named(&self, chain: &Chain, name: &str) -> Option<&Vec<Value>> {
        let name = name.strip_prefix('@').unwrap_or(name);
        self.ruleset
            .sets
            .get(&(chain.family.clone(), chain.table.clone(), name.to_owned()))
    }

    /// One `match`: {"op", "left", "right"}.
    fn matches(&self, chain: &Chain, body: &Value) -> Truth {
        let left = &body["left"];
        if let Some(protocol) = left["payload"]["protocol"].as_str() {
            // A header of another protocol than this datagram's never matches it, "!=" or not.
            let ours = match protocol {
                "udp" | "th" => true,
                "ip" => !self.datagram.group.is_ipv6(),
                "ip6" => self.datagram.group.is_ipv6(),
                _ => false,
            };
            if !ours {
                return Truth::No;
            }
        }
        let Some(value) = self.value_of(left) else {
            return Truth::Unknown;
        };
        let within = value.within(&body["right"], self, chain);
        match (body["op"].as_str().unwrap_or("=="), within) {
            (_, None) => Truth::Unknown,
            ("==" | "in", Some(w)) => truth_of(w),
            ("!=", Some(w)) => truth_of(!w),
            (op, Some(_)) => match (&value, body["right"].as_u64()) {
                (Known::Number(n), Some(r)) => truth_of(match op {
                    "<" => *n < r,
                    ">" => *n > r,
                    "<=" => *n <= r,
                    ">=" => *n >= r,
                    _ => return Truth::Unknown,
                }),
                _ => Truth::Unknown,
            },
        }
    }

    /// What the datagram holds for an expression's left side, where that is known.
    fn value_of(&self, left: &Value) -> Option<Known> {
        let d = self.datagram;
        if let Some(payload) = left.get("payload") {
            return match (payload["protocol"].as_str()?, payload["field"].as_str()?) {
                ("udp" | "th", "dport") => Some(Known::Number(u64::from(d.port))),
                ("ip" | "ip6", "daddr") => Some(Known::Address(d.group)),
                ("ip" | "ip6", "saddr") => d.sender.map(Known::Address),
                ("ip", "protocol") | ("ip6", "nexthdr") => Some(Known::Protocol),
                _ => None,
            };
        }
        if let Some(meta) = left.get("meta") {
            return match meta["key"].as_str()? {
                "l4proto" => Some(Known::Protocol),
                "iifname" | "iif" => Some(Known::Name(d.interface.clone())),
                "nfproto" => Some(Known::Name(
                    if d.group.is_ipv6() { "ipv6" } else { "ipv4" }.to_owned(),
                )),
                "protocol" => Some(Known::Name(
                    if d.group.is_ipv6() { "ip6" } else { "ip" }.to_owned(),
                )),
                "pkttype" => Some(Known::Name("multicast".to_owned())),
                _ => None,
            };
        }
        if left["ct"]["key"].as_str() == Some("state") {
            // A multicast flow never sees a reply: conntrack keeps it new.
            return Some(Known::Name("new".to_owned()));
        }
        None
    }
}

enum Verdict {
    Accept,
    Drop,
    Return,
    /// Target chain; true for goto.
    Jump(String, bool),
    Unknown,
}

/// A value of the datagram an expression compares.
enum Known {
    Number(u64),
    Address(IpAddr),
    /// The transport protocol: UDP (17).
    Protocol,
    Name(String),
}

impl Known {
    /// Whether `right` (a value, range, prefix, set, list or named set) holds it; None
    /// when that cannot be told.
    fn within(&self, right: &Value, walk: &Walk, chain: &Chain) -> Option<bool> {
        match right {
            Value::Array(items) => any_within(self, items, walk, chain),
            Value::Object(o) if o.contains_key("set") => any_within(
                self,
                o["set"].as_array().map_or(&[][..], Vec::as_slice),
                walk,
                chain,
            ),
            Value::Object(o) if o.contains_key("elem") => {
                self.within(&o["elem"]["val"], walk, chain)
            }
            Value::Object(o) if o.contains_key("range") => {
                let range = o["range"].as_array()?;
                let (low, high) = (range.first()?, range.get(1)?);
                match self {
                    Known::Number(n) => Some(low.as_u64()? <= *n && *n <= high.as_u64()?),
                    Known::Address(a) => {
                        let (low, high): (IpAddr, IpAddr) =
                            (low.as_str()?.parse().ok()?, high.as_str()?.parse().ok()?);
                        Some(low <= *a && *a <= high)
                    }
                    _ => None,
                }
            }
            Value::Object(o) if o.contains_key("prefix") => match self {
                Known::Address(a) => {
                    let addr: IpAddr = o["prefix"]["addr"].as_str()?.parse().ok()?;
                    let len = u8::try_from(o["prefix"]["len"].as_u64()?).ok()?;
                    Some(crate::doctor::same_prefix(addr, *a, len))
                }
                _ => None,
            },
            Value::String(s) if s.starts_with('@') => {
                let items = walk.named(chain, s)?;
                any_within(self, items, walk, chain)
            }
            Value::String(s) => match self {
                Known::Address(a) => s.parse::<IpAddr>().ok().map(|r| r == *a),
                Known::Protocol => Some(s == "udp"),
                Known::Name(n) => Some(match s.strip_suffix('*') {
                    Some(prefix) => n.starts_with(prefix),
                    None => n == s,
                }),
                Known::Number(n) => s.parse::<u64>().ok().map(|r| r == *n),
            },
            Value::Number(r) => match self {
                Known::Number(n) => Some(r.as_u64() == Some(*n)),
                Known::Protocol => Some(r.as_u64() == Some(17)),
                _ => None,
            },
            _ => None,
        }
    }
}

fn any_within(value: &Known, items: &[Value], walk: &Walk, chain: &Chain) -> Option<bool> {
    let mut unknown = false;
    for item in items {
        match value.within(item, walk, chain) {
            Some(true) => return Some(true),
            None => unknown = true,
            Some(false) => {}
        }
    }
    (!unknown).then_some(false)
}

fn truth_of(b: bool) -> Truth {
    if b {
        Truth::Yes
    } else {
        Truth::No
    }
}

fn and(a: Truth, b: Truth) -> Truth {
    match (a, b) {
        (Truth::No, _) | (_, Truth::No) => Truth::No,
        (Truth::Yes, Truth::Yes) => Truth::Yes,
        _ => Truth::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn datagram() -> Datagram {
        Datagram {
            group: "239.1.1.1".parse().unwrap(),
            port: 9999,
            sender: Some("10.0.0.2".parse().unwrap()),
            interface: "mc0".into(),
        }
    }

    /// A ruleset of one inet input chain holding `rules` (each a list of expressions).
    fn input(policy: &str, rules: Vec<Value>) -> Value {
        let mut items = vec![
            json!({"table": {"family": "inet", "name": "f"}}),
            json!({"chain": {"family": "inet", "table": "f", "name": "input", "type": "filter",
                             "hook": "input", "prio": 0, "policy": policy}}),
        ];
        for (i, expr) in rules.into_iter().enumerate() {
            items.push(
                json!({"rule": {"family": "inet", "table": "f", "chain": "input",
                                       "handle": i + 2, "expr": expr}}),
            );
        }
        json!({ "nftables": items })
    }

    fn dport(protocol: &str, right: Value) -> Value {
        json!({"match": {"op": "==", "left": {"payload": {"protocol": protocol, "field": "dport"}}, "right": right}})
    }

    fn handles(places: &[Place]) -> Vec<Option<u64>> {
        places.iter().map(|p| p.handle).collect()
    }

    #[test]
    fn another_protocols_port_is_not_the_datagrams() {
        let v = judge(
            &input(
                "accept",
                vec![json!([dport("tcp", json!(9999)), {"drop": null}])],
            ),
            &datagram(),
        );
        assert!(v.drops.is_empty() && v.maybe.is_empty(), "{v:?}");
    }

    #[test]
    fn log_then_accept_is_not_a_drop() {
        let rule = json!([dport("udp", json!(9999)), {"log": {"prefix": "would drop "}}, {"accept": null}]);
        let v = judge(&input("accept", vec![rule]), &datagram());
        assert!(v.drops.is_empty(), "{v:?}");
    }

    #[test]
    fn ports_sets_and_ranges() {
        for right in [
            json!(9999),
            json!({"set": [53, {"range": [9990, 10010]}]}),
            json!({"range": [1, 65535]}),
        ] {
            let v = judge(
                &input(
                    "accept",
                    vec![json!([dport("udp", right.clone()), {"drop": null}])],
                ),
                &datagram(),
            );
            assert_eq!(handles(&v.drops), vec![Some(2)], "{right}");
        }
        let v = judge(
            &input(
                "accept",
                vec![json!([dport("udp", json!({"set": [53, 80]})), {"drop": null}])],
            ),
            &datagram(),
        );
        assert!(v.drops.is_empty());
    }

    #[test]
    fn an_earlier_accept_wins_and_policy_drop_is_found() {
        let accept = json!([dport("udp", json!(9999)), {"accept": null}]);
        let drop_all = json!([{"drop": null}]);
        let v = judge(
            &input("accept", vec![accept.clone(), drop_all.clone()]),
            &datagram(),
        );
        assert!(v.drops.is_empty(), "{v:?}");
        let v = judge(
            &input(
                "drop",
                vec![json!([dport("udp", json!(53)), {"accept": null}])],
            ),
            &datagram(),
        );
        assert_eq!(handles(&v.drops), vec![None], "the policy");
        let v = judge(&input("drop", vec![accept]), &datagram());
        assert!(v.drops.is_empty());
    }

    #[test]
    fn addresses_interfaces_and_state() {
        let daddr = |right: Value| json!({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": right}});
        let iif = |name: &str| json!({"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": name}});
        let est = json!({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}});
        for (rule, drops) in [
            (json!([daddr(json!("239.1.1.1")), {"drop": null}]), true),
            (
                json!([daddr(json!({"prefix": {"addr": "239.0.0.0", "len": 8}})), {"drop": null}]),
                true,
            ),
            (json!([daddr(json!("239.1.1.2")), {"drop": null}]), false),
            (json!([iif("mc0"), {"drop": null}]), true),
            (json!([iif("eth*"), {"drop": null}]), false),
            (json!([iif("mc*"), {"drop": null}]), true),
            (json!([est, {"drop": null}]), false),
        ] {
            let v = judge(&input("accept", vec![rule.clone()]), &datagram());
            assert_eq!(v.drops.len() == 1, drops, "{rule}");
        }
    }

    #[test]
    fn jumps_named_sets_and_unsettled_matches() {
        let ruleset = json!({"nftables": [
            {"chain": {"family": "ip", "table": "t", "name": "input", "hook": "input", "prio": 0, "policy": "accept"}},
            {"chain": {"family": "ip", "table": "t", "name": "udp_in"}},
            {"set": {"family": "ip", "table": "t", "name": "blocked", "elem": [9999, 53]}},
            {"rule": {"family": "ip", "table": "t", "chain": "input", "handle": 4, "expr": [{"jump": {"target": "udp_in"}}]}},
            {"rule": {"family": "ip", "table": "t", "chain": "udp_in", "handle": 5, "expr": [dport("udp", json!("@blocked")), {"counter": null}, {"drop": null}]}},
        ]});
        let v = judge(&ruleset, &datagram());
        assert_eq!(
            v.drops,
            vec![Place {
                family: "ip".into(),
                table: "t".into(),
                chain: "udp_in".into(),
                handle: Some(5)
            }]
        );
        let mark = json!({"match": {"op": "==", "left": {"meta": {"key": "mark"}}, "right": 1}});
        let v = judge(
            &input("accept", vec![json!([mark, {"drop": null}])]),
            &datagram(),
        );
        assert_eq!((v.drops.len(), handles(&v.maybe)), (0, vec![Some(2)]));
    }

    #[test]
    fn netdev_ingress_of_this_interface_only() {
        let chain = |dev: &str| {
            json!({"nftables": [
                {"chain": {"family": "netdev", "table": "n", "name": "in", "hook": "ingress", "prio": 0, "dev": dev, "policy": "accept"}},
                {"rule": {"family": "netdev", "table": "n", "chain": "in", "handle": 3, "expr": [dport("udp", json!(9999)), {"drop": null}]}},
            ]})
        };
        assert_eq!(judge(&chain("mc0"), &datagram()).drops.len(), 1);
        assert!(judge(&chain("eth0"), &datagram()).drops.is_empty());
    }

    #[test]
    fn verdict_maps() {
        let rule = json!([{"vmap": {"key": {"payload": {"protocol": "udp", "field": "dport"}},
                                    "data": {"set": [[53, {"accept": null}], [9999, {"drop": null}]]}}}]);
        assert_eq!(
            judge(&input("accept", vec![rule]), &datagram()).drops.len(),
            1
        );
    }
}
