#!/usr/bin/env bash
# The fencekit demo: installs what is missing, builds, starts simulated devices on loopback and
# a real single-node Pacemaker, fences a target through every agent, then runs the evacuation
# resource ocf:fencekit:vm-evacuate over three simulated free-ESXi hosts with BMCs, kills one and
# narrates the fence and the recovery with timings; says what happened, and stops everything it
# started. Usage (as root on Debian 12): bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
if [ "$(id -u)" != 0 ]; then
  echo "demo.sh: run as root (it installs packages and starts Pacemaker)" >&2
  exit 1
fi
bash scripts/deps.sh
echo "demo: building fencekit"
cargo build --locked --quiet --bins --tests
set +e
cargo test --locked --quiet --test integration demo::demo -- --ignored --nocapture --test-threads=1 2>&1 \
  | grep --line-buffered -E '^(demo:|thread|test result|failures|---- |  left|  right)'
rc=${PIPESTATUS[0]}
set -e
[ "$rc" = 0 ] || { echo "demo: FAILED (details: cargo test --test integration demo::demo -- --ignored --nocapture)" >&2; exit 1; }
