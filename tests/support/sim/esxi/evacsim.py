#!/usr/bin/python3
"""Evacuation simulator: simulated ESXi hosts (vimsim.py) that share datastores with
VMFS-like leased locks, each with a simulated BMC (tests/support/sim_ipmi) wired to the host's power.

A scenario directory SCN holds:
  ds/NAME/                   one directory per datastore; a VM's files are DIR/VM.vmx
                             (displayName, memSize) and, while it runs, DIR/VM.vmx.lck
                             (the lock: the owner host's name)
  alive/HOST                 present while HOST runs ESXi (its lock leases are renewed);
                             a lock whose owner is not alive has expired
  events.log                 JSON lines {"t": CLOCK_MONOTONIC seconds, "host", "ev", ...},
                             appended under a flock, so file order is time order
Each simulated host's directory (tests/support/sim/esxi/esxi-host.sh) holds evac.json:
  {"name": inventory name, "scn": SCN, "datastores": [names it sees], "memory_mb": N,
   "esxi_root", "sim_name", "ip", "port", "env": {start environment}, "ask_moved": bool,
   "question_wait_s": secs}
vimsim.py hands the calls of such hosts to vim_cmd() below first.

Command line (run as root by the test harness and by the BMC's chassis hook):
  evacsim.py setup SPEC.json        datastores, vmx files, host states, locks, alive markers
  evacsim.py power SCN HOST off|on  power loss / power on (sshd stopped or started, leases)
  evacsim.py isolate SCN HOST       the host stops answering ssh but keeps running (locks held)
  evacsim.py bmc SCN HOST set|get|ignored 0|1   called by tests/support/sim_ipmi/chassis.sh's hook
  evacsim.py event SCN HOST EV [k=v ...]

vim-cmd verbs added for these hosts (texts marked "guessed" have no capture in the project's
ESXi format notes, tests/fixtures/esxi/README.md): solo/registervm on a shared datastore,
vmsvc/unregister, vmsvc/power.* with locks, vmsvc/get.summary (guessed subset), vmsvc/message
(guessed), hostsvc/datastore/listsummary (guessed subset), hostsvc/autostartmanager/*
(guessed), hostsvc/hostsummary with the host's memory. Fault files (faults/KIND as in
vimsim.py): `stall_after SECS match=REGEX [times=N]` performs the call, logs a "stall" event,
then waits SECS before answering (a test kills its client meanwhile).
"""

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.realpath(__file__))
TUSER = os.environ.get("FENCE_TEST_USER", "fencetest")


# ----------------------------------------------------------------------------------------------
# Shared pieces


def load(path, default=None):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return default


def save(path, data):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
    os.replace(tmp, path)


def event(scn, host, ev, **kw):
    rec = {"host": host, "ev": ev}
    rec.update(kw)
    path = os.path.join(scn, "events.log")
    with open(path, "a", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        rec = dict({"t": round(time.monotonic(), 6)}, **rec)
        f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        f.flush()
        fcntl.flock(f, fcntl.LOCK_UN)


def split_key(key):
    m = re.match(r"^\[([^\]]+)\] (.+)$", key)
    return (m.group(1), m.group(2)) if m else (None, None)


def ds_file(scn, ds, path):
    return os.path.join(scn, "ds", ds, path)


def read_vmx(fp):
    out = {}
    try:
        with open(fp, encoding="utf-8") as f:
            for line in f:
                m = re.match(r'^\s*([A-Za-z0-9_.]+)\s*=\s*"(.*)"\s*$', line)
                if m:
                    out[m.group(1)] = m.group(2)
    except FileNotFoundError:
        return None
    return out


def write_vmx(fp, name, memory):
    os.makedirs(os.path.dirname(fp), exist_ok=True)
    with open(fp, "w", encoding="utf-8") as f:
        f.write('.encoding = "UTF-8"\nconfig.version = "8"\nvirtualHW.version = "19"\n'
                'displayName = "%s"\nmemSize = "%d"\nguestOS = "otherlinux-64"\n' % (name, memory))


def alive(scn, host):
    return os.path.exists(os.path.join(scn, "alive", host))


def host_state_dir(scn, host):
    """The esxi-host.sh directory of inventory host HOST (from SCN/hosts.json)."""
    return load(os.path.join(scn, "hosts.json"), {}).get(host)


def running_on(scn, owner, key):
    """True when OWNER's state (read without its flock; written by rename) has a VM with the
    vmx KEY powered on, pending changes applied."""
    hd = host_state_dir(scn, owner)
    st = load(os.path.join(hd, "state.json"), {}) if hd else {}
    now = time.time()
    for v in st.get("vms", []):
        if "[%s] %s" % (v.get("datastore"), v.get("path")) != key:
            continue
        p = v.get("pending")
        power = p["power"] if p and p.get("at", 0) <= now else v.get("power")
        if power == "on":
            return True
    return False


def lock_path(scn, key):
    ds, path = split_key(key)
    return ds_file(scn, ds, path) + ".lck"


def lock_owner(scn, key):
    try:
        with open(lock_path(scn, key), encoding="utf-8") as f:
            return f.read().strip() or None
    except FileNotFoundError:
        return None


def release_locks_of(scn, host, reason):
    """Removes every lock file HOST owns (its leases expired or it powered the VMs off)."""
    base = os.path.join(scn, "ds")
    for root, _dirs, files in os.walk(base):
        for fn in files:
            if not fn.endswith(".vmx.lck"):
                continue
            fp = os.path.join(root, fn)
            try:
                with open(fp, encoding="utf-8") as f:
                    owner = f.read().strip()
            except FileNotFoundError:
                continue
            if owner == host:
                rel = os.path.relpath(fp[:-4], base)
                ds, path = rel.split("/", 1)
                os.unlink(fp)
                event(scn, host, "lock_released", vmx="[%s] %s" % (ds, path), reason=reason)


# ----------------------------------------------------------------------------------------------
# vim-cmd verbs of evacuation hosts (called by vimsim.py with itself as `v`)


def vim_cmd(v, cmd, rest, st, settings, faults, res):
    hd = v.hostdir()
    ev = load(os.path.join(hd, "evac.json"))
    if ev is None:
        return False
    scn, me = ev["scn"], ev["name"]
    layout = str(settings["layout"])
    frc = int(settings["fault_rc"])
    sync_locks(scn, me, st)
    stall = faults.get("stall_after")
    handled = True
    if cmd == "solo/registervm":
        register(v, ev, rest, st, res, layout, frc)
    elif cmd == "hostsvc/hostsummary":
        s = dict(settings)
        if ev.get("memory_mb"):
            s["memory_size"] = int(ev["memory_mb"]) * 1024 * 1024
        res.o(v.hostsummary(s, st))
    elif cmd == "hostsvc/datastore/listsummary":
        res.o(listsummary(scn, ev))
    elif cmd.startswith("hostsvc/autostartmanager/"):
        autostart(v, cmd[len("hostsvc/autostartmanager/"):], rest, st, res, layout, frc)
    elif cmd in ("vmsvc/unregister", "vmsvc/get.summary", "vmsvc/message") or (
            cmd.startswith("vmsvc/power.") and cmd != "vmsvc/power.getstate"):
        if not rest:
            res.o("Insufficient arguments.\n")
            res.rc = 1
            return True
        vm = st.vm(rest[0])
        if vm is None:
            res.o(v.not_found(layout, rest[0]))
            res.rc = frc
            return True
        op = cmd[len("vmsvc/"):]
        if op == "unregister":
            # The API refuses only a powered-on VM; a suspended one keeps its checkpoint
            # with its files (registered elsewhere, it is still suspended and resumes).
            if vm["power"] == "on":
                res.o(v.invalid_power_state(layout, "off", vm["power"]))
                res.rc = frc
                return True
            meta = ds_file(scn, vm["datastore"], vm["path"]) + ".sim.json"
            m = load(meta, {})
            m["suspended"] = vm["power"] == "suspended"
            save(meta, m)
            st.data["vms"].remove(vm)
            for k in ("autostart",):
                st.data.get(k, {}).pop(str(vm["vmid"]), None)
            st.save()
            event(scn, me, "unregister", vm=vm["name"], vmid=vm["vmid"],
                  vmx=v.vmx_key(vm["datastore"], vm["path"]))
        elif op == "get.summary":
            res.o(get_summary(v, vm, me))
        elif op == "message":
            message(v, scn, me, vm, rest[1:], st, res, layout, frc)
        elif op == "power.on":
            power_on(v, ev, vm, st, settings, faults, res, layout, frc)
        else:
            before = vm["power"]
            v.power_op(op, vm, st, settings, faults, res, layout, frc)
            vm = st.vm(rest[0]) or vm
            if res.rc == 0 and vm["power"] != before:
                event(scn, me, "power_" + {"on": "on", "off": "off",
                                           "suspended": "suspend"}[vm["power"]],
                      vm=vm["name"], vmid=vm["vmid"], op=op)
            elif res.rc == 0 and vm.get("pending"):
                event(scn, me, "power_pending", vm=vm["name"], vmid=vm["vmid"], op=op,
                      to=vm["pending"]["power"])
            sync_locks(scn, me, st)
    else:
        handled = False
    if handled and stall is not None:
        event(scn, me, "stall", cmd=cmd, args=rest)
        res.stall = float(stall.get("value", "30"))
    return handled


def esxcli(v, args, st, settings, res):
    """`esxcli storage filesystem list` of an evacuation host (column layout guessed: widths
    from the widest cell or title, two blanks between columns)."""
    ev = load(os.path.join(v.hostdir(), "evac.json"))
    if ev is None or " ".join(args) != "storage filesystem list":
        return False
    titles = ["Mount Point", "Volume Name", "UUID", "Mounted", "Type", "Size", "Free"]
    rows = []
    for i, ds in enumerate(sorted(ev.get("datastores", []))):
        uuid = "5f8d%04x-2c4d1a3e-%04x-0011223344%02x" % (i, i, i)
        rows.append(["/vmfs/volumes/" + uuid, ds, uuid, "true", "VMFS-6", "1099243192320",
                     "549621596160"])
    rows.append(["/vmfs/volumes/5f8dffff-bootbank", "BOOTBANK1", "5f8dffff-bootbank", "true",
                 "vfat", "4293591040", "4000000000"])
    w = [max([len(t)] + [len(r[i]) for r in rows]) for i, t in enumerate(titles)]
    right = {3, 5, 6}
    fmt = lambda r: "  ".join(c.rjust(w[i]) if i in right else c.ljust(w[i])
                              for i, c in enumerate(r))
    res.o("\n".join([fmt(titles), "  ".join("-" * x for x in w)] + [fmt(r) for r in rows])
          + "\n")
    return True


def sync_locks(scn, me, st):
    """Lock files follow this host's VMs: taken while on, released when not."""
    st.apply_pending()
    on = {"[%s] %s" % (vm["datastore"], vm["path"]) for vm in st.data["vms"] if vm["power"] == "on"}
    for key in on:
        if lock_owner(scn, key) is None:
            take_lock(scn, me, key)
    base = os.path.join(scn, "ds")
    for root, _dirs, files in os.walk(base):
        for fn in files:
            if not fn.endswith(".vmx.lck"):
                continue
            fp = os.path.join(root, fn)
            rel = os.path.relpath(fp[:-4], base)
            ds, path = rel.split("/", 1)
            key = "[%s] %s" % (ds, path)
            if key in on:
                continue
            try:
                with open(fp, encoding="utf-8") as f:
                    owner = f.read().strip()
            except FileNotFoundError:
                continue
            if owner == me:
                os.unlink(fp)
                event(scn, me, "lock_released", vmx=key, reason="powered off")


def take_lock(scn, me, key):
    lp = lock_path(scn, key)
    tmp = "%s.%d.tmp" % (lp, os.getpid())
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(me + "\n")
    os.replace(tmp, lp)
    event(scn, me, "lock_taken", vmx=key)


def lock_fault(layout, fp):
    """The power-on answer when another host holds the VM's files (guessed block; the
    "Failed to lock the file" words are the ones the issue names)."""
    disk = fp[:-4] + ".vmdk"
    return ("(vim.fault.GenericVmConfigFault) {\n"
            "   faultCause = (vmodl.MethodFault) null,\n"
            "   faultMessage = (vmodl.LocalizableMessage) [\n"
            "      (vmodl.LocalizableMessage) {\n"
            "         key = \"msg.fileio.lock\",\n"
            "         arg = <unset>,\n"
            "         message = \"Failed to lock the file\"\n"
            "      },\n"
            "      (vmodl.LocalizableMessage) {\n"
            "         key = \"msg.disk.noBackEnd\",\n"
            "         arg = <unset>,\n"
            "         message = \"Cannot open the disk '%s' or one of the snapshot disks it "
            "depends on. \"\n"
            "      }\n"
            "   ],\n"
            "   reason = \"Failed to lock the file\",\n"
            "   msg = \"Failed to lock the file\"\n"
            "}\n") % disk


def power_on(v, ev, vm, st, settings, faults, res, layout, frc):
    scn, me = ev["scn"], ev["name"]
    key = v.vmx_key(vm["datastore"], vm["path"])
    if vm["power"] != "on":
        owner = lock_owner(scn, key)
        if owner and owner != me:
            if alive(scn, owner) and running_on(scn, owner, key):
                res.o("Powering on VM:\n")
                res.o(lock_fault(layout, key))
                res.rc = frc
                event(scn, me, "power_on_failed", vm=vm["name"], vmid=vm["vmid"], vmx=key,
                      reason="locked", owner=owner)
                return
            event(scn, me, "lock_released", vmx=key, reason="stale lease of " + owner)
            try:
                os.unlink(lock_path(scn, key))
            except FileNotFoundError:
                pass
        if vm.get("moved") or vm.get("question"):
            # The "moved or copied" question: the power-on task waits for an answer, and an
            # answer (vmsvc/message) finishes it even when this client has gone away.
            vm.pop("moved", None)
            vm.setdefault("question", {"id": "_vmx%d" % vm["vmid"], "answer": None})
            vm["question"]["task"] = True
            st.save()
            event(scn, me, "question", vm=vm["name"], vmid=vm["vmid"])
            deadline = time.time() + float(ev.get("question_wait_s", 600))
            vmid = vm["vmid"]
            while True:
                st.unlock()
                time.sleep(0.1)
                st.__init__(v.hostdir())
                vm = st.vm(str(vmid))
                if vm is None or not vm.get("question") or time.time() > deadline:
                    break
            res.o("Powering on VM:\n")
            if vm is not None and vm["power"] == "on":
                return
            res.o(v.fault_block(layout, "vmodl.fault.RequestCanceled", [
                ("msg", '"The task was canceled by a user."')]))
            res.rc = frc
            return
    before = vm["power"]
    v.power_op("power.on", vm, st, settings, faults, res, layout, frc)
    if res.rc == 0 and vm["power"] == "on" and before != "on":
        take_lock(scn, me, key)
        event(scn, me, "power_on", vm=vm["name"], vmid=vm["vmid"], vmx=key,
              resumed=before == "suspended")
        vmx = read_vmx(ds_file(scn, vm["datastore"], vm["path"]))
        if vmx is not None:
            meta = ds_file(scn, vm["datastore"], vm["path"]) + ".sim.json"
            save(meta, {"last_host": me, "suspended": False})


def register(v, ev, rest, st, res, layout, frc):
    scn, me = ev["scn"], ev["name"]
    if not rest:
        res.o("Insufficient arguments.\n")
        res.rc = 1
        return
    key = v.parse_vmx_path(rest[0])
    ds, path = split_key(key)
    vmx = read_vmx(ds_file(scn, ds, path)) if ds in ev.get("datastores", []) else None
    if vmx is None:
        res.o(v.fault_block(layout, "vim.fault.NotFound", [
            ("msg", '"The object or item referred to could not be found."')]))
        res.rc = frc
        return
    for vm in st.data["vms"]:
        if v.vmx_key(vm["datastore"], vm["path"]) == key:
            res.o(v.fault_block(layout, "vim.fault.AlreadyExists", [
                ("name", '"%d"' % vm["vmid"]),
                ("msg", '"The specified key, name, or identifier \'%d\' already exists."'
                 % vm["vmid"])]))
            res.rc = frc
            return
    vmid = st.data["next_vmid"]
    st.data["next_vmid"] = vmid + 1
    name = rest[1] if len(rest) > 1 else vmx.get("displayName", path)
    meta = load(ds_file(scn, ds, path) + ".sim.json", {})
    vm = v.normalise_vm({"vmid": vmid, "name": name, "datastore": ds, "path": path,
                         "power": "suspended" if meta.get("suspended") else "off",
                         "memory": int(vmx.get("memSize", "2048"))}, 0)
    if ev.get("ask_moved") and meta.get("last_host") not in (None, me):
        vm["moved"] = True
    st.data["vms"].append(vm)
    st.save()
    event(scn, me, "register", vm=name, vmid=vmid, vmx=key)
    if layout != "5":
        res.o("%d\n" % vmid)


def get_summary(v, vm, me):
    """`vim-cmd vmsvc/get.summary N` (guessed subset of vim.vm.Summary)."""
    api = {"on": "poweredOn", "off": "poweredOff", "suspended": "suspended"}[vm["power"]]
    return """Listsummary:
(vim.vm.Summary) {
   vm = 'vim.VirtualMachine:%d',
   runtime = (vim.vm.RuntimeInfo) {
      host = 'vim.HostSystem:ha-host',
      connectionState = "connected",
      powerState = "%s",
      faultToleranceState = "notConfigured",
      toolsInstallerMounted = false,
      suspendInterval = 0,
      maxCpuUsage = 4200,
      maxMemoryUsage = %d,
      numMksConnections = 0,
      recordReplayState = "inactive",
      onlineStandby = false,
      consolidationNeeded = false,
      paused = false,
      snapshotInBackground = false,
   },
   config = (vim.vm.Summary.ConfigSummary) {
      name = "%s",
      template = false,
      vmPathName = "[%s] %s",
      memorySizeMB = %d,
      cpuReservation = 0,
      memoryReservation = 0,
      numCpu = 2,
      numEthernetCards = 1,
      numVirtualDisks = 1,
      uuid = "564d%04x-0011-2233-4455-66778899aa%02x",
      guestId = "%s",
      guestFullName = "Other Linux (64-bit)",
      installBootRequired = false,
      tpmPresent = false,
   },
   overallStatus = "green",
}
""" % (vm["vmid"], api, vm["memory"], vm["name"], vm["datastore"], vm["path"], vm["memory"],
       vm["vmid"] & 0xffff, vm["vmid"] & 0xff, vm["guest"])


QUESTION = ("msg.uuid.altered:This virtual machine might have been moved or copied.\n"
            "In order to configure certain management and networking features, VMware ESX "
            "needs to know if this virtual machine was moved or copied.\n"
            "\n"
            "If you don't know, answer \"I _copied it\".\n")


def message(v, scn, me, vm, rest, st, res, layout, frc):
    """`vmsvc/message N` lists the pending question; `vmsvc/message N ID CHOICE` answers it
    (0 Cancel, 1 I _moved it, 2 I _copied it). Texts guessed."""
    q = vm.get("question")
    if not rest:
        if not q:
            res.o("No message.\n")
            return
        res.o("Virtual machine message %s:\n" % q["id"] + QUESTION +
              "   0. Cancel (Cancel)\n   1. I _moved it (I _moved it)\n"
              "   2. I _copied it (I _copied it) [default]\n"
              "Answer the question with one of the following commands:\n"
              "   vim-cmd vmsvc/message %d %s <choice>\n" % (vm["vmid"], q["id"]))
        return
    if not q or len(rest) < 2 or rest[0] != q["id"] or rest[1] not in ("0", "1", "2"):
        # guessed
        res.o(v.fault_block(layout, "vmodl.fault.InvalidArgument", [
            ("invalidProperty", "<unset>"),
            ("msg", '"A specified parameter was not correct: questionId"')]))
        res.rc = frc
        return
    vm.pop("question")
    st.save()
    event(scn, me, "answer", vm=vm["name"], vmid=vm["vmid"], choice=rest[1])
    if not q.get("task"):
        return
    key = v.vmx_key(vm["datastore"], vm["path"])
    if rest[1] == "0":
        event(scn, me, "power_on_failed", vm=vm["name"], vmid=vm["vmid"], vmx=key,
              reason="question cancelled")
        return
    owner = lock_owner(scn, key)
    if owner and owner != me and alive(scn, owner) and running_on(scn, owner, key):
        event(scn, me, "power_on_failed", vm=vm["name"], vmid=vm["vmid"], vmx=key,
              reason="locked", owner=owner)
        return
    vm["power"] = "on"
    st.save()
    take_lock(scn, me, key)
    event(scn, me, "power_on", vm=vm["name"], vmid=vm["vmid"], vmx=key)
    save(ds_file(scn, vm["datastore"], vm["path"]) + ".sim.json", {"last_host": me})


def listsummary(scn, ev):
    """`vim-cmd hostsvc/datastore/listsummary` (guessed subset of vim.Datastore.Summary)."""
    out = ["(vim.Datastore.Summary) ["]
    names = sorted(ev.get("datastores", []))
    for i, ds in enumerate(names):
        out.append("""   (vim.Datastore.Summary) {
      datastore = 'vim.Datastore:%s',
      name = "%s",
      url = "/vmfs/volumes/%s",
      capacity = 1099243192320,
      freeSpace = 549621596160,
      uncommitted = 0,
      accessible = true,
      multipleHostAccess = %s,
      type = "VMFS",
      maintenanceMode = "normal"
   }%s""" % (ds, ds, ds, "true" if ds.startswith("shared") else "false",
              "," if i < len(names) - 1 else ""))
    out.append("]")
    return "\n".join(out) + "\n"


def autostart(v, op, rest, st, res, layout, frc):
    """hostsvc/autostartmanager/{get_autostartseq,update_autostartentry,enable_autostart}
    (update_autostartentry VMID StartAction StartDelay StartOrder StopAction StopDelay
    WaitForHeartbeat; output guessed)."""
    entries = st.data.setdefault("autostart", {})
    ev = load(os.path.join(v.hostdir(), "evac.json"))
    if op == "get_autostartseq":
        rows = []
        for vmid in sorted(entries, key=int):
            e = entries[vmid]
            rows.append("""   (vim.host.AutoStartManager.AutoPowerInfo) {
      key = 'vim.VirtualMachine:%s',
      startOrder = %s,
      startDelay = %s,
      waitForHeartbeat = "%s",
      startAction = "%s",
      stopDelay = %s,
      stopAction = "%s"
   }""" % (vmid, e["order"], e["delay"], e["heartbeat"], e["action"], e["stop_delay"],
           e["stop_action"]))
        res.o("(vim.host.AutoStartManager.AutoPowerInfo) [\n" + ",\n".join(rows)
              + ("\n" if rows else "") + "]\n")
        return
    if op == "enable_autostart":
        st.data["autostart_enabled"] = (rest[:1] or ["true"])[0] in ("true", "1")
        st.save()
        return
    if op == "update_autostartentry":
        if not rest:
            res.o("Insufficient arguments.\n")
            res.rc = 1
            return
        vm = st.vm(rest[0])
        if vm is None:
            res.o(v.not_found(layout, rest[0]))
            res.rc = frc
            return
        a = list(rest[1:]) + [None] * 6
        e = {"action": a[0] or "PowerOn", "delay": a[1] or "-1", "order": a[2] or "-1",
             "stop_action": a[3] or "systemDefault", "stop_delay": a[4] or "-1",
             "heartbeat": a[5] or "systemDefault"}
        entries[str(vm["vmid"])] = e
        st.save()
        event(ev["scn"], ev["name"], "autostart", vm=vm["name"], vmid=vm["vmid"],
              action=e["action"])
        res.o("Updated AutoStart order.\n")
        return
    res.e("Unknown command: '%s'\n" % op)
    res.rc = 1


# ----------------------------------------------------------------------------------------------
# Harness side (root)


def vimsim():
    sys.path.insert(0, HERE)
    import vimsim as v
    return v


def chown_tree(path):
    subprocess.run(["chown", "-R", "%s:%s" % (TUSER, TUSER), path], check=True)


def setup(spec_path):
    """SPEC: {"scn": DIR, "hosts": [{"name", "hostdir", "datastores": [...], "memory_mb",
    "esxi_root", "sim_name", "ip", "port", "env": {...}, "ask_moved", "autostart": bool}],
    "vms": [{"name", "host", "datastore", "memory", "power"}]}. Hosts must have been started
    (esxi-host.sh start) with an empty inventory."""
    spec = load(spec_path)
    scn = spec["scn"]
    for d in ("ds", "alive"):
        os.makedirs(os.path.join(scn, d), exist_ok=True)
    open(os.path.join(scn, "events.log"), "a").close()
    dss = sorted({d for h in spec["hosts"] for d in h["datastores"]})
    for d in dss:
        os.makedirs(os.path.join(scn, "ds", d), exist_ok=True)
    save(os.path.join(scn, "hosts.json"), {h["name"]: h["hostdir"] for h in spec["hosts"]})
    for h in spec["hosts"]:
        hd = h["hostdir"]
        ev = {k: h[k] for k in h if k not in ("hostdir", "autostart")}
        ev["scn"] = scn
        save(os.path.join(hd, "evac.json"), ev)
        vms = []
        auto = {}
        for vm in spec["vms"]:
            if vm["host"] != h["name"]:
                continue
            path = "%s/%s.vmx" % (vm["name"], vm["name"])
            fp = ds_file(scn, vm["datastore"], path)
            write_vmx(fp, vm["name"], vm.get("memory", 1024))
            save(fp + ".sim.json", {"last_host": h["name"]})
            vmid = len(vms) + 1
            vms.append(vimsim().normalise_vm(
                {"vmid": vmid, "name": vm["name"], "datastore": vm["datastore"], "path": path,
                 "power": vm.get("power", "on"), "memory": vm.get("memory", 1024),
                 "guest": "otherLinux64Guest"}, 0))
            if h.get("autostart"):
                auto[str(vmid)] = {"action": "PowerOn", "delay": "120", "order": str(vmid),
                                   "stop_action": "systemDefault", "stop_delay": "120",
                                   "heartbeat": "systemDefault"}
        state = {"next_vmid": len(vms) + 1, "vms": vms, "files": {}, "autostart": auto}
        save(os.path.join(hd, "state.json"), state)
        open(os.path.join(scn, "alive", h["name"]), "w").close()
        for vm in vms:
            if vm["power"] == "on":
                fp = ds_file(scn, vm["datastore"], vm["path"]) + ".lck"
                with open(fp, "w", encoding="utf-8") as f:
                    f.write(h["name"] + "\n")
        for fn in ("state.json", "evac.json"):
            subprocess.run(["chown", "%s:%s" % (TUSER, TUSER), os.path.join(hd, fn)],
                           check=True)
        lib = os.path.join(h["esxi_root"], "bin", "evacsim.py")
        if not os.path.exists(lib) or open(lib, "rb").read() != open(__file__, "rb").read():
            tmp = "%s.tmp.%d" % (lib, os.getpid())
            with open(__file__, "rb") as src, open(tmp, "wb") as dst:
                dst.write(src.read())
            os.chmod(tmp, 0o644)
            os.replace(tmp, lib)
    chown_tree(os.path.join(scn, "ds"))
    chown_tree(os.path.join(scn, "alive"))
    subprocess.run(["chown", "%s:%s" % (TUSER, TUSER), os.path.join(scn, "events.log")],
                   check=True)
    os.chmod(scn, 0o755)
    return 0


def esxi_host(ev, *args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([os.path.join(HERE, "esxi-host.sh"), ev["esxi_root"]] + list(args),
                          env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          check=False)


def host_ev(scn, host):
    hd = host_state_dir(scn, host)
    if hd is None:
        sys.stderr.write("evacsim: no host %s in %s\n" % (host, scn))
        sys.exit(2)
    return hd, load(os.path.join(hd, "evac.json"))


def kill_connections(ev):
    """A dead host keeps no SSH connection: end the session processes still serving its port
    (a connection accepted while the host was being stopped outlives its listener)."""
    port = ev.get("port")
    if not port:
        return
    r = subprocess.run(["ss", "-Htnp", "state", "established", "( sport = :%d )" % int(port)],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False)
    pids = set()
    for line in r.stdout.decode("utf-8", "replace").splitlines():
        for m in re.finditer(r'\("([^"]*)",pid=(\d+)', line):
            if "sshd" in m.group(1):
                pids.add(int(m.group(2)))
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def power(scn, host, what, why):
    hd, ev = host_ev(scn, host)
    if what == "off":
        esxi_host(ev, "stop", ev["sim_name"])
        kill_connections(ev)
        try:
            os.unlink(os.path.join(scn, "alive", host))
        except FileNotFoundError:
            pass
        release_locks_of(scn, host, "lease expired")
        # Its VMs died with it (the registrations stay).
        with open(os.path.join(hd, "state.lock"), "a+") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            st = load(os.path.join(hd, "state.json"), {"vms": []})
            for vm in st.get("vms", []):
                vm["power"] = "off"
                vm.pop("pending", None)
            save(os.path.join(hd, "state.json"), st)
            subprocess.run(["chown", "%s:%s" % (TUSER, TUSER), os.path.join(hd, "state.json")],
                           check=False)
        event(scn, host, "host_down", why=why)
        return 0
    # Boot: every VM starts powered off (no autostart in the simulator).
    with open(os.path.join(hd, "state.lock"), "a+") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        st = load(os.path.join(hd, "state.json"), {"vms": []})
        for vm in st.get("vms", []):
            vm["power"] = "off"
            vm.pop("pending", None)
            vm.pop("question", None)
        save(os.path.join(hd, "state.json"), st)
        subprocess.run(["chown", "%s:%s" % (TUSER, TUSER), os.path.join(hd, "state.json")],
                       check=False)
    open(os.path.join(scn, "alive", host), "w").close()
    r = esxi_host(ev, "start", ev["sim_name"], ev["ip"], str(ev["port"]), env=ev.get("env"))
    event(scn, host, "host_up", why=why, rc=r.returncode)
    if r.returncode != 0:
        sys.stderr.write(r.stderr.decode("utf-8", "replace"))
    return r.returncode


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    cmd = argv[1]
    if cmd == "setup":
        return setup(argv[2])
    if cmd == "power" and len(argv) == 5:
        return power(argv[2], argv[3], argv[4], "power " + argv[4])
    if cmd == "isolate" and len(argv) == 4:
        hd, ev = host_ev(argv[2], argv[3])
        esxi_host(ev, "stop", ev["sim_name"])
        event(argv[2], argv[3], "host_isolated")
        return 0
    if cmd == "bmc" and len(argv) == 6:
        scn, host, action, val = argv[2:6]
        if action == "get":
            event(scn, host, "bmc_power_read", power="on" if val == "1" else "off")
            return 0
        if action == "ignored":
            event(scn, host, "bmc_power_ignored", to="on" if val == "1" else "off")
            return 0
        if action == "set":
            up = alive(scn, host)
            if (val == "0") != up:
                event(scn, host, "bmc_power_" + ("on" if val == "1" else "off"), changed=False)
                return 0
            if val == "0":
                event(scn, host, "bmc_power_off")
                return power(scn, host, "off", "bmc")
            event(scn, host, "bmc_power_on")
            return power(scn, host, "on", "bmc")
    if cmd == "event" and len(argv) >= 5:
        kw = dict(a.split("=", 1) for a in argv[5:] if "=" in a)
        event(argv[2], argv[3], argv[4], **kw)
        return 0
    sys.stderr.write("evacsim: bad arguments %r\n" % argv[1:])
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
