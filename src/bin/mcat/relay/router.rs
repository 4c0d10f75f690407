//! A multicast router on this host (smcroute, pimd, FRR: the kernel's multicast routing,
//! whose interfaces /proc/net/ip_mr_vif and ip6_mr_vif list) carries groups between the
//! interfaces it holds, one hop less each, as the relay does. The relay leaves a pair of
//! legs the router holds both of to the router: carrying them as well would deliver each
//! routed datagram twice (scripts/test-routed shows it). What the router does not carry
//! between them wants a route there, not the relay.

use std::collections::BTreeSet;

/// The interfaces this host's kernel routes multicast on, per family.
#[derive(Default, PartialEq)]
pub struct KernelRouter {
    v4: BTreeSet<String>,
    v6: BTreeSet<String>,
}

impl KernelRouter {
    /// As the kernel says now (none where it has no multicast routing).
    pub fn read() -> KernelRouter {
        KernelRouter {
            v4: vifs(&std::fs::read_to_string("/proc/net/ip_mr_vif").unwrap_or_default()),
            v6: vifs(&std::fs::read_to_string("/proc/net/ip6_mr_vif").unwrap_or_default()),
        }
    }

    /// The router holds both interfaces, for this family.
    pub fn routes_between(&self, v6: bool, a: &str, b: &str) -> bool {
        let held = if v6 { &self.v6 } else { &self.v4 };
        held.contains(a) && held.contains(b)
    }
}

/// The interface names of a vif table: a header line, then "INDEX NAME COUNTERS...".
fn vifs(table: &str) -> BTreeSet<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(1).map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vif_tables() {
        let v4 = "Interface      BytesIn  PktsIn  BytesOut PktsOut Flags Local    Remote\n 0 eth0              0       0         0       0 00000 0101200A 00000000\n 1 eth1            162       3       162       3 00000 0102200A 00000000\n 2 pimreg            0       0         0       0 00004 0101200A 00000000\n";
        let router = KernelRouter {
            v4: vifs(v4),
            v6: vifs("Interface      BytesIn  PktsIn  BytesOut PktsOut Flags\n"),
        };
        assert!(router.routes_between(false, "eth0", "eth1"));
        assert!(!router.routes_between(false, "eth0", "eth2"));
        assert!(!router.routes_between(true, "eth0", "eth1"));
        assert!(
            KernelRouter::default()
                == KernelRouter {
                    v4: vifs(""),
                    v6: vifs("")
                }
        );
    }
}
