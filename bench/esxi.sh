#!/bin/bash
# Benchmark (not a test): fence_esxi against a fake ESXi host (tests/sim/esxi), side by side with
# the practical floor, one raw OpenSSH call `ssh host 'vim-cmd vmsvc/power.getstate N'` (one
# handshake + one command, key login, same sshd).
#
# Usage: bench/esxi.sh [RUNS]        (root; default 15 runs per row; medians printed)
#   FENCE_ESXI=path/to/fence_esxi    (default target/release/fence_esxi; build it first with
#                                     `cargo build --release`)
#   BIG=2000                         VMs on the second host for the big `-o list` rows (0 = skip)
#   PORT=2290                        first port tried for the fake hosts
# Uses hyperfine when installed (medians, user+sys CPU), else a plain loop (medians only).
# Targets (issue 3): fence_esxi -o status, VM given by name (two remote commands), <= 0.8 x the
# raw ssh call; -o list on 2,000 VMs: < 50 ms of client-side time beyond the transfer.
set -u
cd "$(dirname "$0")/.."
RUNS=${1:-15}
BIG=${BIG:-2000}
ROOT=/tmp/fk-bench-$$
H=tests/sim/esxi/esxi-host.sh
BIN=${FENCE_ESXI:-target/release/fence_esxi}
PORT=${PORT:-2290}
RES=$ROOT/results.tsv

[ "$(id -u)" = 0 ] || { echo "bench/esxi.sh: run as root (the fake host's sshd needs it)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "bench/esxi.sh: $BIN not built (cargo build --release)" >&2; exit 1; }

cleanup() { $H "$ROOT" destroy b1 >/dev/null 2>&1; $H "$ROOT" destroy b2 >/dev/null 2>&1; rm -rf "$ROOT"; }
trap cleanup EXIT

start() { # name port [inventory] -> key=value lines
    local p=$2 out rc
    for _ in $(seq 1 40); do
        out=$(ESXI_INVENTORY=${3:-} $H "$ROOT" start "$1" 127.0.0.1 "$p" 2>/dev/null)
        rc=$?
        if [ $rc = 0 ]; then echo "$out"; return 0; fi
        [ $rc = 3 ] || return 1
        p=$((p + 1))
    done
    return 1
}

INFO=$(start b1 "$PORT") || { echo "cannot start the fake host" >&2; exit 1; }
P1=$(sed -n 's/^port=//p' <<<"$INFO")
KH=$ROOT/kh
sed -n 's/^known_hosts=//p' <<<"$INFO" > "$KH"
KEY=$ROOT/client/id_ed25519
SSH=$ROOT/client/ssh
: > "$RES"

HAVE_HF=0
command -v hyperfine >/dev/null 2>&1 && HAVE_HF=1

# measure LABEL PREPARE CMD: median wall and mean user+sys (ms) appended to $RES.
# PREPARE runs before each timed run ("true" for none). Both are split into words like a shell
# would (hyperfine -N: no shell in the timed path), so no pipes or redirections outside quotes.
measure() {
    local label=$1 prep=$2 cmd=$3
    if [ $HAVE_HF = 1 ]; then
        hyperfine -N --style none --warmup 2 --runs "$RUNS" --prepare "$prep" \
            --export-json "$ROOT/hf.json" "$cmd" >/dev/null 2>&1 \
            || { echo "measure failed: $label" >&2; return 1; }
        python3 - "$ROOT/hf.json" "$label" >> "$RES" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print("%s\t%.1f\t%.1f\t%.1f" % (sys.argv[2], r["median"] * 1e3, r["min"] * 1e3,
                                (r["user"] + r["system"]) * 1e3))
EOF
    else
        local i t0 t1
        for i in $(seq 1 "$RUNS"); do
            bash -c "$prep" >/dev/null 2>&1
            t0=$(date +%s%N); bash -c "$cmd" >/dev/null 2>&1; t1=$(date +%s%N)
            echo $(( (t1 - t0) / 1000 ))
        done | sort -n | awk -v l="$label" '{a[NR]=$1} END {printf "%s\t%.1f\t%.1f\t-\n", l, a[int((NR+1)/2)]/1000, a[1]/1000}' >> "$RES"
    fi
}
get() { awk -F'\t' -v l="$1" '$1 == l {print $2}' "$RES"; }
getcpu() { awk -F'\t' -v l="$1" '$1 == l {print $4}' "$RES"; }

FE="$BIN --ip 127.0.0.1 --ipport $P1 --username fencetest --known-hosts $KH"
FEK="$FE --identity-file $KEY"
# Before each off: power the VM on locally (no ssh); a fault when it is already on is fine.
ON2="bash -c '$H $ROOT vim b1 vmsvc/power.on 2 >/dev/null 2>&1 || true'"

echo "fake ESXi host 127.0.0.1:$P1 ($RUNS runs per row after 2 warm-ups; hyperfine=$HAVE_HF)" >&2
measure "raw ssh power.getstate (OpenSSH, key)" "true" "$SSH -p $P1 fencetest@127.0.0.1 'vim-cmd vmsvc/power.getstate 4'"
measure "fence_esxi -o status, by name (key)" "true" "$FEK -o status -n 'node 3 with spaces'"
measure "fence_esxi -o status, by vmid (key)" "true" "$FEK -o status -n 4"
measure "fence_esxi -o status, by name (kbd-int pw)" "true" "$FE --password fencetest-pw -o status -n 'node 3 with spaces'"
measure "fence_esxi -o list (8 VMs, key)" "true" "$FEK -o list"
measure "fence_esxi -o list-status (8 VMs, key)" "true" "$FEK -o list-status"
measure "fence_esxi -o monitor (key)" "true" "$FEK -o monitor"
measure "fence_esxi -o off (VM on before, key)" "$ON2" "$FEK -o off -n cl1 --stonith-status-sleep 0.05"
measure "raw ssh power.off (OpenSSH, key)" "$ON2" "$SSH -p $P1 fencetest@127.0.0.1 'vim-cmd vmsvc/power.off 2'"

if [ "$BIG" -gt 0 ] 2>/dev/null; then
    python3 -c "import json; print(json.dumps([{'vmid': i, 'name': 'vm %04d' % i, 'power': 'on', 'annotation': 'bench'} for i in range(1, $BIG + 1)]))" > "$ROOT/big.json"
    INFO2=$(start b2 $((P1 + 1)) "$ROOT/big.json") || { echo "cannot start the big host" >&2; exit 1; }
    P2=$(sed -n 's/^port=//p' <<<"$INFO2")
    sed -n 's/^known_hosts=//p' <<<"$INFO2" >> "$KH"
    BYTES=$($SSH -p "$P2" fencetest@127.0.0.1 'vim-cmd vmsvc/getallvms' 2>/dev/null | wc -c)
    LINES=$($BIN --ip 127.0.0.1 --ipport "$P2" --username fencetest --known-hosts "$KH" --identity-file "$KEY" -o list | wc -l)
    measure "fence_esxi -o list ($BIG VMs, key)" "true" "$BIN --ip 127.0.0.1 --ipport $P2 --username fencetest --known-hosts $KH --identity-file $KEY -o list"
    measure "raw ssh getallvms ($BIG VMs, transfer)" "true" "$SSH -p $P2 fencetest@127.0.0.1 'vim-cmd vmsvc/getallvms'"
    measure "raw ssh getallvms > /dev/null remotely" "true" "$SSH -p $P2 fencetest@127.0.0.1 'vim-cmd vmsvc/getallvms >/dev/null'"
    measure "fence_esxi -o status, by name ($BIG VMs)" "true" "$BIN --ip 127.0.0.1 --ipport $P2 --username fencetest --known-hosts $KH --identity-file $KEY -o status -n 'vm 1999'"
fi

# Peak RSS (KiB).
rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
RSS_ST=-; RSS_BIG=-; RSS_SSH=-
if [ -x /usr/bin/time ]; then
    RSS_ST=$(rss $FEK -o status -n cl0)
    RSS_SSH=$(rss "$SSH" -p "$P1" fencetest@127.0.0.1 'vim-cmd vmsvc/power.getstate 1')
    [ "$BIG" -gt 0 ] && RSS_BIG=$(rss $BIN --ip 127.0.0.1 --ipport "$P2" --username fencetest --known-hosts "$KH" --identity-file "$KEY" -o list)
fi

echo
printf '%-46s %10s %10s %14s\n' "row" "median ms" "min ms" "user+sys ms"
printf '%-46s %10s %10s %14s\n' "----------------------------------------------" "---------" "------" "-----------"
while IFS=$'\t' read -r l m mn c; do printf '%-46s %10s %10s %14s\n' "$l" "$m" "$mn" "$c"; done < "$RES"
echo
RAW=$(get "raw ssh power.getstate (OpenSSH, key)")
ST=$(get "fence_esxi -o status, by name (key)")
printf 'status by name / raw ssh getstate: %.2f  (target <= 0.80)\n' "$(echo "$ST / $RAW" | bc -l)"
RAWOFF=$(get "raw ssh power.off (OpenSSH, key)")
OFF=$(get "fence_esxi -o off (VM on before, key)")
printf 'off (lookup + getstate + off + read-back) / raw ssh power.off: %.2f\n' "$(echo "$OFF / $RAWOFF" | bc -l)"
if [ "$BIG" -gt 0 ] 2>/dev/null; then
    BL=$(get "fence_esxi -o list ($BIG VMs, key)")
    BS=$(get "fence_esxi -o list (8 VMs, key)")
    TR=$(get "raw ssh getallvms ($BIG VMs, transfer)")
    TN=$(get "raw ssh getallvms > /dev/null remotely")
    echo "list on $BIG VMs: $LINES lines out of $BYTES bytes of getallvms"
    printf '  total wall time %.1f ms (raw ssh transfer of the same output %.1f ms)\n' "$BL" "$TR"
    printf '  wall beyond the 8-VM list: %.1f ms (remote render + transfer + parse of %s bytes)\n' \
        "$(echo "$BL - $BS" | bc -l)" "$BYTES"
    printf '  raw ssh getallvms: %.1f ms with the output sent, %.1f ms with it discarded remotely\n' \
        "$TR" "$TN"
    C1=$(getcpu "fence_esxi -o list ($BIG VMs, key)"); C0=$(getcpu "fence_esxi -o list (8 VMs, key)")
    if [ "$C1" != "-" ] && [ -n "$C1" ]; then
        printf '  client CPU (user+sys) %.1f ms; beyond the 8-VM list: %.1f ms  (target < 50 ms)\n' \
            "$C1" "$(echo "$C1 - $C0" | bc -l)"
    fi
fi
BIGRSS=""
[ "$BIG" -gt 0 ] 2>/dev/null && BIGRSS="; -o list on $BIG VMs ${RSS_BIG} KiB"
echo "peak RSS: fence_esxi -o status ${RSS_ST} KiB${BIGRSS}; OpenSSH client (getstate) ${RSS_SSH} KiB"
echo "(libssh2 transport alone: cargo test --test integration -- --ignored --nocapture measure_)"
