#!/usr/bin/env bash
# Builds every fencekit package into dist/:
#   fencekit-VERSION.tar.gz      release tarball, crates vendored (packaging/make-tarball.sh)
#   fencekit-VERSION-R.src.rpm   the SRPM, and every binary RPM (common, esxi, bmc, kvmguest,
#                                all, debuginfo), from packaging/rpm/fencekit.spec
#   fencekit-*_VERSION-R_*.deb   the same packages for Debian/Ubuntu
#
# The RPMs are built by rpmbuild from the tarball alone, in a network namespace without
# network (unshare -n): a real offline build that reuses nothing from target/. The release
# binaries are compiled once, there: the .debs are made from the binary RPMs' contents
# (stripped by rpmbuild's find-debuginfo, man pages already compressed) with Debian's own
# metadata (DEBIAN/control with dpkg-shlibdeps Depends, md5sums, copyright, changelog).
# Notes and lint results: packaging/README.md.
#
# Usage: bash scripts/package.sh [--debs-only]
#   --debs-only  keep the tarball and RPMs in dist/ and only remake the .debs from them
#                (for work on the .deb packaging; the RPM build takes minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
export PATH="$HOME/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
say() { echo "package.sh: $*" >&2; }
started=$(date +%s)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
release=$(sed -n 's/^Release:[[:space:]]*\([^%]*\).*/\1/p' packaging/rpm/fencekit.spec)
debver=$version-$release
out=$top/dist
work=$(mktemp -d "${TMPDIR:-/var/tmp}/fencekit-pkg.XXXXXX"); trap 'rm -rf "$work"' EXIT
debs_only=0
case "${1:-}" in
  "") ;;
  --debs-only) debs_only=1 ;;
  *) echo "usage: bash scripts/package.sh [--debs-only]" >&2; exit 2 ;;
esac
if [ "$debs_only" = 1 ]; then
  rm -f "$out"/*.deb
else
rm -rf "$out"; mkdir -p "$out"

# ---------------------------------------------------------------- source tarball
bash packaging/make-tarball.sh "$out"

# ---------------------------------------------------------------- RPMs
# --nodeps: BuildRequires are looked up in rpm's own database, which is empty on Debian (the
# toolchain comes from apt and rustup). unshare -n: no network during the build but the
# loopback interface (up, as in mock/Koji build roots; unit tests use 127.0.0.1).
mkdir -p "$work/rpm/SOURCES"
cp "$out/fencekit-$version.tar.gz" "$work/rpm/SOURCES/"
net=(unshare --net sh -c 'ip link set lo up && exec "$@"' offline)
if ! unshare --net sh -c 'ip link set lo up' 2>/dev/null; then
  say "warning: cannot unshare the network namespace (not root?); building with the network present"
  net=()
fi
t0=$(date +%s)
if ! "${net[@]}" rpmbuild -ba --nodeps --define "_topdir $work/rpm" packaging/rpm/fencekit.spec \
    >"$work/rpmbuild.log" 2>&1; then
  tail -n 60 "$work/rpmbuild.log" >&2
  say "rpmbuild failed (log above)"
  exit 1
fi
grep -E '^(warning|error):' "$work/rpmbuild.log" >&2 || true
say "rpmbuild -ba took $(( $(date +%s) - t0 )) s"
find "$work/rpm/SRPMS" "$work/rpm/RPMS" -name '*.rpm' -exec cp {} "$out/" \;
fi

# ---------------------------------------------------------------- .debs
debarch=$(dpkg --print-architecture)
rpmarch=$(rpm --eval '%{_arch}')
maint=$(sed -n 's/^ -- \(.*>\)  .*/\1/p' packaging/deb/changelog | head -n1)
changelog_version=$(sed -n '1s/^fencekit (\([^)]*\)).*/\1/p' packaging/deb/changelog)
if [ "$changelog_version" != "$debver" ]; then
  say "packaging/deb/changelog is at $changelog_version, the spec at $debver: add a changelog entry"
  exit 1
fi
homepage=$(rpm -qp --qf '%{URL}' "$out/fencekit-common-$debver.noarch.rpm" 2>/dev/null)
copyright=$work/src/fencekit-$version/packaging/generated/copyright
mkdir -p "$work/src"
tar -C "$work/src" -xzf "$out/fencekit-$version.tar.gz" "fencekit-$version/packaging/generated/copyright"

# Debian's dpkg-shlibdeps wants a debian/control beside it (it only reads the package list).
mkdir -p "$work/shlibs/debian"
printf 'Source: fencekit\n\nPackage: fencekit\nArchitecture: any\n' >"$work/shlibs/debian/control"

# deb_from_rpm NAME ARCH DESCRIPTION-FILE: the RPM NAME's files, Debian metadata around them.
deb_from_rpm() {
  local name=$1 arch=$2 root=$work/deb/$1 rpmf depends=
  rpmf=$out/$name-$debver.noarch.rpm
  [ -f "$rpmf" ] || rpmf=$out/$name-$debver.$rpmarch.rpm
  [ -f "$rpmf" ] || { say "no RPM $name-$debver in $out"; exit 1; }
  mkdir -p "$root/DEBIAN"
  (cd "$root" && rpm2cpio "$rpmf" | cpio -idm --quiet --no-absolute-filenames)
  # RPM-only parts: build-id links (they point into the -debuginfo RPM) and the licence dir
  # (Debian has /usr/share/doc/PKG/copyright instead).
  rm -rf "$root/usr/lib/.build-id"; rmdir "$root/usr/lib" 2>/dev/null || true
  if [ -d "$root/usr/share/licenses/$name" ]; then
    mkdir -p "$root/usr/share/doc/$name"
    find "$root/usr/share/licenses/$name" -mindepth 1 -maxdepth 1 ! -name COPYING \
      -exec mv -t "$root/usr/share/doc/$name" {} +
    rm -rf "$root/usr/share/licenses"
  fi
  install -D -m 0644 "$copyright" "$root/usr/share/doc/$name/copyright"
  gzip -9n <packaging/deb/changelog >"$root/usr/share/doc/$name/changelog.Debian.gz"
  chmod 0644 "$root/usr/share/doc/$name/changelog.Debian.gz"
  find "$root" -type d -exec chmod 0755 {} +
  if [ -d "$root/usr/sbin" ]; then
    depends=$(cd "$work/shlibs" && dpkg-shlibdeps -O "$root"/usr/sbin/* 2>"$work/shlibdeps.err" \
      | sed -n 's/^shlibs:Depends=//p') || { cat "$work/shlibdeps.err" >&2; exit 1; }
  fi
  case $name in
    fencekit-common) ;;
    fencekit-all)
      depends=$(for p in $agent_pkgs; do printf '%s (= %s), ' "$p" "$debver"; done)
      depends=${depends%, } ;;
    *) depends="${depends:+$depends, }fencekit-common (= $debver)" ;;
  esac
  (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z \
    | xargs -0 -r md5sum) >"$root/DEBIAN/md5sums"
  [ -s "$root/DEBIAN/md5sums" ] || rm -f "$root/DEBIAN/md5sums"
  {
    echo "Package: $name"
    echo "Source: fencekit"
    echo "Version: $debver"
    echo "Architecture: $arch"
    echo "Maintainer: $maint"
    echo "Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)"
    [ -z "$depends" ] || echo "Depends: $depends"
    # The OCF agent ocf:fencekit:vm-evacuate is run by Pacemaker from resource-agents' tree.
    if [ "$name" = fencekit-evacuate ]; then echo "Recommends: resource-agents"; fi
    echo "Section: admin"
    echo "Priority: optional"
    echo "Homepage: $homepage"
    echo "Description: $(rpm -qp --qf '%{SUMMARY}' "$rpmf" | sed 's/^\(.\)/\L\1/')"
    rpm -qp --qf '%{DESCRIPTION}\n' "$rpmf" | sed 's/^$/./; s/^/ /'
  } >"$root/DEBIAN/control"
  dpkg-deb --root-owner-group -Zxz --build "$root" "$out/${name}_${debver}_$arch.deb" >/dev/null
}
agent_pkgs="fencekit-esxi fencekit-bmc fencekit-kvmguest fencekit-sshcmd"
if grep -Eq '^name = "vm-evacuate"' Cargo.toml; then agent_pkgs="$agent_pkgs fencekit-evacuate"
else say "no vm-evacuate binary in Cargo.toml: no fencekit-evacuate package"; fi
deb_from_rpm fencekit-common all
for p in $agent_pkgs; do deb_from_rpm "$p" "$debarch"; done
deb_from_rpm fencekit-all all
say "built in $(( $(date +%s) - started )) s:"
(cd "$out" && ls -l --block-size=K | tail -n +2 | awk '{print "  " $5 "\t" $9}') >&2
