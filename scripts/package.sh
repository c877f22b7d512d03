#!/usr/bin/env bash
# Builds the release binaries, their man pages, an RPM and a .deb into dist/.
# Usage: bash scripts/package.sh [--skip-build]
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
# Packaged agents: every fence_* binary of the package except the test agent.
agents=$(sed -n 's/^name = "\(fence_[a-z0-9_]*\)"/\1/p' Cargo.toml | grep -v '^fence_fake$' || true)
[ -n "$agents" ] || { echo "package.sh: no agent to package" >&2; exit 1; }
[ "${1:-}" = "--skip-build" ] || cargo build --release --locked
out=$top/dist; work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
rm -rf "$out"; mkdir -p "$out" "$work/man" "$work/meta"
for a in $agents; do
  "target/release/$a" -o manpage > "$work/man/$a.8"
  "target/release/$a" -o metadata > "$work/meta/$a.xml"
done
# RPM
rpmbuild -bb --quiet \
  --define "_topdir $work/rpm" \
  --define "_fencekit_version $version" \
  --define "_fencekit_agents $(echo $agents)" \
  --define "_fencekit_bindir $top/target/release" \
  --define "_fencekit_mandir $work/man" \
  --define "_fencekit_metadir $work/meta" \
  packaging/rpm/fencekit.spec
find "$work/rpm/RPMS" -name '*.rpm' -exec cp {} "$out/" \;
# .deb
root=$work/deb
mkdir -p "$root/DEBIAN" "$root/usr/sbin" "$root/usr/share/man/man8" "$root/usr/share/fencekit/metadata"
sed "s/@VERSION@/$version/" packaging/deb/control.in > "$root/DEBIAN/control"
for a in $agents; do
  install -m 0755 "target/release/$a" "$root/usr/sbin/$a"
  gzip -9n < "$work/man/$a.8" > "$root/usr/share/man/man8/$a.8.gz"
  install -m 0644 "$work/meta/$a.xml" "$root/usr/share/fencekit/metadata/$a.xml"
done
dpkg-deb --root-owner-group --build "$root" "$out/fencekit_${version}_amd64.deb" >/dev/null
ls -1 "$out"
