#!/usr/bin/env bash
# Checks what scripts/package.sh put into dist/ (notes: packaging/README.md):
#   1. every path, mode and owner of each RPM (rpm -qlvp) and .deb (dpkg-deb -c) against the
#      expected layout; fence_fake shipped nowhere; binaries stripped, debuginfo present;
#      Requires/Provides/License; the packaged metadata valid against Pacemaker's schema;
#   2. rpmlint (SRPM and RPMs) and lintian (.debs): no error beyond the ones
#      packaging/README.md lists as not applying;
#   3. the RPMs in a scratch root: `rpm -i --test` with the dependency check (only system
#      libraries may be missing there), then a real install, an erase, nothing left;
#   4. the .debs installed on this machine (apt-get), the Pacemaker scenario against the
#      installed /usr/sbin/fence_* (packaging/test-installed.sh), purge, nothing left.
# Steps 3-4 need root; 4 holds the machine-wide Pacemaker lock while it uses /usr/sbin.
# FENCEKIT_PKG_NO_INSTALL=1 stops after step 3 (e.g. on a machine without Pacemaker).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
LOCK=/tmp/fencekit-pacemaker.lock
fail=0
bad() { echo "check-packages: $*" >&2; fail=1; }
say() { echo "check-packages: $*" >&2; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
release=$(sed -n 's/^Release:[[:space:]]*\([^%]*\).*/\1/p' packaging/rpm/fencekit.spec)
vr=$version-$release
rpmarch=$(rpm --eval '%{_arch}')
debarch=$(dpkg --print-architecture)
# Packaged agents: every fence_* binary of Cargo.toml except the test agent.
agents=$(sed -n 's/^name = "\(fence_[a-z0-9_]*\)"/\1/p' Cargo.toml | grep -v '^fence_fake$')
pkgs="fencekit-common"
for a in $agents; do pkgs="$pkgs fencekit-${a#fence_}"; done
if grep -Eq '^name = "vm-evacuate"' Cargo.toml; then
  pkgs="$pkgs fencekit-evacuate"
else
  say "skipped: fencekit-evacuate (no vm-evacuate binary in Cargo.toml)"
fi
pkgs="$pkgs fencekit-all"
ocf_agent=/usr/lib/ocf/resource.d/fencekit/vm-evacuate
work=$(mktemp -d "${TMPDIR:-/var/tmp}/fencekit-check.XXXXXX")
cleanup_work() { rm -rf "$work"; }
trap cleanup_work EXIT

# ---------------------------------------------------------------- 1. layout
[ -f "dist/fencekit-$version.tar.gz" ] || bad "dist/fencekit-$version.tar.gz missing"
srpm=dist/fencekit-$vr.src.rpm
[ -f "$srpm" ] || bad "$srpm missing"
# first_file CANDIDATE...: the first that exists (nothing if none).
first_file() { local f; for f in "$@"; do [ -f "$f" ] && { echo "$f"; return 0; }; done; return 0; }
rpm_of() { first_file "dist/$1-$vr.noarch.rpm" "dist/$1-$vr.$rpmarch.rpm"; }
deb_of() { first_file "dist/$1_${vr}_all.deb" "dist/$1_${vr}_$debarch.deb"; }

# expected PKG: "path mode" lines every package must hold (and nothing else but the generic
# extras allowed below). Modes as rpm -qlv/dpkg-deb -c print them.
expected() {
  local p=$1 a
  case $p in
    fencekit-common)
      echo "/usr/share/fencekit drwxr-xr-x"
      echo "/usr/share/fencekit/metadata drwxr-xr-x"
      for a in $agents; do echo "/usr/share/fencekit/metadata/$a.xml -rw-r--r--"; done
      echo "/usr/share/doc/fencekit-common/README.md -rw-r--r--" ;;
    fencekit-all) ;;
    fencekit-evacuate)
      echo "/usr/sbin/vm-evacuate -rwxr-xr-x"
      echo "/usr/share/doc/fencekit-evacuate/evacuate.toml -rw-r--r--"
      echo "/usr/share/man/man8/vm-evacuate.8.gz -rw-r--r--"
      echo "/usr/share/man/man7/ocf_fencekit_vm-evacuate.7.gz -rw-r--r--"
      echo "/usr/lib/ocf drwxr-xr-x"
      echo "/usr/lib/ocf/resource.d drwxr-xr-x"
      echo "/usr/lib/ocf/resource.d/fencekit drwxr-xr-x"
      echo "$ocf_agent lrwxrwxrwx" ;;
    fencekit-*)
      a=fence_${p#fencekit-}
      echo "/usr/sbin/$a -rwxr-xr-x"
      echo "/usr/share/man/man8/$a.8.gz -rw-r--r--" ;;
  esac
}

# check_list KIND PKG FILE: FILE holds "mode owner group path" lines.
check_list() {
  local kind=$1 p=$2 list=$3 path mode own grp line
  while read -r mode own grp path; do
    [ "$own/$grp" = root/root ] || bad "$kind $p: $path owned by $own/$grp, not root/root"
    case $mode in
      d*) [ "$mode" = drwxr-xr-x ] || bad "$kind $p: directory $path has mode $mode" ;;
      l*) ;;
      -rwxr-xr-x) case $path in /usr/sbin/*) ;; *) bad "$kind $p: $path is executable" ;; esac ;;
      -rw-r--r--) ;;
      *) bad "$kind $p: $path has mode $mode" ;;
    esac
    case $path in *fence_fake*) bad "$kind $p ships the test agent: $path" ;; esac
    # Nothing outside what the package may own.
    case $path in
      /usr/sbin/fence_*|/usr/sbin/vm-evacuate|/usr/share/man/man8/fence_*.8.gz) ;;
      # The OCF agent and its pages; /usr/lib/ocf{,/resource.d} are co-owned with
      # resource-agents (only recommended), as rpmlint and Fedora want.
      /usr/share/man/man8/vm-evacuate.8.gz|/usr/share/man/man7/ocf_fencekit_vm-evacuate.7.gz|\
      /usr/lib/ocf|/usr/lib/ocf/resource.d|/usr/lib/ocf/resource.d/fencekit|"$ocf_agent")
        [ "$p" = fencekit-evacuate ] || bad "$kind $p: $path belongs to fencekit-evacuate" ;;
      /usr/share/fencekit|/usr/share/fencekit/*) ;;
      "/usr/share/doc/$p"|"/usr/share/doc/$p"/*|"/usr/share/licenses/$p"|"/usr/share/licenses/$p"/*) ;;
      /usr/lib/.build-id|/usr/lib/.build-id/*) [ "$kind" = RPM ] || bad "$kind $p: $path" ;;
      # dpkg-deb lists the parent directories too.
      /usr|/usr/sbin|/usr/share|/usr/share/doc|/usr/share/man|/usr/share/man/man8|/usr/share/man/man7|/usr/lib)
        [ "$kind" = .deb ] || bad "$kind $p owns the system directory $path" ;;
      *) bad "$kind $p: unexpected path $path" ;;
    esac
  done <"$list"
  while read -r path mode; do
    [ -n "$path" ] || continue
    grep -Eq "^$mode [a-z]+ [a-z]+ $path\$" "$list" || bad "$kind $p: $path ($mode) missing"
  done < <(expected "$p")
}

for p in $pkgs; do
  r=$(rpm_of "$p"); d=$(deb_of "$p")
  [ -n "$r" ] || { bad "no RPM for $p"; continue; }
  [ -n "$d" ] || { bad "no .deb for $p"; continue; }
  rpm -qlvp "$r" 2>/dev/null | awk '$1 != "(contains" { print $1, $3, $4, $NF }' >"$work/$p.rpm.list"
  # Symlinks print "path -> target": keep the link's own path.
  rpm -qlvp "$r" 2>/dev/null | awk '$1 ~ /^l/ { print $1, $3, $4, $(NF-2) }' >"$work/$p.rpm.links"
  if [ -s "$work/$p.rpm.links" ]; then
    awk '$1 !~ /^l/' "$work/$p.rpm.list" >"$work/x"
    cat "$work/x" "$work/$p.rpm.links" >"$work/$p.rpm.list"
  fi
  check_list RPM "$p" "$work/$p.rpm.list"
  dpkg-deb -c "$d" | awk '{ split($2, o, "/"); p = $6; sub(/^\./, "", p); sub(/\/$/, "", p);
    if (p != "") print $1, o[1], o[2], p }' >"$work/$p.deb.list"
  check_list .deb "$p" "$work/$p.deb.list"
  for f in /usr/share/doc/$p/copyright /usr/share/doc/$p/changelog.Debian.gz; do
    grep -q " $f\$" "$work/$p.deb.list" || bad ".deb $p: $f missing"
  done
  # Requires common at the same version(-release).
  case $p in
    fencekit-common|fencekit-all) ;;
    *)
      rpm -qp --requires "$r" 2>/dev/null | grep -qx "fencekit-common = $vr" \
        || bad "RPM $p does not require fencekit-common = $vr"
      rpm -qp --provides "$r" 2>/dev/null | grep -q '^bundled(crate(clap)) = ' \
        || bad "RPM $p lacks Provides: bundled(crate(...))"
      dpkg-deb -f "$d" Depends | grep -q "fencekit-common (= $vr)" \
        || bad ".deb $p does not depend on fencekit-common (= $vr)"
      dpkg-deb -f "$d" Depends | grep -q 'libc6 (>= ' \
        || bad ".deb $p has no versioned shared-library Depends: $(dpkg-deb -f "$d" Depends)" ;;
  esac
  [ -n "$(dpkg-deb -f "$d" Homepage)" ] || bad ".deb $p has no Homepage"
done
# fencekit-all pulls in every agent package.
if r=$(rpm_of fencekit-all) && [ -n "$r" ]; then
  for p in $pkgs; do
    case $p in fencekit-common|fencekit-all) continue ;; esac
    rpm -qp --requires "$r" 2>/dev/null | grep -q "^$p" || bad "fencekit-all does not require $p"
    dpkg-deb -f "$(deb_of fencekit-all)" Depends | grep -q "$p (= $vr)" || bad "fencekit-all.deb does not depend on $p"
  done
fi
# The licence: the spec's License covers the project and the bundled crates and libssh2.
lic=$(rpm -qp --qf '%{LICENSE}' "$(rpm_of fencekit-common)" 2>/dev/null)
for l in GPL-2.0-or-later BSD-3-Clause MIT Apache-2.0; do
  grep -qw -- "$l" <<<"$lic" || bad "License: lacks $l ($lic)"
done
# Binaries stripped (their symbols are in the -debuginfo RPM), and they run.
rpm -qlp "dist/fencekit-debuginfo-$vr.$rpmarch.rpm" >"$work/debuginfo.list" 2>/dev/null \
  || bad "no fencekit-debuginfo RPM"
mkdir -p "$work/rpmroot" "$work/debroot"
for p in $pkgs; do
  r=$top/$(rpm_of "$p")
  (cd "$work/rpmroot" && rpm2cpio "$r" | cpio -idm --quiet --no-absolute-filenames)
  dpkg-deb -x "$(deb_of "$p")" "$work/debroot"
done
for a in $agents; do
  for root in rpmroot debroot; do
    f=$work/$root/usr/sbin/$a
    file -b "$f" | grep -q ', stripped' || bad "$root: $a is not stripped: $(file -b "$f")"
    "$f" -o metadata | grep -q "<resource-agent name=\"$a\"" || bad "$root: packaged $a does not run"
  done
  grep -q "^/usr/lib/debug/usr/sbin/$a-.*\.debug$" "$work/debuginfo.list" \
    || bad "fencekit-debuginfo lacks the symbols of $a"
done
if [[ " $pkgs " == *" fencekit-evacuate "* ]]; then
  for root in rpmroot debroot; do
    file -b "$work/$root/usr/sbin/vm-evacuate" | grep -q ', stripped' || bad "$root: vm-evacuate is not stripped"
  done
  grep -q "^/usr/lib/debug/usr/sbin/vm-evacuate-.*\.debug$" "$work/debuginfo.list" \
    || bad "fencekit-debuginfo lacks the symbols of vm-evacuate"
  # The OCF agent is a relative link to the CLI (it resolves inside any root).
  for root in rpmroot debroot; do
    l=$work/$root$ocf_agent
    [ "$(readlink "$l")" = ../../../../sbin/vm-evacuate ] || bad "$root: $ocf_agent -> $(readlink "$l")"
    [ "$(readlink -f "$l")" = "$(readlink -f "$work/$root/usr/sbin/vm-evacuate")" ] \
      || bad "$root: $ocf_agent does not resolve to /usr/sbin/vm-evacuate"
  done
  rpm -qp --recommends "$(rpm_of fencekit-evacuate)" 2>/dev/null | grep -qx resource-agents \
    || bad "RPM fencekit-evacuate does not recommend resource-agents"
  dpkg-deb -f "$(deb_of fencekit-evacuate)" Recommends | grep -qx resource-agents \
    || bad ".deb fencekit-evacuate does not recommend resource-agents"
fi
# Every man page renders without a warning (groff -ww), as packaged.
for f in "$work"/debroot/usr/share/man/man[78]/*.gz; do
  w=$(zcat "$f" | groff -man -ww -z 2>&1) || bad "groff failed on $f"
  [ -z "$w" ] || bad "groff warns about ${f#"$work"/debroot}: $w"
done
for x in "$work"/debroot/usr/share/fencekit/metadata/*.xml; do
  xmllint --noout --relaxng /usr/share/cluster/relaxng/metadata.rng "$x" 2>/dev/null || bad "$x invalid"
done
# The SRPM holds the spec and the tarball only.
[ "$(rpm -qlp "$srpm" 2>/dev/null | sort | tr '\n' ' ')" = "fencekit-$version.tar.gz fencekit.spec " ] \
  || bad "the SRPM holds: $(rpm -qlp "$srpm" 2>/dev/null | tr '\n' ' ')"
[ "$fail" = 0 ] && say "layout, modes, owners, dependencies and licences of $(wc -w <<<"$pkgs") packages: ok"

# ---------------------------------------------------------------- 2. rpmlint and lintian
rpms=$(for p in $pkgs; do rpm_of "$p"; done; echo "dist/fencekit-debuginfo-$vr.$rpmarch.rpm")
rpmlint -c packaging/rpm/rpmlint.toml "$srpm" $rpms >"$work/rpmlint.out" 2>&1 || true
summary=$(grep -E '[0-9]+ packages and [0-9]+ specfiles checked' "$work/rpmlint.out" || true)
say "rpmlint: ${summary:-no summary}"
if grep -E '^[^ ]+: E: ' "$work/rpmlint.out" >&2; then bad "rpmlint reported errors (above)"; fi
debs=$(for p in $pkgs; do deb_of "$p"; done)
# shellcheck disable=SC2086
lintian --no-cfg --suppress-tags-from-file packaging/deb/lintian-suppressed $debs >"$work/lintian.out" 2>&1 || true
say "lintian: $(grep -c '^E: ' "$work/lintian.out" || true) errors, $(grep -c '^W: ' "$work/lintian.out" || true) warnings"
if grep '^E: ' "$work/lintian.out" >&2; then bad "lintian reported errors (above)"; fi
grep '^W: ' "$work/lintian.out" >&2 || true

[ "$(id -u)" = 0 ] || { say "not root: no install tests"; exit "$fail"; }

# ---------------------------------------------------------------- 3. RPMs in a scratch root
scratch=$work/rpm-scratch
# The database inside the root at /var/lib/rpm (Debian's rpm defaults to ~/.rpmdb).
srpm_() { rpm --root "$scratch" --dbpath /var/lib/rpm "$@" 2> >(grep -v -e 'use Alien' -e 'know what you are doing' >&2); }
srpm_ --initdb
# With the dependency check: the scratch root has no system packages, so only system
# libraries and rpmlib features may be missing; every fencekit dependency must be met by the
# set itself (versions included).
if rpm --root "$scratch" --dbpath /var/lib/rpm -i --test $rpms >"$work/rpm-test.out" 2>&1; then
  bad "rpm -i --test into an empty root found no missing system dependency (unexpected)"
else
  missing=$(sed -n 's/^[[:space:]]*\(.*\) is needed by .*/\1/p' "$work/rpm-test.out" | sort -u)
  [ -n "$missing" ] || { cat "$work/rpm-test.out" >&2; bad "rpm -i --test failed for another reason"; }
  while read -r dep; do
    case $dep in
      lib*.so*|rtld\(*|rpmlib\(*|/bin/sh|/usr/bin/*) ;;
      *) bad "rpm -i --test: unmet dependency '$dep'" ;;
    esac
  done <<<"$missing"
  say "rpm -i --test: only system libraries unmet in the empty root: $(tr '\n' ' ' <<<"$missing")"
fi
# A real install without the system libraries, then an erase: nothing left.
srpm_ -i --nodeps --noscripts $rpms || bad "rpm -i into $scratch failed"
n=$(srpm_ -qa 'fencekit*' | wc -l)
[ "$n" = "$(wc -w <<<"$rpms")" ] || bad "scratch root: $n fencekit packages installed"
for a in $agents; do [ -x "$scratch/usr/sbin/$a" ] || bad "scratch root: no /usr/sbin/$a"; done
srpm_ -e --nodeps $(srpm_ -qa 'fencekit*') || bad "rpm -e failed"
left=$(cd "$scratch" && find . -path ./var -prune -o -path ./usr/lib/sysimage -prune -o ! -type d -print)
[ -z "$left" ] || bad "scratch root: left after rpm -e: $left"
# Parent directories no package owns (/usr/sbin, …) stay, as on a real system (there
# `filesystem` owns them); none of ours may.
left=$(cd "$scratch" && find usr -mindepth 1 -type d 2>/dev/null | grep -E 'fencekit|build-id' || true)
[ -z "$left" ] || bad "scratch root: directories left after rpm -e: $(tr '\n' ' ' <<<"$left")"
[ "$fail" = 0 ] && say "RPMs in a scratch root: install test, install, erase: ok"

[ "${FENCEKIT_PKG_NO_INSTALL:-0}" = 1 ] && { say "FENCEKIT_PKG_NO_INSTALL=1: .debs not installed"; exit "$fail"; }
[ "$fail" = 0 ] || { say "FAILED before the install test"; exit 1; }

# ---------------------------------------------------------------- 4. .debs on this machine
# /usr/sbin and the cluster are shared with the Pacemaker tests: hold their lock.
exec 8>"$LOCK"
say "waiting for $LOCK"
flock -w 900 8 || { bad "$LOCK still locked after 900 s"; exit 1; }
installed_pkgs() { dpkg-query -W -f '${Package} ${db:Status-Status}\n' 'fencekit*' 2>/dev/null | awk '$2 != "not-installed" { print $1 }'; }
purge() {
  local p
  p=$(installed_pkgs)
  [ -z "$p" ] || DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $p >"$work/purge.out" 2>&1 \
    || { cat "$work/purge.out" >&2; bad "apt-get purge failed"; }
}
leftovers() {
  local f
  for f in /usr/share/fencekit /usr/share/doc/fencekit-* /usr/sbin/fence_esxi /usr/sbin/fence_bmc \
      /usr/sbin/fence_kvmguest /usr/sbin/fence_sshcmd /usr/sbin/vm-evacuate \
      /usr/share/man/man8/fence_esxi.8.gz /usr/share/man/man8/fence_bmc.8.gz \
      /usr/share/man/man8/fence_kvmguest.8.gz /usr/share/man/man8/fence_sshcmd.8.gz \
      /usr/share/man/man8/vm-evacuate.8.gz /usr/share/man/man7/ocf_fencekit_vm-evacuate.7.gz \
      /usr/lib/ocf/resource.d/fencekit; do
    [ -e "$f" ] || [ -L "$f" ] && echo "$f"
  done
  return 0
}
[ -z "$(installed_pkgs)" ] || bad "fencekit packages already installed: $(installed_pkgs | tr '\n' ' ')"
# Agent symlinks a crashed Pacemaker test left (tests/support/util/pacemaker.rs removes its own).
bash scripts/pcmk.sh remove-agents >/dev/null 2>&1 || true
pre=$(leftovers)
[ -z "$pre" ] || { bad "files in the way before installing: $pre"; exit 1; }
trap 'purge; cleanup_work' EXIT
debfiles=$(for d in $debs; do echo "./$d"; done)
# shellcheck disable=SC2086
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $debfiles \
    >"$work/install.out" 2>&1; then
  cat "$work/install.out" >&2; bad "apt-get install of the .debs failed"; exit 1
fi
say "installed: $(installed_pkgs | tr '\n' ' ')"
for a in $agents; do
  [ "$(dpkg-query -S "/usr/sbin/$a" | cut -d: -f1)" = "fencekit-${a#fence_}" ] || bad "/usr/sbin/$a not from fencekit-${a#fence_}"
  man -w "$a" >/dev/null 2>&1 || [ -f "/usr/share/man/man8/$a.8.gz" ] || bad "no man page for $a"
done
if [[ " $pkgs " == *" fencekit-evacuate "* ]]; then
  [ "$(dpkg-query -S /usr/sbin/vm-evacuate | cut -d: -f1)" = fencekit-evacuate ] || bad "/usr/sbin/vm-evacuate not from fencekit-evacuate"
  [ "$(dpkg-query -S "$ocf_agent" | cut -d: -f1)" = fencekit-evacuate ] || bad "$ocf_agent not from fencekit-evacuate"
  [ "$(readlink -f "$ocf_agent")" = /usr/sbin/vm-evacuate ] || bad "installed $ocf_agent does not resolve to /usr/sbin/vm-evacuate"
  [ -x "$ocf_agent" ] || bad "installed $ocf_agent is not executable"
  # The installed agent's meta-data, as nobody, valid against the installed ra-api-1.dtd.
  md=$(cd / && runuser -u nobody -- "$ocf_agent" meta-data) || bad "$ocf_agent meta-data as nobody failed"
  (cd /usr/share/resource-agents && xmllint --noout --valid - <<<"$md") || bad "$ocf_agent meta-data is not valid against ra-api-1.dtd"
  # ocf-tester against the installed agent (and the /usr/sbin/vm-evacuate daemon it starts),
  # with a real inventory of simulated hosts (tests/ocf.rs, built by scripts/test.sh).
  FENCEKIT_INSTALLED_OCF_AGENT=$ocf_agent FENCE_REQUIRE_SIMULATORS=1 \
    cargo test --locked --test integration -- --exact ocf::ocf_tester_passes >"$work/ocf-tester.log" 2>&1 \
    || { tail -n 40 "$work/ocf-tester.log" >&2; bad "ocf-tester against the installed $ocf_agent failed"; }
  grep -q '^test ocf::ocf_tester_passes ... ok' "$work/ocf-tester.log" || bad "ocf-tester test did not run"
  say "installed OCF agent: meta-data as nobody valid, ocf-tester passed"
  man -w vm-evacuate >/dev/null 2>&1 || bad "man -w vm-evacuate finds no page"
  man -w 7 ocf_fencekit_vm-evacuate >/dev/null 2>&1 || bad "man -w 7 ocf_fencekit_vm-evacuate finds no page"
fi
# shellcheck disable=SC2086
bash packaging/test-installed.sh $agents || bad "the Pacemaker scenario against the installed agents failed"
purge
trap cleanup_work EXIT
left=$(leftovers)
[ -z "$left" ] || bad "left after apt-get purge: $left"
[ -z "$(installed_pkgs)" ] || bad "still installed after purge: $(installed_pkgs)"
[ "$fail" = 0 ] && say ".debs: install, Pacemaker scenario with the installed agents, purge, nothing left: ok"
exit "$fail"
