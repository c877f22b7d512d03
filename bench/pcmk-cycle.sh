#!/usr/bin/env bash
# Times full cycles of the single-node Pacemaker harness with Debian's fence_dummy:
# up -> pcs stonith create -> wait running -> stonith_admin --reboot target1 -> delete -> down.
#
# Usage: bench/pcmk-cycle.sh [CYCLES] [--state DIR]     (default 3 cycles; root)
# Prints one line per cycle and a min/max summary. Takes the same machine-wide lock as the
# Rust tests (/tmp/fencekit-pacemaker.lock), so it never runs next to them.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd -P)
pcmk=$here/scripts/pcmk.sh
cycles=3 state_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --state) state_args=(--state "$2"); shift 2 ;;
        [0-9]*) cycles=$1; shift ;;
        *) echo "usage: $0 [CYCLES] [--state DIR]" >&2; exit 2 ;;
    esac
done

exec 8>/tmp/fencekit-pacemaker.lock
flock -w 900 8 || { echo "lock busy" >&2; exit 1; }

t() { date +%s.%N; }
d() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
# fence_dummy fails on an empty status file; give it a path that does not exist yet.
status_dir=$(mktemp -d /tmp/fencekit-bench-dummy.XXXXXX)
status_file=$status_dir/status
trap 'rm -rf "$status_dir"; bash "$pcmk" down "${state_args[@]}" 8>&- >/dev/null 2>&1 || true' EXIT

ups=() downs=() totals=()
for i in $(seq 1 "$cycles"); do
    t0=$(t)
    bash "$pcmk" up --restart "${state_args[@]}" 8>&- 2>/dev/null
    t1=$(t)
    pcs stonith create bench_dummy fence_dummy pcmk_host_list=target1 "status_file=$status_file" >/dev/null
    until crm_resource --locate -r bench_dummy 2>/dev/null | grep -q 'is running on'; do sleep 0.25; done
    t2=$(t)
    stonith_admin --reboot target1
    t3=$(t)
    pcs stonith delete bench_dummy --force >/dev/null 2>&1
    stonith_admin --cleanup --history '*' >/dev/null
    t4=$(t)
    bash "$pcmk" down "${state_args[@]}" 8>&- 2>/dev/null
    t5=$(t)
    echo "cycle $i: up $(d "$t0" "$t1") s, create+running $(d "$t1" "$t2") s, reboot $(d "$t2" "$t3") s, delete+cleanup $(d "$t3" "$t4") s, down $(d "$t4" "$t5") s, total $(d "$t0" "$t5") s"
    ups+=("$(d "$t0" "$t1")") downs+=("$(d "$t4" "$t5")") totals+=("$(d "$t0" "$t5")")
done
mm() { printf '%s\n' "$@" | sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s-%s", lo, hi }'; }
echo "summary over $cycles cycles: up $(mm "${ups[@]}") s, down $(mm "${downs[@]}") s, total $(mm "${totals[@]}") s"
