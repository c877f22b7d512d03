#!/usr/bin/env bash
# The real Pacemaker scenario against the INSTALLED agents (/usr/sbin/fence_*, from the
# packages), not the build tree: brings the single-node cluster of scripts/pcmk.sh up (it
# links nothing: install-agents is never called here), checks pcs sees every installed agent,
# fences a simulated BMC (tests/support/sim_ipmi/bmcsim.sh, ipmi_sim on 127.0.0.1) through
# `pcs stonith create … fence_bmc` + `stonith_admin --reboot`, and tears everything down.
#
# Usage: bash packaging/test-installed.sh AGENT...     (as root; e.g. fence_esxi fence_bmc)
# The caller must hold the machine-wide Pacemaker lock (flock /tmp/fencekit-pacemaker.lock,
# as tests/support/util/pacemaker.rs does); scripts/check-packages.sh does.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
say() { echo "test-installed: $*" >&2; }
fail() { say "FAIL: $*"; exit 1; }
[ $# -gt 0 ] || { echo "usage: $0 AGENT..." >&2; exit 2; }
[ "$(id -u)" = 0 ] || fail "must run as root"
state=${FENCEKIT_PCMK_STATE:-/var/tmp/fencekit-pcmk}

for a in "$@"; do
  f=/usr/sbin/$a
  [ -f "$f" ] && [ ! -L "$f" ] && [ -x "$f" ] || fail "$f is not an installed regular executable"
  owner=$(dpkg-query -S "$f" 2>/dev/null | cut -d: -f1) || true
  [ -n "$owner" ] || fail "$f belongs to no package"
done

sim=$(mktemp -d /tmp/fencekit-pkgsim.XXXXXX)
cleanup() {
  local rc=$?
  pcs resource delete pkgevac --force >/dev/null 2>&1 || true
  pcs stonith delete pkgbmc --force >/dev/null 2>&1 || true
  bash "$top/scripts/pcmk.sh" down --state "$state" || rc=1
  sh "$top/tests/support/sim_ipmi/bmcsim.sh" stop "$sim" || true
  rm -rf "$sim"
  exit "$rc"
}
trap cleanup EXIT

bash "$top/scripts/pcmk.sh" up --restart --state "$state"

# pcs reads each installed agent's metadata (pcs runs /usr/sbin/AGENT -o metadata).
for a in "$@"; do
  out=$(timeout 120 pcs stonith describe "$a" 2>&1) || fail "pcs stonith describe $a: $out"
  grep -q "^$a - " <<<"$out" || fail "pcs stonith describe $a printed no description: $out"
  say "pcs stonith describe $a: ok"
done

# The installed OCF agent as Pacemaker sees it (pcs reads its meta-data through the cluster).
ocf_agent=/usr/lib/ocf/resource.d/fencekit/vm-evacuate
if [ -e "$ocf_agent" ]; then
  out=$(timeout 120 pcs resource describe ocf:fencekit:vm-evacuate 2>&1) \
    || fail "pcs resource describe ocf:fencekit:vm-evacuate: $out"
  for p in config state_dir dry_run; do
    grep -qE "^  $p[ :]" <<<"$out" || fail "pcs resource describe shows no parameter $p: $out"
  done
  say "pcs resource describe ocf:fencekit:vm-evacuate: ok"
fi

# fence_bmc against a simulated BMC, end to end.
case " $* " in *" fence_bmc "*) ;; *) say "fence_bmc not installed: no fencing scenario"; exit 0 ;; esac
port=
for p in $(shuf -i 20000-29999 -n 20); do
  if BMC_ADMIN_PW=pkgtest-pw sh tests/support/sim_ipmi/bmcsim.sh start "$sim" "$p" 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || fail "could not start a simulated BMC"
timeout 120 pcs stonith create pkgbmc fence_bmc ip=127.0.0.1 "ipport=$port" username=admin \
  password=pkgtest-pw lanplus=1 pcmk_host_list=node-pkg1 >&2 || fail "pcs stonith create pkgbmc"
end=$(( $(date +%s) + 90 ))
until crm_mon -1 --output-as=xml 2>/dev/null | grep -q '<resource id="pkgbmc" [^>]*role="Started"[^>]*failed="false"'; do
  [ "$(date +%s)" -lt "$end" ] || { crm_mon -1 >&2 || true; fail "pkgbmc did not start"; }
  sleep 0.5
done
say "pkgbmc started (monitor of /usr/sbin/fence_bmc ok)"
mark=$(wc -c <"$sim/events" 2>/dev/null || echo 0)
timeout 120 stonith_admin --reboot node-pkg1 --timeout 60 >&2 || fail "stonith_admin --reboot node-pkg1"
ev=$(tail -c +"$((mark + 1))" "$sim/events")
off=$(grep -n 'set power 0 -> ok' <<<"$ev" | head -n1 | cut -d: -f1)
on=$(grep -n 'set power 1 -> ok' <<<"$ev" | tail -n1 | cut -d: -f1)
[ -n "$off" ] && [ -n "$on" ] && [ "$off" -lt "$on" ] || fail "the BMC saw no power off then on: $ev"
# The fencer ran the installed binary (its log names the agent; /usr/sbin is the only place
# Pacemaker looks, and it holds the package's file, checked above).
say "stonith_admin --reboot node-pkg1 through the installed /usr/sbin/fence_bmc: ok (off, then on)"

# The installed OCF agent run by Pacemaker: start (its detection daemon, /usr/sbin/vm-evacuate
# watch), recurring monitors, stop. dry_run and an inventory whose hosts do not answer
# (127.0.0.1, ports nothing listens on): the daemon probes and fails them; the brake (every
# host failed) and dry_run keep it from acting.
if [ -e "$ocf_agent" ]; then
  evac=$sim/evac
  mkdir -m 0700 "$evac" "$evac/state"
  cat >"$evac/evacuate.toml" <<'TOML'
[policy]
detect_failures = 2
detect_interval_s = 1
[ssh]
username = "root"
password = "pkgtest-pw"
login_timeout_s = 1
[bmc]
username = "admin"
password = "pkgtest-pw"
login_timeout_s = 1
[[host]]
name = "pkg-esx1"
address = "127.0.0.1"
port = 9
bmc_address = "127.0.0.1"
bmc_port = 9
[[host]]
name = "pkg-esx2"
address = "127.0.0.1"
port = 9
bmc_address = "127.0.0.1"
bmc_port = 9
TOML
  chmod 0600 "$evac/evacuate.toml"
  timeout 120 pcs resource create pkgevac ocf:fencekit:vm-evacuate "config=$evac/evacuate.toml" \
    "state_dir=$evac/state" dry_run=true op monitor interval=2s >&2 \
    || fail "pcs resource create pkgevac ocf:fencekit:vm-evacuate"
  end=$(( $(date +%s) + 90 ))
  until crm_mon -1 --output-as=xml 2>/dev/null | grep -q '<resource id="pkgevac" [^>]*role="Started"[^>]*failed="false"'; do
    [ "$(date +%s)" -lt "$end" ] || { crm_mon -1 >&2 || true; fail "pkgevac did not start"; }
    sleep 0.5
  done
  pid=$(head -n1 "$evac/state/watch.pid" 2>/dev/null | cut -d' ' -f1)
  [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe")" = /usr/sbin/vm-evacuate ] \
    || fail "the detection daemon is not the installed /usr/sbin/vm-evacuate (pid '${pid}')"
  sleep 6   # a few probe rounds and monitors
  crm_mon -1 --output-as=xml 2>/dev/null | grep -q '<resource id="pkgevac" [^>]*role="Started"[^>]*failed="false"' \
    || { crm_mon -1 >&2 || true; fail "pkgevac failed while its hosts did not answer"; }
  timeout 120 pcs resource disable pkgevac --wait=60 >&2 || fail "pcs resource disable pkgevac"
  # Gone (or a zombie waiting for its reaper) within a few seconds of the stop.
  end=$(( $(date +%s) + 10 ))
  while [ -e "/proc/$pid" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; do
    [ "$(date +%s)" -lt "$end" ] || fail "the detection daemon (pid $pid) outlived the stop"
    sleep 0.2
  done
  timeout 120 pcs resource delete pkgevac --force >&2 || fail "pcs resource delete pkgevac"
  say "ocf:fencekit:vm-evacuate through the installed agent: started (daemon /usr/sbin/vm-evacuate), monitored, stopped: ok"
fi
