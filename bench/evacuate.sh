#!/bin/bash
# Benchmark (not a test): vm-evacuate rescuing 40 VMs of a dead simulated ESXi host onto 4
# simulated targets (tests/support/sim/esxi/evacsim.py: shared datastore, leased locks, one ipmi_sim
# BMC per host), every vim-cmd call slowed to LATENCY seconds, at max_parallel 1, 4 and 8.
# Prints the wall time of `vm-evacuate run` for each (the fence, confirm, plan and execute).
#
# Usage: bench/evacuate.sh           (root; needs sshd, python3, ipmi_sim)
#   VM_EVACUATE=path/to/vm-evacuate  (default target/release/vm-evacuate; built if missing)
#   LATENCY=0.3  VMS=40  PARALLEL="1 4 8"  PORT=2270 (first SSH port tried)
# Target (issue 10): wall time scales with max_parallel.
set -u
cd "$(dirname "$0")/.."
LATENCY=${LATENCY:-0.3}
VMS=${VMS:-40}
PARALLEL=${PARALLEL:-1 4 8}
PORT=${PORT:-2270}
BIN=${VM_EVACUATE:-target/release/vm-evacuate}
ROOT=/tmp/fk-bevac-$$
SCN=$ROOT/scn
H=tests/support/sim/esxi/esxi-host.sh
B=tests/support/sim_ipmi/bmcsim.sh
SIM=tests/support/sim/esxi/evacsim.py
NAMES="src t1 t2 t3 t4"

[ "$(id -u)" = 0 ] || { echo "bench/evacuate.sh: run as root (the fake hosts' sshd needs it)" >&2; exit 1; }
if [ ! -x "$BIN" ]; then
    cargo build --release --locked --quiet --bin vm-evacuate || exit 1
fi

cleanup() {
    for n in $NAMES; do
        $H "$ROOT" destroy "$n" >/dev/null 2>&1
        $B stop "$ROOT/bmc-$n" >/dev/null 2>&1
    done
    rm -rf "$ROOT"
}
trap cleanup EXIT
mkdir -p "$SCN/state"
echo '[]' > "$ROOT/empty.json"

declare -A SSHPORT BMCPORT FP
p=$PORT
for n in $NAMES; do
    while :; do
        out=$(ESXI_AUTH=pubkey ESXI_LATENCY=$LATENCY ESXI_INVENTORY=$ROOT/empty.json \
              $H "$ROOT" start "$n" 127.0.0.1 "$p" 2>/dev/null)
        rc=$?
        [ $rc = 0 ] && break
        [ $rc = 3 ] || { echo "cannot start host $n" >&2; exit 1; }
        p=$((p + 1))
    done
    SSHPORT[$n]=$p
    FP[$n]=$(sed -n 's/^fingerprint=//p' <<<"$out")
    p=$((p + 1))
    bp=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    $B start "$ROOT/bmc-$n" "$bp" >/dev/null || { echo "cannot start the BMC of $n" >&2; exit 1; }
    BMCPORT[$n]=$bp
    printf '#!/bin/sh\nexec /usr/bin/python3 %s bmc %s %s "$@"\n' "$PWD/$SIM" "$SCN" "$n" > "$ROOT/bmc-$n/hook"
    chmod 0755 "$ROOT/bmc-$n/hook"
done

# The scenario spec: the 40 VMs on src, 1 GB each; 16 GB per host.
python3 - "$ROOT" "$SCN" "$VMS" "$LATENCY" $NAMES > "$ROOT/spec.json" <<'EOF'
import json, sys
root, scn, vms, lat = sys.argv[1:5]
names = sys.argv[5:]
hosts = []
for n in names:
    hosts.append({"name": n, "hostdir": "%s/h/%s" % (root, n), "datastores": ["shared1"],
                  "memory_mb": 16384, "esxi_root": root, "sim_name": n, "ip": "127.0.0.1",
                  "port": 0, "env": {"ESXI_AUTH": "pubkey", "ESXI_LATENCY": lat},
                  "ask_moved": False, "question_wait_s": 30})
print(json.dumps({"scn": scn, "hosts": hosts,
                  "vms": [{"name": "vm%02d" % i, "host": "src", "datastore": "shared1",
                           "memory": 1024, "power": "on"} for i in range(int(vms))]}))
EOF

inventory() { # max_parallel
    {
        printf '[policy]\nmax_parallel = %s\ndetect_failures = 1\ndetect_interval_s = 1\n' "$1"
        printf 'post_fence_wait_s = 0\nvm_retry_limit = 1\n\n'
        printf '[ssh]\nusername = "fencetest"\nidentity_file = "%s/client/id_ed25519"\n' "$ROOT"
        printf 'login_timeout_s = 5\nshell_timeout_s = 30\n\n'
        printf '[bmc]\nusername = "admin"\npassword = "pass"\ncipher = 3\nprivlvl = "administrator"\n'
        for n in $NAMES; do
            printf '\n[[host]]\nname = "%s"\naddress = "127.0.0.1"\nport = %s\n' "$n" "${SSHPORT[$n]}"
            printf 'bmc_address = "127.0.0.1"\nbmc_port = %s\nmemory_mb = 16384\n' "${BMCPORT[$n]}"
            printf '[host.ssh]\nhost_key_fingerprint = "%s"\n' "${FP[$n]}"
        done
    } > "$SCN/evacuate.toml"
    chmod 0600 "$SCN/evacuate.toml"
}

reset_scenario() {
    rm -rf "$SCN/ds" "$SCN/alive" "$SCN/events.log" "$SCN/state"
    mkdir -p "$SCN/state"
    python3 - "$ROOT/spec.json" <<EOF
import json, sys
spec = json.load(open(sys.argv[1]))
ports = {$(for n in $NAMES; do printf '"%s": %s, ' "$n" "${SSHPORT[$n]}"; done)}
for h in spec["hosts"]:
    h["port"] = ports[h["name"]]
json.dump(spec, open(sys.argv[1], "w"))
EOF
    python3 "$SIM" setup "$ROOT/spec.json" || exit 1
    # src up again (a previous round killed it), its BMC on.
    if ! ss -Hltn "sport = :${SSHPORT[src]}" | grep -q .; then
        ESXI_AUTH=pubkey ESXI_LATENCY=$LATENCY $H "$ROOT" start src 127.0.0.1 "${SSHPORT[src]}" >/dev/null || exit 1
    fi
    $B power "$ROOT/bmc-src" 1
}

printf 'vm-evacuate run: %s VMs, 4 targets, %s s per vim-cmd\n' "$VMS" "$LATENCY"
calls() { cat "$ROOT"/h/*/calls.log 2>/dev/null | wc -l; }
printf '%-14s %10s %14s  %s\n' max_parallel wall_s vim-cmd_calls result
for par in $PARALLEL; do
    reset_scenario
    inventory "$par"
    "$BIN" check --config "$SCN/evacuate.toml" --state-dir "$SCN/state" >/dev/null 2>"$ROOT/check.err" \
        || { echo "check failed:" >&2; cat "$ROOT/check.err" >&2; exit 1; }
    python3 "$SIM" power "$SCN" src off || exit 1
    c0=$(calls)
    t0=$(date +%s.%N)
    "$BIN" run --config "$SCN/evacuate.toml" --state-dir "$SCN/state" --host src \
        >"$ROOT/run.out" 2>"$ROOT/run.err"
    rc=$?
    t1=$(date +%s.%N)
    started=$(grep -c '"ev": "power_on"' "$SCN/events.log")
    printf '%-14s %10s %14s  %s\n' "$par" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')" \
        "$(( $(calls) - c0 ))" "exit=$rc,powered_on=$started"
    [ $rc = 0 ] || { tail -5 "$ROOT/run.err" >&2; }
done
