#!/usr/bin/env bash
# benches/relay.sh ROUNDS SECONDS PINGS SIZE...: mcat relay's figures for benches/run.py,
# which runs it inside scripts/netns. Two bridges joined by one relay host (mcat relay
# between its legs ra and rb); a sender s and a direct receiver d on bridge A, a far
# receiver f on bridge B. Per round and size: what f receives through the relay while s
# floods the group (mcbench blast), against what d receives directly from the same flood;
# and round trips (mcbench ping on s, pong on f through the relay twice, or on d).
# Prints one JSON object.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ "${MC_NETNS:-}" == 1 ]] || { echo "benches/relay.sh: run through scripts/bench" >&2; exit 2; }
rounds=$1 seconds=$2 pings=$3
shift 3
bench=$PWD/build/mcbench mcat=$PWD/build/bin/mcat
work=$(mktemp -d /tmp/mc-relay-bench.XXXXXX)
relay_pid=
source scripts/topology.sh
trap '[[ -z "$relay_pid" ]] || kill "$relay_pid" 2>/dev/null; topology_cleanup' EXIT

bridge rba; bridge rbb
for h in r s d f; do host "$h"; done
cable r rba ra 10.212.1.1/24; cable r rbb rb 10.212.2.1/24
cable s rba mc0 10.212.1.2/24; cable d rba mc0 10.212.1.3/24; cable f rbb mc0 10.212.2.2/24
for h in s d f; do member_routes "$h" mc0; done
cat > "$work/relay.toml" <<'TOML'
groups = ["239.77.0.0/16:*"]
interfaces = ["ra", "rb"]
[limits]
group_rate = 1e9
TOML
nsenter -t "$(cat "$work/pid-r")" -n -- "$mcat" relay --config "$work/relay.toml" 2> "$work/relay.err" &
relay_pid=$!
for _ in $(seq 1 600); do grep -q relaying "$work/relay.err" && break; sleep 0.1; done
grep -q relaying "$work/relay.err" || { cat "$work/relay.err" >&2; exit 1; }

address() { case $1 in s) echo 10.212.1.2 ;; d) echo 10.212.1.3 ;; f) echo 10.212.2.2 ;; esac; }
at() { local h=$1; shift; on "$h" env MC_TEST_IFACE=mc0 MC_TEST_ADDR="$(address "$h")" "$@"; }
pin() { if (( $(nproc) >= 2 )); then echo taskset -c "$1"; fi; }

receive_during_flood() { # HOST SIZE -> the receiver's JSON line, with the blast's rate
    local blast out
    at s $(pin 1) "$bench" blast "$2" "$(python3 -c "print($seconds + 1.0)")" > "$work/blast" &
    blast=$!
    out=$(at "$1" $(pin 0) "$bench" recv lib "$2" "$seconds")
    wait "$blast"
    python3 -c 'import json, sys; r = json.loads(sys.argv[1]); r["blast_rate"] = json.loads(sys.argv[2])["rate"]; print(json.dumps(r))' \
        "$out" "$(tail -n 1 "$work/blast")"
}
round_trips() { # HOST -> mcbench ping's JSON line against a pong on HOST
    local pong
    at "$1" $(pin 1) "$bench" pong lib 120 &
    pong=$!
    sleep 0.2
    at s $(pin 0) "$bench" ping lib "$pings"
    wait "$pong"
}

# Rounds alternate which side goes first, so neither always meets a fresher machine.
for size in "$@"; do
    for r in $(seq 1 "$rounds"); do
        order="f d"; (( r % 2 )) || order="d f"
        for h in $order; do receive_during_flood "$h" "$size" >> "$work/throughput.$size.$h"; done
    done
done
for r in $(seq 1 "$rounds"); do
    order="f d"; (( r % 2 )) || order="d f"
    for h in $order; do round_trips "$h" | tail -n 1 >> "$work/latency.$h"; done
done
python3 - "$work" "$@" <<'PY'
import json, sys
work, sizes = sys.argv[1], sys.argv[2:]
lines = lambda name: [json.loads(l) for l in open(f"{work}/{name}") if l.strip()]
print(json.dumps({
    "throughput": {s: {"relay": lines(f"throughput.{s}.f"), "direct": lines(f"throughput.{s}.d")} for s in sizes},
    "latency": {"relay": lines("latency.f"), "direct": lines("latency.d")},
}))
PY
