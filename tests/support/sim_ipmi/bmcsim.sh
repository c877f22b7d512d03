#!/bin/sh
# One simulated BMC (OpenIPMI ipmi_sim) on 127.0.0.1:PORT/udp, state in an instance directory.
#
#   bmcsim.sh start DIR PORT    write lan.conf + bmc.emu, start ipmi_sim, wait until bound
#   bmcsim.sh stop DIR          SIGCONT then SIGTERM exactly the recorded PID (if still ipmi_sim)
#   bmcsim.sh hang|resume DIR   SIGSTOP / SIGCONT the BMC
#   bmcsim.sh fault DIR k=v...  append fault switches (see chassis.sh); "clear" empties them
#   bmcsim.sh power DIR 0|1     change the power state behind the BMC's back
#
# Environment for start (all optional; no spaces or quotes, at most 20 characters):
#   BMC_ADMIN_PW (pass), BMC_OP_PW (oppass), BMC_USER_PW (userpass), BMC_KG (no Kg),
#   BMC_V15=1 (allow IPMI 1.5 md5/md2/straight), BMC_POWER (1), BMC_DEBUG=1 (-d message dumps),
#   BMC_ADDR (127.0.0.1; another loopback address such as 127.0.0.2 lets two BMCs share a port),
#   BMC_REFUSE_SUITES=3[,N] (build cipher-filter.so with gcc: Open Session for those suites
#   is answered "no matching cipher suite", as from a BMC without them).
# DIR must not contain spaces (ipmi_sim runs the chassis program through sh).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|hang|resume|fault|power DIR ..." >&2; exit 2; }
case $dir in *" "*) echo "instance dir must not contain spaces" >&2; exit 2 ;; esac

alive() {
    [ -f "$dir/ipmi_sim.pid" ] || return 1
    pid=$(cat "$dir/ipmi_sim.pid")
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = ipmi_sim ]
}

case $cmd in
start)
    port=${3:?port}
    addr=${BMC_ADDR:-127.0.0.1}
    case $addr in 127.*) ;; *) echo "BMC_ADDR must be a loopback address" >&2; exit 2 ;; esac
    command -v ipmi_sim >/dev/null || { echo "ipmi_sim not installed" >&2; exit 3; }
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if alive; then echo "ipmi_sim already running in $dir" >&2; exit 1; fi
    if ss -Hlun "src $addr:$port" | grep -q . || ss -Hlun "src 0.0.0.0:$port" | grep -q .; then
        echo "port $addr:$port in use" >&2; exit 1
    fi
    rm -rf "$dir/state" "$dir/pending" "$dir/events" "$dir/resets"
    mkdir -p "$dir/state"
    : > "$dir/faults"
    echo "${BMC_POWER:-1}" > "$dir/power"
    guid=$(printf '%08x%024x' "$port" "$$")
    if [ -n "${BMC_REFUSE_SUITES:-}" ]; then
        command -v gcc >/dev/null || { echo "gcc not installed (needed for BMC_REFUSE_SUITES)" >&2; exit 3; }
        gcc -shared -fPIC -O2 -o "$dir/cipher-filter.so" "$here/cipher-filter.c"
    fi
    {
        echo "name \"bmcsim$port\""
        if [ -n "${BMC_REFUSE_SUITES:-}" ]; then
            echo "loadlib \"$dir/cipher-filter.so\" \"$BMC_REFUSE_SUITES\""
        fi
        echo "set_working_mc 0x20"
        echo "  startlan 1"
        echo "    addr $addr $port"
        echo "    priv_limit admin"
        if [ "${BMC_V15:-0}" = 1 ]; then
            for l in callback user operator admin; do
                echo "    allowed_auths_$l md5 md2 straight"
            done
        fi
        echo "    guid $guid"
        if [ -n "${BMC_KG:-}" ]; then echo "    bmc_key \"$BMC_KG\""; fi
        echo "  endlan"
        echo "  chassis_control \"$here/chassis.sh $dir\""
        echo "  user 2 true \"admin\" \"${BMC_ADMIN_PW:-pass}\" admin 10 md5 md2 straight"
        echo "  user 3 true \"operator\" \"${BMC_OP_PW:-oppass}\" operator 10 md5 md2 straight"
        echo "  user 4 true \"user\" \"${BMC_USER_PW:-userpass}\" user 10 md5 md2 straight"
    } > "$dir/lan.conf"
    cat > "$dir/bmc.emu" <<EMU
mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02
sel_enable 0x20 1000 0x0a
mc_enable 0x20
EMU
    dbg=
    [ "${BMC_DEBUG:-0}" = 1 ] && dbg=-d
    ipmi_sim -n $dbg -c "$dir/lan.conf" -f "$dir/bmc.emu" -s "$dir/state" \
        </dev/null >"$dir/ipmi_sim.log" 2>&1 &
    pid=$!
    echo "$pid" > "$dir/ipmi_sim.pid"
    i=0
    while [ $i -lt 50 ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "ipmi_sim exited during start-up:" >&2; cat "$dir/ipmi_sim.log" >&2; exit 1
        fi
        if ss -Hlun "src $addr:$port" | grep -q .; then exit 0; fi
        sleep 0.1
        i=$((i + 1))
    done
    echo "ipmi_sim did not bind $addr:$port within 5 s" >&2
    kill -CONT "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true
    exit 1
    ;;
stop)
    if alive; then
        kill -CONT "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
        i=0
        while [ $i -lt 30 ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/ipmi_sim.pid"
    ;;
hang) alive && kill -STOP "$pid" ;;
resume) alive && kill -CONT "$pid" ;;
fault)
    shift 2
    for kv in "$@"; do
        if [ "$kv" = clear ]; then : > "$dir/faults"; rm -f "$dir/pending"; alive && kill -CONT "$pid" || true
        else echo "$kv" >> "$dir/faults"; fi
    done
    ;;
power) echo "${3:?0|1}" > "$dir/power.tmp" && mv "$dir/power.tmp" "$dir/power" ;;
*) echo "unknown command $cmd" >&2; exit 2 ;;
esac
