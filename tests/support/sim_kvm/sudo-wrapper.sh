#!/bin/bash
# Fake `sudo` of a simulated KVM host: runs the command as the test user (which owns the
# private libvirtd), or fails like `sudo -n` without a NOPASSWD rule when a `sudo_denied`
# fault is armed. Options before the command are accepted and ignored.
. "$KVMSIM_ROOT/bin/faultlib.sh"
line="sudo $*"
if fault_take sudo_denied "$line"; then
    echo "sudo: a password is required" >&2
    call_log 1 "sudo_denied" "$line"
    exit 1
fi
while [ $# -gt 0 ]; do
    case "$1" in
        -u|-g|-h|-p|-C|-D|-r|-t|-U) shift 2 ;;
        --) shift; break ;;
        -*) shift ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "usage: sudo -h | -K | -k | -V" >&2; exit 1; }
call_log exec "" "$line"
exec "$@"
