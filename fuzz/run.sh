#!/usr/bin/env bash
# Runs every fuzz target for a fixed time, one after the other, one job each (no -fork), built
# with debug assertions and overflow checks (an overflow is a crash), and
# writes executions and coverage per target into bench/FUZZ.md.
#
#   fuzz/run.sh [SECONDS_PER_TARGET]     default 15 (CI); e.g. 600 for a longer run
#   FUZZ_TARGETS="vimcmd virsh" fuzz/run.sh 60    only these targets
#   FUZZ_REPORT=/tmp/fuzz.md fuzz/run.sh 5        write the table elsewhere (CI's short run)
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`). Exits
# non-zero if any target crashes, times out (an input taking over 10 s), runs out of memory
# or cannot run; the input is kept in fuzz/artifacts/<target>/ and named in the log
# fuzz/logs/<target>.log.
set -uo pipefail
secs=${1:-15}
case $secs in '' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET]" >&2; exit 2 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$here" || exit 2
all="stdin argv kvmconf vimcmd virsh ipmi_sessionless ipmi_login_replies ipmi_session ipmi_rakp_exchange"
targets=${FUZZ_TARGETS:-$all}

mkdir -p logs artifacts
./seed.sh >/dev/null || { echo "seeding failed" >&2; exit 2; }
cargo +nightly fuzz build --debug-assertions >logs/build.log 2>&1 ||
    { cat logs/build.log >&2; echo "build failed" >&2; exit 2; }
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
bindir="$here/target/$triple/release"

rows=""
failed=""
for t in $targets; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="logs/$t.log"
    echo "== $t: ${secs}s" >&2
    "$bindir/$t" "corpus/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="artifacts/$t/" >"$log" 2>&1
    rc=$?
    last=$(grep -E '^#[0-9]+' "$log" | grep 'cov:' | tail -n 1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$last")
    if [ "$rc" -eq 0 ] && ! grep -qE '^==[0-9]+== ERROR|^SUMMARY: libFuzzer' "$log"; then
        result=ok
    else
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        kind=$(grep -oE 'ERROR: libFuzzer: [a-z-]+|deadly signal|panicked at [^ ]*' "$log" | head -n 1)
        result="FAILED (exit $rc${kind:+, $kind}${artifact:+, $artifact})"
        failed="$failed $t"
    fi
    rows="$rows| $t | $secs | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | $result |
"
    echo "   $result: ${execs:-?} executions, cov ${cov:-?}, ft ${ft:-?}" >&2
done

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
report=${FUZZ_REPORT:-$root/bench/FUZZ.md}
mkdir -p "$(dirname "$report")"
{
    echo "# Fuzzing report"
    echo
    echo "Written by \`fuzz/run.sh $secs\` (cargo-fuzz, libFuzzer; one job per target, targets run one"
    echo "after the other). Executions are libFuzzer's \`stat::number_of_executed_units\`; cov and ft"
    echo "are the coverage counters (edges, features) of its final status line; corpus is inputs/bytes"
    echo "at the end (seeded by \`fuzz/seed.sh\` from tests/fixtures and generated datagrams)."
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- seconds per target: $secs"
    echo "- machine: $(uname -sm), ${cpu:-unknown CPU}, $(nproc) core(s) (shared with other jobs)"
    echo "- toolchain: $(rustc +nightly --version), $(cargo fuzz --version 2>/dev/null)"
    echo "- commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null)$(git -C "$root" diff --quiet 2>/dev/null || echo ' (dirty)')"
    echo
    echo "| target | seconds | executions | exec/s | cov | ft | corpus | result |"
    echo "|---|---|---|---|---|---|---|---|"
    printf '%s' "$rows"
    echo
    echo "Targets: \`stdin\`, \`argv\` (protocol::stdin / protocol::argv over the full option table),"
    echo "\`kvmconf\` (device::kvmconf maps and hosts), \`vimcmd\` and \`virsh\` (every parser of"
    echo "device::vimcmd / device::virsh), \`ipmi_sessionless\` (RMCP / IPMI 1.5 / RMCP+ framing, the"
    echo "response decoder, cipher suite records, chassis status), \`ipmi_login_replies\` (the login"
    echo "reply matchers and session unwrapping), \`ipmi_session\` (wrap/unwrap round trip and"
    echo "integrity of every suite and IPMI 1.5 MD5), \`ipmi_rakp_exchange\` (the RMCP+ login against"
    echo "a scripted BMC: aborts if a login succeeds without the password proof). Entry points of the"
    echo "IPMI targets: \`transport::ipmi::fuzz\` (src/transport/ipmi/rmcpplus.rs)."
} >"$report"

if [ -n "$failed" ]; then
    echo "fuzz: FAILED:$failed (see fuzz/logs/, inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: all targets ran ${secs}s without a crash; $report written" >&2
