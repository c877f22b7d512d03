#!/bin/bash
# Benchmark (not a test): fence_esxi against a fake ESXi host, side by side with the practical
# floor, one raw OpenSSH call `ssh host 'vim-cmd vmsvc/power.getstate N'`.
#
# Usage: bench/esxi.sh [RUNS]        (root; default 9 runs per row; medians printed)
#   FENCE_ESXI=path/to/fence_esxi    (default target/release/fence_esxi; rows skipped if absent)
#   BIG=2000                         also time `-o list` on a host with that many VMs
# Target (issue 3): fence_esxi -o status by VM name <= 0.8 x the raw ssh call.
set -u
cd "$(dirname "$0")/.."
RUNS=${1:-9}
ROOT=/tmp/fk-bench-$$
H=tests/sim/esxi/esxi-host.sh
BIN=${FENCE_ESXI:-target/release/fence_esxi}
PORT=${PORT:-2290}

cleanup() { $H "$ROOT" destroy b1 >/dev/null 2>&1; $H "$ROOT" destroy b2 >/dev/null 2>&1; rm -rf "$ROOT"; }
trap cleanup EXIT

start() { # name port [inventory]
    local p=$2 out
    for _ in $(seq 1 40); do
        if out=$(ESXI_INVENTORY=${3:-} $H "$ROOT" start "$1" 127.0.0.1 "$p" 2>/dev/null); then
            echo "$out"; return 0
        fi
        [ $? = 3 ] || return 1
        p=$((p + 1))
    done
    return 1
}

INFO=$(start b1 "$PORT") || { echo "cannot start the fake host" >&2; exit 1; }
PORT=$(sed -n 's/^port=//p' <<<"$INFO")
KH=$ROOT/kh
sed -n 's/^known_hosts=//p' <<<"$INFO" > "$KH"
KEY=$ROOT/client/id_ed25519
SSH=$ROOT/client/ssh

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }
timeit() { # label cmd...  (prints label, median seconds)
    local label=$1; shift
    local i t0 t1
    for i in $(seq 1 "$RUNS"); do
        t0=$(now); "$@" >/dev/null 2>&1; t1=$(now)
        echo "$t1 - $t0" | bc -l
    done | median | { read -r m; printf '%-44s %.3f s\n' "$label" "$m"; echo "$m" > "$ROOT/last"; }
}
rss() { # peak RSS in KiB of one run
    /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1
}

echo "fake ESXi host 127.0.0.1:$PORT, $RUNS runs per row, medians"
timeit "raw ssh power.getstate 1 (OpenSSH, key)" "$SSH" -p "$PORT" fencetest@127.0.0.1 'vim-cmd vmsvc/power.getstate 1'
RAW=$(cat "$ROOT/last")
if [ -x "$BIN" ]; then
    common=(--ip 127.0.0.1 --ipport "$PORT" --username fencetest --identity-file "$KEY" --known-hosts "$KH")
    timeit "fence_esxi -o status -n 'node 3 with spaces'" "$BIN" "${common[@]}" -o status -n 'node 3 with spaces'
    ST=$(cat "$ROOT/last")
    timeit "fence_esxi -o list" "$BIN" "${common[@]}" -o list
    timeit "fence_esxi -o off -n cl1 (then on again)" bash -c "'$BIN' $(printf '%q ' "${common[@]}") -o off -n cl1 && '$BIN' $(printf '%q ' "${common[@]}") -o on -n cl1"
    printf 'status / raw ssh ratio: %.2f (target <= 0.80)\n' "$(echo "$ST / $RAW" | bc -l)"
    echo "peak RSS of fence_esxi -o status: $(rss "$BIN" "${common[@]}" -o status -n cl0) KiB"
    if [ -n "${BIG:-}" ]; then
        python3 -c "import json; print(json.dumps([{'vmid': i, 'name': 'vm %04d' % i, 'power': 'on'} for i in range(1, ${BIG} + 1)]))" > "$ROOT/big.json"
        INFO2=$(start b2 $((PORT + 1)) "$ROOT/big.json") || { echo "cannot start big host" >&2; exit 1; }
        P2=$(sed -n 's/^port=//p' <<<"$INFO2")
        sed -n 's/^known_hosts=//p' <<<"$INFO2" >> "$KH"
        timeit "fence_esxi -o list ($BIG VMs)" "$BIN" --ip 127.0.0.1 --ipport "$P2" --username fencetest --identity-file "$KEY" --known-hosts "$KH" -o list
        timeit "raw ssh getallvms ($BIG VMs)" "$SSH" -p "$P2" fencetest@127.0.0.1 'vim-cmd vmsvc/getallvms'
    fi
else
    echo "($BIN not built: fence_esxi rows skipped; cargo build --release first)"
fi
echo "libssh2 transport alone: cargo test --test integration -- --ignored --nocapture measure_"
