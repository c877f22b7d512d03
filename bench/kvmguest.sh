#!/bin/bash
# Benchmark (not a test): fence_kvmguest -o status against simulated KVM hosts
# (tests/support/sim_kvm: real sshd + real virsh + libvirtd test driver), side by side in one run with
#   - Debian's fence_virsh -o status (fence-agents 4.12, key login through the simulator's ssh
#     wrapper = strict host keys + the client key; no sudo: fence_virsh calls /usr/bin/sudo by
#     absolute path, which would bypass the simulator's fake sudo),
#   - a raw OpenSSH call `ssh host virsh domstate NAME` (key login), the practical floor,
# all against the SAME host, then fence_kvmguest with 8 hosts in the map: status of a guest on
# the first host vs a guest on the last host.
#
# Usage: bench/kvmguest.sh [RUNS]      (root; default 15 runs per row in alternating rounds;
#                                      hyperfine via bench/lib.sh, BENCH_OUT collects results)
#   CONF_SIZES="100 10000 100000"      also time validate-all and status with maps of that many
#                                      lines (CONF_LIMIT=60 s per run, then "timed out")
#   FENCE_KVMGUEST=path                (default target/release/fence_kvmguest)
# Targets (issue 5): >= 5x faster than fence_virsh; <= 0.8x the raw ssh time; last host of 8
# within 1.5x of the first. Prints medians, ratios, peak RSS; exit 1 if a target is missed.
set -u
cd "$(dirname "$0")/.."
RUNS=${1:-15}
BIN=${FENCE_KVMGUEST:-target/release/fence_kvmguest}
SIM=tests/support/sim_kvm/kvmsim.sh
ROOT=/tmp/fkb-$$
VIRSH_AGENT=/usr/sbin/fence_virsh
NHOSTS=8

[ "$(id -u)" = 0 ] || { echo "run as root (the simulated hosts need it)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "$BIN missing: cargo build --release --bin fence_kvmguest" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine missing" >&2; exit 1; }
command -v jq >/dev/null || { echo "jq missing" >&2; exit 1; }

cleanup() { bash "$SIM" stopall "$ROOT" >/dev/null 2>&1; rm -rf "$ROOT"; }
trap cleanup EXIT

bash "$SIM" setup "$ROOT" >/dev/null || { echo "kvmsim setup failed" >&2; exit 1; }

start() { # name guest: tries ports 2221..2299 from a pid-derived offset
    local p i
    for i in $(seq 0 78); do
        p=$((2221 + ($$ + i * 7 + ${#STARTED}) % 79))
        if bash "$SIM" start "$ROOT" "$1" 127.0.0.1 "$p" --auth password "on:$2" >/dev/null 2>&1; then
            echo "$p"; return 0
        fi
    done
    return 1
}

STARTED=""
HOSTS=""
MAP1=$ROOT/map1.conf
MAP8=$ROOT/map8.conf
: > "$MAP8"
for n in $(seq 1 $NHOSTS); do
    port=$(start "kb$n" "guest${n}1") || { echo "cannot start host kb$n" >&2; exit 1; }
    STARTED="$STARTED $port"
    HOSTS="${HOSTS:+$HOSTS,}kb$n=127.0.0.1:$port"
    echo "guest${n}1 kb$n gcluster1 cfguest${n}1 127.0.1.$n root guest-secret-$n" >> "$MAP8"
    [ "$n" = 1 ] && PORT1=$port
done
head -n1 "$MAP8" > "$MAP1"
chmod 600 "$MAP1" "$MAP8"
KEY=$ROOT/client/id_ed25519
KH=$ROOT/client/known_hosts
SSHW=$ROOT/client/ssh
USER_=$(cat "$ROOT/client/user" 2>/dev/null || echo fencetest)

KG1="$BIN --guests-conf=$MAP1 --hosts=kb1=127.0.0.1:$PORT1 -l $USER_ -k $KEY --known-hosts=$KH -o status -n cfguest11"
KG8_FIRST="$BIN --guests-conf=$MAP8 --hosts=$HOSTS -l $USER_ -k $KEY --known-hosts=$KH -o status -n cfguest11"
KG8_LAST="$BIN --guests-conf=$MAP8 --hosts=$HOSTS -l $USER_ -k $KEY --known-hosts=$KH -o status -n cfguest${NHOSTS}1"
FV="/usr/bin/python3 $VIRSH_AGENT -a 127.0.0.1 -u $PORT1 -l $USER_ -x -k $KEY --ssh-path=$SSHW -o status -n guest11"
RAW="$SSHW -o BatchMode=yes -p $PORT1 $USER_@127.0.0.1 virsh domstate guest11"

# Every row must really work before it is timed.
check() { # label expected-rc cmd
    local label=$1 want=$2 out rc
    shift 2
    out=$($1 2>&1); rc=$?
    if [ "$rc" != "$want" ]; then
        echo "$label: exit $rc (want $want): $out" >&2; exit 1
    fi
    printf '%-26s -> %s\n' "$label" "$(echo "$out" | head -n1)"
}
echo "== sanity (one run each; $NHOSTS hosts on 127.0.0.1, ports$STARTED)"
check "fence_kvmguest (1 host)" 0 "$KG1"
check "fence_virsh" 0 "$FV"
check "raw ssh virsh domstate" 0 "$RAW"
check "fence_kvmguest 8, first" 0 "$KG8_FIRST"
check "fence_kvmguest 8, last" 0 "$KG8_LAST"

BENCH_TMP=$ROOT
. bench/lib.sh
ROUNDS=5
echo "== timing: hyperfine, about $RUNS runs per row in $ROUNDS alternating rounds, one host each call"
alt_reset
alt_row "fence_kvmguest -o status (map: 1 host)" true "$KG1"
alt_row "fence_virsh -o status (Debian 4.12)" true "$FV"
alt_row "ssh host virsh domstate NAME (OpenSSH)" true "$RAW"
alt_row "fence_kvmguest, 8 hosts, guest on first" true "$KG8_FIRST"
alt_row "fence_kvmguest, 8 hosts, guest on last" true "$KG8_LAST"
alt_run kvmguest "$ROUNDS" $(( RUNS / ROUNDS > 1 ? RUNS / ROUNDS : 1 )) || exit 1
sec() { echo "${MED[$1]} / 1000" | bc -l; }
K=$(sec "fence_kvmguest -o status (map: 1 host)"); V=$(sec "fence_virsh -o status (Debian 4.12)")
S=$(sec "ssh host virsh domstate NAME (OpenSSH)"); F=$(sec "fence_kvmguest, 8 hosts, guest on first")
L=$(sec "fence_kvmguest, 8 hosts, guest on last")
rss() { alt_rss rss "$1" $2; echo "${RSS[$1]}"; }
RK=$(rss "fence_kvmguest -o status (map: 1 host)" "$KG1"); RV=$(rss "fence_virsh -o status (Debian 4.12)" "$FV")
RS=$(rss "ssh host virsh domstate NAME (OpenSSH)" "$RAW"); RF=$(rss "fence_kvmguest, 8 hosts, guest on first" "$KG8_FIRST")
RL=$(rss "fence_kvmguest, 8 hosts, guest on last" "$KG8_LAST")

# Cost growth of the map: guests_conf with N lines (the 8 hosts' guests first, then guests on
# 8 more unmapped host names), validate-all and status of the first guest. A run that takes
# longer than CONF_LIMIT seconds is recorded as timed out instead of being timed.
CONF_LIMIT=${CONF_LIMIT:-60}
for n in ${CONF_SIZES:-}; do
    conf=$ROOT/map$n.conf
    { cat "$MAP8"
      awk -v n="$n" -v k="$NHOSTS" 'BEGIN { for (i = k + 1; i <= n; i++)
          printf "g%06d kb%d gcluster1 cfg%06d 10.%d.%d.%d root guest-secret-x\n", i, i % 8 + 1, i, int(i / 65536), int(i / 256) % 256, i % 256 }'
    } > "$conf"
    chmod 600 "$conf"
    alt_reset
    for act in validate-all status; do
        c="$BIN --guests-conf=$conf --hosts=$HOSTS -l $USER_ -k $KEY --known-hosts=$KH -o $act -n cfguest11"
        t0=$(date +%s%N)
        timeout "$CONF_LIMIT" $c >/dev/null 2>"$ROOT/conf.err"; rc=$?
        t1=$(date +%s%N)
        if [ "$rc" = 124 ]; then
            bench_timeout "kvmguest-conf-$n" "fence_kvmguest -o $act, guests_conf of $n lines" "$CONF_LIMIT" "$c"
        elif [ "$rc" != 0 ]; then
            echo "-o $act with $n lines: exit $rc: $(head -c 300 "$ROOT/conf.err")" >&2; exit 1
        else
            # One timed run costs (t1 - t0): slow rows get fewer runs.
            ms=$(( (t1 - t0) / 1000000 ))
            if [ "$ms" -gt 3000 ]; then r=1; elif [ "$ms" -gt 500 ]; then r=2; else r=$(( RUNS / ROUNDS > 1 ? RUNS / ROUNDS : 1 )); fi
            alt_reset
            alt_row "fence_kvmguest -o $act, guests_conf of $n lines" true "$c"
            alt_run "kvmguest-conf-$n-$act" 3 "$r" || exit 1
        fi
    done
done

printf '\n| %-44s | %9s | %13s |\n' "status of one guest (median of $RUNS)" "median" "peak RSS"
printf '|%s|%s|%s|\n' "----------------------------------------------" "-----------" "---------------"
row() { printf '| %-44s | %7.1f ms | %9s KiB |\n' "$1" "$(echo "$2 * 1000" | bc -l)" "$3"; }
row "fence_kvmguest -o status (map: 1 host)" "$K" "$RK"
row "fence_virsh -o status (Debian 4.12)" "$V" "$RV"
row "ssh host virsh domstate NAME (OpenSSH)" "$S" "$RS"
row "fence_kvmguest, 8 hosts, guest on first" "$F" "$RF"
row "fence_kvmguest, 8 hosts, guest on last" "$L" "$RL"

fail=0
ratio() { # label value op target
    local ok
    ok=$(echo "$2 $3 $4" | bc -l)
    printf '%-48s %6.2f  (target %s %s) %s\n' "$1" "$2" "$3" "$4" "$([ "$ok" = 1 ] && echo PASS || echo MISS)"
    [ "$ok" = 1 ] || fail=1
}
echo
ratio "fence_virsh / fence_kvmguest" "$(echo "$V / $K" | bc -l)" ">=" 5
ratio "fence_kvmguest / raw ssh" "$(echo "$K / $S" | bc -l)" "<=" 0.8
ratio "8 hosts: last / first" "$(echo "$L / $F" | bc -l)" "<=" 1.5
printf '%-48s %6.2f  (info: cost of asking 8 hosts instead of 1)\n' "8 hosts (first) / 1 host" "$(echo "$F / $K" | bc -l)"
exit $fail
