#!/usr/bin/env bash
# benches/go_module.sh ROUNDS: the Go module's figures for benches/run.py. A user's first
# `go build` with cold module and build caches (go get from the file:// proxy
# $MC_BENCH_GOPROXY, which scripts/bench lays out, then go build) of
# tests/go-outside/main.go.txt, against the same program on net.UDPConn
# (benches/go-module/udpconn.go.txt) built from cold caches too, sides alternated per
# round; the two binaries' sizes, as built and stripped (-ldflags=-s -w); each platform's
# library in the module's zip against the archive rustc writes for it. Prints one JSON object.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
source scripts/env.sh
rounds=$1
proxy=${MC_BENCH_GOPROXY:?set by scripts/bench}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
gomod=github.com/libmulticast/libmulticast/bindings/go
work=$(mktemp -d /tmp/mc-go-bench.XXXXXX)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export GOFLAGS= GOWORK=off GOPROXY="file://$proxy" GOSUMDB=off CGO_ENABLED=1

program() { # program lib|std DIR: the program's module, ready for go get and go build
    mkdir -p "$2"
    if [[ $1 == lib ]]; then cp tests/go-outside/main.go.txt "$2/main.go"
    else cp benches/go-module/udpconn.go.txt "$2/main.go"; fi
    (cd "$2" && go mod init example.com/app > /dev/null 2>&1)
}
cold_build() { # cold_build lib|std: seconds of a first go get + go build with empty caches
    local dir="$work/$1-$RANDOM$RANDOM"
    program "$1" "$dir/app"
    local start end
    start=$(date +%s.%N)
    (cd "$dir/app" && export GOCACHE="$dir/cache" GOMODCACHE="$dir/mod" && \
        { [[ $1 == std ]] || go get "$gomod@v$version"; } && go build -o app .) > "$work/build.log" 2>&1 \
        || { cat "$work/build.log" >&2; return 1; }
    end=$(date +%s.%N)
    cp "$dir/app/app" "$work/$1.bin"
    (cd "$dir/app" && GOCACHE="$dir/cache" GOMODCACHE="$dir/mod" go build -ldflags='-s -w' -o "$work/$1.stripped" .)
    chmod -R u+w "$dir"; rm -rf "$dir"
    python3 -c "print($end - $start)"
}
lib=() std=()
for ((r = 0; r < rounds; r++)); do
    if (( r % 2 )); then std+=("$(cold_build std)"); lib+=("$(cold_build lib)")
    else lib+=("$(cold_build lib)"); std+=("$(cold_build std)"); fi
done
python3 - "$proxy/$gomod/@v/v$version.zip" "$gomod@v$version/" "$work" "${lib[*]}" "${std[*]}" <<'PY'
import json, os, sys, zipfile
zip_path, prefix, work, lib, std = sys.argv[1:]
targets = {"linux_amd64": "x86_64-unknown-linux-gnu", "linux_arm64": "aarch64-unknown-linux-gnu",
           "linux_armv7": "armv7-unknown-linux-gnueabihf", "windows_amd64": "x86_64-pc-windows-gnu"}
z = zipfile.ZipFile(zip_path)
platforms = {}
for p, target in targets.items():
    info = z.getinfo(f"{prefix}internal/prebuilt/{p}/libmulticast.a")
    rustc = os.path.getsize(f"target/go/{target}/go-release/libmulticast.a")
    platforms[p] = {"library": info.file_size, "in_zip": info.compress_size, "rustc_archive": rustc}
print(json.dumps({
    "zip_bytes": os.path.getsize(zip_path), "platforms": platforms,
    "build_s": {"lib": [{"s": float(x)} for x in lib.split()], "std": [{"s": float(x)} for x in std.split()]},
    "binary": {k: {"built": os.path.getsize(f"{work}/{k}.bin"), "stripped": os.path.getsize(f"{work}/{k}.stripped")}
               for k in ("lib", "std")}}))
PY
