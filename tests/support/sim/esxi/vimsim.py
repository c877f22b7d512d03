#!/usr/bin/python3
"""Simulated ESXi command-line tools for fencekit's test peers.

Installed as `vim-cmd`, `esxcli` and `vmware` (symlinks to this file) on the PATH that the fake
host's sshd session sees. State lives in $ESXI_HOSTDIR/state.json (updated under a flock);
settings in $ESXI_HOSTDIR/host.json; armed faults in $ESXI_HOSTDIR/faults/*; every call is
appended to $ESXI_HOSTDIR/calls.log (JSON lines).

Output follows the project's ESXi format reference byte for byte (getallvms layout rule,
power.getstate, fault blocks in the ESXi 5 and 6.7+ layouts, ESXi 6 "... failed" lines).

Backdoor (no ssh): `vimsim.py --hostdir DIR --dump` prints the state as JSON;
`vimsim.py --hostdir DIR --init INVENTORY.json|default` writes a fresh state;
`vimsim.py --hostdir DIR --render-getallvms` prints what getallvms would print;
`vimsim.py --hostdir DIR --render-getconfig VMID [LAYOUT]` what get.config would print.
"""

import fcntl
import json
import os
import random
import re
import signal
import sys
import time

DEFAULT_INVENTORY = [
    {"vmid": 1, "name": "cl0", "guest": "centos7_64Guest", "version": "vmx-13", "power": "on"},
    {"vmid": 2, "name": "cl1", "guest": "centos7_64Guest", "version": "vmx-13", "power": "on"},
    {"vmid": 3, "name": "cl01", "guest": "rhel8_64Guest", "version": "vmx-19", "power": "off"},
    {"vmid": 4, "name": "node 3 with spaces", "guest": "rhel8_64Guest", "version": "vmx-19",
     "power": "on", "annotation": "Cluster node 3\nowner: ha-team"},
    {"vmid": 5, "name": "web [old]", "guest": "windows9Server64Guest", "version": "vmx-14",
     "power": "off"},
    {"vmid": 6, "name": "dbvm", "guest": "oracleLinux8_64Guest", "version": "vmx-19",
     "power": "suspended", "annotation": "Oracle DB, 2 vCPU\n42 GB RAM reserved"},
    {"vmid": 7, "name": "no-tools", "guest": "debian11_64Guest", "version": "vmx-19",
     "power": "on", "tools": "notInstalled"},
    {"vmid": 8, "name": "vm-\u00e4\u00f6\u00fc", "guest": "otherGuest64", "version": "vmx-13",
     "power": "off"},
    {"vmid": 9, "name": "broken", "guest": "otherGuest64", "version": "vmx-13", "power": "off",
     "invalid": True},
]
DEFAULT_SPARES = [{"name": "spare", "datastore": "datastore1", "path": "spare/spare.vmx"}]


def hostdir():
    d = os.environ.get("ESXI_HOSTDIR")
    if not d:
        sys.stderr.write("vimsim: ESXI_HOSTDIR is not set\n")
        sys.exit(70)
    return d


def load_json(path, default):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def host_settings(hd):
    s = {"name": "esxi1", "layout": "8", "latency": 0.0, "fault_rc": 1, "shutdown_delay": 3.0,
         "memory_size": 137262243840, "cpu_cores": 16, "cpu_mhz": 2095,
         "version": "VMware ESXi 8.0.3 build-24022510"}
    s.update(load_json(os.path.join(hd, "host.json"), {}))
    return s


def normalise_vm(vm, i):
    vm = dict(vm)
    vm.setdefault("vmid", i + 1)
    name = vm.setdefault("name", "vm%d" % vm["vmid"])
    vm.setdefault("datastore", "datastore1")
    vm.setdefault("path", "%s/%s.vmx" % (name, name))
    vm.setdefault("guest", "otherGuest64")
    vm.setdefault("version", "vmx-19")
    vm.setdefault("annotation", "")
    vm.setdefault("power", "off")
    vm.setdefault("tools", "running")
    vm.setdefault("memory", 2048)
    vm.setdefault("uuid", "56 4d %02x %02x 00 11 22 33-44 55 66 77 88 99 aa %02x"
                  % (vm["vmid"] & 255, (vm["vmid"] >> 8) & 255, vm["vmid"] & 255))
    vm.setdefault("invalid", False)
    # The suspend state (.vmss, the VM's saved memory): present while suspended. power.on of a
    # suspended VM resumes from it; power.off of a suspended VM discards it.
    vm.setdefault("vmss", vm["power"] == "suspended")
    # How the VM last started: "boot" (fresh) or "resume" (from its suspend state).
    vm.setdefault("last_start", None)
    return vm


def make_state(inventory, spares):
    vms = [normalise_vm(v, i) for i, v in enumerate(inventory)]
    files = {}
    for v in vms:
        files[vmx_key(v["datastore"], v["path"])] = v["name"]
    for s in spares:
        files[vmx_key(s.get("datastore", "datastore1"), s["path"])] = s.get("name", "spare")
    top = max([v["vmid"] for v in vms] + [0])
    return {"next_vmid": top + 1, "vms": vms, "files": files}


def vmx_key(ds, path):
    return "[%s] %s" % (ds, path)


def parse_vmx_path(p):
    """'/vmfs/volumes/ds/dir/x.vmx' or '[ds] dir/x.vmx' -> '[ds] dir/x.vmx'."""
    m = re.match(r"^/vmfs/volumes/([^/]+)/(.+)$", p)
    if m:
        return vmx_key(m.group(1), m.group(2))
    m = re.match(r"^\[([^\]]+)\] ?(.+)$", p)
    if m:
        return vmx_key(m.group(1), m.group(2))
    return p


class State:
    """The host's state file, locked for the duration of one call."""

    def __init__(self, hd):
        self.path = os.path.join(hd, "state.json")
        self.lockf = open(os.path.join(hd, "state.lock"), "a+")
        fcntl.flock(self.lockf, fcntl.LOCK_EX)
        self.data = load_json(self.path, None) or make_state(DEFAULT_INVENTORY, DEFAULT_SPARES)
        self.apply_pending()

    def apply_pending(self):
        now = time.time()
        for vm in self.data["vms"]:
            p = vm.get("pending")
            if p and p["at"] <= now:
                vm["power"] = p["power"]
                del vm["pending"]

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.data, f, ensure_ascii=False, indent=1)
        os.replace(tmp, self.path)

    def unlock(self):
        fcntl.flock(self.lockf, fcntl.LOCK_UN)
        self.lockf.close()

    def vm(self, word):
        for v in self.data["vms"]:
            if str(v["vmid"]) == word and not v.get("invalid"):
                return v
        return None


# ----------------------------------------------------------------------------------------------
# Output rendering


def fault_block(layout, name, fields):
    """fields: list of (key, rendered value) after the common ones; msg last."""
    out = ["(%s) {" % name]
    if layout == "5":
        rows = [("dynamicType", "<unset>"), ("faultCause", "(vmodl.MethodFault) null")] + fields
        for k, v in rows:
            out.append("   %s = %s, " % (k, v))
    else:
        rows = [("faultCause", "(vmodl.MethodFault) null"), ("faultMessage", "<unset>")] + fields
        for i, (k, v) in enumerate(rows):
            out.append("   %s = %s%s" % (k, v, "," if i < len(rows) - 1 else ""))
    out.append("}")
    return "\n".join(out) + "\n"


def not_found(layout, word):
    return fault_block(layout, "vim.fault.NotFound",
                       [("msg", '"Unable to find a VM corresponding to "%s""' % word)])


def state_words(power, layout):
    if layout == "5":
        return {"on": "Powered On", "off": "Powered Off", "suspended": "Suspended"}[power]
    return {"on": "Powered on", "off": "Powered off", "suspended": "Suspended"}[power]


def invalid_power_state(layout, requested, existing):
    api = {"on": "poweredOn", "off": "poweredOff", "suspended": "suspended"}
    return fault_block(layout, "vim.fault.InvalidPowerState", [
        ("requestedState", '"%s"' % api[requested]),
        ("existingState", '"%s"' % api[existing]),
        ("msg", '"The attempted operation cannot be performed in the current state (%s)."'
         % state_words(existing, layout)),
    ])


def render_getallvms(vms):
    """Layout rule: widths = widest cell or title (UTF-8 bytes), 3-blank separators, rows
    left-aligned and padded, titles centred (left pad = floor), annotation printed raw."""
    titles = ["Vmid", "Name", "File", "Guest OS", "Version", "Annotation"]
    rows = [[str(v["vmid"]), v["name"], vmx_key(v["datastore"], v["path"]), v["guest"],
             v["version"], v.get("annotation", "")] for v in vms]
    blen = lambda s: len(s.encode("utf-8"))
    widths = [max([blen(t)] + [blen(r[i]) for r in rows]) for i, t in enumerate(titles)]

    def pad(s, w):
        return s + " " * (w - blen(s))

    def centre(s, w):
        left = (w - blen(s)) // 2
        return " " * left + s + " " * (w - blen(s) - left)

    lines = ["   ".join(centre(t, w) for t, w in zip(titles, widths))]
    for r in rows:
        lines.append("   ".join(pad(c, w) for c, w in zip(r, widths)))
    return "\n".join(lines) + "\n"


GUEST_FULL_NAMES = {
    "centos7_64Guest": "CentOS 7 (64-bit)", "rhel8_64Guest": "Red Hat Enterprise Linux 8 (64-bit)",
    "windows9Server64Guest": "Microsoft Windows Server 2016 or later (64-bit)",
    "oracleLinux8_64Guest": "Oracle Linux 8 (64-bit)", "debian11_64Guest": "Debian GNU/Linux 11 (64-bit)",
}


def render_config(vm, layout):
    """`vim-cmd vmsvc/get.config N`: a vim.vm.ConfigInfo block (a subset of its fields, in the
    API's order: name before any user or guest text). Strings are printed raw between double
    quotes, as vim-cmd prints every string (fault msgs show unescaped inner quotes), so an
    annotation spans lines. ESXi 5: `Configuration:`, a blank line, `dynamicType` first and
    every field ending in `, `; later: every field but the last ending in `,`."""
    uuid = "564d%02x%02x-0011-2233-4455-66778899aa%02x" % (
        vm["vmid"] & 255, (vm["vmid"] >> 8) & 255, vm["vmid"] & 255)
    ds, path = vm["datastore"], vm["path"]
    vdir = "[%s] %s/" % (ds, path.rsplit("/", 1)[0]) if "/" in path else "[%s] " % ds
    q = lambda v: '"%s"' % v
    fields = [
        ("changeVersion", q("2024-03-11T09:12:45.%06dZ" % vm["vmid"])),
        ("modified", q("1970-01-01T00:00:00Z")),
        ("name", q(vm["name"])),
        ("guestFullName", q(GUEST_FULL_NAMES.get(vm["guest"], "Other (64-bit)"))),
        ("version", q(vm["version"])),
        ("uuid", q(uuid)),
        ("instanceUuid", q("52" + uuid[2:])),
        ("locationId", q(uuid)),
        ("template", "false"),
        ("guestId", q(vm["guest"])),
        ("alternateGuestName", q("")),
        ("annotation", q(vm.get("annotation", ""))),
        ("files", None),
        ("firmware", q("efi")),
    ]
    files = [("vmPathName", q(vmx_key(ds, path))), ("snapshotDirectory", q(vdir)),
             ("suspendDirectory", q(vdir)), ("logDirectory", q(vdir))]
    if layout == "5":
        out = ["Configuration:", "", "(vim.vm.ConfigInfo) {", "   dynamicType = <unset>, "]
        for k, v in fields:
            if v is None:
                out.append("   %s = (vim.vm.FileInfo) {" % k)
                out.append("      dynamicType = <unset>, ")
                out += ["      %s = %s, " % kv for kv in files]
                out.append("   }, ")
            else:
                out.append("   %s = %s, " % (k, v))
    else:
        out = ["Configuration:", "(vim.vm.ConfigInfo) {"]
        for i, (k, v) in enumerate(fields):
            end = "," if i < len(fields) - 1 else ""
            if v is None:
                out.append("   %s = (vim.vm.FileInfo) {" % k)
                out += ["      %s = %s%s" % (fk, fv, "," if j < len(files) - 1 else "")
                        for j, (fk, fv) in enumerate(files)]
                out.append("   }" + end)
            else:
                out.append("   %s = %s%s" % (k, v, end))
    out.append("}")
    return "\n".join(out) + "\n"


def hostsummary(settings, st):
    used = 2048 + sum(v["memory"] for v in st.data["vms"] if v["power"] == "on")
    cpu = 150 + 400 * sum(1 for v in st.data["vms"] if v["power"] == "on")
    return """(vim.host.Summary) {
   host = 'vim.HostSystem:ha-host',
   hardware = (vim.host.Summary.HardwareSummary) {
      vendor = "Dell Inc.",
      model = "PowerEdge R640",
      memorySize = %d,
      cpuModel = "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz",
      cpuMhz = %d,
      numCpuPkgs = 1,
      numCpuCores = %d,
      numCpuThreads = %d,
      numNics = 4,
      numHBAs = 3
   },
   runtime = (vim.host.RuntimeInfo) {
      connectionState = "connected",
      powerState = "poweredOn",
      inMaintenanceMode = false
   },
   quickStats = (vim.host.Summary.QuickStats) {
      overallCpuUsage = %d,
      overallMemoryUsage = %d,
      distributedCpuFairness = 0,
      uptime = 86400
   },
}
""" % (settings["memory_size"], settings["cpu_mhz"], settings["cpu_cores"],
       settings["cpu_cores"] * 2, cpu, used)


# ----------------------------------------------------------------------------------------------
# Faults


def load_faults(hd, cmdline):
    """Armed faults matching this call; counts down `times`."""
    fdir = os.path.join(hd, "faults")
    out = {}
    try:
        names = sorted(os.listdir(fdir))
    except FileNotFoundError:
        return out
    for n in names:
        if n.startswith(".") or n.endswith(".tmp"):
            continue
        path = os.path.join(fdir, n)
        try:
            with open(path, encoding="utf-8") as f:
                kv = dict(l.rstrip("\n").split("=", 1) for l in f if "=" in l)
        except FileNotFoundError:
            continue
        kind = kv.get("kind", n.split(".", 1)[0])
        if kind == "login_delay":
            continue
        if kv.get("match") and not re.search(kv["match"], cmdline):
            continue
        if "times" in kv:
            left = int(kv["times"]) - 1
            if left <= 0:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            else:
                kv["times"] = str(left)
                tmp = path + ".tmp"
                with open(tmp, "w", encoding="utf-8") as f:
                    f.write("".join("%s=%s\n" % (k, v) for k, v in kv.items()))
                os.replace(tmp, path)
        out[kind] = kv
    return out


def session_sshd():
    """Nearest ancestor named sshd* owned by us (the session's network-facing sshd)."""
    pid = os.getppid()
    uid = os.getuid()
    while pid > 1:
        try:
            with open("/proc/%d/stat" % pid) as f:
                stat = f.read()
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            owner = os.stat("/proc/%d" % pid).st_uid
        except (OSError, ValueError):
            return None
        if "sshd" in comm and owner == uid:
            return pid
        pid = ppid
    return None


def drop_connection(mode):
    pid = session_sshd()
    if pid:
        os.kill(pid, signal.SIGSTOP if mode == "stop" else signal.SIGKILL)
    if mode != "stop":
        time.sleep(5)
        os._exit(255)


def garble(data, mode, seed):
    rnd = random.Random(seed)
    if mode == "truncate":
        return data[: len(data) // 2]
    if mode == "shuffle":
        lines = data.split(b"\n")
        rnd.shuffle(lines)
        return b"\n".join(lines)
    if mode == "binary":
        return bytes(rnd.randrange(256) for _ in range(max(len(data), 64)))
    # junk: same shape, letters replaced by random printable characters
    printable = b"!#%&*+-0123456789:;<=>?@^_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ~"
    return bytes(printable[rnd.randrange(len(printable))] if chr(b).isalpha() else b
                 for b in data)


# ----------------------------------------------------------------------------------------------
# Commands


class Result:
    def __init__(self):
        self.out = []
        self.err = []
        self.rc = 0

    def o(self, s):
        self.out.append(s)

    def e(self, s):
        self.err.append(s)


POWER_OPS = ("power.on", "power.off", "power.reset", "power.shutdown", "power.reboot",
             "power.suspend")
DEFAULT_NOOP_OPS = "power.off,power.reset,power.shutdown,power.reboot"


def vim_cmd(args, st, settings, faults, res):
    layout = str(settings["layout"])
    frc = int(settings["fault_rc"])
    if not args:
        res.o("Commands available under /:\nhbrsvc/       internalsvc/  solo/         vmsvc/\n"
              "hostsvc/      proxysvc/     vimsvc/       help\n")
        return
    cmd, rest = args[0], args[1:]
    if evac_vim_cmd(cmd, rest, st, settings, faults, res):
        return
    if cmd == "vmsvc/getallvms":
        vms = sorted(st.data["vms"], key=lambda v: v["vmid"])
        for v in vms:
            if v.get("invalid"):
                res.e("Skipping invalid VM '%d'\n" % v["vmid"])
        res.o(render_getallvms([v for v in vms if not v.get("invalid")]))
        return
    if cmd == "hostsvc/hostsummary":
        res.o(hostsummary(settings, st))
        return
    if cmd == "solo/registervm":
        if not rest:
            res.o("Insufficient arguments.\n")
            res.rc = 1
            return
        key = parse_vmx_path(rest[0])
        if key not in st.data["files"]:
            res.o(fault_block(layout, "vim.fault.NotFound", [
                ("msg", '"The object or item referred to could not be found."')]))
            res.rc = frc
            return
        for v in st.data["vms"]:
            if vmx_key(v["datastore"], v["path"]) == key:
                res.o(fault_block(layout, "vim.fault.AlreadyExists", [
                    ("name", '"%d"' % v["vmid"]),
                    ("msg", '"The specified key, name, or identifier \'%d\' already exists."'
                     % v["vmid"])]))
                res.rc = frc
                return
        ds, path = re.match(r"^\[([^\]]+)\] (.+)$", key).groups()
        vmid = st.data["next_vmid"]
        st.data["next_vmid"] = vmid + 1
        name = rest[1] if len(rest) > 1 else st.data["files"][key]
        st.data["vms"].append(normalise_vm(
            {"vmid": vmid, "name": name, "datastore": ds, "path": path, "power": "off"}, 0))
        st.save()
        if layout != "5":
            res.o("%d\n" % vmid)
        return
    if cmd.startswith("vmsvc/") and cmd != "vmsvc/getallvms":
        op = cmd[len("vmsvc/"):]
        if op not in POWER_OPS + ("power.getstate", "get.config", "unregister"):
            res.e("Unknown command: '%s'\n" % op)
            res.rc = 1
            return
        if not rest:
            res.o("Insufficient arguments.\n")
            res.rc = 1
            return
        vm = st.vm(rest[0])
        if vm is None:
            res.o(not_found(layout, rest[0]))
            res.rc = frc
            return
        if op == "power.getstate":
            res.o("Retrieved runtime info\n%s\n" % state_words(vm["power"], "8"))
            return
        if op == "get.config":
            res.o(render_config(vm, layout))
            return
        if op == "unregister":
            if vm["power"] != "off":
                res.o(invalid_power_state(layout, "off", vm["power"]))
                res.rc = frc
                return
            st.data["vms"].remove(vm)
            st.save()
            return
        power_op(op, vm, st, settings, faults, res, layout, frc)
        return
    res.e("Unknown command: '%s'\n" % cmd)
    res.rc = 1


def power_op(op, vm, st, settings, faults, res, layout, frc):
    cur = vm["power"]
    prefix = {"power.on": "Powering on VM:\n", "power.off": "Powering off VM:\n",
              "power.reset": "Reset VM:\n", "power.suspend": "Suspending VM:\n"}.get(op, "")
    # target state and precondition
    if op == "power.on":
        ok, target = cur != "on", "on"
    elif op == "power.off":
        ok, target = cur != "off", "off"
    elif op == "power.suspend":
        ok, target = cur == "on", "suspended"
    else:  # reset, shutdown, reboot need a running VM
        ok, target = cur == "on", {"power.reset": "on", "power.shutdown": "off",
                                   "power.reboot": "on"}[op]
    if not ok:
        res.o(prefix)
        failed = {"power.on": "Power on failed", "power.off": "Power off failed",
                  "power.reset": "Reset failed", "power.suspend": "Suspend failed"}.get(op)
        if layout == "6" and failed:
            res.o(failed + "\n")
        else:
            req = {"power.on": "on", "power.off": "off", "power.suspend": "suspended"}.get(op, "on")
            res.o(invalid_power_state(layout, req, cur))
        res.rc = frc
        return
    if op in ("power.shutdown", "power.reboot") and vm.get("tools") != "running":
        res.o(fault_block(layout, "vim.fault.ToolsUnavailable", [
            ("msg", '"Cannot complete operation because VMware Tools is not running in this '
                    'virtual machine."')]))
        res.rc = frc
        return
    res.o(prefix)
    noop = faults.get("noop")
    if noop is not None:
        ops = (noop.get("value") or noop.get("ops") or DEFAULT_NOOP_OPS).split(",")
        if op in ops:
            return
    delay = 0.0
    slow = faults.get("slow")
    if slow is not None:
        ops = slow.get("ops", "").split(",") if slow.get("ops") else list(POWER_OPS)
        if op in ops:
            secs = float(slow.get("value", "3"))
            if slow.get("mode", "async") == "block":
                st.unlock()
                time.sleep(secs)
                st.__init__(hostdir())
                vm = st.vm(str(vm["vmid"])) or vm
            else:
                delay = secs
    if op in ("power.shutdown",):
        delay = max(delay, float(settings["shutdown_delay"]))
    # The suspend state: written by power.suspend; power.on resumes from it (and it is gone);
    # power.off of a suspended VM discards it (on ESXi, powering off a suspended VM discards
    # its suspended state: the next power.on boots afresh).
    if op == "power.suspend":
        vm["vmss"] = True
    elif op == "power.on":
        vm["last_start"] = "resume" if vm.get("vmss") else "boot"
        vm["vmss"] = False
    elif op == "power.off":
        vm["vmss"] = False
    elif op in ("power.reset", "power.reboot"):
        vm["last_start"] = "boot"
    if delay > 0:
        vm["pending"] = {"power": target, "at": time.time() + delay}
    else:
        vm["power"] = target
        vm.pop("pending", None)
    st.save()


def esxcli(args, st, settings, res):
    if evac_esxcli(args, st, settings, res):
        return
    a = " ".join(args)
    if a == "vm process list":
        for v in sorted(st.data["vms"], key=lambda v: v["vmid"]):
            if v["power"] != "on" or v.get("invalid"):
                continue
            wid = 2100000 + 2 * v["vmid"]
            res.o("%s\n   World ID: %d\n   Process ID: 0\n   VMX Cartel ID: %d\n   UUID: %s\n"
                  "   Display Name: %s\n   Config File: /vmfs/volumes/%s/%s\n\n"
                  % (v["name"], wid, wid - 1, v["uuid"], v["name"], v["datastore"], v["path"]))
        return
    m = re.match(r"^vm process kill (?:--type[= ](soft|hard|force) --world-id[= ](\d+)|"
                 r"--world-id[= ](\d+) --type[= ](soft|hard|force))$", a)
    if m:
        wid = int(m.group(2) or m.group(3))
        for v in st.data["vms"]:
            if v["power"] == "on" and 2100000 + 2 * v["vmid"] == wid:
                v["power"] = "off"
                st.save()
                return
        res.o("Error: Unable to find a VM with World ID %d\n" % wid)
        res.rc = 1
        return
    if a == "system hostname get":
        res.o("   Domain Name: \n   Fully Qualified Domain Name: %s\n   Host Name: %s\n"
              % (settings["name"], settings["name"]))
        return
    if a == "system version get":
        ver = settings["version"].split()
        res.o("   Product: VMware ESXi\n   Version: %s\n   Build: Releasebuild-%s\n"
              "   Update: 3\n   Patch: 0\n" % (ver[2] if len(ver) > 2 else "8.0.3",
                                                ver[-1].split("-")[-1]))
        return
    res.o("Error: Unknown command or namespace %s\n" % a)
    res.rc = 1


def log_call(hd, argv, rc, faults, t0):
    try:
        with open(os.path.join(hd, "calls.log"), "a", encoding="utf-8") as f:
            f.write(json.dumps({"t": round(t0, 3), "dt": round(time.time() - t0, 3),
                                "argv": argv, "rc": rc, "faults": sorted(faults)},
                               ensure_ascii=False) + "\n")
    except OSError:
        pass


def main():
    argv = sys.argv
    tool = os.path.basename(argv[0])
    if len(argv) > 1 and argv[1] == "--hostdir":
        hd = argv[2]
        os.environ["ESXI_HOSTDIR"] = hd
        what = argv[3] if len(argv) > 3 else "--dump"
        if what == "--init":
            src = argv[4] if len(argv) > 4 else "default"
            if src == "default":
                data = make_state(DEFAULT_INVENTORY, DEFAULT_SPARES)
            else:
                inv = load_json(src, [])
                if isinstance(inv, dict):
                    data = make_state(inv.get("vms", []), inv.get("spares", DEFAULT_SPARES))
                else:
                    data = make_state(inv, DEFAULT_SPARES)
            st = State(hd)
            st.data = data
            st.save()
            return 0
        st = State(hd)
        if what == "--render-getconfig":
            vm = st.vm(argv[4])
            sys.stdout.write(render_config(vm, argv[5] if len(argv) > 5 else "8"))
            return 0
        if what == "--render-getallvms":
            sys.stdout.write(render_getallvms(
                [v for v in sorted(st.data["vms"], key=lambda v: v["vmid"])
                 if not v.get("invalid")]))
        else:
            json.dump(st.data, sys.stdout, ensure_ascii=False, indent=1)
            sys.stdout.write("\n")
        return 0

    hd = hostdir()
    settings = host_settings(hd)
    t0 = time.time()
    args = argv[1:]
    cmdline = " ".join([tool] + args)
    if float(settings["latency"]) > 0:
        time.sleep(float(settings["latency"]))
    faults = load_faults(hd, cmdline)
    if "hang" in faults:
        time.sleep(float(faults["hang"].get("value", "3600")))
    if "exit" in faults:
        msg = faults["exit"].get("msg", "").replace("\\n", "\n")
        if msg:
            sys.stderr.write(msg if msg.endswith("\n") else msg + "\n")
        rc = int(faults["exit"].get("value", "1"))
        log_call(hd, [tool] + args, rc, faults, t0)
        return rc
    drop = faults.get("drop")
    if drop is not None and drop.get("mode", "before") in ("before", "stop"):
        log_call(hd, [tool] + args, -1, faults, t0)
        drop_connection(drop.get("mode", "before"))
        return 0
    if "slow" in faults and faults["slow"].get("mode") == "block" and tool != "vim-cmd":
        time.sleep(float(faults["slow"].get("value", "3")))

    res = Result()
    st = State(hd)
    try:
        if tool == "vim-cmd":
            vim_cmd(args, st, settings, faults, res)
        elif tool == "esxcli":
            esxcli(args, st, settings, res)
        elif tool == "vmware":
            if args in (["-v"], ["--version"]):
                res.o(settings["version"] + "\n")
            else:
                res.o("Usage: vmware -v\n")
                res.rc = 1
        else:
            res.e("%s: not simulated\n" % tool)
            res.rc = 127
    finally:
        st.unlock()
    evac_after_call(res)

    if drop is not None and drop.get("mode") == "after":
        log_call(hd, [tool] + args, -1, faults, t0)
        drop_connection("after")
        return 0
    out = "".join(res.out).encode("utf-8")
    if "garble" in faults:
        out = garble(out, faults["garble"].get("value", "junk"), cmdline)
    sys.stderr.write("".join(res.err))
    sys.stderr.flush()
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    log_call(hd, [tool] + args, res.rc, faults, t0)
    return res.rc


# ----------------------------------------------------------------------------------------------
# Evacuation simulator (evacsim.py, copied next to this file by its setup): hosts with an
# evac.json share datastores with leased locks; their calls go there first.


def evac_vim_cmd(cmd, rest, st, settings, faults, res):
    if not os.path.exists(os.path.join(hostdir(), "evac.json")):
        return False
    sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
    import evacsim
    return evacsim.vim_cmd(sys.modules[__name__], cmd, rest, st, settings, faults, res)


def evac_esxcli(args, st, settings, res):
    if not os.path.exists(os.path.join(hostdir(), "evac.json")):
        return False
    sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
    import evacsim
    return evacsim.esxcli(sys.modules[__name__], args, st, settings, res)


def evac_after_call(res):
    if getattr(res, "stall", 0):
        time.sleep(res.stall)


if __name__ == "__main__":
    sys.exit(main())
