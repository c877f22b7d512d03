#!/bin/bash
# Simulated KVM hosts for fence_kvmguest tests: a private OpenSSH sshd per host on
# 127.0.0.0/8, in front of the REAL virsh talking to a private unprivileged libvirtd with the
# test driver (state kept alive by a "holder" client). See tests/support/sim_kvm/README.md.
#
# Usage (run as root):
#   kvmsim.sh setup   ROOT
#   kvmsim.sh start   ROOT NAME IP PORT [--auth password|pubkey|both] [on:GUEST|off:GUEST ...]
#                     exit 3 = port taken (pick another), other non-zero = failure
#   kvmsim.sh stop    ROOT NAME            kvmsim.sh stopall ROOT
#   kvmsim.sh virsh   ROOT NAME ARGS...    (backdoor: real virsh as the test user, no ssh/faults)
#   kvmsim.sh define  ROOT NAME GUEST on|off
#   kvmsim.sh migrate ROOT SRC DST GUEST [keep]   (keep = leave it defined, shut off, on SRC)
#   kvmsim.sh where   ROOT GUEST           (prints "HOST<TAB>STATE" for every running host)
#   kvmsim.sh fault   ROOT NAME KIND [VALUE] [key=value ...]   (kinds: see README)
#   kvmsim.sh crash   ROOT NAME GUEST      (a running guest crashes, on_crash=preserve: see README)
#   kvmsim.sh clear   ROOT NAME
#   kvmsim.sh freeze|thaw ROOT NAME sshd|libvirtd
#   kvmsim.sh sshd-down|sshd-up ROOT NAME
#
# Only PIDs recorded under ROOT/h/NAME/pids are ever signalled, after checking that their
# command line names this host's directory. No pkill/killall.
set -u
set -o pipefail

SIMUSER=${KVMSIM_USER:-fencetest}
SIMPASS=${KVMSIM_PASSWORD:-fencetest-pw}
SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { echo "kvmsim: $*" >&2; exit 1; }

cmd=${1:-}
[ $# -ge 2 ] || die "usage: kvmsim.sh COMMAND ROOT ..."
ROOT=$2
case "$ROOT" in /*) ;; *) die "ROOT must be absolute" ;; esac
shift 2

hostdir() { printf '%s/h/%s' "$ROOT" "$1"; }

check_name() {
    case "$1" in
        ''|*[!A-Za-z0-9_.-]*) die "bad host name '$1'" ;;
    esac
    [ ${#1} -le 24 ] || die "host name too long: $1"
}

as_user() {
    setpriv --reuid="$SIMUSER" --regid="$SIMUSER" --init-groups "$@"
}

# Real virsh against a host's daemon, as the test user (no ssh, no faults).
backdoor_virsh() {
    local hd; hd=$(hostdir "$1"); shift
    [ -f "$hd/uri" ] || die "host not started: $hd"
    as_user env -i HOME="$hd/home" XDG_RUNTIME_DIR="$hd/lv/run" XDG_CONFIG_HOME="$hd/home/.config" \
        LC_ALL=C PATH=/usr/bin:/bin /usr/bin/virsh -q -c "$(cat "$hd/uri")" "$@"
}

# ---- process handling ------------------------------------------------------------------

alive() { # pid -> 0 if running (not zombie)
    local st
    [ -r "/proc/$1/stat" ] || return 1
    st=$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    case "$st" in Z|X|'') return 1 ;; esac
    return 0
}

has_marker() { # pid marker
    [ -r "/proc/$1/cmdline" ] || return 1
    tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"
}

descendants() { # pid -> all descendant pids
    local p kids k
    kids=$(ps -o pid= --ppid "$1" 2>/dev/null) || true
    for k in $kids; do
        echo "$k"
        descendants "$k"
    done
}

kill_tree() { # pid marker
    local pid=$1 marker=$2 all p i
    alive "$pid" || return 0
    has_marker "$pid" "$marker" || return 0
    all="$pid $(descendants "$pid" | tr '\n' ' ')"
    for p in $all; do kill -CONT "$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null; done
    for i in $(seq 100); do
        local any=0
        for p in $all; do alive "$p" && any=1; done
        [ $any = 0 ] && return 0
        sleep 0.05
    done
    for p in $all; do kill -KILL "$p" 2>/dev/null; done
    return 0
}

stop_pidfile() { # hostdir pidfile
    local hd=$1 f=$2 pid
    [ -f "$f" ] || return 0
    pid=$(cat "$f" 2>/dev/null)
    case "$pid" in ''|*[!0-9]*) rm -f "$f"; return 0 ;; esac
    kill_tree "$pid" "$hd"
    rm -f "$f"
}

# Installs a script atomically (running sessions keep reading the old inode).
put() {
    cmp -s "$1" "$2" && return 0
    install -m 755 "$1" "$2.tmp.$$" && mv -f "$2.tmp.$$" "$2"
}

# ---- setup ---------------------------------------------------------------------------

ensure_user() {
    local i
    if ! id "$SIMUSER" >/dev/null 2>&1; then
        for i in $(seq 50); do
            useradd -m -s /bin/sh "$SIMUSER" 2>/dev/null && break
            id "$SIMUSER" >/dev/null 2>&1 && break
            sleep 0.1
        done
        id "$SIMUSER" >/dev/null 2>&1 || die "cannot create user $SIMUSER"
    fi
    # The marker holds the password's digest and the shadow hash we set; when either differs
    # (another harness changed the password), set it again.
    local marker="/tmp/.fencekit-kvmsim-pw-$SIMUSER" want shadow
    want=$(printf '%s' "$SIMPASS" | sha256sum | cut -c1-64)
    shadow=$(getent shadow "$SIMUSER" | cut -d: -f2)
    if [ "$(cat "$marker" 2>/dev/null)" != "$want $shadow" ]; then
        for i in $(seq 50); do
            printf '%s:%s\n' "$SIMUSER" "$SIMPASS" | chpasswd 2>/dev/null && break
            sleep 0.1
        done
        echo "$want $(getent shadow "$SIMUSER" | cut -d: -f2)" > "$marker"
        chmod 600 "$marker"
    fi
}

do_setup() {
    [ "$(id -u)" = 0 ] || die "must run as root"
    [ ${#ROOT} -le 40 ] || die "ROOT too long (${#ROOT} > 40): unix socket paths are limited"
    mkdir -p "$ROOT" && chmod 755 "$ROOT"
    ( flock 9; do_setup_locked ) 9>"$ROOT/.setup.lock"
}

do_setup_locked() {
    [ -d /run/sshd ] || mkdir -p /run/sshd
    ensure_user
    mkdir -p "$ROOT/bin/kvm" "$ROOT/client" "$ROOT/h"
    chmod 755 "$ROOT/bin" "$ROOT/bin/kvm" "$ROOT/client" "$ROOT/h"
    put "$SRCDIR/kvm-shell.sh" "$ROOT/bin/kvm-shell.sh"
    put "$SRCDIR/faultlib.sh" "$ROOT/bin/faultlib.sh"
    put "$SRCDIR/virsh-wrapper.sh" "$ROOT/bin/kvm/virsh"
    put "$SRCDIR/sudo-wrapper.sh" "$ROOT/bin/kvm/sudo"
    if [ ! -f "$ROOT/client/id_ed25519" ]; then
        ssh-keygen -q -t ed25519 -N '' -C kvmsim-client -f "$ROOT/client/id_ed25519" || die "keygen"
    fi
    touch "$ROOT/client/known_hosts"
    # Hosts start while other tests use these: write copies and rename them into place.
    cat > "$ROOT/client/ssh_config.tmp.$$" <<EOF
Host *
    UserKnownHostsFile $ROOT/client/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    HashKnownHosts no
    IdentityFile $ROOT/client/id_ed25519
    IdentitiesOnly yes
    ControlMaster no
    ConnectTimeout 10
    LogLevel ERROR
EOF
    mv -f "$ROOT/client/ssh_config.tmp.$$" "$ROOT/client/ssh_config"
    cat > "$ROOT/client/ssh.tmp.$$" <<EOF
#!/bin/sh
exec /usr/bin/ssh -F $ROOT/client/ssh_config "\$@"
EOF
    chmod 755 "$ROOT/client/ssh.tmp.$$"
    mv -f "$ROOT/client/ssh.tmp.$$" "$ROOT/client/ssh"
    echo "$SIMUSER" > "$ROOT/client/user.tmp.$$" && mv -f "$ROOT/client/user.tmp.$$" "$ROOT/client/user"
}

# ---- hosts ---------------------------------------------------------------------------

keycache() {
    local name=$1 dir="${KVMSIM_KEYCACHE:-/tmp/fencekit-kvmsim-keys}/$1"
    mkdir -p "$dir"; chmod 700 "${dir%/*}" "$dir"
    (
        flock 8
        [ -f "$dir/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C "$name" -f "$dir/ssh_host_ed25519_key"
        [ -f "$dir/ssh_host_rsa_key" ] || ssh-keygen -q -t rsa -b 2048 -N '' -C "$name" -f "$dir/ssh_host_rsa_key"
    ) 8>"$dir/.lock"
    echo "$dir"
}

xml_escape() {
    printf '%s' "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e "s/'/\&apos;/g" -e 's/"/\&quot;/g'
}

name_uuid() {
    printf 'kvmsim:%s' "$1" | sha1sum | cut -c1-32 |
        sed -E 's/^(.{8})(.{4}).(.{3}).(.{3})(.{12})$/\1-\2-5\3-8\4-\5/'
}

define_guest() { # name guest on|off
    local name=$1 g=$2 st=$3 hd xml
    hd=$(hostdir "$name")
    xml=$(mktemp "$hd/tmp/dom.XXXXXX.xml")
    cat > "$xml" <<EOF
<domain type='test'>
  <name>$(xml_escape "$g")</name>
  <uuid>$(name_uuid "$g")</uuid>
  <memory unit='MiB'>2048</memory>
  <vcpu>2</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
</domain>
EOF
    chmod 644 "$xml"
    backdoor_virsh "$name" define "$xml" >/dev/null || { rm -f "$xml"; die "define $g on $name failed"; }
    rm -f "$xml"
    if [ "$st" = on ]; then
        backdoor_virsh "$name" start -- "$g" >/dev/null || die "start $g on $name failed"
    fi
}

port_taken() { # ip port
    [ -n "$(ss -Hltn "sport = :$2" 2>/dev/null)" ]
}

start_sshd() { # name -> 0 ok, 3 port taken, 1 failure
    local name=$1 hd ip port pid i
    hd=$(hostdir "$name")
    ip=$(cat "$hd/ip"); port=$(cat "$hd/port")
    port_taken "$ip" "$port" && return 3
    /usr/sbin/sshd -t -f "$hd/sshd_config" >> "$hd/sshd.log" 2>&1 || { echo "kvmsim: sshd -t failed" >&2; return 1; }
    "$hd/fencetest-sshd" -D -e -f "$hd/sshd_config" >> "$hd/sshd.log" 2>&1 < /dev/null 8>&- 9>&- &
    pid=$!
    echo "$pid" > "$hd/pids/sshd"
    for i in $(seq 400); do
        if ! alive "$pid"; then
            rm -f "$hd/pids/sshd"
            if grep -q "Address already in use" "$hd/sshd.log"; then return 3; fi
            echo "kvmsim: sshd died, see $hd/sshd.log" >&2
            return 1
        fi
        if ss -Hltnp "sport = :$port" 2>/dev/null | grep -q "pid=$pid,"; then
            return 0
        fi
        sleep 0.01
    done
    stop_pidfile "$hd" "$hd/pids/sshd"
    echo "kvmsim: sshd did not listen on $ip:$port" >&2
    return 1
}

update_known_hosts() { # name
    local hd ip port kh
    hd=$(hostdir "$1"); ip=$(cat "$hd/ip"); port=$(cat "$hd/port")
    kh="$ROOT/client/known_hosts"
    (
        flock 8
        grep -vF "[$ip]:$port " "$kh" > "$kh.tmp" 2>/dev/null || true
        for t in ed25519 rsa; do
            printf '[%s]:%s %s\n' "$ip" "$port" "$(cut -d' ' -f1,2 "$hd/ssh_host_${t}_key.pub")" >> "$kh.tmp"
        done
        mv -f "$kh.tmp" "$kh"
        chmod 644 "$kh"
    ) 8>"$ROOT/client/.kh.lock"
}

do_start() {
    [ $# -ge 3 ] || die "usage: start ROOT NAME IP PORT [--auth MODE] [on:G|off:G ...]"
    local name=$1 ip=$2 port=$3 auth=password hd i kc uri
    shift 3
    check_name "$name"
    case "$ip" in 127.*) ;; *) die "only 127.0.0.0/8 allowed, not $ip" ;; esac
    case "$port" in ''|*[!0-9]*) die "bad port $port" ;; esac
    [ -f "$ROOT/client/ssh_config" ] || die "run setup first"
    if [ "${1:-}" = --auth ]; then auth=${2:-}; shift 2; fi
    hd=$(hostdir "$name")
    [ -f "$hd/pids/sshd" ] || [ -f "$hd/pids/libvirtd" ] && do_stop "$name"
    rm -rf "$hd"
    mkdir -p "$hd/pids" "$hd/faults" "$hd/home" "$hd/tmp" "$hd/crashed" \
        "$hd/lv/run" "$hd/lv/config" "$hd/lv/cache" "$hd/lv/data"
    chmod 755 "$hd"
    echo "$ip" > "$hd/ip"; echo "$port" > "$hd/port"; echo "$name" > "$hd/name"
    touch "$hd/calls.log" "$hd/events.log" "$hd/libvirtd.log"
    chown -R "$SIMUSER:$SIMUSER" "$hd/pids" "$hd/faults" "$hd/home" "$hd/tmp" "$hd/crashed" "$hd/lv" \
        "$hd/calls.log" "$hd/events.log"
    chmod 700 "$hd/lv/run"
    uri="test+unix:///default?socket=$hd/lv/run/libvirt/libvirt-sock"
    echo "$uri" > "$hd/uri"

    # 1. libvirtd ($! is libvirtd itself: setpriv and env exec).
    setpriv --reuid="$SIMUSER" --regid="$SIMUSER" --init-groups \
        env -i HOME="$hd/lv" XDG_RUNTIME_DIR="$hd/lv/run" XDG_CONFIG_HOME="$hd/lv/config" \
        XDG_CACHE_HOME="$hd/lv/cache" XDG_DATA_HOME="$hd/lv/data" PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        /usr/sbin/libvirtd --timeout 0 --pid-file "$hd/lv/libvirtd.pid" >> "$hd/libvirtd.log" 2>&1 < /dev/null 8>&- 9>&- &
    echo $! > "$hd/pids/libvirtd"
    for i in $(seq 500); do
        [ -S "$hd/lv/run/libvirt/libvirt-sock" ] && break
        alive "$(cat "$hd/pids/libvirtd")" || break
        sleep 0.01
    done
    [ -S "$hd/lv/run/libvirt/libvirt-sock" ] || { do_stop "$name"; die "libvirtd did not start, see $hd/libvirtd.log"; }

    # 2. holder client: keeps the test driver's state alive; doubles as an event log.
    setpriv --reuid="$SIMUSER" --regid="$SIMUSER" --init-groups \
        env -i HOME="$hd/home" XDG_RUNTIME_DIR="$hd/lv/run" LC_ALL=C PATH=/usr/bin:/bin \
        /usr/bin/virsh -c "$uri" event --all --loop --timestamp >> "$hd/events.log" 2>&1 < /dev/null 8>&- 9>&- &
    echo $! > "$hd/pids/holder"

    # 3. verify persistence: destroy the built-in 'test' domain until a second call sees it off.
    local ok=0
    for i in $(seq 300); do
        backdoor_virsh "$name" destroy test >/dev/null 2>&1
        if [ "$(backdoor_virsh "$name" domstate test 2>/dev/null | head -n1)" = "shut off" ]; then ok=1; break; fi
        sleep 0.01
    done
    [ $ok = 1 ] || { do_stop "$name"; die "test driver state does not persist on $name"; }
    backdoor_virsh "$name" undefine test >/dev/null || { do_stop "$name"; die "undefine test"; }

    # 4. guests
    local spec g st
    for spec in "$@"; do
        case "$spec" in
            on:*) st=on; g=${spec#on:} ;;
            off:*) st=off; g=${spec#off:} ;;
            *) do_stop "$name"; die "guest spec must be on:NAME or off:NAME: $spec" ;;
        esac
        ( define_guest "$name" "$g" "$st" ) || { do_stop "$name"; die "guest $g"; }
    done

    # 5. sshd
    kc=$(keycache "$name") || { do_stop "$name"; die "host keys"; }
    cp "$kc/ssh_host_ed25519_key" "$kc/ssh_host_ed25519_key.pub" "$kc/ssh_host_rsa_key" "$kc/ssh_host_rsa_key.pub" "$hd/"
    chmod 600 "$hd/ssh_host_ed25519_key" "$hd/ssh_host_rsa_key"
    cat "$ROOT/client/id_ed25519.pub" > "$hd/authorized_keys"
    [ -f "$ROOT/client/extra_authorized_keys" ] && cat "$ROOT/client/extra_authorized_keys" >> "$hd/authorized_keys"
    chmod 644 "$hd/authorized_keys"
    local usepam pw kbd
    case "$auth" in
        password) usepam=no; pw=yes; kbd=no ;;
        pubkey) usepam=no; pw=no; kbd=no ;;
        both) usepam=yes; pw=yes; kbd=yes ;;
        kbdint) usepam=yes; pw=no; kbd=yes ;;
        *) do_stop "$name"; die "bad auth mode $auth" ;;
    esac
    cat > "$hd/sshd_config" <<EOF
Port $port
ListenAddress $ip
AddressFamily inet
HostKey $hd/ssh_host_ed25519_key
HostKey $hd/ssh_host_rsa_key
PidFile none
UsePAM $usepam
PasswordAuthentication $pw
KbdInteractiveAuthentication $kbd
PubkeyAuthentication yes
PermitEmptyPasswords no
AuthorizedKeysFile $hd/authorized_keys
StrictModes no
PermitRootLogin no
AllowUsers $SIMUSER
ForceCommand $ROOT/bin/kvm-shell.sh $hd
PrintMotd no
PrintLastLog no
UseDNS no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
PermitTunnel no
MaxStartups 200
MaxSessions 50
LoginGraceTime 60
LogLevel VERBOSE
EOF
    ln -sf /usr/sbin/sshd "$hd/fencetest-sshd"
    local rc=0
    start_sshd "$name" || rc=$?
    if [ $rc != 0 ]; then
        do_stop "$name"
        [ $rc = 3 ] && { echo "kvmsim: port $port taken" >&2; exit 3; }
        die "sshd for $name failed"
    fi
    update_known_hosts "$name"
    echo "$name $ip $port"
}

do_stop() {
    local name=$1 hd f
    hd=$(hostdir "$name")
    [ -d "$hd/pids" ] || return 0
    stop_pidfile "$hd" "$hd/pids/sshd"
    for f in "$hd"/pids/session.* "$hd"/pids/delayed.*; do [ -f "$f" ] && stop_pidfile "$hd" "$f"; done
    stop_pidfile "$hd" "$hd/pids/holder"
    stop_pidfile "$hd" "$hd/pids/libvirtd"
    return 0
}

do_stopall() {
    local d
    for d in "$ROOT"/h/*/; do
        [ -d "$d" ] || continue
        do_stop "$(basename "$d")" &
    done
    wait
}

running_hosts() {
    local d
    for d in "$ROOT"/h/*/; do
        [ -f "$d/pids/libvirtd" ] && basename "$d"
    done
}

do_where() {
    local g=$1 h out
    for h in $(running_hosts); do
        out=$(backdoor_virsh "$h" domstate -- "$g" 2>/dev/null | head -n1) || out="absent"
        [ -n "$out" ] || out="absent"
        printf '%s\t%s\n' "$h" "$out"
    done
}

do_migrate() {
    local src=$1 dst=$2 g=$3 keep=${4:-} hds xml st
    check_name "$src"; check_name "$dst"
    hds=$(hostdir "$src")
    st=$(backdoor_virsh "$src" domstate -- "$g" | head -n1) || die "$g not on $src"
    xml=$(mktemp "$(hostdir "$dst")/tmp/mig.XXXXXX.xml")
    chmod 644 "$xml"
    backdoor_virsh "$src" dumpxml --inactive -- "$g" > "$xml" || die "dumpxml"
    if [ "$st" != "shut off" ]; then backdoor_virsh "$src" destroy -- "$g" >/dev/null || die "destroy on $src"; fi
    if [ "$keep" != keep ]; then backdoor_virsh "$src" undefine -- "$g" >/dev/null || die "undefine on $src"; fi
    backdoor_virsh "$dst" define "$xml" >/dev/null || die "define on $dst"
    rm -f "$xml"
    if [ "$st" != "shut off" ]; then backdoor_virsh "$dst" start -- "$g" >/dev/null || die "start on $dst"; fi
    : "$hds"
}

do_fault() {
    local name=$1 kind=$2 hd f tmp n=0
    shift 2
    hd=$(hostdir "$name")
    case "$kind" in
        hang|exit|garble|drop|noop|slow|login_delay|sudo_denied) ;;
        *) die "unknown fault $kind" ;;
    esac
    while f="$hd/faults/$kind.$n"; [ -e "$f" ]; do n=$((n + 1)); done
    tmp="$hd/faults/.tmp.$kind.$$"
    {
        echo "kind=$kind"
        if [ $# -gt 0 ] && [ "${1#*=}" = "$1" ]; then echo "value=$1"; shift; fi
        for kv in "$@"; do
            case "$kv" in *=*) printf '%s\n' "$kv" ;; *) die "expected key=value: $kv" ;; esac
        done
    } > "$tmp"
    chown "$SIMUSER:$SIMUSER" "$tmp"; chmod 644 "$tmp"
    mv -f "$tmp" "$f"
}

do_crash() { # name guest: the guest crashes and qemu stays (on_crash=preserve)
    local name=$1 g=$2 hd st m
    hd=$(hostdir "$name")
    st=$(backdoor_virsh "$name" domstate -- "$g" 2>/dev/null | head -n1) || die "$g not on $name"
    case "$st" in running|paused|idle) ;; *) die "$g is '$st' on $name: only an active guest can crash" ;; esac
    m="$hd/crashed/$(printf '%s' "$g" | sha1sum | cut -c1-40)"
    printf '%s' "$g" > "$m.tmp.$$" && chown "$SIMUSER:$SIMUSER" "$m.tmp.$$" && mv -f "$m.tmp.$$" "$m"
}

do_clear() {
    local hd; hd=$(hostdir "$1")
    rm -f "$hd"/faults/*
}

do_freeze() { # name sshd|libvirtd sig
    local hd pid; hd=$(hostdir "$1")
    case "$2" in sshd|libvirtd) ;; *) die "freeze what? sshd|libvirtd" ;; esac
    pid=$(cat "$hd/pids/$2" 2>/dev/null) || die "no $2 pid"
    has_marker "$pid" "$hd" || die "pid $pid is not this host's $2"
    kill "-$3" "$pid"
}

case "$cmd" in
    setup) do_setup ;;
    start) do_setup >/dev/null; do_start "$@" ;;
    stop) check_name "$1"; do_stop "$1" ;;
    stopall) do_stopall ;;
    virsh) check_name "$1"; backdoor_virsh "$@" ;;
    define) check_name "$1"; define_guest "$1" "$2" "${3:-off}" ;;
    migrate) do_migrate "$@" ;;
    where) do_where "$1" ;;
    fault) check_name "$1"; do_fault "$@" ;;
    clear) check_name "$1"; do_clear "$1" ;;
    crash) check_name "$1"; do_crash "$1" "$2" ;;
    freeze) check_name "$1"; do_freeze "$1" "$2" STOP ;;
    thaw) check_name "$1"; do_freeze "$1" "$2" CONT ;;
    sshd-down) check_name "$1"; hd=$(hostdir "$1"); stop_pidfile "$hd" "$hd/pids/sshd" ;;
    sshd-up) check_name "$1"; start_sshd "$1" || die "sshd-up failed ($?)"; update_known_hosts "$1" ;;
    *) die "unknown command $cmd" ;;
esac
