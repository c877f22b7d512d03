#!/usr/bin/env bash
# Install the system packages fencekit's tests, benchmarks and packaging need (Debian/Ubuntu),
# then check that every binary they use is present.
#
# Usage: scripts/deps.sh [--check]
#   --check   only verify the binaries; install nothing.
#
# Idempotent: when every package is installed it runs no apt command and takes well under a
# second. When something is missing it runs `apt-get update` once, then one
# `apt-get install --no-install-recommends`. Package post-install scripts must not start
# corosync/pacemaker/pcsd/sshd/libvirtd through init scripts (no systemd here), so a temporary
# /usr/sbin/policy-rc.d that exits 101 is put in place when none exists, and removed again
# afterwards (only if we created it).
# Exit status: 0 all present; 1 something is still missing (named on stderr); 2 usage error.
set -euo pipefail

PACKAGES=(
    openssh-server openssh-client openipmi ipmitool
    pacemaker pacemaker-cli-utils corosync pcs fence-agents resource-agents
    libxml2-utils xsltproc libvirt-daemon libvirt-clients rpm hyperfine
    rpmlint lintian cpio debugedit elfutils dpkg-dev fakeroot groff-base man-db
)
# binary:package (the package that ships it, named in the error message).
BINARIES=(
    sshd:openssh-server ssh:openssh-client ipmi_sim:openipmi ipmitool:ipmitool
    corosync:corosync corosync-quorumtool:corosync pacemakerd:pacemaker pcs:pcs
    stonith_admin:pacemaker-cli-utils crm_resource:pacemaker-cli-utils
    crm_mon:pacemaker-cli-utils cibadmin:pacemaker-cli-utils crm_attribute:pacemaker-cli-utils
    xmllint:libxml2-utils xsltproc:xsltproc libvirtd:libvirt-daemon virsh:libvirt-clients
    rpmbuild:rpm hyperfine:hyperfine fence_ipmilan:fence-agents fence_virsh:fence-agents
    fence_dummy:fence-agents ocf-tester:resource-agents
    rpmlint:rpmlint lintian:lintian cpio:cpio rpm2cpio:rpm find-debuginfo:debugedit eu-strip:elfutils
    dpkg-shlibdeps:dpkg-dev fakeroot:fakeroot groff:groff-base man:man-db
)

check_only=0
case "${1:-}" in
    "") ;;
    --check) check_only=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "deps.sh: unknown argument '$1' (usage: deps.sh [--check])" >&2; exit 2 ;;
esac

# Look in PATH and in the sbin directories (a non-root PATH often lacks them).
find_bin() {
    local b=$1 d
    if command -v "$b" >/dev/null 2>&1; then return 0; fi
    for d in /usr/local/sbin /usr/sbin /sbin /usr/local/bin /usr/bin /bin; do
        [ -x "$d/$b" ] && return 0
    done
    return 1
}

missing_binaries() {
    local entry
    for entry in "${BINARIES[@]}"; do
        find_bin "${entry%%:*}" || printf '%s\n' "$entry"
    done
}

missing_packages() {
    local p status
    for p in "${PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
        [ "$status" = installed ] || printf '%s\n' "$p"
    done
}

if [ "$check_only" = 0 ]; then
    if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
        echo "deps.sh: not a Debian-like system (no dpkg-query/apt-get); checking binaries only" >&2
    else
        mapfile -t todo < <(missing_packages)
        if [ "${#todo[@]}" -gt 0 ]; then
            if [ "$(id -u)" != 0 ]; then
                echo "deps.sh: must run as root to install: ${todo[*]}" >&2
                exit 1
            fi
            created_policy=0
            cleanup_policy() {
                if [ "$created_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
            }
            trap cleanup_policy EXIT
            if [ ! -e /usr/sbin/policy-rc.d ]; then
                printf '#!/bin/sh\n# temporary, created by fencekit scripts/deps.sh\nexit 101\n' \
                    > /usr/sbin/policy-rc.d
                chmod 0755 /usr/sbin/policy-rc.d
                created_policy=1
            fi
            echo "deps.sh: installing: ${todo[*]}" >&2
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -q >&2
            apt-get install -y -q --no-install-recommends "${todo[@]}" >&2
            cleanup_policy
            created_policy=0
            trap - EXIT
        fi
    fi
fi

mapfile -t absent < <(missing_binaries)
if [ "${#absent[@]}" -gt 0 ]; then
    for entry in "${absent[@]}"; do
        echo "deps.sh: missing binary ${entry%%:*} (package ${entry#*:})" >&2
    done
    exit 1
fi
# The fuzzers: cargo-fuzz from crates.io on the nightly toolchain (rustup's; nothing else can
# be fetched here, so a machine without nightly fails loudly instead of skipping the fuzzing).
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "deps.sh: the nightly Rust toolchain is missing (fuzz/run.sh needs it)" >&2
    exit 1
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "deps.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked >&2
fi
echo "deps.sh: all ${#BINARIES[@]} binaries present, nightly and cargo-fuzz"
