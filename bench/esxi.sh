#!/bin/bash
# Benchmark (not a test): fence_esxi against a fake ESXi host (tests/support/sim/esxi), side by side with
# the practical floor, one raw OpenSSH call `ssh host 'vim-cmd vmsvc/power.getstate N'` (one
# handshake + one command, key login, same sshd).
#
# Usage: bench/esxi.sh [RUNS]        (root; default 15 runs per row; medians printed)
#   FENCE_ESXI=path/to/fence_esxi    (default target/release/fence_esxi; build it first with
#                                     `cargo build --release`)
#   BIG=2000                         VMs on the second host for the big `-o list` rows (0 = skip)
#   PORT=2290                        first port tried for the fake hosts
#   SIZES="100 2000 20000"           inventory sizes for the cost-growth `-o list` rows (default BIG)
# Needs hyperfine; rows run in alternating rounds (bench/lib.sh; BENCH_OUT collects results).
# Targets (issue 3): fence_esxi -o status, VM given by name (two remote commands), <= 0.8 x the
# raw ssh call; -o list on 2,000 VMs: < 50 ms of client-side time beyond the transfer.
set -u
cd "$(dirname "$0")/.."
RUNS=${1:-15}
BIG=${BIG:-2000}
ROOT=/tmp/fk-bench-$$
H=tests/support/sim/esxi/esxi-host.sh
BIN=${FENCE_ESXI:-target/release/fence_esxi}
PORT=${PORT:-2290}

[ "$(id -u)" = 0 ] || { echo "bench/esxi.sh: run as root (the fake host's sshd needs it)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "bench/esxi.sh: $BIN not built (cargo build --release)" >&2; exit 1; }

cleanup() {
    local d
    for d in "$ROOT"/h/*; do [ -d "$d" ] && $H "$ROOT" destroy "$(basename "$d")" >/dev/null 2>&1; done
    rm -rf "$ROOT"
}
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

command -v hyperfine >/dev/null 2>&1 || { echo "bench/esxi.sh: hyperfine missing" >&2; exit 1; }
BENCH_TMP=$ROOT
. bench/lib.sh
get() { echo "${MED[$1]:-}"; }
getcpu() { echo "${CPU[$1]:--}"; }

FE="$BIN --ip 127.0.0.1 --ipport $P1 --username fencetest --known-hosts $KH"
FEK="$FE --identity-file $KEY"
# Before each off: power the VM on locally (no ssh); a fault when it is already on is fine.
ON2="bash -c '$H $ROOT vim b1 vmsvc/power.on 2 >/dev/null 2>&1 || true'"

# The hosts for the cost-growth rows: one per inventory size (BIG is always among them).
SIZES=${SIZES:-$BIG}
case " $SIZES " in *" $BIG "*) ;; *) [ "$BIG" -gt 0 ] 2>/dev/null && SIZES="$SIZES $BIG" ;; esac
declare -A SPORT SBYTES SLINES
for n in $SIZES; do
    [ "$n" -gt 0 ] 2>/dev/null || continue
    python3 -c "import json; print(json.dumps([{'vmid': i, 'name': 'vm %04d' % i, 'power': 'on', 'annotation': 'bench'} for i in range(1, $n + 1)]))" > "$ROOT/inv$n.json"
    INFO2=$(start "s$n" $((P1 + 1)) "$ROOT/inv$n.json") || { echo "cannot start the $n-VM host" >&2; exit 1; }
    SPORT[$n]=$(sed -n 's/^port=//p' <<<"$INFO2")
    sed -n 's/^known_hosts=//p' <<<"$INFO2" >> "$KH"
    SBYTES[$n]=$($SSH -p "${SPORT[$n]}" fencetest@127.0.0.1 'vim-cmd vmsvc/getallvms' 2>/dev/null | wc -c)
    SLINES[$n]=$($BIN --ip 127.0.0.1 --ipport "${SPORT[$n]}" --username fencetest --known-hosts "$KH" --identity-file "$KEY" -o list | wc -l)
    [ "${SLINES[$n]}" = "$n" ] || { echo "-o list on $n VMs printed ${SLINES[$n]} lines" >&2; exit 1; }
done
FB() { echo "$BIN --ip 127.0.0.1 --ipport ${SPORT[$1]} --username fencetest --known-hosts $KH --identity-file $KEY"; }

ROUNDS=5
PER=$(( RUNS / ROUNDS > 1 ? RUNS / ROUNDS : 1 ))
echo "fake ESXi host 127.0.0.1:$P1 (about $RUNS runs per row in $ROUNDS alternating rounds)" >&2
alt_reset
alt_row "raw ssh power.getstate (OpenSSH, key)" true "$SSH -p $P1 fencetest@127.0.0.1 'vim-cmd vmsvc/power.getstate 4'"
alt_row "fence_esxi -o status, by name (key)" true "$FEK -o status -n 'node 3 with spaces'"
alt_row "fence_esxi -o status, by vmid (key)" true "$FEK -o status -n 4"
alt_row "fence_esxi -o status, by name (kbd-int pw)" true "$FE --password fencetest-pw -o status -n 'node 3 with spaces'"
alt_row "fence_esxi -o list (8 VMs, key)" true "$FEK -o list"
alt_row "fence_esxi -o list-status (8 VMs, key)" true "$FEK -o list-status"
alt_row "fence_esxi -o monitor (key)" true "$FEK -o monitor"
alt_row "fence_esxi -o off (VM on before, key)" "$ON2" "$FEK -o off -n cl1 --stonith-status-sleep 0.05"
alt_row "raw ssh power.off (OpenSSH, key)" "$ON2" "$SSH -p $P1 fencetest@127.0.0.1 'vim-cmd vmsvc/power.off 2'"
alt_run esxi "$ROUNDS" "$PER" || exit 1
for n in $SIZES; do
    [ -n "${SPORT[$n]:-}" ] || continue
    alt_reset
    alt_row "fence_esxi -o list ($n VMs, key)" true "$(FB "$n") -o list"
    alt_row "raw ssh getallvms ($n VMs, transfer)" true "$SSH -p ${SPORT[$n]} fencetest@127.0.0.1 'vim-cmd vmsvc/getallvms'"
    if [ "$n" = "$BIG" ]; then
        alt_row "raw ssh getallvms > /dev/null remotely" true "$SSH -p ${SPORT[$n]} fencetest@127.0.0.1 'vim-cmd vmsvc/getallvms >/dev/null'"
        alt_row "fence_esxi -o status, by name ($BIG VMs)" true "$(FB "$n") -o status -n 'vm 1999'"
    fi
    alt_run "esxi-list-$n" 3 $(( PER > 1 ? PER - 1 : 1 )) || exit 1
    bench_note "esxi-list-$n" "-o list on $n VMs: ${SLINES[$n]} lines out of ${SBYTES[$n]} bytes of getallvms"
done
P2=${SPORT[$BIG]:-}
BYTES=${SBYTES[$BIG]:-}
LINES=${SLINES[$BIG]:-}

# Peak RSS (KiB), the largest of 3 runs.
RSS_ST=-; RSS_BIG=-; RSS_SSH=-
if [ -x /usr/bin/time ]; then
    alt_rss rss "fence_esxi -o status" $FEK -o status -n cl0; RSS_ST=${RSS["fence_esxi -o status"]}
    alt_rss rss "OpenSSH ssh (getstate)" "$SSH" -p "$P1" fencetest@127.0.0.1 'vim-cmd vmsvc/power.getstate 1'
    RSS_SSH=${RSS["OpenSSH ssh (getstate)"]}
    for n in $SIZES; do
        [ -n "${SPORT[$n]:-}" ] || continue
        alt_rss rss "fence_esxi -o list ($n VMs)" $(FB "$n") -o list
    done
    [ -n "$P2" ] && RSS_BIG=${RSS["fence_esxi -o list ($BIG VMs)"]}
fi

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
