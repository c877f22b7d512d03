#!/bin/bash
# Regenerates bench/REPORT.md and bench/report.json in one run (root; about 10 minutes):
#   bench/bmc.sh       fence_bmc vs fence_ipmilan / ipmitool / ipmipower (status, reboot),
#                      metadata vs fence_ipmilan
#   bench/esxi.sh      fence_esxi vs raw OpenSSH; `-o list` at 100 / 2,000 / 20,000 VMs
#   bench/kvmguest.sh  fence_kvmguest vs fence_virsh / raw OpenSSH; 8 hosts first vs last;
#                      guests_conf of 100 / 10,000 / 100,000 lines (validate-all, status)
# each against simulated devices on loopback, rows in alternating rounds (bench/lib.sh), peak
# RSS, plus the machine and the peers' versions. Benchmarks, not tests: nothing here asserts a
# time.
#
# Usage: bash bench/report.sh
#   RUNS_BMC=15 RUNS_ESXI=10 RUNS_KVM=10   runs per row (split over alternating rounds)
#   ESXI_SIZES="100 2000 20000" CONF_SIZES="100 10000 100000" CONF_LIMIT=45
# Installs missing peers with apt-get (fence-agents, ipmitool, freeipmi-tools, hyperfine, ...)
# through scripts/deps.sh and builds the release binaries first.
set -u
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/report.sh: run as root (the simulated hosts need it)" >&2; exit 1; }

RUNS_BMC=${RUNS_BMC:-15}
RUNS_ESXI=${RUNS_ESXI:-10}
RUNS_KVM=${RUNS_KVM:-10}
ESXI_SIZES=${ESXI_SIZES:-100 2000 20000}
CONF_SIZES=${CONF_SIZES:-100 10000 100000}
CONF_LIMIT=${CONF_LIMIT:-45}

bash scripts/deps.sh >&2 || { echo "scripts/deps.sh failed" >&2; exit 1; }
command -v ipmipower >/dev/null || apt-get install -y -q --no-install-recommends freeipmi-tools >&2
for t in hyperfine jq bc python3 /usr/bin/time; do
    command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }
done
cargo build --locked --release --bins >&2 || { echo "release build failed" >&2; exit 1; }

WORK=$(mktemp -d /tmp/fk-report.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
OUT=$WORK/results.jsonl
: > "$OUT"
T0=$(date +%s)

run() { # name script args... (env passed by the caller)
    local name=$1 t0 rc
    shift
    echo "== $name" >&2
    t0=$(date +%s)
    BENCH_OUT=$OUT "$@" > "$WORK/$name.log" 2>&1
    rc=$?
    jq -cn --arg n "$name" --argjson rc "$rc" --argjson s "$(( $(date +%s) - t0 ))" \
        '{kind: "script", name: $n, exit: $rc, seconds: $s}' >> "$OUT"
    tail -n 25 "$WORK/$name.log" >&2
}
run bmc bash bench/bmc.sh "$RUNS_BMC"
SIZES=$ESXI_SIZES run esxi bash bench/esxi.sh "$RUNS_ESXI"
CONF_SIZES=$CONF_SIZES CONF_LIMIT=$CONF_LIMIT run kvmguest bash bench/kvmguest.sh "$RUNS_KVM"

# The machine and the peers.
{
    echo "nproc=$(nproc)"
    echo "cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
    echo "kernel=$(uname -srm)"
    echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "load=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "fencekit=$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD 2>/dev/null || echo '+dirty')"
    echo "rustc=$(rustc --version 2>/dev/null)"
    echo "seconds=$(( $(date +%s) - T0 ))"
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$WORK/machine"
dpkg-query -W -f='${Package}\t${Version}\n' fence-agents ipmitool freeipmi-tools openipmi \
    openssh-client openssh-server libvirt-clients libvirt-daemon python3 hyperfine \
    2>/dev/null > "$WORK/versions"

python3 bench/report.py "$OUT" "$WORK/machine" "$WORK/versions" bench/report.json bench/REPORT.md \
    || { echo "report.py failed" >&2; exit 1; }
echo "wrote bench/REPORT.md and bench/report.json in $(( $(date +%s) - T0 )) s" >&2
