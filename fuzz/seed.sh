#!/usr/bin/env bash
# Builds the seed corpora fuzz/corpus/<target>/ from the repository's fixtures
# (tests/fixtures/*) and a few generated inputs (stdin/argv option sets, well-formed IPMI
# datagrams and a full scripted RMCP+ login). Idempotent: seed files are named by content,
# and inputs the fuzzer already added to a corpus are kept.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fix="$here/../tests/fixtures"
corpus="$here/corpus"
mkdir -p "$corpus"

python3 - "$fix" "$corpus" <<'PY'
import hashlib, os, struct, sys
fix, corpus = sys.argv[1], sys.argv[2]

def put(target, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def read(p):
    with open(p, "rb") as f:
        return f.read()

# vim-cmd outputs.
for n in sorted(os.listdir(os.path.join(fix, "esxi"))):
    if n.endswith(".txt"):
        put("vimcmd", read(os.path.join(fix, "esxi", n)))

# kvmguests.conf maps, and `hosts` values.
for n in sorted(os.listdir(os.path.join(fix, "kvmconf"))):
    put("kvmconf", read(os.path.join(fix, "kvmconf", n)))
put("kvmconf", b"cfhost1=192.0.2.1,cfhost2=192.0.2.2:2222,[2001:db8::1]:22")

# virsh replies: exit-status selector byte, stdout, NUL, stderr.
vd = os.path.join(fix, "virsh")
for n in sorted(os.listdir(vd)):
    if not n.endswith(".rc"):
        continue
    base = os.path.join(vd, n[:-3])
    rc = read(base + ".rc").strip()
    sel = {b"0": 1, b"1": 2}.get(rc, 3)
    put("virsh", bytes([sel]) + read(base + ".stdout") + b"\0" + read(base + ".stderr"))

# stdin and argv: option sets as Pacemaker and admins write them.
stdin_sets = [
    b"action=off\nipaddr=10.0.0.1\nlogin=admin\npasswd=secret\nlanplus=1\nport=node1\nnodename=node1\n",
    b"action=reboot\nip=esxi1\nusername=root\npassword=x\nplug=web1\nssl_insecure=1\ndelay=5\n",
    b"action=list\nip=h\nusername=u\nidentity_file=/root/.ssh/id_ed25519\nseparator=;\nverbose=1\n",
    b"# comment\n\naction = status \nplug=\"a,b\"\nplug_separator=,\npower_timeout=20.5\nmethod=cycle\n",
    b"action=monitor\nguests_conf=/etc/kvmguests.conf\nhosts=h1=192.0.2.1\nmissing_as_off=yes\n",
]
for s in stdin_sets:
    put("stdin", s)
argv_sets = [
    [b"-o", b"off", b"-a", b"10.0.0.1", b"-l", b"admin", b"-p", b"secret", b"-n", b"node1"],
    [b"--action=reboot", b"--ip", b"esxi1", b"--username=root", b"--plug", b"web1", b"-v", b"-v"],
    [b"-o", b"list", b"--separator", b";", b"--delay", b"3", b"--power-timeout=20", b"--method", b"cycle"],
    [b"--use-sudo", b"--missing-as-off=1", b"-k", b"/root/.ssh/id", b"extra", b"--", b"-o"],
]
for a in argv_sets:
    put("argv", b"\0".join(a))

# IPMI datagrams.
RMCP = bytes([6, 0, 0xff, 7])
def cks(b):
    return (-sum(b)) & 0xff
def response(netfn, cmd, seq, data):
    h = bytes([0x81, netfn << 2]); h += bytes([cks(h)])
    b = bytes([0x20, seq << 2, cmd]) + data
    return h + b + bytes([cks(b)])
def v15(msg):
    return RMCP + bytes([0]) + bytes(8) + bytes([len(msg)]) + msg
def v20(ptype, payload, sid=0):
    return RMCP + bytes([6, ptype]) + struct.pack("<II", sid, 0) + struct.pack("<H", len(payload)) + payload
console = 0x11223344
caps = response(7, 0x38, 1, bytes([0, 1, 0x80, 0x04, 0x02, 0, 0, 0, 0]))
suites = response(7, 0x54, 2, bytes([0, 1, 0xc0, 3, 0x01, 0x41, 0x81, 0xc0, 17, 0x03, 0x44, 0x81]))
status = response(1, 0x01, 3, bytes([0, 1, 0, 0x40]))
open_ok = bytes([0x40, 0, 4, 0]) + struct.pack("<II", console, 0x0200) + \
    bytes([0, 0, 0, 8, 1, 0, 0, 0, 1, 0, 0, 8, 1, 0, 0, 0, 2, 0, 0, 8, 1, 0, 0, 0])
rakp2 = bytes([0x40, 0, 0, 0]) + struct.pack("<I", console) + bytes(range(32)) + bytes(20)
rakp4 = bytes([0x40, 0, 0, 0]) + struct.pack("<I", console) + bytes(12)
for d in [v15(caps), v15(suites), v15(status), caps, suites, status,
          v20(0x11, open_ok), v20(0x11, bytes([0x40, 0x11])), v20(0x13, rakp2), v20(0x15, rakp4),
          v20(0x13, bytes([0x40, 0x0d, 0, 0]) + struct.pack("<I", console ^ 0xdeadbeef))]:
    put("ipmi_sessionless", d)
    put("ipmi_login_replies", d)
# Session packets: suite selector, byte position, xor, message.
for sel in range(7):
    put("ipmi_session", bytes([sel, 17, 1]) + status)
# The scripted login (see rmcpplus::fuzz::rakp_exchange): suite 3 (selector 3), tag base
# 0x10; records [flags, len, bytes]: framed Open Session, RAKP 2 with the code fixed, RAKP 4
# with the ICV fixed; and a variant answering the probe inside the new session.
c2 = 0x0a0b0c0d
op = bytes([0x10, 0, 4, 0]) + struct.pack("<II", c2, 0x0200) + \
    bytes([0, 0, 0, 8, 1, 0, 0, 0, 1, 0, 0, 8, 1, 0, 0, 0, 2, 0, 0, 8, 1, 0, 0, 0])
r2 = bytes([0x50, 0, 0, 0]) + struct.pack("<I", c2) + bytes([7] * 32) + bytes(20)
r4 = bytes([0x50, 0, 0, 0]) + struct.pack("<I", c2) + bytes(12)
def rec(flags, b):
    return bytes([flags, len(b)]) + b
for sel, algs in [(3, (1, 1, 1)), (6, (3, 4, 1)), (0, (0, 0, 0))]:
    o = op[:16] + bytes([0, 0, 0, 8, algs[0], 0, 0, 0, 1, 0, 0, 8, algs[1], 0, 0, 0, 2, 0, 0, 8, algs[2], 0, 0, 0])
    put("ipmi_rakp_exchange", bytes([sel, 0x10]) + rec(1, o) + rec(3, r2) + rec(3, r4))
    put("ipmi_rakp_exchange", bytes([sel, 0x10]) + rec(1, o) + rec(3, r2) + rec(4, bytes([7, 0x3b, 0x3f, 0, 4])))
PY
for t in "$corpus"/*; do
    echo "$(basename "$t"): $(find "$t" -type f | wc -l) inputs"
done
