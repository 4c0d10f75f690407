#!/usr/bin/env python3
"""libmulticast benchmarks: each pair measured in the same run, sides alternated, several
rounds, medians and ratios. Run through `make bench` (scripts/bench), which builds the
programs and enters a private network namespace (scripts/netns) first.

Writes build/bench/results.json (every raw figure), build/bench/results.md (the table)
and build/bench/rate-vs-size.png (message rate against size per implementation).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
C = os.path.join(ROOT, "build", "mcbench")
GO = os.path.join(ROOT, "build", "mcbench-go")
AEAD = os.path.join(ROOT, "build", "mcbench-aead")
TOKIO = os.path.join(ROOT, "build", "mcbench-tokio")
ASYNC_PY = [sys.executable, os.path.join(ROOT, "benches", "async_python.py")]
OUT = os.path.join(ROOT, "build", "bench")
SIZES = [64, 1024, 8192, 61440]


# With two or more CPUs, the two ends of a pair run on different CPUs, the same for
# both implementations, so the scheduler's placement is not part of the comparison.
PIN = os.cpu_count() and os.cpu_count() >= 2


def on_cpu(cpu, args):
    return (["taskset", "-c", str(cpu)] if PIN else []) + [str(a) for a in args]


def run(*args, cpu=0):
    out = subprocess.run(on_cpu(cpu, args), check=True, capture_output=True, text=True, timeout=300).stdout
    return json.loads(out.strip().splitlines()[-1])


def with_blast(size, seconds, measure):
    """Runs measure() while a raw sender saturates the receive group."""
    blast = subprocess.Popen(on_cpu(1, [C, "blast", size, seconds + 1.0]), stdout=subprocess.PIPE, text=True)
    try:
        result = measure()
    finally:
        sent = json.loads(blast.communicate(timeout=60)[0].strip().splitlines()[-1])
    result["blast_rate"] = sent["rate"]
    return result


def ping_pong(impl, count):
    pong = subprocess.Popen(on_cpu(1, [C, "pong", impl, "60"]))
    time.sleep(0.2)
    try:
        return run(C, "ping", impl, count)
    finally:
        pong.wait(timeout=60)


def alternate(rounds, sides, measure):
    """Each round measures every side; the order rotates so no side always goes first."""
    results = {side: [] for side in sides}
    for r in range(rounds):
        order = sides[r % len(sides):] + sides[:r % len(sides)]
        for side in order:
            results[side].append(measure(side))
    return results


def median(results, key):
    return statistics.median(r[key] for r in results)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--pings", type=int, default=5000)
    ap.add_argument("--smoke", action="store_true", help="a few thousand messages: checks the benchmark runs")
    ap.add_argument("--skip-members", action="store_true")
    args = ap.parse_args()
    if os.environ.get("MC_NETNS") != "1":
        sys.exit("benches/run.py: run through scripts/bench (needs the private network namespace)")
    if args.smoke:
        args.rounds, args.seconds, args.pings = 1, 0.05, 200
    os.makedirs(OUT, exist_ok=True)
    rows, raw = [], {"machine": machine(), "rounds": args.rounds, "seconds": args.seconds}
    secs = args.seconds

    def pair(what, lib_runs, base_runs, key, target, higher_is_better=True, note=""):
        """One table row from every round's results: medians, their ratio, and the
        spread (lowest and highest round) of each side."""
        lib, base = median(lib_runs, key), median(base_runs, key)
        ratio = lib / base if base else float("nan")
        # target inf: a figure reported, with no target to meet.
        met = target == float("inf") or ((ratio >= target) if higher_is_better else (ratio <= target))
        spread = (spread_of(lib_runs, key), spread_of(base_runs, key))
        rows.append((what, lib, base, ratio, target, higher_is_better, met, note, spread))
        print(f"{what:38s} lib {lib:12,.1f}  base {base:12,.1f}  ratio {ratio:5.2f}", flush=True)

    # Send rate, C: mc_send against sendto on an identical socket, both in one process
    # alternating short slices (lib, raw, raw, lib, ...), so machine noise hits both.
    raw["send"] = {}
    for size in SIZES:
        res = [run(C, "sendpair", size, secs, 10) for _ in range(args.rounds)]
        raw["send"][size] = {"lib": [{"rate": r["lib_rate"], "allocs_per_message": r["allocs_per_message"]} for r in res],
                             "raw": [{"rate": r["raw_rate"]} for r in res]}
        pair(f"send {size} B (msg/s)", raw["send"][size]["lib"], raw["send"][size]["raw"], "rate", 0.95,
             note="vs sendto, same process, alternating slices")

    # Receive rate while a raw sender saturates the group.
    raw["recv"] = {}
    for size in [64, 1024]:
        res = alternate(args.rounds, ["lib", "raw"],
                        lambda impl: with_blast(size, secs, lambda: run(C, "recv", impl, size, secs)))
        raw["recv"][size] = res
        delivered = median(res["lib"], "rate") / median(res["lib"], "blast_rate")
        pair(f"receive {size} B (msg/s)", res["lib"], res["raw"], "rate", 0.95,
             note=f"vs recvfrom; a raw sender floods the group; lib took {delivered:.0%} of it")

    # The AEAD itself: the library's seal and open (header, cipher, key hygiene) against
    # OpenSSL's libcrypto on the same bytes, alternating slices in one process.
    raw["aead"] = [run(AEAD, secs) for _ in range(args.rounds)]
    for size in ["64", "1024", "8192"]:
        for op in ["seal", "open"]:
            lib = [{"us": r[size][f"{op}_lib_us"]} for r in raw["aead"]]
            ossl = [{"us": r[size][f"{op}_openssl_us"]} for r in raw["aead"]]
            pair(f"AEAD {op} {size} B (us per message)", lib, ossl, "us", 1.5, higher_is_better=False,
                 note="vs OpenSSL's EVP ChaCha20-Poly1305 per message, same bytes; lib: header, cipher, "
                      "key hygiene")
        lib = [{"us": r[size]["seal_lib_us"]} for r in raw["aead"]]
        loop = [{"us": r[size]["openssl_cipher_loop_us"]} for r in raw["aead"]]
        pair(f"AEAD seal {size} B vs OpenSSL's cipher loop (us)", lib, loop, "us", float("inf"),
             higher_is_better=False, note="openssl speed's loop: one endless message, no nonce or tag per "
                                          "call; the cipher's floor on this CPU, not a per-message time")

    # Authenticated groups: sealing on send (both sides in one process, alternating
    # slices) and opening on receive (a burst of 64 datagrams drained, timed, in one
    # process), each against the plain group on the same calls.
    raw["auth_send"], raw["auth_recv"] = {}, {}
    auth_targets = {("send", 64): 0.95, ("send", 1024): 0.90, ("recv", 64): 0.85, ("recv", 1024): 0.75}
    for size in [64, 1024]:
        res = [run(C, "sendpair", size, secs, 10, "auth", "lib") for _ in range(args.rounds)]
        raw["auth_send"][size] = {"auth": [{"rate": r["lib_rate"]} for r in res],
                                  "lib": [{"rate": r["raw_rate"]} for r in res]}
        auth, plain = median(raw["auth_send"][size]["auth"], "rate"), median(raw["auth_send"][size]["lib"], "rate")
        pair(f"authenticated send {size} B (msg/s)", raw["auth_send"][size]["auth"], raw["auth_send"][size]["lib"],
             "rate", auth_targets[("send", size)], note=f"vs mc_send on a plain group; sealing adds {1e6 / auth - 1e6 / plain:.2f} us")
    for size in [64, 1024]:
        res = [run(C, "recvpair", size, secs, 10, "auth", "lib") for _ in range(args.rounds)]
        raw["auth_recv"][size] = {"auth": [{"rate": r["rates"][0]} for r in res],
                                  "lib": [{"rate": r["rates"][1]} for r in res]}
        auth, plain = median(raw["auth_recv"][size]["auth"], "rate"), median(raw["auth_recv"][size]["lib"], "rate")
        pair(f"authenticated receive {size} B (msg/s)", raw["auth_recv"][size]["auth"], raw["auth_recv"][size]["lib"],
             "rate", auth_targets[("recv", size)], note=f"vs mc_receive on a plain group, draining queued bursts; opening adds "
                                        f"{1e6 / auth - 1e6 / plain:.2f} us")

    # Round trip between two processes.
    res = alternate(args.rounds, ["lib", "raw"], lambda impl: ping_pong(impl, args.pings))
    raw["latency"] = res
    pair("round trip p50 (us)", res["lib"], res["raw"], "p50_us", 1.10, higher_is_better=False,
         note="vs sendto/recvfrom, echo process on the other core")
    pair("round trip p99 (us)", res["lib"], res["raw"], "p99_us", float("inf"),
         higher_is_better=False, note="reported")

    # Async receives under a raw flood: tokio (AsyncGroup against tokio's UdpSocket) and
    # asyncio (libmulticast.aio against create_datagram_endpoint), one task per datagram.
    res = alternate(args.rounds, ["lib", "std"],
                    lambda impl: with_blast(64, secs, lambda: run(TOKIO, impl, secs)))
    raw["tokio_recv"] = res
    pair("tokio receive 64 B (msg/s)", res["lib"], res["std"], "rate", 0.95,
         note="AsyncGroup vs tokio::net::UdpSocket, current-thread runtime, under a raw flood")
    env_py = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "bindings", "python"))
    res = alternate(args.rounds, ["lib", "std"], lambda impl: with_blast(64, secs, lambda: json.loads(
        subprocess.run(on_cpu(0, ASYNC_PY + [impl, str(secs)]), check=True, capture_output=True, text=True,
                       env=env_py, timeout=120).stdout.strip().splitlines()[-1])))
    raw["asyncio_recv"] = res
    pair("asyncio receive 64 B (msg/s)", res["lib"], res["std"], "rate", 0.90,
         note="libmulticast.aio vs create_datagram_endpoint + asyncio.Queue, under a raw flood")

    # Go: the binding against the standard library as scriptling uses it.
    raw["go_send"], raw["go_recv"] = {}, {}
    for size in SIZES:
        res = alternate(args.rounds, ["lib", "std"], lambda impl: run(GO, "send", impl, size, secs))
        raw["go_send"][size] = res
        pair(f"Go send {size} B (msg/s)", res["lib"], res["std"], "rate", 0.95,
             note="vs net.UDPConn.WriteToUDP, as scriptling sends")
    res = alternate(args.rounds, ["lib", "std"],
                    lambda impl: with_blast(64, secs, lambda: run(GO, "recv", impl, 64, secs)))
    raw["go_recv"][64] = res
    pair("Go receive 64 B (msg/s)", res["lib"], res["std"], "rate", 0.95,
         note="vs net.UDPConn.ReadFromUDP under a raw flood")
    res = alternate(args.rounds, ["lib", "std"], lambda impl: go_ping_pong(impl, args.pings))
    raw["go_latency"] = res
    pair("Go round trip p50 (us)", res["lib"], res["std"], "p50_us", 1.05, higher_is_better=False,
         note="vs net.UDPConn; each receive waits in Go's poller, echo process on the other core")
    res = alternate(args.rounds, ["lib", "std"],
                    lambda impl: run(GO, "bsend", "lib", 64, secs) if impl == "lib" else run(GO, "send", "std", 64, secs))
    raw["go_batch_send"] = res
    pair("Go SendBatch vs WriteToUDP, 64 B (msg/s)", res["lib"], res["std"], "rate", 1.2,
         note="vs WriteToUDP per message")
    # Goroutines waiting in receives: OS threads and memory, against net.UDPConn.
    raw["go_waiters"] = {}
    for n, groups in ([(1000, 10)] if args.smoke else [(10_000, 50), (100_000, 1000)]):
        res = alternate(1, ["lib", "std"], lambda impl: run(GO, "waiters", impl, n, groups))
        raw["go_waiters"][n] = res
        for key, what, target in [("threads", f"Go: {n:,} goroutines waiting on {groups} groups, OS threads", 16.0),
                                  ("kib_per_waiter", f"Go: {n:,} waiting goroutines, KiB each", float("inf"))]:
            lib, std = res["lib"][0][key], res["std"][0][key]
            met = lib <= target
            rows.append((what, lib, std, lib / std, target, False, met,
                         "vs net.UDPConn.ReadFromUDP; target: the binding's own figure, not the ratio"
                         if key == "threads" else "vs net.UDPConn.ReadFromUDP", None))
            print(f"{what:38s} lib {lib:12,.1f}  std {std:12,.1f}", flush=True)
    raw["go_cancel"] = run(GO, "cancel", "lib", 20 if args.smoke else 300)
    print(f"Go ReceiveContext cancel: mean {raw['go_cancel']['mean_ms']:.3f} ms, "
          f"worst {raw['go_cancel']['max_ms']:.3f} ms", flush=True)
    raw["go_timeouts"] = alternate(1 if args.smoke else 3, ["lib", "std"], lambda impl: run(GO, "timeouts", impl))

    # Batches: a sender and a receiver process, libmulticast's batch calls against the
    # per-message loop on raw sockets. Equal sizes use GSO (and GRO on the receiver);
    # mixed sizes use sendmmsg and per-message receives.
    raw["batch"] = {}
    for label, size, mixed in [("equal-sized runs, 64 B", 64, 0), ("mixed sizes 64-1400 B", 0, 1)]:
        res = alternate(args.rounds, ["lib", "raw"], lambda impl: pipeline(impl, size, mixed, secs))
        raw["batch"][label] = res
        note = "vs a sendto loop; a receiver process shares the two cores, so below the send rows"
        pair(f"batch send, {label} (msg/s)", res["lib"], res["raw"], "send_rate", 10.0 if not mixed else 1.0,
             note=note)
        pair(f"batch delivered, {label} (msg/s)", res["lib"], res["raw"], "recv_rate",
             10.0 if not mixed else 1.0, note="vs a recvfrom loop in that receiver")

    # Batches on an authenticated group (GSO sends, GRO receives, 64 B) against the same
    # batch calls on a plain group.
    res = alternate(args.rounds, ["keyed", "lib"], lambda impl: pipeline(impl, 64, 0, secs))
    raw["keyed_batch"] = res
    pair("authenticated batch send, 64 B (msg/s)", res["keyed"], res["lib"], "send_rate", 0.95,
         note="vs mc_send_batch on a plain group (GSO); a receiver process shares the two cores")
    pair("authenticated batch delivered, 64 B (msg/s)", res["keyed"], res["lib"], "recv_rate", 0.85,
         note="vs mc_receive_batch on a plain group (GRO)")

    # Heap allocations per message inside mc_send / mc_receive (interposed malloc).
    allocs = max(r["allocs_per_message"] for size in SIZES for r in raw["send"][size]["lib"])
    allocs = max([allocs] + [r["allocs_per_message"] for size in raw["recv"] for r in raw["recv"][size]["lib"]])
    rows.append(("heap allocations per message", allocs, 0, None, 0, False, allocs == 0, "mc_send and mc_receive",
                 None))
    print(f"allocations per message: {allocs}")

    # Receive timeouts on an empty group: how late mc_receive returns, against a raw
    # socket waiting under SO_RCVTIMEO (what the kernel's tick rounding gives).
    res = alternate(1 if args.smoke else 3, ["lib", "rawpoll", "raw"], lambda impl: run(C, "timeouts", impl, 1))
    raw["timeouts"] = res
    for impl in ("lib", "rawpoll", "raw"):
        for row in timeout_rows(res[impl]):
            print(f"timeout {row['timeout_ms']:6g} ms {impl}: mean overrun {row['mean_overrun_ms']:.3f} ms, "
                  f"worst {row['max_overrun_ms']:.3f} ms", flush=True)

    # The upkeep thread during interface churn elsewhere on the host: its CPU per 1,000
    # link events with 100 groups joined, against 1 group (work per event should not
    # grow with groups the event cannot affect).
    events = 100 if args.smoke else 1000
    res = alternate(1 if args.smoke else 3, ["100", "1"], lambda n: run(C, "upkeep", n, events))
    raw["upkeep"] = res
    pair("upkeep CPU per 1,000 interface events, 100 groups vs 1 (ms)", res["100"], res["1"],
         "cpu_ms_per_1000", 2.0, higher_is_better=False,
         note="rounds of 50 veth pairs added, then deleted, elsewhere; the thread's own CPU from /proc")
    pair("upkeep CPU vs ip's, 1,000 interface events, 100 groups (ms)", res["100"],
         [{"cpu_ms_per_1000": r["ip_cpu_ms_per_1000"]} for r in res["100"]], "cpu_ms_per_1000", 0.3, higher_is_better=False,
         note="base: the CPU of the ip commands that made the events")

    # Scale: joined handles per process.
    raw["handles"] = {}
    for n in ([1, 10] if args.smoke else [1, 10, 100, 1000]):
        res = [run(C, "handles", n, secs) for _ in range(args.rounds)]
        raw["handles"][n] = res
        print(f"handles {n:5d}: {median(res, 'rate'):12,.1f} round trips/s, "
              f"{median(res, 'kib_per_handle'):.1f} KiB per handle", flush=True)

    # Scale: members on a bridge, one sender (host 1), the others receiving.
    raw["members"] = {}
    if not args.skip_members:
        for n in ([1, 2] if args.smoke else [1, 4, 16]):
            raw["members"][n] = [members(n, secs) for _ in range(args.rounds)]
            m = raw["members"][n]
            print(f"members {n:3d}: send {median(m, 'send_rate'):12,.1f} msg/s, each member received "
                  f"{median(m, 'min_member_rate'):12,.1f} msg/s (slowest)", flush=True)

    # mcat relay between two bridges: what a receiver behind it gets while a raw sender
    # floods the group, against a receiver on the sender's own bridge; round trips through
    # it (crossing it twice) against round trips on one bridge (benches/relay.sh).
    relay = json.loads(subprocess.run(
        [os.path.join(ROOT, "benches", "relay.sh"), str(args.rounds), str(secs), str(args.pings), "64", "1024"],
        check=True, stdout=subprocess.PIPE, text=True, timeout=3600).stdout.strip().splitlines()[-1])
    raw["relay"] = relay
    for size in ["64", "1024"]:
        res = relay["throughput"][size]
        pair(f"through mcat relay {size} B (msg/s)", res["relay"], res["direct"], "rate", float("inf"),
             note="received behind one relay vs on the sender's bridge, same raw flood; relay, "
                  "sender and receiver share the two cores")
    for key in ["p50_us", "p99_us"]:
        res = relay["latency"]
        pair(f"round trip through mcat relay, {key[:3]} (us)", res["relay"], res["direct"], key,
             float("inf"), higher_is_better=False,
             note="crosses the relay twice, vs a round trip on one bridge")
        added = (median(res["relay"], key) - median(res["direct"], key)) / 2
        raw.setdefault("relay_added_latency_us", {})[key] = added
        print(f"relay: added latency per crossing, {key[:3]}: {added:.1f} us", flush=True)

    # One hop through kernel multicast routing (smcroute) against the same hop through
    # mcat relay, in scripts/vm (this machine's kernel has no multicast routing): the VM
    # is an emulator, so only the ratio is reported, and it is rough (benches/routed.sh).
    out = subprocess.run(
        [os.path.join(ROOT, "benches", "routed.sh"), str(args.rounds), str(secs), str(args.pings), "64", "1024"],
        check=True, stdout=subprocess.PIPE, text=True, timeout=3600).stdout
    # (The VM's console may put terminal escapes before the line.)
    routed = json.loads([l[l.index('{"throughput"'):] for l in out.splitlines() if '{"throughput"' in l][-1])
    raw["routed"] = routed
    for size in ["64", "1024"]:
        res = routed["throughput"][size]
        pair(f"one hop, mcat relay vs smcroute {size} B (msg/s)", res["relay"], res["router"], "rate", float("inf"),
             note="received behind the hop while a raw sender floods (TTL 2); in a VM under qemu (TCG), "
                  "where the emulated sender is the limit: both carry the flood, the hop's cost is not seen")
    for key in ["p50_us", "p99_us"]:
        res = routed["latency"]
        pair(f"round trip, mcat relay vs smcroute, {key[:3]} (us)", res["relay"], res["router"], key,
             float("inf"), higher_is_better=False, note="crosses the hop twice; in the VM, as above")

    # The Go module (benches/go_module.sh): a user's first go get + go build with cold
    # caches against the same program on net.UDPConn, the two programs' sizes, and each
    # platform's library in the module's zip against the archive rustc writes for it.
    gomod = json.loads(subprocess.run(
        [os.path.join(ROOT, "benches", "go_module.sh"), str(1 if args.smoke else min(args.rounds, 5))],
        check=True, stdout=subprocess.PIPE, text=True, timeout=3600).stdout.strip().splitlines()[-1])
    raw["go_module"] = gomod
    for platform_dir, size in gomod["platforms"].items():
        pair(f"Go module: {platform_dir.replace('_', '/', 1)} library in the zip (KiB)",
             [{"kib": size["in_zip"] / 1024}], [{"kib": size["rustc_archive"] / 1024}], "kib", float("inf"),
             higher_is_better=False, note=f"compressed; {size['library'] / 1024:,.0f} KiB unpacked; vs the "
                                          "archive rustc writes (go-release profile)")
    pair("Go module zip, all platforms (KiB)", [{"kib": gomod["zip_bytes"] / 1024}],
         [{"kib": sum(p["rustc_archive"] for p in gomod["platforms"].values()) / 1024}], "kib", float("inf"),
         higher_is_better=False, note="vs rustc's archives for the same platforms, uncompressed")
    pair("Go: first go get + go build, cold caches (s)", gomod["build_s"]["lib"], gomod["build_s"]["std"], "s",
         float("inf"), higher_is_better=False, note="the same program on net.UDPConn, cold caches too; "
                                                    "both compile the standard library")
    for kind in ["built", "stripped"]:
        pair(f"Go: program size, {kind} (MiB)", [{"mib": gomod["binary"]["lib"][kind] / 2**20}],
             [{"mib": gomod["binary"]["std"][kind] / 2**20}], "mib", float("inf"), higher_is_better=False,
             note="vs the same program on net.UDPConn" + (" (-ldflags=-s -w)" if kind == "stripped" else ""))

    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(raw, f, indent=1)
    table = render(rows, raw)
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(table)
    print()
    print(table)
    if not args.smoke:
        chart(raw)


PIPELINE_PORT = 47010


def pipeline(impl, size, mixed, secs):
    """A receiver process and a sender process on one group; both rates. impl "keyed":
    the library's batch calls on an authenticated group."""
    if impl in ("lib", "keyed"):
        keyed = int(impl == "keyed")
        receiver = [C, "brecv", size or 64, secs, PIPELINE_PORT, 0 if mixed else 1, keyed]
        sender = [C, "bsend", size or 64, secs + 0.7, PIPELINE_PORT, mixed, keyed]
    else:
        receiver = [C, "recv", "raw", size, secs, PIPELINE_PORT]
        sender = [C, "send", "raw", size, secs + 0.7, PIPELINE_PORT]
    rx = subprocess.Popen(on_cpu(1, receiver), stdout=subprocess.PIPE, text=True)
    time.sleep(0.2)
    sent = run(*sender)
    got = json.loads(rx.communicate(timeout=60)[0].strip().splitlines()[-1])
    return {"send_rate": sent["rate"], "recv_rate": got["rate"], "dropped": got.get("dropped")}


def go_ping_pong(impl, count):
    pong = subprocess.Popen(on_cpu(1, [C, "pong", "raw", "60"]))
    time.sleep(0.2)
    try:
        return run(GO, "ping", impl, count)
    finally:
        pong.wait(timeout=60)


def members(n, secs):
    """n hosts on a bridge: host 1 sends 64 B for secs, hosts 2..n count what they get."""
    script = (
        f'for i in $(seq 2 {n}); do "$MC_LAN_HOST" $i {C} recv lib 64 {secs} 47000 > "$MC_LAN_DIR/r$i" & done; '
        f'sleep 0.3; "$MC_LAN_HOST" 1 {C} send lib 64 {secs + 1.0} > "$MC_LAN_DIR/s"; wait; '
        f'cat "$MC_LAN_DIR/s"; for i in $(seq 2 {n}); do cat "$MC_LAN_DIR/r$i"; done'
    )
    done = subprocess.run([os.path.join(ROOT, "scripts", "lan"), str(n), "--", "bash", "-c", script],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        sys.exit(f"members {n}: scripts/lan exited {done.returncode}: {done.stderr.strip()}")
    out = done.stdout.splitlines()
    sent = json.loads(out[0])
    received = [json.loads(line)["rate"] for line in out[1:]]
    return {"send_rate": sent["rate"], "min_member_rate": min(received) if received else 0.0,
            "member_rates": received}


def spread_of(runs, key):
    values = [r[key] for r in runs]
    return (min(values), max(values))


def timeout_rows(runs):
    """Per timeout, over every round: the mean overrun and the worst one."""
    by_timeout = {}
    for run_ in runs:
        for row in run_["rows"]:
            by_timeout.setdefault(row["timeout_ms"], []).append(row)
    return [{"timeout_ms": t, "count": sum(r["count"] for r in rows),
             "mean_overrun_ms": sum(r["mean_overrun_ms"] * r["count"] for r in rows) / sum(r["count"] for r in rows),
             "max_overrun_ms": max(r["max_overrun_ms"] for r in rows)}
            for t, rows in sorted(by_timeout.items())]


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "date": time.strftime("%Y-%m-%d")}


def figure(value):
    """A table figure: three decimals below 10 (microseconds per message), else one."""
    return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"


def render(rows, raw):
    m = raw["machine"]
    out = [f"Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, {m['date']}; "
           f"{raw['rounds']} rounds of {raw['seconds']} s, medians, veth pair in a private namespace.", "",
           "Spread: the lowest and highest of the rounds, libmulticast / baseline.", "",
           "| what | libmulticast | baseline | ratio | spread | target | met |",
           "|---|---:|---:|---:|---|---|---|"]
    for what, lib, base, ratio, target, higher, met, note, spread in rows:
        tgt = "reported" if target == float("inf") else (f">= {target}" if higher else f"<= {target}")
        r = "" if ratio is None else f"{ratio:.2f}"
        sp = "" if spread is None else " / ".join(f"{lo:,.0f}-{hi:,.0f}" if hi >= 100 else f"{figure(lo)}-{figure(hi)}"
                                                   for lo, hi in spread)
        out.append(f"| {what} | {figure(lib)} | {figure(base)} | {r} | {sp} | {tgt} | {'yes' if met else 'no'}"
                   f"{' (' + note + ')' if note else ''} |")
    if raw.get("timeouts"):
        t = {impl: timeout_rows(raw["timeouts"][impl]) for impl in ("lib", "rawpoll", "raw")}
        out += ["", "Receive timeouts on an empty group: how late the call returns, mean / worst in ms "
                    "(target for libmulticast: mean <= 0.5, worst <= 2). The ppoll column is the floor: "
                    "a raw socket waiting in ppoll, the most precise wait the kernel offers; the last "
                    "column is a raw socket under SO_RCVTIMEO, rounded to the kernel's tick.", "",
                "| timeout (ms) | waits | libmulticast mc_receive | raw socket, ppoll | raw socket, SO_RCVTIMEO |",
                "|---:|---:|---:|---:|---:|"]
        for lr, pr, rr in zip(t["lib"], t["rawpoll"], t["raw"]):
            out.append(f"| {lr['timeout_ms']:g} | {lr['count']} | " + " | ".join(
                f"{r['mean_overrun_ms']:.3f} / {r['max_overrun_ms']:.3f}" for r in (lr, pr, rr)) + " |")
    if raw.get("go_timeouts"):
        t = {impl: timeout_rows(raw["go_timeouts"][impl]) for impl in ("lib", "std")}
        c = raw["go_cancel"]
        out += ["", "Go: receive timeouts on an empty group, how late the call returns, mean / worst in ms "
                    "(target for the binding: mean <= 0.5): `Receive` waits in Go's runtime poller and its "
                    "last 2 ms in the C library; net.UDPConn's read deadline is the runtime's alone, which "
                    "sleeps in whole milliseconds. `ReceiveContext` returned "
                    f"{c['mean_ms']:.3f} ms (mean) and {c['max_ms']:.3f} ms (worst) after its context was "
                    f"cancelled ({c['count']} cancels).", "",
                "| timeout (ms) | waits | Go binding Receive | net.UDPConn read deadline |",
                "|---:|---:|---:|---:|"]
        for lr, sr in zip(t["lib"], t["std"]):
            out.append(f"| {lr['timeout_ms']:g} | {lr['count']} | " + " | ".join(
                f"{r['mean_overrun_ms']:.3f} / {r['max_overrun_ms']:.3f}" for r in (lr, sr)) + " |")
    if raw["handles"]:
        out += ["", "| joined handles | round trips/s on one (median) | spread | KiB per handle |",
                "|---:|---:|---|---:|"]
        for n, res in raw["handles"].items():
            lo, hi = spread_of(res, "rate")
            out.append(f"| {n} | {median(res, 'rate'):,.0f} | {lo:,.0f}-{hi:,.0f} | "
                       f"{median(res, 'kib_per_handle'):.1f} |")
    if raw["members"]:
        out += ["", "| members on the bridge | sender msg/s (median) | spread | slowest member msg/s |",
                "|---:|---:|---|---:|"]
        for n, res in raw["members"].items():
            slowest = f"{median(res, 'min_member_rate'):,.0f}" if n > 1 else "(no receiver)"
            lo, hi = spread_of(res, "send_rate")
            out.append(f"| {n} | {median(res, 'send_rate'):,.0f} | {lo:,.0f}-{hi:,.0f} | {slowest} |")
    return "\n".join(out) + "\n"


def chart(raw):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib: chart skipped (scripts/bench installs it)")
        return
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1, 1.25]})
    series = [("C mc_send (libmulticast)", raw["send"], "lib"), ("C sendto (raw socket)", raw["send"], "raw"),
              ("Go binding Send", raw["go_send"], "lib"), ("Go net.UDPConn.WriteToUDP", raw["go_send"], "std")]
    for label, data, side in series:
        sizes = sorted(data)
        mid = [median(data[s][side], "rate") for s in sizes]
        lo = [m - spread_of(data[s][side], "rate")[0] for s, m in zip(sizes, mid)]
        hi = [spread_of(data[s][side], "rate")[1] - m for s, m in zip(sizes, mid)]
        ax.errorbar(sizes, mid, yerr=[lo, hi], marker="o", capsize=3, label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("message size (bytes)")
    ax.set_ylabel("messages per second (median; bars: lowest-highest round)")
    ax.set_title("Send rate by message size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    # Receive and batch pairs: libmulticast against its baseline, each with its spread.
    groups = [(f"receive\n{size} B", raw["recv"][size], "lib", "raw", "rate") for size in sorted(raw["recv"])]
    for label, res in raw["batch"].items():
        short = "equal 64 B" if label.startswith("equal") else "mixed sizes"
        groups.append((f"batch send\n{short}", res, "lib", "raw", "send_rate"))
        groups.append((f"batch delivered\n{short}", res, "lib", "raw", "recv_rate"))
    for offset, (side, colour, name) in enumerate([("lib", "C0", "libmulticast"), ("base", "C1", "baseline")]):
        xs, mids, errs = [], [], [[], []]
        for i, (label, res, lib_key, base_key, key) in enumerate(groups):
            runs = res[lib_key if side == "lib" else base_key]
            m, (lo, hi) = median(runs, key), spread_of(runs, key)
            xs.append(i + (offset - 0.5) * 0.4)
            mids.append(m)
            errs[0].append(m - lo)
            errs[1].append(hi - m)
        bx.bar(xs, mids, width=0.4, yerr=errs, capsize=3, color=colour, label=name)
    bx.set_xticks(range(len(groups)), [g[0] for g in groups], fontsize=8)
    bx.set_yscale("log")
    bx.set_ylabel("messages per second (median; bars: lowest-highest round)")
    bx.set_title("Receive and batches against their baselines")
    bx.grid(True, axis="y", which="both", alpha=0.3)
    bx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "rate-vs-size.png"), dpi=110)
    print(f"chart: {os.path.join(OUT, 'rate-vs-size.png')}")


if __name__ == "__main__":
    main()
