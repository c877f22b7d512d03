#!/bin/sh
# Chassis-control program for ipmi_sim (lan.conf: chassis_control "<this> <instance-dir>").
#   chassis.sh DIR get power      -> "power:0|1"      chassis.sh DIR get boot -> "boot:default"
#   chassis.sh DIR set power 0|1  -> power off/on     chassis.sh DIR set reset 1 -> hard reset
#   chassis.sh DIR set boot|identify|shutdown ... -> logged only;  chassis.sh DIR check -> exit 1
# A non-zero exit makes ipmi_sim answer completion code 0xFF.
# State in DIR: power (0/1), pending ("TARGET DEADLINE_NS"), faults (key=value lines), resets,
# events (one line per call). Faults: poweron|poweroff|reset=error|ignore, delay=N, slow=N.
dir=$1
shift
cd "$dir" || exit 1

poweron=; poweroff=; reset=; delay=; slow=
if [ -s faults ]; then
    while IFS='=' read -r k v; do
        case $k in
            poweron) poweron=$v ;; poweroff) poweroff=$v ;; reset) reset=$v ;;
            delay) delay=$v ;; slow) slow=$v ;;
        esac
    done < faults
fi

log() { echo "$(date +%s.%N) $* -> $result" >> events; }

# Optional hook (the evacuation simulator ties the BMC to its host): DIR/hook ACTION VALUE with
# ACTION get (after a power read), set (before a power change; non-zero = error) or ignored.
hook() { [ -x ./hook ] || return 0; ./hook "$@" </dev/null >/dev/null 2>>hook.log; }

apply_pending() {
    [ -f pending ] || return 0
    read -r target deadline < pending
    now=$(date +%s%N)
    if [ "$now" -ge "$deadline" ]; then
        echo "$target" > power.tmp && mv power.tmp power
        rm -f pending
    fi
}

set_power() {
    if [ -n "$delay" ] && [ "$delay" != 0 ]; then
        echo "$1 $(( $(date +%s%N) + delay * 1000000000 ))" > pending
    else
        rm -f pending
        echo "$1" > power.tmp && mv power.tmp power
    fi
}

result=ok
case "$1 $2" in
"get power")
    apply_pending
    if [ -n "$slow" ] && [ "$slow" != 0 ]; then sleep "$slow"; fi
    p=$(cat power 2>/dev/null)
    case $p in 0|1) ;; *) p=0 ;; esac
    hook get "$p"
    echo "power:$p"
    result=$p
    ;;
"get boot")
    echo "boot:default"
    ;;
"set power")
    if [ "$3" = 1 ]; then f=$poweron; else f=$poweroff; fi
    case $f in
        error) result=error; log "$@"; exit 1 ;;
        ignore) result=ignored; hook ignored "$3" ;;
        *) if ! hook set "$3"; then result=error; log "$@"; exit 1; fi; set_power "$3" ;;
    esac
    ;;
"set reset")
    if [ "$reset" = error ]; then result=error; log "$@"; exit 1; fi
    n=$(cat resets 2>/dev/null || echo 0)
    echo $((n + 1)) > resets
    ;;
"set "*)
    ;;
check*)
    result=check; log "$@"; exit 1
    ;;
*)
    result=unknown; log "$@"; exit 1
    ;;
esac
log "$@"
exit 0
