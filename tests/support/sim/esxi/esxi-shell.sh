#!/bin/sh
# ForceCommand of a fake ESXi host's sshd. Runs as the test user; $1 = the host directory.
# Exec requests run under /bin/sh -c (ESXi runs them under busybox ash); an interactive login
# gets the ESXi banner and a `[user@host:~] ` prompt.
H="$1"
ESXI_HOSTDIR="$H"
export ESXI_HOSTDIR
PATH="$H/tools:/usr/bin:/bin"
export PATH
HOME="$H/home"
export HOME
cd "$HOME" 2>/dev/null || cd /
if [ -f "$H/faults/login_delay" ]; then
    d=$(sed -n 's/^value=//p' "$H/faults/login_delay")
    sleep "${d:-5}"
fi
if [ -n "$SSH_ORIGINAL_COMMAND" ]; then
    exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
fi
name=$(sed -n 's/.*"name": *"\([^"]*\)".*/\1/p' "$H/host.json" 2>/dev/null)
cat <<'EOF'
The time and date of this login have been sent to the system logs.

WARNING:
   All commands run on the ESXi shell are logged and may be included in
   support bundles. Do not provide passwords directly on the command line.
   Most tools can prompt for secrets or accept them from standard input.

VMware offers supported, powerful system administration tools.  Please
see www.vmware.com/go/sysadmintools for details.

The ESXi Shell can be disabled by an administrative user. See the
vSphere Security documentation for more information.
EOF
PS1="[${USER:-$(id -un)}@${name:-esxi}:~] "
export PS1
exec /bin/sh -i
