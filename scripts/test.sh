#!/usr/bin/env bash
# The whole fencekit test suite: installs what is missing (apt-get), builds, then runs lint,
# unit, protocol, metadata, simulator (sshd/libvirt/ipmi_sim) and Pacemaker tests, and builds
# the packages. Every peer is required: a missing one fails the run, it is never skipped.
# Usage (as root on Debian 12): bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
if [ "$(id -u)" != 0 ]; then
  echo "test.sh: run as root (it installs packages, starts sshd/libvirtd/Pacemaker and links agents into /usr/sbin)" >&2
  exit 1
fi
step() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)

step "installing missing packages"
bash scripts/deps.sh

export FENCE_REQUIRE_SIMULATORS=1
export CARGO_TERM_COLOR=never

step "format and lint"
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings

step "build"
cargo build --locked --all-targets

step "unit and integration tests"
cargo test --locked -- --test-threads="${FENCE_TEST_THREADS:-4}"

step "fuzzing (a short run of every target; fuzz/run.sh 600 for a long one)"
FUZZ_REPORT="$(mktemp)" bash fuzz/run.sh "${FENCE_FUZZ_SECS:-5}"

step "packages (RPM and .deb)"
bash scripts/package.sh
bash scripts/check-packages.sh

echo
echo "test.sh: all passed in $(( $(date +%s) - started )) s"
