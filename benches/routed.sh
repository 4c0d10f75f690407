#!/usr/bin/env bash
# benches/routed.sh ROUNDS SECONDS PINGS SIZE...: one hop through the kernel's multicast
# routing (smcroute) against the same hop through mcat relay, for benches/run.py. A
# sender s on LAN a, a receiver f on LAN b, the host r between them (eth0 on a, eth1 on
# b) routing 239.77.0.1 both ways, with smcroute or with mcat relay. Per round and size:
# what f receives while s floods the group (mcbench blast, TTL 2); round trips (mcbench
# ping on s, pong on f: two crossings). Prints one JSON object.
#
# It runs in scripts/vm (this machine's kernel has no multicast routing), which is qemu
# without KVM: both paths are emulated, so only their ratio means anything, and that
# only roughly (the emulator's costs are not a CPU's).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${MC_VM:-}" ]]; then MC_VM_TIMEOUT=${MC_VM_TIMEOUT:-2400} exec scripts/vm benches/routed.sh "$@"; fi
[[ "${MC_NETNS:-}" == 1 ]] || exec scripts/netns -- "$0" "$@"
rounds=$1 seconds=$2 pings=$3
shift 3
bench=$PWD/build/mcbench mcat=$PWD/build/bin/mcat
work=$(mktemp -d /tmp/mc-routed-bench.XXXXXX)
forwarder=
source scripts/topology.sh
trap '[[ -z "$forwarder" ]] || kill "$forwarder" 2>/dev/null; topology_cleanup' EXIT

bridge la; bridge lb
for h in r s f; do host "$h"; done
cable r la eth0 10.77.1.1/24; cable r lb eth1 10.77.2.1/24
cable s la mc0 10.77.1.2/24; cable f lb mc0 10.77.2.2/24
on s ip route add default via 10.77.1.1; on f ip route add default via 10.77.2.1
for h in s f; do member_routes "$h" mc0; done
on r sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
cat > "$work/smcroute.conf" <<'EOF'
phyint eth0 enable
phyint eth1 enable
mroute from eth0 group 239.77.0.1 to eth1
mroute from eth1 group 239.77.0.1 to eth0
EOF
cat > "$work/relay.toml" <<'EOF'
groups = ["239.77.0.0/16:*"]
interfaces = ["eth0", "eth1"]
[limits]
group_rate = 1e9
EOF
in_r() { nsenter -t "$(cat "$work/pid-r")" -n -- "$@"; }
start() { # router | relay
    if [[ $1 == router ]]; then
        in_r smcrouted -n -N -f "$work/smcroute.conf" -u "$work/smc.sock" -P "$work/smc.pid" 2> "$work/fwd.err" &
        forwarder=$!
        for _ in $(seq 1 600); do in_r ip mroute show >/dev/null 2>&1 && grep -qs . "$work/smc.pid" && break; sleep 0.1; done
    else
        in_r "$mcat" relay --config "$work/relay.toml" 2> "$work/fwd.err" &
        forwarder=$!
        for _ in $(seq 1 600); do grep -q relaying "$work/fwd.err" && break; sleep 0.1; done
        grep -q relaying "$work/fwd.err" || { cat "$work/fwd.err" >&2; exit 1; }
    fi
    sleep 1
}
stop() { kill "$forwarder"; wait "$forwarder" 2>/dev/null || true; forwarder=; sleep 1; }

address() { case $1 in s) echo 10.77.1.2 ;; f) echo 10.77.2.2 ;; esac; }
at() { local h=$1; shift; on "$h" env MC_TEST_IFACE=mc0 MC_TEST_ADDR="$(address "$h")" MC_BENCH_TTL=2 "$@"; }

receive_during_flood() { # SIZE -> f's JSON line, with the blast's rate
    local blast out
    at s "$bench" blast "$1" "$(python3 -c "print($seconds + 2.0)")" > "$work/blast" &
    blast=$!
    out=$(at f "$bench" recv lib "$1" "$seconds")
    wait "$blast"
    python3 -c 'import json, sys; r = json.loads(sys.argv[1]); r["blast_rate"] = json.loads(sys.argv[2])["rate"]; print(json.dumps(r))' \
        "$out" "$(tail -n 1 "$work/blast")"
}
round_trips() {
    local pong
    at f "$bench" pong lib 120 &
    pong=$!
    sleep 0.5
    at s "$bench" ping lib "$pings"
    wait "$pong"
}

# Rounds alternate which forwarder goes first, so neither always meets a fresher machine.
for r in $(seq 1 "$rounds"); do
    order="router relay"; (( r % 2 )) || order="relay router"
    for how in $order; do
        start "$how"
        for size in "$@"; do receive_during_flood "$size" >> "$work/throughput.$size.$how"; done
        round_trips | tail -n 1 >> "$work/latency.$how"
        stop
    done
done
python3 - "$work" "$@" <<'PY'
import json, sys
work, sizes = sys.argv[1], sys.argv[2:]
lines = lambda name: [json.loads(l) for l in open(f"{work}/{name}") if l.strip()]
print(json.dumps({
    "throughput": {s: {h: lines(f"throughput.{s}.{h}") for h in ("router", "relay")} for s in sizes},
    "latency": {h: lines(f"latency.{h}") for h in ("router", "relay")},
}))
PY
