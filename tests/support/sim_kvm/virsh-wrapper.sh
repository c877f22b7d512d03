#!/bin/bash
# `virsh` of a simulated KVM host (first in the session PATH). Maps qemu/kvm URIs (or none)
# to the host's private libvirtd, applies armed faults, and runs the real /usr/bin/virsh, so
# every text is what real virsh prints. Runs as the test user.
. "$KVMSIM_ROOT/bin/faultlib.sh"
HD=$KVMSIM_HOSTDIR
URI=$(cat "$HD/uri")
REAL=/usr/bin/virsh

map_uri() {
    case "$1" in
        ''|qemu*|kvm*) printf '%s' "$URI" ;;
        *) printf '%s' "$1" ;;
    esac
}

conn=""
gopts=()
while [ $# -gt 0 ]; do
    case "$1" in
        -c|--connect) conn=${2:-}; shift 2 || shift ;;
        --connect=*) conn=${1#--connect=}; shift ;;
        -l|--log|-e|--escape|-k|--keepalive-interval|-K|--keepalive-count|-d|--debug)
            gopts+=("$1" "${2:-}"); shift 2 || shift ;;
        --) shift; break ;;
        -*) gopts+=("$1"); shift ;;
        *) break ;;
    esac
done
conn=$(map_uri "$conn")
sub=${1:-}
# Match line: "virsh SUB ARGS" without the `--` separator; the domain is the last argument.
words=()
for a in "$@"; do [ "$a" = "--" ] || words+=("$a"); done
line="virsh ${words[*]}"
dom=""
[ ${#words[@]} -gt 1 ] && dom=${words[${#words[@]}-1]}

applied=""
real() { "$REAL" -c "$conn" "${gopts[@]}" "$@"; }

# ---- what the test driver cannot hold (README "Crashed and saved guests") --------------
# Crashed: `kvmsim.sh crash` marks a running guest as crashed with on_crash=preserve (qemu
# alive). The domain stays active in the test driver; domstate/dominfo/list print `crashed`
# as real virsh does for VIR_DOMAIN_CRASHED, start says it is active, destroy clears it.
# Saved: the test driver's own managedsave/managedsave-remove/dominfo are used as they are,
# but its plain `start` boots a saved domain; the qemu driver resumes it from the image. A
# plain start of a domain with a managed-save image is therefore emulated with the test
# driver's start + save + restore: the guest ends `running (restored)` and events.log shows
# `Started Restored`, as on a real host. `start --force-boot` boots fresh (test driver).
CR=$HD/crashed
mark_of() { printf '%s/%s' "$CR" "$(printf '%s' "$1" | sha1sum | cut -c1-40)"; }
real_active() { # dom -> 0 when the real domain is active (not shut off)
    local st
    st=$(real domstate -- "$1" 2>/dev/null | head -n1) || return 1
    [ -n "$st" ] && [ "${st#shut off}" = "$st" ]
}
crashed() { # dom -> 0 when marked crashed and still active (a stale mark is dropped)
    local m
    [ -n "$1" ] || return 1
    m=$(mark_of "$1")
    [ -f "$m" ] || return 1
    real_active "$1" && return 0
    rm -f "$m"
    return 1
}
has_word() { local w=$1 a; shift; for a in "$@"; do [ "$a" = "$w" ] && return 0; done; return 1; }
crashed_list() { # list output on stdin -> active rows of crashed guests say `crashed`
    local names="" f
    for f in "$CR"/*; do
        [ -f "$f" ] || continue
        n=$(cat "$f")
        real_active "$n" && names+="$n"$'\n'
    done
    NAMES=$names awk 'BEGIN { n = split(ENVIRON["NAMES"], c, "\n") }
        NR > 2 && $0 ~ /^ *[0-9]+ / {
            for (i = 1; i <= n; i++)
                if (c[i] != "" && index($0, " " c[i] " ") && $0 ~ /(running|paused|idle|blocked) *$/) {
                    sub(/(running|paused|idle|blocked) *$/, "crashed"); break
                }
        }
        { print }'
}
run_virsh() {
    local rc out tmp
    case "$sub" in
        start)
            if [ -n "$dom" ] && ! has_word --force-boot "$@" &&
                real dominfo -- "$dom" 2>/dev/null | grep -q '^Managed save: *yes'; then
                tmp="$HD/tmp/restore.$$.save"
                real start -- "$dom" > /dev/null || return $?
                real save -- "$dom" "$tmp" > /dev/null && real restore "$tmp" > /dev/null
                rc=$?
                rm -f "$tmp"
                [ $rc = 0 ] && printf "Domain '%s' started\n\n" "$dom"
                applied+="restored-from-managed-save "
                return $rc
            fi ;;
        domstate|dominfo)
            if compgen -G "$CR/*" > /dev/null && crashed "$dom"; then
                out=$(real "$@"); rc=$?
                [ $rc = 0 ] || { printf '%s\n' "$out"; return $rc; }
                if [ "$sub" = domstate ]; then
                    if has_word --reason "$@"; then printf 'crashed (panicked)\n\n'; else printf 'crashed\n\n'; fi
                else
                    printf '%s\n\n' "$out" | sed 's/^State:  *.*/State:          crashed/'
                fi
                return 0
            fi ;;
        list)
            if compgen -G "$CR/*" > /dev/null && ! has_word --name "$@"; then
                out=$(real "$@"); rc=$?
                printf '%s\n\n' "$out" | crashed_list
                return $rc
            fi ;;
        destroy)
            real "$@"; rc=$?
            [ $rc = 0 ] && [ -n "$dom" ] && rm -f "$(mark_of "$dom")"
            return $rc ;;
    esac
    real "$@"
}

success_text() { # sub dom
    case "$1" in
        destroy) printf "Domain '%s' destroyed\n\n" "$2" ;;
        reset) printf "Domain '%s' was reset\n\n" "$2" ;;
        reboot) printf "Domain '%s' is being rebooted\n\n" "$2" ;;
        shutdown) printf "Domain '%s' is being shutdown\n\n" "$2" ;;
        start) printf "Domain '%s' started\n\n" "$2" ;;
        *) printf '\n' ;;
    esac
}

if fault_take hang "$line"; then
    v=$(fget value); applied+="hang:${v:-3600} "
    call_log - "hang:${v:-3600} (sleeping)" "$line"
    sleep "${v:-3600}"
fi

drop_after=0
if fault_take drop "$line"; then
    if [ "$(fget mode)" = after ]; then
        drop_after=1; applied+="drop:after "
    else
        call_log 255 "${applied}drop:before" "$line"
        drop_session
        exit 255
    fi
fi

if fault_take exit "$line"; then
    code=$(fget value); msg=$(fget msg)
    [ -n "$msg" ] && printf '%b\n' "$msg" >&2
    call_log "${code:-1}" "${applied}exit:${code:-1}" "$line"
    exit "${code:-1}"
fi

if fault_take noop "$line" "$sub"; then
    success_text "$sub" "$dom"
    call_log 0 "${applied}noop" "$line"
    [ $drop_after = 1 ] && drop_session
    exit 0
fi

if fault_take slow "$line" "$sub"; then
    v=$(fget value); v=${v:-3}
    if [ "$(fget mode)" = block ]; then
        applied+="slow:block:$v "
        sleep "$v"
    else
        success_text "$sub" "$dom"
        setsid /bin/bash -c 'sleep "$1"; shift; exec "$@"' delayed "$v" "$REAL" -c "$conn" "${gopts[@]}" "$@" \
            < /dev/null >> "$HD/calls.log" 2>&1 &
        echo $! > "$HD/pids/delayed.$!"
        call_log 0 "${applied}slow:async:$v" "$line"
        [ $drop_after = 1 ] && drop_session
        exit 0
    fi
fi

garble=""
if fault_take garble "$line"; then
    garble=$(fget value); garble=${garble:-junk}
    applied+="garble:$garble "
fi

if [ -z "$garble" ]; then
    run_virsh "$@"
    rc=$?
else
    tmp=$(mktemp "$HD/tmp/garble.XXXXXX")
    run_virsh "$@" > "$tmp"
    rc=$?
    size=$(stat -c %s "$tmp")
    case "$garble" in
        truncate) head -c $((size / 2)) "$tmp" ;;
        shuffle) tac "$tmp" ;;
        binary) LC_ALL=C awk -v n="$size" 'BEGIN { srand(7); for (i = 0; i < n; i++) printf "%c", int(rand() * 256) }' ;;
        *) LC_ALL=C awk 'BEGIN { srand(42) } {
                s = ""
                for (i = 1; i <= length($0); i++) {
                    c = substr($0, i, 1)
                    if (c ~ /[A-Za-z]/) c = sprintf("%c", 33 + int(rand() * 94))
                    s = s c
                }
                print s
            }' "$tmp" ;;
    esac
    rm -f "$tmp"
fi
call_log "$rc" "$applied" "$line"
[ $drop_after = 1 ] && drop_session
exit "$rc"
