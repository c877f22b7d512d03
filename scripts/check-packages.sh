#!/usr/bin/env bash
# Checks what scripts/package.sh built: every packaged agent with its man page and metadata,
# in both the RPM and the .deb, and the packaged metadata valid against Pacemaker's schema.
set -euo pipefail
cd "$(dirname "$0")/.."
rpmf=$(ls dist/*.rpm); debf=$(ls dist/*.deb)
agents=$(sed -n 's/^name = "\(fence_[a-z0-9_]*\)"/\1/p' Cargo.toml | grep -v '^fence_fake$')
rpm_list=$(rpm -qlp "$rpmf" 2>/dev/null)
deb_list=$(dpkg-deb -c "$debf" | awk '{print $6}' | sed 's|^\./|/|')
fail=0
for a in $agents; do
  for f in "/usr/sbin/$a" "/usr/share/man/man8/$a.8" "/usr/share/fencekit/metadata/$a.xml"; do
    grep -q "^$f" <<<"$rpm_list" || { echo "check-packages: $f missing from $rpmf" >&2; fail=1; }
    grep -q "^$f" <<<"$deb_list" || { echo "check-packages: $f missing from $debf" >&2; fail=1; }
  done
done
if grep -q fence_fake <<<"$rpm_list$deb_list"; then echo "check-packages: the test agent was packaged" >&2; fail=1; fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$debf" "$work"
for a in $agents; do
  # The packaged binary runs and describes itself under its own name.
  "$work/usr/sbin/$a" -o metadata | grep -q "<resource-agent name=\"$a\"" || { echo "check-packages: packaged $a does not run" >&2; fail=1; }
done
for x in "$work"/usr/share/fencekit/metadata/*.xml; do
  xmllint --noout --relaxng /usr/share/cluster/relaxng/metadata.rng "$x" 2>/dev/null || { echo "check-packages: $x invalid" >&2; fail=1; }
done
[ "$fail" = 0 ] && echo "check-packages: $(wc -w <<<"$agents") agent(s) in $(basename "$rpmf") and $(basename "$debf")"
exit "$fail"
