#!/bin/bash
# Fake free-ESXi hosts for fencekit's tests: one private OpenSSH sshd per host on a loopback
# address, whose exec requests reach a simulated vim-cmd/esxcli/vmware (vimsim.py).
#
# Usage: esxi-host.sh ROOT COMMAND [ARGS]
#   ROOT is the state root (short path, e.g. /tmp/fk-esxi-1234). Commands:
#   setup                         test user, client key, copy of the scripts (start does it too)
#   start NAME IP PORT            start a host (env: ESXI_AUTH=kbdint|password|both|pubkey,
#                                 ESXI_LAYOUT=8|6|5, ESXI_INVENTORY=file.json|default,
#                                 ESXI_LATENCY=secs, ESXI_FAULT_RC=n, ESXI_SHUTDOWN_DELAY=secs,
#                                 ESXI_EXTRA_PUBKEY=file). Prints key=value lines:
#                                 port, pid, hostdir, fingerprint, known_hosts (one per key type)
#   stop NAME                     kill the host's sshd and every process below it; keep state
#   destroy NAME                  stop + remove the host directory
#   rekey NAME                    forget the cached host keys (a later start makes new ones)
#   fault NAME KIND [k=v ...]     arm a fault (hang, exit, garble, drop, noop, slow, login_delay);
#                                 a bare first argument is taken as value=
#   clear NAME                    disarm all faults
#   freeze NAME | thaw NAME       SIGSTOP / SIGCONT the host's sshd listener
#   state NAME                    dump the VM state as JSON (no ssh)
#   vim NAME ARGS...              run the simulated vim-cmd locally against the host (no ssh)
#
# Exit status: 0 ok, 2 usage, 3 port busy or bind failed, 4 not root, 1 other failure.
# Everything stays under ROOT; only PIDs recorded in ROOT/h/NAME/pids are ever signalled,
# after checking that their command line names this host's sshd_config.
set -u
umask 022

ROOT=${1:?usage: esxi-host.sh ROOT COMMAND ...}
CMD=${2:?usage: esxi-host.sh ROOT COMMAND ...}
shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
TUSER=${FENCE_TEST_USER:-fencetest}
TPASS=${FENCE_TEST_PASSWORD:-fencetest-pw}

die() { echo "esxi-host: $*" >&2; exit "${RC:-1}"; }

[ "$(id -u)" = 0 ] || RC=4 die "must run as root (sshd password checks read /etc/shadow)"
case "$ROOT" in /*) ;; *) RC=2 die "ROOT must be absolute" ;; esac
[ ${#ROOT} -le 60 ] || RC=2 die "ROOT path too long (${#ROOT} > 60)"

put_tool() {
    cmp -s "$1" "$2" && [ -x "$2" ] && return 0
    install -m 0755 "$1" "$2.tmp.$$" && mv -f "$2.tmp.$$" "$2"
}

setup() {
    mkdir -p "$ROOT"
    chmod 0755 "$ROOT"
    exec 9>"$ROOT/.setup.lock"
    flock 9
    mkdir -p /run/sshd
    if ! id -u "$TUSER" >/dev/null 2>&1; then
        useradd -m -s /bin/sh "$TUSER" 2>/dev/null || id -u "$TUSER" >/dev/null || die "useradd failed"
    fi
    # Set the password only when it changed (marker = hash of user:password).
    local mark=/var/tmp/.fencetest-pw-$TUSER
    local want
    want=$(printf '%s:%s' "$TUSER" "$TPASS" | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$mark" 2>/dev/null)" != "$want" ] || ! passwd -S "$TUSER" 2>/dev/null | grep -q ' P '; then
        printf '%s:%s\n' "$TUSER" "$TPASS" | chpasswd || die "chpasswd failed"
        echo "$want" > "$mark"
    fi
    mkdir -p "$ROOT/client" "$ROOT/bin" "$ROOT/keys" "$ROOT/h"
    chmod 0755 "$ROOT/client" "$ROOT/bin" "$ROOT/h"
    chmod 0700 "$ROOT/keys"
    [ -f "$ROOT/client/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C fencekit-test -f "$ROOT/client/id_ed25519"
    touch "$ROOT/client/known_hosts"
    # Tests of this ROOT may be using these while another host starts: write a copy and
    # rename it over the old one (a reader sees the old file or the new, never a truncated one).
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
EOF
    mv -f "$ROOT/client/ssh_config.tmp.$$" "$ROOT/client/ssh_config"
    printf '#!/bin/sh\nexec /usr/bin/ssh -F %s/client/ssh_config "$@"\n' "$ROOT" > "$ROOT/client/ssh.tmp.$$"
    chmod 0755 "$ROOT/client/ssh.tmp.$$"
    mv -f "$ROOT/client/ssh.tmp.$$" "$ROOT/client/ssh"
    # Other hosts of this ROOT may be running these right now: never rewrite them in
    # place (install(1) recreates the file 0600 first: a concurrent vim-cmd then gets
    # EACCES). Replace atomically, and only when they changed.
    put_tool "$HERE/vimsim.py" "$ROOT/bin/vimsim.py"
    put_tool "$HERE/esxi-shell.sh" "$ROOT/bin/esxi-shell.sh"
    flock -u 9
}

hostdir() { echo "$ROOT/h/$1"; }

check_name() {
    case "$1" in ''|*[!A-Za-z0-9_-]*) RC=2 die "bad host name '$1'" ;; esac
}

# PIDs of $1 and all its descendants.
tree() {
    local p kids
    echo "$1"
    kids=$(ps -o pid= --ppid "$1" 2>/dev/null)
    for p in $kids; do tree "$p"; done
}

alive() {
    local st
    [ -r "/proc/$1/stat" ] || return 1
    st=$(sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f1)
    [ "$st" != Z ] && [ "$st" != X ]
}

stop_host() {
    local H pid pids p i
    H=$(hostdir "$1")
    [ -f "$H/pids/sshd" ] || return 0
    pid=$(cat "$H/pids/sshd")
    if [ -n "$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "$H/sshd_config"; then
        pids=$(tree "$pid")
        for p in $pids; do kill -TERM "$p" 2>/dev/null; kill -CONT "$p" 2>/dev/null; done
        for i in $(seq 1 100); do
            local any=0
            for p in $pids; do alive "$p" && any=1; done
            [ $any = 0 ] && break
            sleep 0.02
        done
        for p in $pids; do alive "$p" && kill -KILL "$p" 2>/dev/null; done
    fi
    rm -f "$H/pids/sshd"
    # Sessions whose sshd already went away leave orphans (a hung simulator, its shell):
    # they carry ESXI_HOSTDIR=<this host dir> in their environment.
    local f
    for f in $( (grep -lzxF "ESXI_HOSTDIR=$H" /proc/[0-9]*/environ
                 grep -lzxF "$ROOT/bin/esxi-shell.sh $H" /proc/[0-9]*/cmdline) 2>/dev/null); do
        p=${f#/proc/}; p=${p%%/*}
        [ "$p" = $$ ] && continue
        kill -CONT "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null
    done
}

port_busy() {
    [ -n "$(ss -Hltn "sport = :$2" 2>/dev/null | awk -v a="$1:$2" '$4 == a || $4 == "0.0.0.0:'"$2"'" || $4 == "*:'"$2"'"')" ]
}

start_host() {
    local NAME=$1 IP=$2 PORT=$3
    check_name "$NAME"
    case "$IP" in 127.*) ;; *) RC=2 die "only 127.0.0.0/8 allowed, not $IP" ;; esac
    case "$PORT" in ''|*[!0-9]*) RC=2 die "bad port" ;; esac
    [ "$PORT" -ge 1024 ] && [ "$PORT" -le 65535 ] || RC=2 die "bad port $PORT"
    setup
    local H K AUTH
    H=$(hostdir "$NAME")
    K="$ROOT/keys/$NAME"
    stop_host "$NAME"
    port_busy "$IP" "$PORT" && RC=3 die "port $IP:$PORT is in use"
    mkdir -p "$H/pids" "$H/faults" "$H/home" "$H/tools" "$K"
    chmod 0755 "$H" "$H/tools"
    chown "$TUSER:$TUSER" "$H"
    [ -f "$K/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$K/ssh_host_ed25519_key"
    [ -f "$K/ssh_host_rsa_key" ] || ssh-keygen -q -t rsa -b 2048 -N '' -f "$K/ssh_host_rsa_key"
    for t in vim-cmd esxcli vmware; do ln -sfn ../../../bin/vimsim.py "$H/tools/$t"; done
    cat "$ROOT/client/id_ed25519.pub" > "$H/authorized_keys"
    if [ -n "${ESXI_EXTRA_PUBKEY:-}" ]; then cat "$ESXI_EXTRA_PUBKEY" >> "$H/authorized_keys"; fi
    chmod 0644 "$H/authorized_keys"
    AUTH=${ESXI_AUTH:-kbdint}
    local pam pw kbd
    case "$AUTH" in
        kbdint) pam=yes pw=no kbd=yes ;;
        password) pam=no pw=yes kbd=no ;;
        both) pam=yes pw=yes kbd=yes ;;
        pubkey) pam=no pw=no kbd=no ;;
        *) RC=2 die "bad ESXI_AUTH $AUTH" ;;
    esac
    cat > "$H/host.json" <<EOF
{"name": "$NAME", "layout": "${ESXI_LAYOUT:-8}", "latency": ${ESXI_LATENCY:-0}, "fault_rc": ${ESXI_FAULT_RC:-1}, "shutdown_delay": ${ESXI_SHUTDOWN_DELAY:-3}}
EOF
    if [ ! -f "$H/state.json" ] || [ -n "${ESXI_INVENTORY:-}" ]; then
        rm -f "$H/state.json"
        /usr/bin/python3 "$ROOT/bin/vimsim.py" --hostdir "$H" --init "${ESXI_INVENTORY:-default}" || die "bad inventory"
    fi
    touch "$H/calls.log" "$H/state.lock"
    chown -R "$TUSER:$TUSER" "$H/faults" "$H/home" "$H/state.json" "$H/calls.log" "$H/state.lock"
    cat > "$H/sshd_config" <<EOF
Port $PORT
ListenAddress $IP
AddressFamily inet
HostKey $K/ssh_host_ed25519_key
HostKey $K/ssh_host_rsa_key
PidFile none
UsePAM $pam
PasswordAuthentication $pw
KbdInteractiveAuthentication $kbd
PubkeyAuthentication yes
PermitEmptyPasswords no
AuthorizedKeysFile $H/authorized_keys
StrictModes no
PermitRootLogin no
AllowUsers $TUSER
ForceCommand $ROOT/bin/esxi-shell.sh $H
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
    /usr/sbin/sshd -t -f "$H/sshd_config" || die "sshd -t rejected $H/sshd_config"
    ln -sfn /usr/sbin/sshd "$H/fencetest-sshd"
    "$H/fencetest-sshd" -D -e -f "$H/sshd_config" < /dev/null >> "$H/sshd.log" 2>&1 &
    local pid=$!
    echo "$pid" > "$H/pids/sshd"
    local i up=0
    for i in $(seq 1 400); do
        if ! alive "$pid"; then
            rm -f "$H/pids/sshd"
            if grep -q 'Address already in use' "$H/sshd.log"; then RC=3 die "port $IP:$PORT is in use"; fi
            die "sshd died at start; see $H/sshd.log"
        fi
        # Our own sshd must be the listener: another host started at the same moment on the
        # same port may have won the bind (ours then dies with "Address already in use").
        if ss -Hltnp "sport = :$PORT" 2>/dev/null | grep -F "$IP:$PORT" | grep -qF "pid=$pid,"; then up=1; break; fi
        sleep 0.01
    done
    [ $up = 1 ] || { stop_host "$NAME"; die "sshd did not listen on $IP:$PORT"; }
    # Client-side known_hosts (shared by the ssh wrapper).
    (
        flock 8
        ssh-keygen -q -R "[$IP]:$PORT" -f "$ROOT/client/known_hosts" >/dev/null 2>&1
        rm -f "$ROOT/client/known_hosts.old"
        for t in ed25519 rsa; do
            echo "[$IP]:$PORT $(cut -d' ' -f1,2 "$K/ssh_host_${t}_key.pub")" >> "$ROOT/client/known_hosts"
        done
    ) 8>"$ROOT/client/.kh.lock"
    echo "port=$PORT"
    echo "pid=$pid"
    echo "hostdir=$H"
    echo "fingerprint=$(ssh-keygen -l -E sha256 -f "$K/ssh_host_ed25519_key.pub" | cut -d' ' -f2)"
    echo "fingerprint_rsa=$(ssh-keygen -l -E sha256 -f "$K/ssh_host_rsa_key.pub" | cut -d' ' -f2)"
    for t in ed25519 rsa; do
        echo "known_hosts=[$IP]:$PORT $(cut -d' ' -f1,2 "$K/ssh_host_${t}_key.pub")"
    done
}

arm_fault() {
    local NAME=$1 KIND=$2
    shift 2
    local H
    H=$(hostdir "$NAME")
    [ -d "$H/faults" ] || die "no host $NAME"
    case "$KIND" in hang|exit|garble|drop|noop|slow|login_delay) ;; *) RC=2 die "unknown fault $KIND" ;; esac
    local tmp="$H/faults/.$KIND.tmp"
    : > "$tmp"
    echo "kind=$KIND" >> "$tmp"
    local a
    for a in "$@"; do
        case "$a" in *=*) echo "$a" >> "$tmp" ;; *) echo "value=$a" >> "$tmp" ;; esac
    done
    chown "$TUSER:$TUSER" "$tmp"
    mv -f "$tmp" "$H/faults/$KIND"
}

case "$CMD" in
    setup) setup ;;
    start) [ $# -eq 3 ] || RC=2 die "start NAME IP PORT"; start_host "$@" ;;
    stop) check_name "${1:-}"; stop_host "$1" ;;
    destroy) check_name "${1:-}"; stop_host "$1"; rm -rf "$(hostdir "$1")" ;;
    rekey) check_name "${1:-}"; rm -rf "$ROOT/keys/$1" ;;
    fault) [ $# -ge 2 ] || RC=2 die "fault NAME KIND [k=v...]"; check_name "$1"; arm_fault "$@" ;;
    clear) check_name "${1:-}"; rm -f "$(hostdir "$1")"/faults/* ;;
    freeze|thaw)
        check_name "${1:-}"
        H=$(hostdir "$1")
        pid=$(cat "$H/pids/sshd" 2>/dev/null) || die "host $1 not running"
        tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "$H/sshd_config" || die "pid $pid is not host $1"
        if [ "$CMD" = freeze ]; then kill -STOP "$pid"; else kill -CONT "$pid"; fi ;;
    state) check_name "${1:-}"; /usr/bin/python3 "$ROOT/bin/vimsim.py" --hostdir "$(hostdir "$1")" --dump ;;
    vim)
        check_name "${1:-}"
        H=$(hostdir "$1"); shift
        ESXI_HOSTDIR=$H setpriv --reuid="$TUSER" --regid="$TUSER" --init-groups "$H/tools/vim-cmd" "$@" ;;
    *) RC=2 die "unknown command $CMD" ;;
esac
