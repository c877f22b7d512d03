#!/bin/bash
# ForceCommand of a simulated KVM host. $1 = host directory. Runs as the test user.
HD=$1
export KVMSIM_HOSTDIR=$HD
export KVMSIM_ROOT=${HD%/h/*}
NAME=$(cat "$HD/name")
export LIBVIRT_DEFAULT_URI
LIBVIRT_DEFAULT_URI=$(cat "$HD/uri")
export HOME=$HD/home XDG_RUNTIME_DIR=$HD/lv/run LC_ALL=C
export PATH=$KVMSIM_ROOT/bin/kvm:/usr/bin:/bin:/usr/sbin:/sbin
. "$KVMSIM_ROOT/bin/faultlib.sh"
if fault_take login_delay "${SSH_ORIGINAL_COMMAND:-<interactive>}"; then
    sleep "$(fget value)"
fi
# This script stays the parent of the session (no exec) and records its PID, so that `stop`
# can kill sessions whose client is gone (e.g. a hung virsh after the client timed out).
echo $$ > "$HD/pids/session.$$"
trap 'rm -f "$HD/pids/session.$$"' EXIT
if [ -n "${SSH_ORIGINAL_COMMAND:-}" ]; then
    /bin/bash -c "$SSH_ORIGINAL_COMMAND"
    exit $?
fi
cd "$HOME" || exit 1
export PS1="[\\u@$NAME \\W]\\$ "
/bin/bash --noprofile --norc -i
exit $?
