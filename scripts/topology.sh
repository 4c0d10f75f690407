# Sourced by scripts that build a network of their own inside scripts/netns (test-relay,
# benches/relay.sh): hosts (network namespaces held by a child process), bridges and
# cables between them. Needs $work (a directory for the hosts' records); everything it
# made is removed by topology_cleanup (call it on exit), and with the enclosing
# scripts/netns namespace in any case.
#
#   host NAME                     a network namespace of its own (lo up, no DAD)
#   on NAME COMMAND...            run COMMAND in it
#   bridge NAME                   a bridge that floods multicast, as a plain switch does
#   cable HOST BRIDGE IFNAME IPV4/LEN [IPV6/LEN]   HOST's IFNAME on BRIDGE
#   member_routes HOST IFNAME     multicast routes (IPv4 and IPv6) via IFNAME
[[ "${MC_NETNS:-}" == 1 ]] || { echo "scripts/topology.sh: only inside scripts/netns" >&2; exit 2; }
holders=() links=()
# (Safe under set -e: a cable already gone with its host is not a failure.)
topology_cleanup() {
    local pid link
    for pid in "${holders[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for link in "${links[@]}"; do ip link del "$link" 2>/dev/null || true; done
    [[ -n "${MC_KEEP:-}" ]] || rm -rf "$work"
}
# host NAME: a network namespace of its own (lo up, no duplicate address detection).
host() {
    unshare --net sleep infinity &
    local pid=$!
    holders+=("$pid")
    for _ in $(seq 1 6000); do
        [[ "$(readlink /proc/$pid/ns/net)" != "$(readlink /proc/self/ns/net)" ]] && break
        sleep 0.01
    done
    [[ "$(readlink /proc/$pid/ns/net)" != "$(readlink /proc/self/ns/net)" ]] \
        || { echo "host $1 did not enter its own network namespace" >&2; exit 2; }
    echo "$pid" > "$work/pid-$1"
    nsenter -t "$pid" -n sh -ec '
        ip link set lo up
        for c in all default; do echo 0 > /proc/sys/net/ipv6/conf/$c/accept_dad; done'
}
on() { local pid; pid=$(cat "$work/pid-$1"); shift; nsenter -t "$pid" -n -- "$@"; }
bridge() {
    ip link add "$1" type bridge && links+=("$1")
    # A plain switch that floods multicast (snooping would need a querier).
    ip link set "$1" type bridge mcast_snooping 0
    ip link set "$1" up
}
cables=0
# cable HOST BRIDGE IFNAME IPV4/LEN [IPV6/LEN]: HOST's IFNAME on BRIDGE.
cable() {
    cables=$((cables + 1))
    local end="c$cables"
    ip link add "$end" type veth peer name "p$cables" && links+=("$end")
    ip link set "$end" master "$2" up
    ip link set "p$cables" netns "$(cat "$work/pid-$1")"
    on "$1" sh -ec "
        ip link set p$cables name $3
        ip addr add $4 dev $3
        [ -z '${5:-}' ] || ip -6 addr add ${5:-} dev $3 nodad
        ip link set $3 up"
}
member_routes() { on "$1" sh -ec "ip route add 224.0.0.0/4 dev $2; ip -6 route add ff00::/8 dev $2 table main 2>/dev/null || true"; }
