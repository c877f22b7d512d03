# Sourced by kvm-shell.sh, virsh and sudo of the simulated KVM hosts (bash).
# Faults are files KIND.N in $KVMSIM_HOSTDIR/faults with key=value lines:
#   kind=  value=  match= (POSIX ERE searched in the command line)  times=  mode=  msg=  ops=
# fault_take KIND LINE [SUBCOMMAND]: takes the first armed fault of KIND matching LINE
# (and, for noop/slow, whose op list contains SUBCOMMAND), counts `times` down (the file
# disappears at 0) and leaves its text in $FAULT. Returns 1 when none applies.

FAULT=""

fget() { printf '%s\n' "$FAULT" | sed -n "s/^$1=//p" | head -n1; }

fault_take() {
    local kind=$1 line=$2 sub=${3:-} dir="$KVMSIM_HOSTDIR/faults" f m t ops text
    FAULT=""
    compgen -G "$dir/$kind.*" >/dev/null || return 1
    exec 7>>"$dir/.lock"
    flock 7
    for f in "$dir/$kind".*; do
        [ -f "$f" ] || continue
        text=$(cat "$f" 2>/dev/null) || continue
        m=$(printf '%s\n' "$text" | sed -n 's/^match=//p' | head -n1)
        if [ -n "$m" ] && ! [[ $line =~ $m ]]; then continue; fi
        if [ "$kind" = noop ] || [ "$kind" = slow ]; then
            if [ "$kind" = noop ]; then
                ops=$(printf '%s\n' "$text" | sed -n 's/^value=//p' | head -n1)
            else
                ops=$(printf '%s\n' "$text" | sed -n 's/^ops=//p' | head -n1)
            fi
            [ -n "$ops" ] || ops=destroy,reset,reboot,shutdown
            case ",$ops," in *",$sub,"*) ;; *) continue ;; esac
        fi
        t=$(printf '%s\n' "$text" | sed -n 's/^times=//p' | head -n1)
        if [ -n "$t" ]; then
            t=$((t - 1))
            if [ "$t" -le 0 ]; then
                rm -f "$f"
            else
                printf '%s\n' "$text" | sed "s/^times=.*/times=$t/" > "$f.tmp.$$" && mv -f "$f.tmp.$$" "$f"
            fi
        fi
        FAULT=$text
        flock -u 7; exec 7>&-
        return 0
    done
    flock -u 7; exec 7>&-
    return 1
}

# Appends one line to the host's call log.
call_log() { # rc applied line
    printf '%s rc=%s faults=[%s] %s\n' "$(date +%H:%M:%S.%N)" "$1" "$2" "$3" >> "$KVMSIM_HOSTDIR/calls.log"
}

# SIGKILLs the session's own sshd process (nearest ancestor named *sshd* owned by us).
drop_session() {
    local p=$$ me stat rest comm uid
    me=$(id -u)
    while [ "$p" -gt 1 ]; do
        stat=$(cat "/proc/$p/stat" 2>/dev/null) || return 1
        rest=${stat##*) }
        set -- $rest
        p=$2
        [ "$p" -gt 1 ] || return 1
        comm=$(cat "/proc/$p/comm" 2>/dev/null)
        uid=$(awk '/^Uid:/{print $2}' "/proc/$p/status" 2>/dev/null)
        if [[ $comm == *sshd* ]] && [ "$uid" = "$me" ]; then
            kill -KILL "$p"
            return 0
        fi
    done
    return 1
}
