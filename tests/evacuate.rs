//! vm-evacuate against real peers: simulated ESXi hosts sharing datastores with leased locks,
//! one simulated BMC each (`tests/support/sim/evac.rs`, `tests/support/sim/esxi/evacsim.py`). Every scenario
//! asserts the simulator's call and event logs and the CLI's exit code and JSON (the contract
//! of issue 10: exit 0 done, 1 error or refusal for safety, 2 usage or inventory error).
//!
//! Run: `FENCE_REQUIRE_SIMULATORS=1 cargo test --locked --test integration evacuate --
//! --test-threads=2` (as root: the fake hosts' sshd needs it).

use std::time::Duration;

use serde_json::Value;

use crate::sim::evac::{HostSpec, Inventory, Run, Sim, VmSpec};

pub(crate) fn ev_is(e: &Value, ev: &str, host: &str) -> bool {
    e["ev"] == ev && e["host"] == host
}

/// The simulator itself: locks follow power, a live owner's lock refuses a power-on
/// elsewhere with "Failed to lock the file", the BMC's power-off stops the host's sshd and
/// expires its leases (then the power-on succeeds elsewhere), the "moved or copied"
/// question, get.summary memory, and the BMC's power-on boots the host again.
#[test]
fn evacuate_simulator_locks_and_bmc() {
    let Some(sim) = Sim::start(
        &[
            HostSpec::new("esx1", &["shared1", "local1"]),
            HostSpec::new("esx2", &["shared1"]).ask_moved(),
        ],
        &[
            VmSpec::new("web1", "esx1", "shared1").memory(1536),
            VmSpec::new("idle1", "esx1", "shared1").power("off"),
            VmSpec::new("loc1", "esx1", "local1"),
        ],
        &Inventory::default(),
    ) else {
        return;
    };
    assert_eq!(sim.lock_owner("shared1", "web1").as_deref(), Some("esx1"));
    assert_eq!(sim.lock_owner("shared1", "idle1"), None);

    // getallvms on esx1 over SSH lists the three VMs; esx2 has none.
    let out = sim.ssh_vim("esx1", "vmsvc/getallvms");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("[shared1] web1/web1.vmx") && text.contains("[local1] loc1/loc1.vmx"),
        "{text}"
    );
    // get.summary gives the memory from the vmx.
    let out = sim.ssh_vim("esx1", "vmsvc/get.summary 1");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("memorySizeMB = 1536,"), "{text}");
    // hostsummary gives the host's memory (16 GB).
    let out = sim.ssh_vim("esx2", "hostsvc/hostsummary");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("memorySize = 17179869184,"), "{text}");

    // Datastores as esxcli lists them.
    let out = sim.ssh("esx1", "esxcli storage filesystem list");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Mount Point "), "{text}");
    assert!(
        text.contains("  local1  ") && text.contains("  shared1  "),
        "{text}"
    );
    let out = sim.ssh("esx2", "esxcli storage filesystem list");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("local1"));
    // esx2 sees shared1 but not local1.
    let out = sim.ssh_vim("esx2", "solo/registervm '[local1] loc1/loc1.vmx'");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("vim.fault.NotFound"),
        "{text}"
    );
    // Registering a running VM's vmx elsewhere works; powering it on does not.
    let out = sim.ssh_vim(
        "esx2",
        "solo/registervm /vmfs/volumes/shared1/web1/web1.vmx",
    );
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");
    let out = sim.ssh_vim("esx2", "vmsvc/power.on 1");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.starts_with("Powering on VM:\n") && text.contains("Failed to lock the file"),
        "{text}"
    );
    assert_eq!(sim.vm_power("esx2", "web1").as_deref(), Some("off"));
    assert_eq!(sim.lock_owner("shared1", "web1").as_deref(), Some("esx1"));

    // Power esx1 off through its BMC (ipmitool, the second opinion): its sshd stops and its
    // leases expire.
    let bmc = sim.host("esx1").bmc.as_ref().expect("bmc");
    let (ok, text) = bmc.ipmitool("admin", "pass", &["chassis", "power", "off"]);
    assert!(ok, "{text}");
    assert_eq!(
        bmc.ipmitool_power(),
        Some(fencekit::PowerState::Off),
        "BMC reads off"
    );
    assert_eq!(sim.lock_owner("shared1", "web1"), None);
    let out = sim.ssh_vim("esx1", "vmsvc/getallvms");
    assert_eq!(out.status.code(), Some(255), "esx1 no longer answers SSH");
    let down = sim
        .first_event(|e| ev_is(e, "host_down", "esx1"))
        .expect("host_down");
    let off = sim
        .first_event(|e| ev_is(e, "bmc_power_off", "esx1"))
        .expect("bmc_power_off");
    let released = sim
        .first_event(|e| ev_is(e, "lock_released", "esx1") && e["reason"] == "lease expired")
        .expect("lease expired");
    let read_off = sim
        .first_event(|e| ev_is(e, "bmc_power_read", "esx1") && e["power"] == "off")
        .expect("read back off");
    assert!(off < released && released < down && down < read_off);

    // Now the power-on on esx2 asks "moved or copied" (web1 last ran on esx1); answering
    // "I moved it" lets it finish, and esx2 takes the lock.
    let mut child = sim
        .host("esx2")
        .esxi
        .ssh_wrapper()
        .to_str()
        .map(|w| {
            std::process::Command::new(w)
                .args(["-o", "BatchMode=yes", "-p"])
                .arg(sim.host("esx2").esxi.port().to_string())
                .arg("fencetest@127.0.0.1")
                .arg("vim-cmd vmsvc/power.on 1")
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .expect("wrapper path");
    let mut asked = String::new();
    for _ in 0..100 {
        asked = String::from_utf8_lossy(&sim.ssh_vim("esx2", "vmsvc/message 1").stdout).into();
        if asked.contains("_vmx1") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        asked.starts_with("Virtual machine message _vmx1:\nmsg.uuid.altered:"),
        "{asked}"
    );
    assert!(sim
        .ssh_vim("esx2", "vmsvc/message 1 _vmx1 1")
        .status
        .success());
    let st = child.wait().expect("power.on finished");
    assert!(st.success());
    assert_eq!(sim.vm_power("esx2", "web1").as_deref(), Some("on"));
    assert_eq!(sim.lock_owner("shared1", "web1").as_deref(), Some("esx2"));
    assert_eq!(
        String::from_utf8_lossy(&sim.ssh_vim("esx2", "vmsvc/message 1").stdout),
        "No message.\n"
    );

    // The BMC's power-on boots esx1 again: it answers, its VMs are off, web1 still runs
    // only on esx2 (a stale registration on esx1).
    let (ok, text) = bmc.ipmitool("admin", "pass", &["chassis", "power", "on"]);
    assert!(ok, "{text}");
    let out = sim.ssh_vim("esx1", "vmsvc/power.getstate 1");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("Powered off\n"));
    assert_eq!(sim.running_on("web1"), ["esx2"]);
    assert_eq!(sim.registered_on("web1"), ["esx1", "esx2"]);
    // Powering on the stale registration on esx1 fails on esx2's lock.
    let out = sim.ssh_vim("esx1", "vmsvc/power.on 1");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Failed to lock the file"));
    // Unregister and autostart off on esx1 are logged.
    assert!(sim
        .ssh_vim(
            "esx1",
            "hostsvc/autostartmanager/update_autostartentry 1 none 0 -1 systemDefault 0 \
             systemDefault"
        )
        .status
        .success());
    assert!(sim.ssh_vim("esx1", "vmsvc/unregister 1").status.success());
    assert_eq!(sim.registered_on("web1"), ["esx2"]);
    let evs: Vec<String> = sim
        .events()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["host"].as_str().unwrap_or(""),
                e["ev"].as_str().unwrap_or("")
            )
        })
        .collect();
    for want in [
        "esx2 register",
        "esx2 power_on_failed",
        "esx2 question",
        "esx2 answer",
        "esx2 lock_taken",
        "esx2 power_on",
        "esx1 bmc_power_on",
        "esx1 host_up",
        "esx1 autostart",
        "esx1 unregister",
    ] {
        assert!(evs.iter().any(|e| e == want), "{want} missing: {evs:?}");
    }
    // Mutating calls are recognised in the call logs (dry-run scenarios rely on this).
    let m = sim.mutating_calls();
    assert!(
        m.iter()
            .any(|l| l == "esx2: vim-cmd solo/registervm /vmfs/volumes/shared1/web1/web1.vmx"),
        "{m:?}"
    );
    assert!(!m
        .iter()
        .any(|l| l.contains("getallvms") || l.contains("get.summary")));
}

// ---------------------------------------------------------------------------------------------
// Scenarios against vm-evacuate.

pub(crate) const SHARED: &[&str] = &["shared1"];

pub(crate) fn hosts(n: usize) -> Vec<HostSpec> {
    (1..=n)
        .map(|i| HostSpec::new(&format!("esx{i}"), SHARED))
        .collect()
}

pub(crate) fn vm(name: &str, host: &str) -> VmSpec {
    VmSpec::new(name, host, "shared1")
}

/// The report of a `run`: its stdout when that is JSON, else `reports/HOST.json` in the state
/// directory.
fn report(sim: &Sim, run: &Run, host: &str) -> Value {
    if let Ok(v) = serde_json::from_str::<Value>(run.stdout.trim()) {
        if v.get("vms").is_some() {
            return v;
        }
    }
    let p = sim.state_dir.join("reports").join(format!("{host}.json"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| {
        panic!(
            "no JSON report on stdout nor in {} ({e})\nstdout:\n{}\nstderr:\n{}",
            p.display(),
            run.stdout,
            run.stderr
        )
    });
    serde_json::from_str(&text).expect("report JSON")
}

fn vm_of<'a>(rep: &'a Value, name: &str) -> &'a Value {
    rep["vms"]
        .as_array()
        .and_then(|a| a.iter().find(|v| v["name"] == name))
        .unwrap_or_else(|| panic!("{name} not in the report: {rep:#}"))
}

/// Events of kind `ev` about `vm` (any host).
pub(crate) fn count(sim: &Sim, ev: &str, vm: &str) -> usize {
    sim.events_of(ev).iter().filter(|e| e["vm"] == vm).count()
}

pub(crate) fn pos(sim: &Sim, f: impl Fn(&Value) -> bool) -> usize {
    sim.first_event(f)
        .unwrap_or_else(|| panic!("event missing; events:\n{}", sim.events_text()))
}

/// Index of the first `bmc_power_read` of `host` that said "off".
pub(crate) fn read_off(sim: &Sim, host: &str) -> usize {
    pos(sim, |e| {
        ev_is(e, "bmc_power_read", host) && e["power"] == "off"
    })
}

/// Checks that every mutating event on a VM came after `host`'s BMC read back "off".
pub(crate) fn nothing_before_fence(sim: &Sim, host: &str) {
    let off = read_off(sim, host);
    let evs = sim.events();
    for (i, e) in evs.iter().enumerate() {
        if ["register", "power_on", "question", "answer"].contains(&e["ev"].as_str().unwrap_or(""))
        {
            assert!(
                i > off,
                "{e} before {host}'s BMC read back off; events:\n{}",
                sim.events_text()
            );
        }
    }
}

/// `check` must reach everything before the failure (it also takes the snapshots).
pub(crate) fn snapshot_all(sim: &Sim) {
    let run = sim.evacuate(&["check"]);
    assert_eq!(run.code, Some(0), "check: {}", run.stderr);
}

/// Every VM in `vms` runs on exactly one host, registered exactly once since the start
/// besides its original registration, and was powered on once.
pub(crate) fn moved_once(sim: &Sim, vms: &[&str], from: &str) -> Vec<String> {
    vms.iter()
        .map(|v| {
            let on = sim.running_on(v);
            assert_eq!(
                on.len(),
                1,
                "{v} runs on {on:?}; events:\n{}",
                sim.events_text()
            );
            assert_ne!(on[0], from, "{v} still on {from}");
            assert_eq!(count(sim, "register", v), 1, "{v} registered once");
            assert_eq!(count(sim, "power_on", v), 1, "{v} powered on once");
            on[0].clone()
        })
        .collect()
}

/// A host crashes (no SSH, leases expire; its BMC still reads on): `run` fences it, reads
/// "off" back, then registers and starts its running VMs elsewhere, each once; the
/// powered-off VM stays where it was (scope running).
#[test]
fn evacuate_clean_host_death() {
    let Some(sim) = Sim::start(
        &hosts(3),
        &[
            vm("a1", "esx1"),
            vm("a2", "esx1"),
            vm("a3", "esx1").power("off"),
            vm("b1", "esx2"),
        ],
        &Inventory::default(),
    ) else {
        return;
    };
    snapshot_all(&sim);
    assert!(
        sim.mutating_calls().is_empty(),
        "{:?}",
        sim.mutating_calls()
    );
    sim.crash("esx1");
    let run = sim.evacuate(&["run", "--host", "esx1"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let rep = report(&sim, &run, "esx1");
    assert_eq!(rep["host"], "esx1");
    assert_eq!(rep["result"], "ok", "{rep:#}");
    let targets = moved_once(&sim, &["a1", "a2"], "esx1");
    for (name, t) in ["a1", "a2"].iter().zip(&targets) {
        let r = vm_of(&rep, name);
        assert_eq!(r["source"], "esx1");
        assert_eq!(r["target"].as_str(), Some(t.as_str()), "{r}");
        assert_eq!(r["method"], "failover", "{r}");
        assert_eq!(r["reason"], Value::Null, "{r}");
        assert_eq!(r["state"], "done", "{r}");
        assert!(r["tried"].as_array().is_some_and(|a| !a.is_empty()), "{r}");
    }
    assert_eq!(sim.registered_on("a3"), ["esx1"], "a3 was off: not moved");
    assert_eq!(count(&sim, "register", "a3"), 0);
    // The BMC was told to power off (a retransmitted request may reach the chassis twice:
    // the library retransmits after 250 ms and the simulated chassis answers slower), then
    // read back off before anything moved.
    let offs: Vec<usize> = sim
        .events()
        .iter()
        .enumerate()
        .filter(|(_, e)| ev_is(e, "bmc_power_off", "esx1"))
        .map(|(i, _)| i)
        .collect();
    assert!(!offs.is_empty(), "{}", sim.events_text());
    assert!(offs.iter().all(|&i| i < read_off(&sim, "esx1")));
    nothing_before_fence(&sim, "esx1");
    assert_eq!(sim.vm_power("esx2", "b1").as_deref(), Some("on"));
}

/// Power loss: the chassis already reads off (its BMC still answers); the target asks the
/// "moved or copied" question, which the engine answers with "moved".
#[test]
fn evacuate_power_loss() {
    let Some(sim) = Sim::start(
        &[
            HostSpec::new("esx1", SHARED),
            HostSpec::new("esx2", SHARED).ask_moved(),
        ],
        &[vm("p1", "esx1")],
        &Inventory::default(),
    ) else {
        return;
    };
    snapshot_all(&sim);
    sim.power_loss("esx1");
    assert_eq!(sim.bmc_power("esx1"), "0");
    let run = sim.evacuate(&["run", "--host", "esx1"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let rep = report(&sim, &run, "esx1");
    assert_eq!(rep["result"], "ok", "{rep:#}");
    assert_eq!(moved_once(&sim, &["p1"], "esx1"), ["esx2"]);
    assert_eq!(vm_of(&rep, "p1")["state"], "done");
    let answers = sim.events_of("answer");
    assert_eq!(answers.len(), 1, "{}", sim.events_text());
    assert_eq!(answers[0]["choice"], "1", "answered I moved it");
    nothing_before_fence(&sim, "esx1");
    assert_eq!(sim.lock_owner("shared1", "p1").as_deref(), Some("esx2"));
}

/// The BMC does not answer: no fence, no evacuation, exit 1 with the reason on stderr. An
/// administrator's `confirm-down` then lets `run` proceed.
#[test]
fn evacuate_bmc_unreachable() {
    let Some(mut sim) = Sim::start(&hosts(2), &[vm("u1", "esx1")], &Inventory::default()) else {
        return;
    };
    snapshot_all(&sim);
    sim.crash("esx1");
    sim.stop_bmc("esx1");
    let run = sim.evacuate(&["run", "--host", "esx1"]);
    assert_eq!(run.code, Some(1), "unconfirmed fence: refusal");
    assert!(!run.stderr.trim().is_empty(), "the reason on stderr");
    assert!(
        sim.mutating_calls().is_empty(),
        "{:?}",
        sim.mutating_calls()
    );
    assert_eq!(count(&sim, "register", "u1"), 0);
    assert!(sim.running_on("u1").is_empty());

    let run = sim.evacuate(&["confirm-down", "--host", "esx1"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(sim.mutating_calls().is_empty());
    let run = sim.evacuate(&["run", "--host", "esx1"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(moved_once(&sim, &["u1"], "esx1"), ["esx2"]);
}

/// The host hangs (no SSH, still running, locks held) and its BMC ignores the power-off: the
/// chassis still reads on, so nothing moves.
#[test]
fn evacuate_power_off_ignored() {
    let Some(sim) = Sim::start(&hosts(2), &[vm("i1", "esx1")], &Inventory::default()) else {
        return;
    };
    snapshot_all(&sim);
    sim.isolate("esx1");
    sim.bmc_fault("esx1", &["poweroff=ignore"]);
    let run = sim.evacuate(&["run", "--host", "esx1"]);
    assert_eq!(run.code, Some(1));
    assert!(!run.stderr.trim().is_empty());
    assert!(
        !sim.events_of("bmc_power_ignored").is_empty(),
        "the power-off was sent"
    );
    assert!(
        sim.mutating_calls().is_empty(),
        "{:?}",
        sim.mutating_calls()
    );
    assert_eq!(sim.bmc_power("esx1"), "1");
    assert_eq!(sim.running_on("i1"), ["esx1"]);
    assert_eq!(sim.lock_owner("shared1", "i1").as_deref(), Some("esx1"));
}

/// The host is isolated but still runs its VMs and holds their locks, and its BMC reads "off"
/// without reaching it: the power-on on the target fails with "Failed to lock the file"; the
/// engine stops for that VM (one power-on, no other method, no force) and reports an error.
#[test]
fn evacuate_isolated_host_holding_locks() {
    let Some(sim) = Sim::start(&hosts(2), &[vm("k1", "esx1")], &Inventory::default()) else {
        return;
    };
    snapshot_all(&sim);
    sim.isolate("esx1");
    sim.detach_bmc("esx1");
    let run = sim.evacuate(&["run", "--host", "esx1"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let rep = report(&sim, &run, "esx1");
    assert_eq!(rep["result"], "error", "{rep:#}");
    let k1 = vm_of(&rep, "k1");
    assert_eq!(k1["state"], "failed", "{k1}");
    let why = format!("{}{}", k1["reason"], k1["tried"]).to_lowercase();
    assert!(why.contains("lock"), "{k1}");
    let ons: Vec<String> = sim
        .call_lines("esx2")
        .into_iter()
        .filter(|l| l.contains("vmsvc/power.on"))
        .collect();
    assert_eq!(ons.len(), 1, "one power-on, never retried: {ons:?}");
    let failed = sim.events_of("power_on_failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["reason"], "locked");
    assert_eq!(
        sim.running_on("k1"),
        ["esx1"],
        "still only on the isolated host"
    );
    assert_eq!(sim.lock_owner("shared1", "k1").as_deref(), Some("esx1"));
    for l in sim.call_lines("esx2") {
        assert!(!l.contains("kill") && !l.contains("force"), "{l}");
    }
}

/// Not enough memory: the high-priority VM gets the only room, the low-priority one is
/// unplaced with a reason, and the result is an error.
#[test]
fn evacuate_not_enough_capacity() {
    let inv = Inventory::default()
        .extra("[[vm]]\nname = \"hi\"\npriority = 100\n\n[[vm]]\nname = \"lo\"\npriority = 1\n");
    let Some(sim) = Sim::start(
        &[
            HostSpec::new("esx1", SHARED),
            HostSpec::new("esx2", SHARED).memory(4096),
        ],
        &[vm("lo", "esx1").memory(3072), vm("hi", "esx1").memory(3072)],
        &inv,
    ) else {
        return;
    };
    snapshot_all(&sim);
    sim.crash("esx1");
    let run = sim.evacuate(&["run", "--host", "esx1"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let rep = report(&sim, &run, "esx1");
    assert_eq!(rep["result"], "error", "{rep:#}");
    assert_eq!(moved_once(&sim, &["hi"], "esx1"), ["esx2"]);
    let lo = vm_of(&rep, "lo");
    assert_eq!(lo["target"], Value::Null, "{lo}");
    assert!(lo["reason"].as_str().is_some_and(|r| !r.is_empty()), "{lo}");
    assert_ne!(lo["state"], "done");
    assert_eq!(count(&sim, "register", "lo"), 0);
    assert!(sim.running_on("lo").is_empty());
}

/// NE keeps the two databases apart, EQ keeps the app with its cache.
#[test]
fn evacuate_ne_eq() {
    let inv = Inventory::default().extra(
        "[[vm]]\nname = \"db1\"\n\n[[vm]]\nname = \"db2\"\n\n[[vm]]\nname = \"app1\"\n\n\
         [[vm]]\nname = \"cache1\"\n\n\
         [[constraint]]\nkind = \"ne\"\nvms = [\"db1\", \"db2\"]\n\n\
         [[constraint]]\nkind = \"eq\"\nvms = [\"app1\", \"cache1\"]\n",
    );
    let Some(sim) = Sim::start(
        &hosts(3),
        &[
            vm("db1", "esx1"),
            vm("db2", "esx1"),
            vm("app1", "esx1"),
            vm("cache1", "esx1"),
        ],
        &inv,
    ) else {
        return;
    };
    snapshot_all(&sim);
    sim.crash("esx1");
    let run = sim.evacuate(&["run", "--host", "esx1"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let t = moved_once(&sim, &["db1", "db2", "app1", "cache1"], "esx1");
    assert_ne!(t[0], t[1], "NE: db1 and db2 apart");
    assert_eq!(t[2], t[3], "EQ: app1 with cache1");
    nothing_before_fence(&sim, "esx1");
}

/// depends_on: db starts before app, app before web (power-on order in the event log).
#[test]
fn evacuate_dependency_order() {
    let inv = Inventory::default().extra(
        "[[vm]]\nname = \"web\"\npriority = 90\ndepends_on = [\"app\"]\n\n\
         [[vm]]\nname = \"app\"\npriority = 50\ndepends_on = [\"db\"]\n\n\
         [[vm]]\nname = \"db\"\npriority = 10\n",
    );
    let Some(sim) = Sim::start(
        &hosts(2),
        &[vm("web", "esx1"), vm("app", "esx1"), vm("db", "esx1")],
        &inv,
    ) else {
        return;
    };
    snapshot_all(&sim);
    sim.crash("esx1");
    let run = sim.evacuate(&["run", "--host", "esx1"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    moved_once(&sim, &["web", "app", "db"], "esx1");
    let on = |v: &str| pos(&sim, |e| e["ev"] == "power_on" && e["vm"] == v);
    let reg = |v: &str| pos(&sim, |e| e["ev"] == "register" && e["vm"] == v);
    assert!(on("db") < reg("app"), "app after db is up");
    assert!(on("app") < reg("web"), "web after app is up");
}

/// Hold, a maintenance host and a local datastore: the held VM stays (no effect), the VM on a
/// datastore no other host sees is not moved (an error), the maintenance host receives
/// nothing.
#[test]
fn evacuate_hold_maintenance_local() {
    let inv = Inventory::default().extra("[[vm]]\nname = \"held\"\nhold = true\n");
    let Some(sim) = Sim::start(
        &[
            HostSpec::new("esx1", &["shared1", "local1"]),
            HostSpec::new("esx2", SHARED).role("maintenance"),
            HostSpec::new("esx3", SHARED),
        ],
        &[
            vm("held", "esx1"),
            VmSpec::new("loc", "esx1", "local1"),
            vm("norm", "esx1"),
        ],
        &inv,
    ) else {
        return;
    };
    snapshot_all(&sim);
    sim.crash("esx1");
    let run = sim.evacuate(&["run", "--host", "esx1"]);
    assert_eq!(
        run.code,
        Some(1),
        "the local VM could not move: {}",
        run.stderr
    );
    let rep = report(&sim, &run, "esx1");
    assert_eq!(rep["result"], "error", "{rep:#}");
    assert_eq!(moved_once(&sim, &["norm"], "esx1"), ["esx3"]);
    let held = vm_of(&rep, "held");
    assert_eq!(held["state"], "skipped", "{held}");
    assert!(
        held["reason"].as_str().is_some_and(|r| r.contains("hold")),
        "{held}"
    );
    let loc = vm_of(&rep, "loc");
    assert!(
        loc["reason"].as_str().is_some_and(|r| r.contains("local")),
        "{loc}"
    );
    assert_ne!(loc["state"], "done");
    for v in ["held", "loc"] {
        assert_eq!(count(&sim, "register", v), 0, "{v}");
    }
    assert!(
        sim.mutating_calls().iter().all(|l| !l.starts_with("esx2:")),
        "nothing on the maintenance host: {:?}",
        sim.mutating_calls()
    );
}

/// Starts `run --host esx1` and SIGKILLs it as soon as an event matching `f` is logged.
fn run_and_kill(sim: &Sim, what: &str, f: impl Fn(&Value) -> bool) {
    let mut child = sim
        .command(&["run", "--host", "esx1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn vm-evacuate");
    let t0 = std::time::Instant::now();
    loop {
        if sim.events().iter().any(&f) {
            break;
        }
        if let Some(st) = child.try_wait().expect("wait") {
            panic!(
                "vm-evacuate ended ({st}) before {what}; events:\n{}",
                sim.events_text()
            );
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "{what} not seen; events:\n{}",
            sim.events_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
}

/// The engine is SIGKILLed after each kind of side effect (BMC power-off, registration,
/// power-on) and started again: it finishes the rescue without registering or starting
/// anything twice, and nothing is powered on before a fence read back as off. A last start
/// with an empty state directory changes nothing.
#[test]
fn evacuate_killed_and_resumed() {
    let inv = Inventory::default().policy("max_parallel", "1");
    let Some(sim) = Sim::start(
        &hosts(2),
        &[vm("r1", "esx1"), vm("r2", "esx1"), vm("r3", "esx1")],
        &inv,
    ) else {
        return;
    };
    snapshot_all(&sim);
    sim.crash("esx1");
    // 1. Killed right after the BMC power-off.
    run_and_kill(&sim, "the BMC power-off", |e| {
        ev_is(e, "bmc_power_off", "esx1")
    });
    assert_eq!(sim.events_of("register").len(), 0);
    // 2. Killed after a registration, before the engine read its answer.
    sim.stall_after("esx2", "solo/registervm", 60, 1);
    run_and_kill(&sim, "a registration", |e| {
        e["ev"] == "stall" && e["cmd"] == "solo/registervm"
    });
    sim.clear_faults("esx2");
    assert_eq!(sim.events_of("register").len(), 1);
    // 3. Killed after a power-on, before the engine read its answer.
    sim.stall_after("esx2", "power\\.on", 60, 1);
    run_and_kill(&sim, "a power-on", |e| {
        e["ev"] == "stall" && e["cmd"] == "vmsvc/power.on"
    });
    sim.clear_faults("esx2");
    assert_eq!(sim.events_of("power_on").len(), 1);
    // 4. Started again: it finishes.
    let run = sim.evacuate(&["run", "--host", "esx1"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let rep = report(&sim, &run, "esx1");
    assert_eq!(rep["result"], "ok", "{rep:#}");
    moved_once(&sim, &["r1", "r2", "r3"], "esx1");
    nothing_before_fence(&sim, "esx1");
    // 5. Moved to another node: an empty state directory, nothing repeated.
    let before = sim.mutating_calls();
    let fresh = sim.dir.join("state2");
    std::fs::create_dir_all(&fresh).expect("state2");
    let out = crate::sim::evac::binary()
        .map(|b| {
            std::process::Command::new(b)
                .args(["run", "--config"])
                .arg(&sim.config)
                .arg("--state-dir")
                .arg(&fresh)
                .args(["--host", "esx1"])
                .stdin(std::process::Stdio::null())
                .output()
                .expect("run vm-evacuate")
        })
        .expect("binary");
    eprintln!(
        "empty state dir: exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let after = sim.mutating_calls();
    assert_eq!(after, before, "an empty state directory repeats nothing");
    moved_once(&sim, &["r1", "r2", "r3"], "esx1");
}

/// More failed hosts than brake_percent allows: `watch --once` acts on none (no fence, nothing
/// moves) and says so (exit 1).
#[test]
fn evacuate_brake() {
    let Some(sim) = Sim::start(
        &hosts(4),
        &[vm("w1", "esx1"), vm("w2", "esx2"), vm("w3", "esx3")],
        &Inventory::default(),
    ) else {
        return;
    };
    snapshot_all(&sim);
    for h in ["esx1", "esx2", "esx3"] {
        sim.crash(h);
    }
    let run = sim.evacuate(&["watch", "--once"]);
    assert_eq!(run.code, Some(1), "the brake is a refusal for safety");
    assert!(!run.stderr.trim().is_empty(), "it says so");
    assert!(
        sim.mutating_calls().is_empty(),
        "{:?}",
        sim.mutating_calls()
    );
    assert!(sim.events_of("bmc_power_off").is_empty(), "no fence");
    assert!(sim.events_of("register").is_empty());
}

/// `plan` is a dry run: no mutating call on any host, nothing sent to any BMC, and its JSON
/// names each VM's target and method (or why none).
#[test]
fn evacuate_dry_run_plan() {
    let inv = Inventory::default().extra("[[vm]]\nname = \"d3\"\nhold = true\n");
    let Some(sim) = Sim::start(
        &hosts(3),
        &[vm("d1", "esx1"), vm("d2", "esx1"), vm("d3", "esx1")],
        &inv,
    ) else {
        return;
    };
    snapshot_all(&sim);
    let bmc_before: Vec<String> = sim
        .hosts
        .iter()
        .map(|h| sim.bmc_events(&h.spec.name))
        .collect();
    let events_before = sim.events().len();
    sim.crash("esx1");
    let events_crash = sim.events().len();
    let run = sim.evacuate(&["plan", "--host", "esx1", "--json"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let plan = Sim::json(&run);
    assert_eq!(plan["host"], "esx1");
    for name in ["d1", "d2"] {
        let v = vm_of(&plan, name);
        assert_eq!(v["source"], "esx1");
        assert!(v["target"] == "esx2" || v["target"] == "esx3", "{v}");
        assert_eq!(v["method"], "failover", "{v}");
        assert_eq!(v["reason"], Value::Null, "{v}");
    }
    let d3 = vm_of(&plan, "d3");
    assert_eq!(d3["target"], Value::Null);
    assert!(
        d3["reason"].as_str().is_some_and(|r| r.contains("hold")),
        "{d3}"
    );
    assert!(
        sim.mutating_calls().is_empty(),
        "{:?}",
        sim.mutating_calls()
    );
    let bmc_after: Vec<String> = sim
        .hosts
        .iter()
        .map(|h| sim.bmc_events(&h.spec.name))
        .collect();
    assert_eq!(bmc_before, bmc_after, "nothing sent to any BMC");
    assert!(events_before <= events_crash);
    let new: Vec<Value> = sim.events().into_iter().skip(events_crash).collect();
    assert!(
        new.iter()
            .all(|e| !e["ev"].as_str().unwrap_or("").starts_with("bmc_")),
        "{new:?}"
    );
    assert!(
        new.is_empty(),
        "a dry run leaves no trace on the peers: {new:?}"
    );
}

/// `run --planned` on a live host: quick migration (suspend, unregister, register on the
/// target, resume); the host is not fenced and keeps running.
#[test]
fn evacuate_planned_live_host() {
    let Some(sim) = Sim::start(
        &hosts(2),
        &[vm("m1", "esx1"), vm("m2", "esx1")],
        &Inventory::default(),
    ) else {
        return;
    };
    snapshot_all(&sim);
    let run = sim.evacuate(&["run", "--host", "esx1", "--planned"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let rep = report(&sim, &run, "esx1");
    assert_eq!(rep["result"], "ok", "{rep:#}");
    for v in ["m1", "m2"] {
        assert_eq!(sim.running_on(v), ["esx2"], "{v}");
        assert_eq!(sim.registered_on(v), ["esx2"], "{v} unregistered from esx1");
        let r = vm_of(&rep, v);
        assert_eq!(r["method"], "quick_migration", "{r}");
        assert_eq!(r["state"], "done", "{r}");
        let suspend = pos(&sim, |e| ev_is(e, "power_suspend", "esx1") && e["vm"] == v);
        let unreg = pos(&sim, |e| ev_is(e, "unregister", "esx1") && e["vm"] == v);
        let reg = pos(&sim, |e| ev_is(e, "register", "esx2") && e["vm"] == v);
        let on = pos(&sim, |e| ev_is(e, "power_on", "esx2") && e["vm"] == v);
        assert!(
            suspend < unreg && unreg < reg && reg < on,
            "{v}: {}",
            sim.events_text()
        );
    }
    assert!(
        sim.events_of("bmc_power_off").is_empty(),
        "a live host is not fenced"
    );
    assert!(sim.events_of("host_down").is_empty());
    assert!(sim.ssh_vim("esx1", "vmsvc/getallvms").status.success());
}

/// A rescued host comes back: `return` turns autostart off and unregisters its stale
/// registrations of the VMs that now run elsewhere (autostart first); a VM that did not move
/// stays registered.
#[test]
fn evacuate_return_cleans_host() {
    let Some(sim) = Sim::start(
        &[
            HostSpec::new("esx1", SHARED).autostart(),
            HostSpec::new("esx2", SHARED),
        ],
        &[
            vm("s1", "esx1"),
            vm("s2", "esx1"),
            vm("s3", "esx1").power("off"),
        ],
        &Inventory::default(),
    ) else {
        return;
    };
    snapshot_all(&sim);
    sim.crash("esx1");
    let run = sim.evacuate(&["run", "--host", "esx1"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    moved_once(&sim, &["s1", "s2"], "esx1");
    // The host boots through its BMC (power on).
    let bmc = sim.host("esx1").bmc.as_ref().expect("bmc");
    let (ok, text) = bmc.ipmitool("admin", "pass", &["chassis", "power", "on"]);
    assert!(ok, "{text}");
    assert!(sim.ssh_vim("esx1", "vmsvc/getallvms").status.success());
    assert_eq!(
        sim.registered_on("s1"),
        ["esx1", "esx2"],
        "stale registration"
    );
    let run = sim.evacuate(&["return", "--host", "esx1"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    for v in ["s1", "s2"] {
        assert_eq!(sim.registered_on(v), ["esx2"], "{v}");
        assert_eq!(sim.running_on(v), ["esx2"], "{v}");
        let auto = pos(&sim, |e| ev_is(e, "autostart", "esx1") && e["vm"] == v);
        let unreg = pos(&sim, |e| ev_is(e, "unregister", "esx1") && e["vm"] == v);
        assert!(auto < unreg, "{v}: autostart off before unregister");
        let a = &sim.events()[auto];
        assert_eq!(
            a["action"].as_str().map(str::to_lowercase).as_deref(),
            Some("none")
        );
    }
    assert_eq!(sim.registered_on("s3"), ["esx1"], "s3 did not move: kept");
    assert_eq!(count(&sim, "power_on", "s1"), 1);
}
