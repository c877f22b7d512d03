#!/bin/bash
# Benchmark (not a test): fence_bmc side by side with fence_ipmilan, ipmitool and FreeIPMI's
# ipmipower, in one run against the same OpenIPMI ipmi_sim BMC on 127.0.0.1 (tests/support/sim_ipmi).
#
# Usage: bench/bmc.sh [RUNS]          (default 30 runs per status row, RUNS/3 per reboot row,
#                                     in alternating rounds; BENCH_OUT: see bench/lib.sh)
#   FENCE_BMC=path/to/fence_bmc       (default target/release/fence_bmc: cargo build --release)
#   PORT=9400                         first UDP port tried for the simulator
# Needs: ipmi_sim, hyperfine, jq, /usr/bin/time (apt-get install time); optional: fence_ipmilan,
# ipmitool, ipmipower (apt-get install freeipmi-tools); missing tools are reported, their rows
# skipped.
#
# Rows: one `power status` each as a new process and session (fence_bmc negotiates the suite,
# as users run it; the others are given suite 3, which ipmi_sim needs: without -C, ipmitool and
# fence_ipmilan stall 10-14 s asking for the suite list, see the reference notes), then
# `-o reboot` with power_wait=0 for fence_bmc and fence_ipmilan (equal waits).
# Targets (issue 4): status >= 8x faster than fence_ipmilan, >= 4x faster than one ipmitool
# call, >= 1.5x faster than ipmipower; reboot >= 5x faster than fence_ipmilan.
set -u
cd "$(dirname "$0")/.."
RUNS=${1:-30}
RRUNS=$(( RUNS / 3 > 3 ? RUNS / 3 : 3 ))
BIN=${FENCE_BMC:-target/release/fence_bmc}
SIM=tests/support/sim_ipmi/bmcsim.sh
DIR=$(mktemp -d /tmp/fk-bmc-bench.XXXXXX)
PW=pass
cleanup() { "$SIM" stop "$DIR" >/dev/null 2>&1; rm -rf "$DIR"; }
trap cleanup EXIT

for t in ipmi_sim hyperfine jq /usr/bin/time; do
    command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "$BIN not built: cargo build --release --bin fence_bmc" >&2; exit 1; }

port=${PORT:-9400}
started=
for _ in $(seq 1 40); do
    if "$SIM" start "$DIR" "$port" 2>/dev/null; then started=1; break; fi
    port=$((port + 1))
done
[ -n "$started" ] || { echo "cannot start ipmi_sim" >&2; exit 1; }
export IPMI_PASSWORD=$PW   # ipmitool -E: its password through the environment

A="-a 127.0.0.1 -u $port -l admin -p $PW"
declare -A CMD LABEL
CMD[bmc]="$BIN $A -o status"
LABEL[bmc]="fence_bmc -o status"
CMD[bmc3]="$BIN $A -C 3 -o status"
LABEL[bmc3]="fence_bmc -C 3 -o status"
have() { command -v "$1" >/dev/null; }
if have fence_ipmilan; then
    CMD[ipmilan]="fence_ipmilan $A -P -C 3 -o status"
    LABEL[ipmilan]="fence_ipmilan -P -C 3 -o status"
else echo "fence_ipmilan not installed: its rows are skipped"; fi
if have ipmitool; then
    CMD[ipmitool]="ipmitool -I lanplus -C 3 -H 127.0.0.1 -p $port -U admin -E chassis power status"
    LABEL[ipmitool]="ipmitool -I lanplus -C 3 chassis power status"
else echo "ipmitool not installed: its row is skipped"; fi
if have ipmipower; then
    CMD[ipmipower]="ipmipower -h 127.0.0.1:$port -D LAN_2_0 -I 3 -u admin -p $PW -W opensesspriv --stat"
    LABEL[ipmipower]="ipmipower -D LAN_2_0 -I 3 --stat"
else echo "ipmipower not installed (apt-get install freeipmi-tools): its row is skipped"; fi
CMD[bmcreboot]="$BIN $A -o reboot --power-wait=0"
LABEL[bmcreboot]="fence_bmc -o reboot power_wait=0"
if have fence_ipmilan; then
    CMD[ipmilanreboot]="fence_ipmilan $A -P -C 3 -o reboot --power-wait=0"
    LABEL[ipmilanreboot]="fence_ipmilan -P -C 3 -o reboot power_wait=0"
fi

# Every command must work before it is timed.
for k in "${!CMD[@]}"; do
    out=$(${CMD[$k]} 2>&1) || { echo "${LABEL[$k]} failed: $out" >&2; exit 1; }
done

# Alternating rounds (bench/lib.sh): every row runs in each round, so load spikes of the
# shared machine hit every row alike.
BENCH_TMP=$DIR
. bench/lib.sh
ROUNDS=5
alt_reset
for k in bmc bmc3 ipmilan ipmitool ipmipower; do
    [ -n "${CMD[$k]:-}" ] && alt_row "${LABEL[$k]}" true "${CMD[$k]}"
done
alt_run bmc-status "$ROUNDS" $(( RUNS / ROUNDS > 1 ? RUNS / ROUNDS : 1 )) || exit 1
alt_reset
for k in bmcreboot ipmilanreboot; do
    [ -n "${CMD[$k]:-}" ] && alt_row "${LABEL[$k]}" true "${CMD[$k]}"
done
alt_run bmc-reboot 3 $(( RRUNS / 3 > 1 ? RRUNS / 3 : 1 )) || exit 1
# The metadata (no device contact): the cost of the process itself.
CMD[bmcmeta]="$BIN -o metadata"
LABEL[bmcmeta]="fence_bmc -o metadata"
alt_reset
alt_row "${LABEL[bmcmeta]}" true "${CMD[bmcmeta]}"
if have fence_ipmilan; then
    CMD[ipmilanmeta]="fence_ipmilan -o metadata"
    LABEL[ipmilanmeta]="fence_ipmilan -o metadata"
    alt_row "${LABEL[ipmilanmeta]}" true "${CMD[ipmilanmeta]}"
fi
alt_run metadata "$ROUNDS" $(( RUNS / ROUNDS > 1 ? RUNS / ROUNDS : 1 )) || exit 1
# Peak RSS: the largest of 3 runs (ru_maxrss covers the process and the children it waited
# for, e.g. fence_ipmilan's python plus its ipmitool).
declare -A KMED KRSS
for k in bmc bmc3 ipmilan ipmitool ipmipower bmcreboot ipmilanreboot bmcmeta ipmilanmeta; do
    [ -n "${CMD[$k]:-}" ] || continue
    KMED[$k]=${MED[${LABEL[$k]}]}
    case $k in *meta) ;; *) alt_rss rss "${LABEL[$k]}" ${CMD[$k]}; KRSS[$k]=${RSS[${LABEL[$k]}]} ;; esac
done
"$SIM" power "$DIR" 1

ratio() { # a b -> "b/a"
    if [ -n "${KMED[$1]:-}" ] && [ -n "${KMED[$2]:-}" ]; then
        echo "${KMED[$2]} / ${KMED[$1]}" | bc -l | xargs printf '%.1fx'
    else echo "-"; fi
}
echo
echo "ipmi_sim 127.0.0.1:$port, $(nproc) CPUs, hyperfine medians (about $RUNS runs per status row, $RRUNS per reboot row, alternating)"
printf '| %-46s | %10s | %13s |\n' "command (new process + session each)" "median ms" "peak RSS KiB"
printf '|%s|%s|%s|\n' "------------------------------------------------" "------------" "---------------"
for k in bmc bmc3 ipmilan ipmitool ipmipower bmcreboot ipmilanreboot bmcmeta ipmilanmeta; do
    [ -n "${KMED[$k]:-}" ] || continue
    printf '| %-46s | %10.1f | %13s |\n' "${LABEL[$k]}" "${KMED[$k]}" "${KRSS[$k]:--}"
done
echo
echo "fence_bmc -o status is ..."
printf '  %-8s faster than fence_ipmilan -o status (target >= 8x)\n' "$(ratio bmc ipmilan)"
printf '  %-8s faster than one ipmitool call       (target >= 4x)\n' "$(ratio bmc ipmitool)"
printf '  %-8s faster than ipmipower               (target >= 1.5x)\n' "$(ratio bmc ipmipower)"
echo "fence_bmc -o reboot (power_wait=0) is ..."
printf '  %-8s faster than fence_ipmilan -o reboot (target >= 5x)\n' "$(ratio bmcreboot ipmilanreboot)"
echo "fence_bmc -o metadata is ..."
printf '  %-8s faster than fence_ipmilan -o metadata\n' "$(ratio bmcmeta ipmilanmeta)"
