#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]
//! Engine tests over an in-memory fake cluster: hosts with registered VMs, shared datastores
//! with VMFS-like locks (a VM powered on by a live host cannot be powered on elsewhere), and a
//! BMC per host whose power-off makes the host stop answering.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use super::*;
use crate::evacuate::inventory::Inventory;

#[derive(Debug, Clone, PartialEq, Eq)]
struct FVm {
    vmid: u32,
    name: String,
    vmx: String,
    power: VmPower,
}

#[derive(Debug, Clone)]
struct FHost {
    alive: bool,
    vms: Vec<FVm>,
    next: u32,
    bmc_on: bool,
    bmc_up: bool,
    bmc_ignores_off: bool,
    tools: bool,
}

impl FHost {
    fn new() -> Self {
        FHost {
            alive: true,
            vms: Vec::new(),
            next: 100,
            bmc_on: true,
            bmc_up: true,
            bmc_ignores_off: false,
            tools: true,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct World {
    hosts: BTreeMap<String, FHost>,
    /// Calls, `host op args`.
    calls: Vec<String>,
    /// vmx → host still holding its disks (an isolated host: locks kept).
    held: BTreeMap<String, String>,
    /// Op names that fail (`register`, `power_on`, `suspend`, …) with a plain failure.
    failing: Vec<String>,
}

#[derive(Default)]
struct Fake {
    w: Mutex<World>,
    /// The world after each mutating call.
    history: Mutex<Vec<World>>,
}

const MUTATING: [&str; 9] = [
    "register",
    "power_on",
    "power_off",
    "shutdown",
    "suspend",
    "unregister",
    "autostart_off",
    "bmc_power_off",
    "answer",
];

impl Fake {
    fn with(w: World) -> Self {
        Fake {
            w: Mutex::new(w),
            history: Mutex::new(Vec::new()),
        }
    }

    fn world(&self) -> World {
        self.w.lock().unwrap().clone()
    }

    fn calls(&self) -> Vec<String> {
        self.world().calls
    }

    /// Runs `f` on the live host after logging the call.
    fn on_host<T>(
        &self,
        host: &str,
        call: String,
        f: impl FnOnce(&mut World) -> Result<T, OpError>,
    ) -> Result<T, OpError> {
        let mut w = self.w.lock().unwrap();
        w.calls.push(format!("{host} {call}"));
        let op = call.split(' ').next().unwrap_or("").to_string();
        if !w.hosts.get(host).is_some_and(|h| h.alive) {
            return Err(OpError::Unreachable(format!("{host}: connection refused")));
        }
        if w.failing.contains(&op) {
            return Err(OpError::Failed(format!("{op} failed (injected)")));
        }
        let r = f(&mut w);
        if MUTATING.contains(&op.as_str()) && r.is_ok() {
            let snap = w.clone();
            self.history.lock().unwrap().push(snap);
        }
        r
    }
}

fn find(w: &mut World, host: &str, vmid: u32) -> Result<(usize, String), OpError> {
    let h = w.hosts.get(host).unwrap();
    h.vms
        .iter()
        .position(|v| v.vmid == vmid)
        .map(|i| (i, h.vms[i].vmx.clone()))
        .ok_or_else(|| OpError::NotFound(format!("vmid {vmid}")))
}

fn set_power(w: &mut World, host: &str, vmid: u32, p: VmPower) -> Result<(), OpError> {
    let (i, _) = find(w, host, vmid)?;
    w.hosts.get_mut(host).unwrap().vms[i].power = p;
    Ok(())
}

impl HostOps for Fake {
    fn list_registered(&self, host: &str) -> Result<Vec<Registered>, OpError> {
        self.on_host(host, "getallvms".into(), |w| {
            Ok(w.hosts[host]
                .vms
                .iter()
                .map(|v| Registered {
                    vmid: v.vmid,
                    name: v.name.clone(),
                    vmx: v.vmx.clone(),
                })
                .collect())
        })
    }
    fn power_state(&self, host: &str, vmid: u32) -> Result<VmPower, OpError> {
        self.on_host(host, format!("getstate {vmid}"), |w| {
            let (i, _) = find(w, host, vmid)?;
            Ok(w.hosts[host].vms[i].power)
        })
    }
    fn vm_memory_mb(&self, host: &str, vm: &Registered) -> Result<Option<u64>, OpError> {
        self.on_host(host, format!("get.summary {}", vm.vmid), |_| Ok(Some(1024)))
    }
    fn host_memory_mb(&self, host: &str) -> Result<Option<u64>, OpError> {
        self.on_host(host, "hostsummary".into(), |_| Ok(None))
    }
    fn datastores(&self, host: &str) -> Result<Vec<String>, OpError> {
        self.on_host(host, "datastores".into(), |_| Ok(vec!["shared".into()]))
    }
    fn register(&self, host: &str, vmx: &str) -> Result<u32, OpError> {
        self.on_host(host, format!("register {vmx}"), |w| {
            let h = w.hosts.get_mut(host).unwrap();
            if h.vms.iter().any(|v| v.vmx == vmx) {
                return Err(OpError::Failed("AlreadyExists".into()));
            }
            let vmid = h.next;
            h.next += 1;
            let name = vmx
                .rsplit('/')
                .next()
                .unwrap()
                .trim_end_matches(".vmx")
                .to_string();
            h.vms.push(FVm {
                vmid,
                name,
                vmx: vmx.to_string(),
                power: VmPower::Off,
            });
            Ok(vmid)
        })
    }
    fn power_on(&self, host: &str, vmid: u32) -> Result<(), OpError> {
        self.on_host(host, format!("power_on {vmid}"), |w| {
            let (_, vmx) = find(w, host, vmid)?;
            if let Some(holder) = w.held.get(&vmx) {
                return Err(OpError::Locked(format!(
                    "Failed to lock the file (held by {holder})"
                )));
            }
            let running_elsewhere = w.hosts.iter().any(|(n, h)| {
                n != host && h.alive && h.vms.iter().any(|v| v.vmx == vmx && v.power == VmPower::On)
            });
            if running_elsewhere {
                return Err(OpError::Locked("Failed to lock the file".into()));
            }
            set_power(w, host, vmid, VmPower::On)
        })
    }
    fn power_off(&self, host: &str, vmid: u32) -> Result<(), OpError> {
        self.on_host(host, format!("power_off {vmid}"), |w| {
            set_power(w, host, vmid, VmPower::Off)
        })
    }
    fn shutdown_guest(&self, host: &str, vmid: u32, _bound: Duration) -> Result<(), OpError> {
        self.on_host(host, format!("shutdown {vmid}"), |w| {
            if !w.hosts[host].tools {
                return Err(OpError::Failed("ToolsUnavailable".into()));
            }
            set_power(w, host, vmid, VmPower::Off)
        })
    }
    fn suspend(&self, host: &str, vmid: u32) -> Result<(), OpError> {
        self.on_host(host, format!("suspend {vmid}"), |w| {
            set_power(w, host, vmid, VmPower::Suspended)
        })
    }
    fn unregister(&self, host: &str, vmid: u32) -> Result<(), OpError> {
        self.on_host(host, format!("unregister {vmid}"), |w| {
            let (i, _) = find(w, host, vmid)?;
            if w.hosts[host].vms[i].power == VmPower::On {
                return Err(OpError::Failed("InvalidPowerState".into()));
            }
            w.hosts.get_mut(host).unwrap().vms.remove(i);
            Ok(())
        })
    }
    fn autostart_off(&self, host: &str, vmid: u32) -> Result<(), OpError> {
        self.on_host(host, format!("autostart_off {vmid}"), |w| {
            find(w, host, vmid).map(|_| ())
        })
    }
}

impl BmcOps for Fake {
    fn status(&self, host: &str) -> Result<PowerState, OpError> {
        let mut w = self.w.lock().unwrap();
        w.calls.push(format!("{host} bmc_status"));
        let h = &w.hosts[host];
        if !h.bmc_up {
            return Err(OpError::Unreachable("BMC timeout".into()));
        }
        Ok(if h.bmc_on {
            PowerState::On
        } else {
            PowerState::Off
        })
    }
    fn power_off(&self, host: &str) -> Result<(), OpError> {
        let mut w = self.w.lock().unwrap();
        w.calls.push(format!("{host} bmc_power_off"));
        let h = w.hosts.get_mut(host).unwrap();
        if !h.bmc_up {
            return Err(OpError::Unreachable("BMC timeout".into()));
        }
        if !h.bmc_ignores_off {
            h.bmc_on = false;
            h.alive = false;
            // Locks of a host that is off are released.
            w.held.retain(|_, holder| holder != host);
        }
        let snap = w.clone();
        drop(w);
        self.history.lock().unwrap().push(snap);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------

fn inventory(extra: &str, hosts: &[(&str, u64, &str)]) -> Inventory {
    let mut t = String::from(
        "[ssh]\nusername = \"root\"\nidentity_file = \"/nonexistent\"\n[bmc]\nusername = \"admin\"\n",
    );
    t.push_str(extra);
    for (i, (name, mem, keys)) in hosts.iter().enumerate() {
        t.push_str(&format!(
            "\n[[host]]\nname = \"{name}\"\naddress = \"192.0.2.{}\"\nbmc_address = \"198.51.100.{}\"\nmemory_mb = {mem}\n{keys}\n",
            i + 1,
            i + 1
        ));
    }
    Inventory::parse(&t).unwrap_or_else(|e| panic!("{e:#?}\n{t}"))
}

fn vm(name: &str, power: VmPower) -> FVm {
    FVm {
        vmid: 0,
        name: name.into(),
        vmx: format!("[shared] {name}/{name}.vmx"),
        power,
    }
}

/// A world of `hosts`, each with its VMs (vmids given in order from 1).
fn world(hosts: &[(&str, Vec<FVm>)]) -> World {
    let mut w = World::default();
    for (name, vms) in hosts {
        let mut h = FHost::new();
        for (i, mut v) in vms.clone().into_iter().enumerate() {
            v.vmid = u32::try_from(i + 1).unwrap();
            h.vms.push(v);
        }
        w.hosts.insert((*name).to_string(), h);
    }
    w
}

fn kill(fake: &Fake, host: &str) {
    let mut w = fake.w.lock().unwrap();
    w.hosts.get_mut(host).unwrap().alive = false;
}

fn no_sleep(_: Duration) {}

fn quiet(_: &str) {}

struct Setup {
    inv: Inventory,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(inv: Inventory) -> Self {
        Setup {
            inv,
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn state(&self) -> StateDir {
        StateDir::new(self.dir.path())
    }
}

fn engine<'a>(inv: &'a Inventory, st: &'a StateDir, fake: &'a Fake) -> Engine<'a> {
    let mut e = Engine::new(inv, st, fake, fake, &quiet);
    e.opts.sleep = no_sleep;
    e.opts.fence_reads = 3;
    e
}

/// Where each vmx is registered: vmx → [(host, power)], over live hosts only.
fn registrations(fake: &Fake) -> BTreeMap<String, Vec<(String, VmPower)>> {
    let mut out: BTreeMap<String, Vec<(String, VmPower)>> = BTreeMap::new();
    for (h, fh) in &fake.world().hosts {
        if !fh.alive {
            continue;
        }
        for v in &fh.vms {
            out.entry(v.vmx.clone())
                .or_default()
                .push((h.clone(), v.power));
        }
    }
    out
}

fn vm_report<'r>(r: &'r Report, name: &str) -> &'r VmReport {
    r.vms.iter().find(|v| v.name == name).unwrap()
}

const H3: [(&str, u64, &str); 3] = [
    ("esx1", 16384, ""),
    ("esx2", 16384, ""),
    ("esx3", 16384, ""),
];

fn three_hosts() -> World {
    world(&[
        (
            "esx1",
            vec![
                vm("web", VmPower::On),
                vm("db", VmPower::On),
                vm("old", VmPower::Off),
            ],
        ),
        ("esx2", vec![vm("app", VmPower::On)]),
        ("esx3", vec![]),
    ])
}

const VMS: &str = "[[vm]]\nname = \"web\"\nmemory_mb = 2048\n[[vm]]\nname = \"db\"\nmemory_mb = 4096\n[[vm]]\nname = \"app\"\nmemory_mb = 1024\n[[vm]]\nname = \"old\"\nmemory_mb = 1024\n";

#[test]
fn rescue_of_a_dead_host() {
    let s = Setup::new(inventory(VMS, &H3));
    let st = s.state();
    let fake = Fake::with(three_hosts());
    let e = engine(&s.inv, &st, &fake);
    // A probe while everything is alive takes the snapshots.
    e.probe_all(true);
    kill(&fake, "esx1");
    let r = e.run("esx1", false).unwrap();
    assert_eq!(r.result, HostResult::Ok, "{}", r.to_json());
    assert_eq!(r.fence.as_deref(), Some("bmc"));
    for name in ["web", "db"] {
        let v = vm_report(&r, name);
        assert_eq!(v.state, VmState::Done, "{name}: {v:?}");
        assert_eq!(v.method, Some(Method::Failover));
        assert_eq!(v.tried.last().unwrap().error, None);
        // quick_migration and move were not possible and say why.
        assert!(v
            .tried
            .iter()
            .any(|t| t.method == Method::Move && t.error.as_deref().unwrap().contains("dead")));
    }
    assert_eq!(vm_report(&r, "old").state, VmState::Skipped);
    let regs = registrations(&fake);
    for name in ["web", "db"] {
        let key = format!("[shared] {name}/{name}.vmx");
        assert_eq!(regs[&key].len(), 1, "{regs:?}");
        assert_eq!(regs[&key][0].1, VmPower::On);
    }
    // The fence came before any registration.
    let calls = fake.calls();
    let fence = calls
        .iter()
        .position(|c| c == "esx1 bmc_power_off")
        .unwrap();
    let first_reg = calls.iter().position(|c| c.contains(" register ")).unwrap();
    assert!(fence < first_reg, "{calls:?}");
    // The targets' snapshots already show the placed VMs, and the report is stored.
    let placed: usize = ["esx2", "esx3"]
        .iter()
        .map(|h| {
            st.snapshot(h)
                .unwrap()
                .vms
                .iter()
                .filter(|v| v.name == "web" || v.name == "db")
                .count()
        })
        .sum();
    assert_eq!(placed, 2);
    assert!(st
        .last_report("esx1")
        .unwrap()
        .contains("\"result\": \"ok\""));
    assert!(st.host_state("esx1").evacuated);
}

#[test]
fn unconfirmed_fence_moves_nothing() {
    for case in ["bmc_down", "ignores_off"] {
        let s = Setup::new(inventory(VMS, &H3));
        let st = s.state();
        let fake = Fake::with(three_hosts());
        let e = engine(&s.inv, &st, &fake);
        e.probe_all(false);
        {
            let mut w = fake.w.lock().unwrap();
            let h = w.hosts.get_mut("esx1").unwrap();
            h.alive = false;
            match case {
                "bmc_down" => h.bmc_up = false,
                _ => h.bmc_ignores_off = true,
            }
        }
        let r = e.run("esx1", false).unwrap();
        assert_eq!(r.result, HostResult::Error, "{case}");
        assert!(
            r.reason.as_deref().unwrap().contains("not confirmed"),
            "{r:?}"
        );
        assert!(r.fence.is_none());
        assert_eq!(vm_report(&r, "web").state, VmState::NotMoved);
        let calls = fake.calls();
        assert!(
            !calls
                .iter()
                .any(|c| c.contains(" register ") || c.contains(" power_on ")),
            "{case}: {calls:?}"
        );
        // An administrator's confirmation (newer than the last sign of life) unblocks it.
        e.confirm_down("esx1").unwrap();
        let r = e.run("esx1", false).unwrap();
        assert_eq!(r.result, HostResult::Ok, "{case}: {}", r.to_json());
        assert_eq!(r.fence.as_deref(), Some("admin"));
    }
}

#[test]
fn confirmation_older_than_a_sign_of_life_is_not_accepted() {
    let s = Setup::new(inventory(VMS, &H3));
    let st = s.state();
    let fake = Fake::with(three_hosts());
    let e = engine(&s.inv, &st, &fake);
    e.confirm_down("esx1").unwrap();
    std::thread::sleep(Duration::from_millis(5));
    e.probe_all(false);
    let mut hs = st.host_state("esx1");
    hs.last_seen_alive_ms = Some(now_ms() + 10);
    st.save_host_state("esx1", &hs).unwrap();
    {
        let mut w = fake.w.lock().unwrap();
        let h = w.hosts.get_mut("esx1").unwrap();
        h.alive = false;
        h.bmc_up = false;
    }
    let r = e.run("esx1", false).unwrap();
    assert_eq!(r.result, HostResult::Error);
    assert!(!fake.calls().iter().any(|c| c.contains(" register ")));
}

#[test]
fn capacity_shortage_fails_the_low_priority_vm_with_a_reason() {
    let vms = "[[vm]]\nname = \"web\"\nmemory_mb = 6000\npriority = 10\n[[vm]]\nname = \"db\"\nmemory_mb = 6000\npriority = 1\n";
    let s = Setup::new(inventory(vms, &[("esx1", 16384, ""), ("esx2", 8000, "")]));
    let st = s.state();
    let fake = Fake::with(world(&[
        ("esx1", vec![vm("web", VmPower::On), vm("db", VmPower::On)]),
        ("esx2", vec![]),
    ]));
    let e = engine(&s.inv, &st, &fake);
    e.probe_all(false);
    kill(&fake, "esx1");
    let r = e.run("esx1", false).unwrap();
    assert_eq!(r.result, HostResult::Error);
    assert_eq!(vm_report(&r, "web").state, VmState::Done);
    let db = vm_report(&r, "db");
    assert_eq!(db.state, VmState::Unplaced);
    assert!(db.reason.as_deref().unwrap().contains("MB free"), "{db:?}");
    assert!(r.problems().iter().any(|p| p.starts_with("db: ")));
}

#[test]
fn planned_evacuation_falls_back_from_quick_migration_to_move() {
    let s = Setup::new(inventory(VMS, &H3));
    let st = s.state();
    let fake = Fake::with(three_hosts());
    fake.w.lock().unwrap().failing.push("suspend".into());
    let e = engine(&s.inv, &st, &fake);
    let r = e.run("esx1", true).unwrap();
    assert_eq!(r.result, HostResult::Ok, "{}", r.to_json());
    let web = vm_report(&r, "web");
    assert_eq!(web.method, Some(Method::Move));
    let methods: Vec<(Method, bool)> = web
        .tried
        .iter()
        .map(|t| (t.method, t.error.is_none()))
        .collect();
    assert_eq!(
        methods,
        [
            (Method::Failover, false),
            (Method::QuickMigration, false),
            (Method::Move, true)
        ]
    );
    assert!(web.tried[0].error.as_deref().unwrap().contains("alive"));
    // Nothing left on the source but the powered-off VM (out of scope), no BMC traffic.
    let w = fake.world();
    let left: Vec<&str> = w.hosts["esx1"]
        .vms
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(left, ["old"]);
    assert!(!fake.calls().iter().any(|c| c.contains("bmc")));
    let regs = registrations(&fake);
    assert!(regs.values().all(|v| v.len() == 1), "{regs:?}");
}

#[test]
fn planned_evacuation_by_quick_migration() {
    let s = Setup::new(inventory(VMS, &H3));
    let st = s.state();
    let fake = Fake::with(three_hosts());
    let e = engine(&s.inv, &st, &fake);
    let r = e.run("esx1", true).unwrap();
    assert_eq!(r.result, HostResult::Ok, "{}", r.to_json());
    for name in ["web", "db"] {
        assert_eq!(vm_report(&r, name).method, Some(Method::QuickMigration));
    }
    let calls = fake.calls();
    assert!(calls.iter().any(|c| c.starts_with("esx1 suspend")));
    assert!(!calls.iter().any(|c| c.starts_with("esx1 shutdown")));
    let regs = registrations(&fake);
    let web = &regs["[shared] web/web.vmx"];
    assert_eq!(web.len(), 1);
    assert_eq!(web[0].1, VmPower::On);
}

#[test]
fn move_without_tools_powers_off() {
    let s = Setup::new(inventory(
        &format!("[policy]\nmethods = [\"move\"]\n{VMS}"),
        &H3,
    ));
    let st = s.state();
    let fake = Fake::with(three_hosts());
    fake.w.lock().unwrap().hosts.get_mut("esx1").unwrap().tools = false;
    let e = engine(&s.inv, &st, &fake);
    let r = e.run("esx1", true).unwrap();
    assert_eq!(r.result, HostResult::Ok, "{}", r.to_json());
    let calls = fake.calls();
    assert!(calls.iter().any(|c| c.starts_with("esx1 shutdown")));
    assert!(calls.iter().any(|c| c.starts_with("esx1 power_off")));
}

#[test]
fn lock_error_stops_that_vm_without_force() {
    let s = Setup::new(inventory(VMS, &H3));
    let st = s.state();
    let fake = Fake::with(three_hosts());
    let e = engine(&s.inv, &st, &fake);
    e.probe_all(false);
    {
        let mut w = fake.w.lock().unwrap();
        w.hosts.get_mut("esx1").unwrap().alive = false;
        // An isolated host keeps its lock on web's disks even though the BMC says off.
        w.held
            .insert("[shared] web/web.vmx".into(), "esx1-isolated".into());
    }
    let r = e.run("esx1", false).unwrap();
    assert_eq!(r.result, HostResult::Error);
    let web = vm_report(&r, "web");
    assert_eq!(web.state, VmState::Failed);
    assert!(web.reason.as_deref().unwrap().contains("locked"), "{web:?}");
    // One power-on attempt only: no retry, no force.
    let ons = fake
        .calls()
        .iter()
        .filter(|c| c.contains(" power_on "))
        .count();
    assert_eq!(ons, 2, "one for web (refused), one for db");
    assert_eq!(vm_report(&r, "db").state, VmState::Done);
}

#[test]
fn transient_errors_are_retried_up_to_the_limit() {
    let s = Setup::new(inventory(
        &format!("[policy]\nvm_retry_limit = 2\n{VMS}"),
        &[("esx1", 16384, ""), ("esx2", 16384, "")],
    ));
    let st = s.state();
    let fake = Fake::with(world(&[
        ("esx1", vec![vm("web", VmPower::On)]),
        ("esx2", vec![]),
    ]));
    let e = engine(&s.inv, &st, &fake);
    e.probe_all(false);
    kill(&fake, "esx1");
    fake.w.lock().unwrap().failing.push("register".into());
    let r = e.run("esx1", false).unwrap();
    let web = vm_report(&r, "web");
    assert_eq!(web.state, VmState::Failed);
    // A plain failure is not retried.
    assert_eq!(
        web.tried
            .iter()
            .filter(|t| t.method == Method::Failover)
            .count(),
        1
    );
}

#[test]
fn already_running_elsewhere_is_done_not_duplicated() {
    let s = Setup::new(inventory(VMS, &H3));
    let st = s.state();
    let fake = Fake::with(three_hosts());
    let e = engine(&s.inv, &st, &fake);
    e.probe_all(false);
    kill(&fake, "esx1");
    // Someone already started web on esx3 by hand; db is registered (off) on esx2.
    {
        let mut w = fake.w.lock().unwrap();
        let h3 = w.hosts.get_mut("esx3").unwrap();
        h3.vms.push(FVm {
            vmid: 50,
            ..vm("web", VmPower::On)
        });
        let h2 = w.hosts.get_mut("esx2").unwrap();
        h2.vms.push(FVm {
            vmid: 51,
            ..vm("db", VmPower::Off)
        });
    }
    let r = e.run("esx1", false).unwrap();
    assert_eq!(r.result, HostResult::Ok, "{}", r.to_json());
    assert!(!fake.calls().iter().any(|c| c.contains(" register ")));
    assert_eq!(vm_report(&r, "db").target.as_deref(), Some("esx2"));
    let regs = registrations(&fake);
    assert!(regs.values().all(|v| v.len() == 1), "{regs:?}");
}

/// Kills the engine after each side effect (the world as it was right after it, the journal
/// cut after that step's intent record), resumes, and checks that no VM is registered or
/// started twice and that everything ends where it should.
fn kill_and_resume(planned: bool, empty_state: bool) {
    let inv = inventory(VMS, &H3);
    // The reference run, recording the world after every side effect.
    let ref_dir = tempfile::tempdir().unwrap();
    let ref_st = StateDir::new(ref_dir.path());
    let fake = Fake::with(three_hosts());
    let e = engine(&inv, &ref_st, &fake);
    e.probe_all(false);
    let snapshots = ref_dir.path().join("snapshots");
    let snap_copy = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(&snapshots).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), snap_copy.path().join(f.file_name())).unwrap();
    }
    if !planned {
        kill(&fake, "esx1");
    }
    fake.history.lock().unwrap().clear();
    let r = e.run("esx1", planned).unwrap();
    assert_eq!(r.result, HostResult::Ok, "{}", r.to_json());
    let history = fake.history.lock().unwrap().clone();
    let journal = std::fs::read_to_string(ref_st.journal().unwrap().path()).unwrap();
    let lines: Vec<&str> = journal.lines().collect();
    let intents: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("\"phase\":\"intent\""))
        .map(|(i, _)| i)
        .collect();
    assert!(!history.is_empty());
    let final_regs = registrations(&fake);
    for (k, w) in history.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let st = StateDir::new(dir.path());
        if !empty_state {
            // The state directory as the killed engine left it: snapshots and the journal up to
            // the intent of the side effect that had just happened.
            std::fs::create_dir_all(dir.path().join("snapshots")).unwrap();
            for f in std::fs::read_dir(snap_copy.path()).unwrap() {
                let f = f.unwrap();
                std::fs::copy(f.path(), dir.path().join("snapshots").join(f.file_name())).unwrap();
            }
            let cut = intents.get(k).copied().unwrap_or(lines.len() - 1);
            let text: String = lines[..=cut].iter().map(|l| format!("{l}\n")).collect();
            std::fs::write(dir.path().join("journal.jsonl"), text).unwrap();
            let hs = HostState {
                evacuated: true,
                ..HostState::default()
            };
            st.save_host_state("esx1", &hs).unwrap();
            st.save_evacuation(&Evacuation {
                host: "esx1".into(),
                mode: if planned { "planned" } else { "rescue" }.into(),
                started_ms: 0,
                finished_ms: None,
                result: None,
                source: serde_json::from_slice(
                    &std::fs::read(snap_copy.path().join("esx1.json")).unwrap(),
                )
                .unwrap(),
            })
            .unwrap();
        }
        let mut w = w.clone();
        w.calls.clear();
        let resumed = Fake::with(w);
        let e2 = engine(&inv, &st, &resumed);
        let r2 = e2.run("esx1", planned);
        let regs = registrations(&resumed);
        for (vmx, at) in &regs {
            assert_eq!(at.len(), 1, "kill after step {k}: {vmx} registered {at:?}");
        }
        let ons = resumed.calls();
        // Nothing that was already on is powered on again.
        for c in ons.iter().filter(|c| c.contains(" power_on ")) {
            let (host, rest) = c.split_once(' ').unwrap();
            let vmid: u32 = rest.trim_start_matches("power_on ").parse().unwrap();
            let before = history[k].hosts[host].vms.iter().find(|v| v.vmid == vmid);
            assert!(
                before.map_or(true, |v| v.power != VmPower::On),
                "kill after step {k}: {c} powered on a running VM"
            );
        }
        if empty_state {
            // Without the dead host's snapshot, a rescue cannot know what ran there: it does
            // nothing (and says so).
            // A planned evacuation reads the live source, but a VM it had suspended just
            // before the kill now looks like a suspended VM (out of scope): it stays there,
            // still registered once.
            if !planned {
                let r2 = r2.unwrap();
                assert_eq!(r2.result, HostResult::Error);
            }
            continue;
        }
        let r2 = r2.unwrap();
        assert_ne!(
            r2.result,
            HostResult::Error,
            "kill after step {k}: {}",
            r2.to_json()
        );
        // Every intent now has an outcome (the open one was reconciled on start).
        let recs = st.journal().unwrap().read();
        assert!(
            crate::evacuate::journal::open_intents(&recs).is_empty(),
            "kill after step {k}: {recs:#?}"
        );
        if k < intents.len() && !planned {
            assert!(
                recs.iter().any(|r| r.phase == Phase::Reconciled),
                "kill after step {k}"
            );
        }
        // Everything ends running, once.
        for name in ["web", "db"] {
            let key = format!("[shared] {name}/{name}.vmx");
            let at = &regs[&key];
            assert_eq!(at[0].1, VmPower::On, "kill after step {k}: {name} {at:?}");
            if !planned {
                assert_ne!(at[0].0, "esx1");
            }
        }
        assert_eq!(regs.len(), final_regs.len(), "kill after step {k}");
    }
}

#[test]
fn killed_after_each_side_effect_then_resumed_rescue() {
    kill_and_resume(false, false);
}

#[test]
fn killed_after_each_side_effect_then_resumed_planned() {
    kill_and_resume(true, false);
}

#[test]
fn killed_then_resumed_with_an_empty_state_directory() {
    kill_and_resume(false, true);
    kill_and_resume(true, true);
}

#[test]
fn brake_stops_every_action() {
    let s = Setup::new(inventory(
        &format!("[policy]\ndetect_failures = 1\nbrake_percent = 50\n{VMS}"),
        &H3,
    ));
    let st = s.state();
    let fake = Fake::with(three_hosts());
    let e = engine(&s.inv, &st, &fake);
    let round = e.watch_once();
    assert!(round.failed.is_empty() && round.brake.is_none() && round.reports.is_empty());
    {
        let mut w = fake.w.lock().unwrap();
        for h in ["esx1", "esx2"] {
            w.hosts.get_mut(h).unwrap().alive = false;
        }
    }
    let round = e.watch_once();
    assert_eq!(round.failed, ["esx1", "esx2"]);
    assert!(round.brake.as_deref().unwrap().contains("acting on none"));
    let calls = fake.calls();
    assert!(!calls
        .iter()
        .any(|c| c.contains("bmc_power_off") || c.contains(" register ")));
}

#[test]
fn watch_rescues_after_detect_failures_rounds() {
    let s = Setup::new(inventory(
        &format!("[policy]\ndetect_failures = 2\n{VMS}"),
        &H3,
    ));
    let st = s.state();
    let fake = Fake::with(three_hosts());
    let e = engine(&s.inv, &st, &fake);
    assert!(e.watch_once().reports.is_empty());
    kill(&fake, "esx1");
    let r1 = e.watch_once();
    assert_eq!(r1.failing, ["esx1"]);
    assert!(r1.reports.is_empty(), "one failed probe is not enough");
    assert!(!fake.calls().iter().any(|c| c.contains("bmc_power_off")));
    let r2 = e.watch_once();
    assert_eq!(r2.reports.len(), 1);
    assert_eq!(r2.reports[0].result, HostResult::Ok);
    // Done: the next round does not act again.
    let r3 = e.watch_once();
    assert!(r3.reports.is_empty());
    assert_eq!(r3.failed, ["esx1"]);
}

#[test]
fn dry_run_makes_no_mutating_call() {
    let s = Setup::new(inventory(VMS, &H3));
    let st = s.state();
    let fake = Fake::with(three_hosts());
    let e = engine(&s.inv, &st, &fake);
    e.probe_all(false);
    kill(&fake, "esx1");
    fake.w.lock().unwrap().calls.clear();
    let p = e.dry_plan("esx1", false).unwrap();
    assert!(p.vms.iter().any(|v| v.target.is_some()));
    let calls = fake.calls();
    for c in &calls {
        let op = c.split(' ').nth(1).unwrap();
        assert!(
            !MUTATING.contains(&op) && !op.starts_with("bmc"),
            "dry run made {c}"
        );
    }
    assert!(fake.history.lock().unwrap().is_empty());
    let p2 = e.dry_plan("esx1", true).unwrap();
    assert!(p2
        .vms
        .iter()
        .all(|v| v.methods.iter().all(|m| *m != Method::Failover)));
}

#[test]
fn return_cleans_stale_registrations() {
    let s = Setup::new(inventory(VMS, &H3));
    let st = s.state();
    let fake = Fake::with(three_hosts());
    let e = engine(&s.inv, &st, &fake);
    e.probe_all(false);
    kill(&fake, "esx1");
    let r = e.run("esx1", false).unwrap();
    assert_eq!(r.result, HostResult::Ok);
    // The host comes back with its old registrations (powered off).
    {
        let mut w = fake.w.lock().unwrap();
        let h = w.hosts.get_mut("esx1").unwrap();
        h.alive = true;
        h.bmc_on = true;
        for v in &mut h.vms {
            v.power = VmPower::Off;
        }
    }
    let before = fake.calls().len();
    let rr = e.return_host("esx1").unwrap();
    assert!(rr.problems.is_empty(), "{rr:?}");
    assert_eq!(rr.cleaned.len(), 2, "{rr:?}");
    let calls = fake.calls()[before..].to_vec();
    // Autostart off before each unregister; the VM that did not move (old) is left alone.
    for vmid in [1, 2] {
        let a = calls
            .iter()
            .position(|c| c == &format!("esx1 autostart_off {vmid}"))
            .unwrap();
        let u = calls
            .iter()
            .position(|c| c == &format!("esx1 unregister {vmid}"))
            .unwrap();
        assert!(a < u);
    }
    assert!(!calls.iter().any(|c| c == "esx1 unregister 3"));
    let left: Vec<String> = fake.world().hosts["esx1"]
        .vms
        .iter()
        .map(|v| v.name.clone())
        .collect();
    assert_eq!(left, ["old"]);
    let hs = st.host_state("esx1");
    assert!(!hs.failed());
    assert!(st.evacuation("esx1").is_none());
    // A returned host is a target again.
    let p = e.dry_plan("esx2", false).unwrap();
    assert!(p.vms.iter().all(|v| v.disposition != Disposition::Unplaced));
}

#[test]
fn return_refuses_a_host_running_a_vm_that_also_runs_elsewhere() {
    let s = Setup::new(inventory(VMS, &H3));
    let st = s.state();
    let fake = Fake::with(world(&[
        ("esx1", vec![vm("web", VmPower::On)]),
        ("esx2", vec![vm("web", VmPower::Off)]),
        ("esx3", vec![]),
    ]));
    let e = engine(&s.inv, &st, &fake);
    let rr = e.return_host("esx1").unwrap();
    assert_eq!(rr.problems.len(), 1, "{rr:?}");
    assert!(!fake.calls().iter().any(|c| c.contains("unregister")));
}

#[test]
fn max_parallel_bounds_concurrency_and_tiers_follow_dependencies() {
    let vms = "[[vm]]\nname = \"db\"\nmemory_mb = 512\n[[vm]]\nname = \"web\"\nmemory_mb = 512\ndepends_on = [\"db\"]\n[[vm]]\nname = \"a\"\nmemory_mb = 512\n[[vm]]\nname = \"b\"\nmemory_mb = 512\n";
    let s = Setup::new(inventory(
        &format!("[policy]\nmax_parallel = 1\n{vms}"),
        &[("esx1", 16384, ""), ("esx2", 16384, "")],
    ));
    let st = s.state();
    let fake = Fake::with(world(&[
        (
            "esx1",
            vec![
                vm("web", VmPower::On),
                vm("db", VmPower::On),
                vm("a", VmPower::On),
                vm("b", VmPower::On),
            ],
        ),
        ("esx2", vec![]),
    ]));
    let e = engine(&s.inv, &st, &fake);
    e.probe_all(false);
    kill(&fake, "esx1");
    let r = e.run("esx1", false).unwrap();
    assert_eq!(r.result, HostResult::Ok, "{}", r.to_json());
    let calls = fake.calls();
    let pos = |vmx: &str| {
        calls
            .iter()
            .position(|c| c == &format!("esx2 register {vmx}"))
            .unwrap()
    };
    assert!(pos("[shared] db/db.vmx") < pos("[shared] web/web.vmx"));
}

#[test]
fn failed_dependency_fails_its_dependents() {
    let vms = "[[vm]]\nname = \"db\"\nmemory_mb = 512\n[[vm]]\nname = \"web\"\nmemory_mb = 512\ndepends_on = [\"db\"]\n";
    let s = Setup::new(inventory(vms, &[("esx1", 16384, ""), ("esx2", 16384, "")]));
    let st = s.state();
    let fake = Fake::with(world(&[
        ("esx1", vec![vm("web", VmPower::On), vm("db", VmPower::On)]),
        ("esx2", vec![]),
    ]));
    let e = engine(&s.inv, &st, &fake);
    e.probe_all(false);
    {
        let mut w = fake.w.lock().unwrap();
        w.hosts.get_mut("esx1").unwrap().alive = false;
        w.held.insert("[shared] db/db.vmx".into(), "nobody".into());
    }
    let r = e.run("esx1", false).unwrap();
    assert_eq!(vm_report(&r, "db").state, VmState::Failed);
    let web = vm_report(&r, "web");
    assert_eq!(web.state, VmState::Failed);
    assert!(web.reason.as_deref().unwrap().contains("depends on db"));
    assert!(!fake.calls().iter().any(|c| c.contains("web/web.vmx")));
}

#[test]
fn maintenance_source_gives_a_warning_and_no_snapshot_an_error() {
    let s = Setup::new(inventory(
        VMS,
        &[
            ("esx1", 16384, "role = \"maintenance\""),
            ("esx2", 16384, ""),
        ],
    ));
    let st = s.state();
    let fake = Fake::with(world(&[
        ("esx1", vec![vm("web", VmPower::On)]),
        ("esx2", vec![]),
    ]));
    let e = engine(&s.inv, &st, &fake);
    let r = e.run("esx1", true).unwrap();
    assert_eq!(r.result, HostResult::Warning, "{}", r.to_json());
    // A dead host never probed: nothing is known, nothing moves.
    let s2 = Setup::new(inventory(VMS, &H3));
    let st2 = s2.state();
    let fake2 = Fake::with(three_hosts());
    kill(&fake2, "esx1");
    let e2 = engine(&s2.inv, &st2, &fake2);
    let r2 = e2.run("esx1", false).unwrap();
    assert_eq!(r2.result, HostResult::Error);
    assert!(r2.reason.as_deref().unwrap().contains("no snapshot"));
    assert!(!fake2.calls().iter().any(|c| c.contains("bmc_power_off")));
    assert!(matches!(e2.run("nope", false), Err(EngineError::Usage(_))));
}

#[test]
fn a_host_counts_as_failed_from_its_first_failed_probe_until_return() {
    let s = Setup::new(inventory(
        &format!("[policy]\ndetect_failures = 2\n{VMS}"),
        &H3,
    ));
    let st = s.state();
    let fake = Fake::with(three_hosts());
    let e = engine(&s.inv, &st, &fake);
    kill(&fake, "esx1");
    let r = e.watch_once();
    assert_eq!(r.failed, ["esx1"]);
    fake.w.lock().unwrap().hosts.get_mut("esx1").unwrap().alive = true;
    let r = e.watch_once();
    assert!(r.failing.is_empty());
    assert_eq!(r.failed, ["esx1"], "still failed until return");
    // Consecutive failures start again from zero: one more failure is not a rescue.
    kill(&fake, "esx1");
    let r = e.watch_once();
    assert!(r.reports.is_empty());
    assert_eq!(st.host_state("esx1").failures, 1);
    fake.w.lock().unwrap().hosts.get_mut("esx1").unwrap().alive = true;
    e.return_host("esx1").unwrap();
    assert!(e.watch_once().failed.is_empty());
}

#[test]
fn a_copy_running_on_an_evacuated_host_is_found_and_its_stale_registrations_never_reused() {
    let s = Setup::new(inventory(VMS, &H3));
    let st = s.state();
    let fake = Fake::with(three_hosts());
    let e = engine(&s.inv, &st, &fake);
    e.probe_all(false);
    kill(&fake, "esx2");
    assert_eq!(e.run("esx2", false).unwrap().result, HostResult::Ok);
    // esx2 comes back (not returned) with app powered on again by its autostart, and a stale
    // registration of web (off); then esx1 dies.
    {
        let mut w = fake.w.lock().unwrap();
        let h2 = w.hosts.get_mut("esx2").unwrap();
        h2.alive = true;
        h2.bmc_on = true;
        h2.vms.push(FVm {
            vmid: 77,
            ..vm("web", VmPower::Off)
        });
    }
    e.probe_all(false);
    kill(&fake, "esx1");
    let r = e.run("esx1", false).unwrap();
    assert_eq!(r.result, HostResult::Ok, "{}", r.to_json());
    // web was registered on esx3 (the stale copy on esx2 was not powered on).
    assert_eq!(vm_report(&r, "web").target.as_deref(), Some("esx3"));
    assert!(!fake.calls().iter().any(|c| c == "esx2 power_on 77"));
}

#[test]
fn watch_retries_a_failed_evacuation_a_bounded_number_of_times() {
    let s = Setup::new(inventory(
        &format!("[policy]\ndetect_failures = 1\nvm_retry_limit = 1\n{VMS}"),
        &H3,
    ));
    let st = s.state();
    let fake = Fake::with(three_hosts());
    let e = engine(&s.inv, &st, &fake);
    e.watch_once();
    {
        let mut w = fake.w.lock().unwrap();
        w.hosts.get_mut("esx1").unwrap().alive = false;
        w.held
            .insert("[shared] web/web.vmx".into(), "nobody".into());
    }
    let runs: usize = (0..5).map(|_| e.watch_once().reports.len()).sum();
    assert_eq!(runs, 2, "1 + vm_retry_limit runs");
}

/// Where `name` runs among the live hosts.
fn running_on(fake: &Fake, name: &str) -> Vec<String> {
    let key = format!("[shared] {name}/{name}.vmx");
    registrations(fake)
        .get(&key)
        .map(|v| {
            v.iter()
                .filter(|(_, p)| *p == VmPower::On)
                .map(|(h, _)| h.clone())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_host_that_dies_right_after_a_rescue_loses_none_of_the_rescued_vms() {
    const H4: [(&str, u64, &str); 4] = [
        ("esx1", 16384, ""),
        ("esx2", 16384, ""),
        ("esx3", 16384, ""),
        ("esx4", 16384, ""),
    ];
    let s = Setup::new(inventory(VMS, &H4));
    let st = s.state();
    let mut w = three_hosts();
    w.hosts.insert("esx4".into(), FHost::new());
    let fake = Fake::with(w);
    let e = engine(&s.inv, &st, &fake);
    e.probe_all(true);
    kill(&fake, "esx1");
    let r = e.run("esx1", false).unwrap();
    assert_eq!(r.result, HostResult::Ok, "{}", r.to_json());
    let t = vm_report(&r, "web").target.clone().unwrap();
    // The target dies at once: no probe has seen the rescued VM there, only the engine's own
    // note in the target's snapshot.
    kill(&fake, &t);
    let r2 = e.run(&t, false).unwrap();
    assert_eq!(r2.result, HostResult::Ok, "{}", r2.to_json());
    assert_eq!(
        vm_report(&r2, "web").state,
        VmState::Done,
        "{}",
        r2.to_json()
    );
    for name in ["web", "db", "app"] {
        let on = running_on(&fake, name);
        assert_eq!(on.len(), 1, "{name} runs on {on:?}");
        assert!(on[0] != "esx1" && on[0] != t, "{name} on {on:?}");
    }
}

#[test]
fn a_stop_request_ends_the_work_between_steps_and_the_next_engine_finishes() {
    let s = Setup::new(inventory(
        &format!("[policy]\nmax_parallel = 1\n{VMS}"),
        &H3,
    ));
    let st = s.state();
    let fake = Fake::with(three_hosts());
    let stop = AtomicBool::new(false);
    // The stop arrives while the first VM is being moved (from the progress line before it).
    let progress = |line: &str| {
        if line.contains(": moving to ") {
            stop.store(true, Ordering::SeqCst);
        }
    };
    let mut e = Engine::new(&s.inv, &st, &fake, &fake, &progress).with_stop(&stop);
    e.opts.sleep = no_sleep;
    e.opts.fence_reads = 3;
    e.probe_all(true);
    kill(&fake, "esx1");
    let err = e.run("esx1", false).unwrap_err();
    assert!(matches!(err, EngineError::Refused(_)), "{err:?}");
    assert!(err.to_string().contains("continues"), "{err}");
    // No step half-recorded, the evacuation left open, no report, nothing registered (the
    // first VM's steps had not started: the flag is checked before every step).
    let j = st.journal().unwrap();
    let recs = j.since_return("esx1");
    assert!(open_intents(&recs).is_empty(), "{recs:#?}");
    assert!(!recs.iter().any(|r| r.op == Op::Finish));
    assert!(recs
        .iter()
        .any(|r| r.op == Op::Fence && r.phase == Phase::Done));
    assert!(st.evacuation("esx1").unwrap().finished_ms.is_none());
    assert!(st.last_report("esx1").is_none());
    assert!(!fake.calls().iter().any(|c| c.contains(" register ")));
    // The next engine (no stop) finishes: each VM once.
    let e2 = engine(&s.inv, &st, &fake);
    let r = e2.run("esx1", false).unwrap();
    assert_eq!(r.result, HostResult::Ok, "{}", r.to_json());
    for name in ["web", "db"] {
        assert_eq!(running_on(&fake, name).len(), 1, "{name}");
    }
    let regs = fake
        .calls()
        .iter()
        .filter(|c| c.contains(" register "))
        .count();
    assert_eq!(regs, 2);
}

#[test]
fn watch_in_dry_run_says_once_what_a_rescue_would_do_and_changes_nothing() {
    let s = Setup::new(inventory(
        &format!("[policy]\ndetect_failures = 1\n{VMS}"),
        &H3,
    ));
    let st = s.state();
    let fake = Fake::with(three_hosts());
    let mut e = engine(&s.inv, &st, &fake);
    e.opts.dry_run = true;
    assert!(e.watch_once().dry.is_empty());
    kill(&fake, "esx1");
    let r = e.watch_once();
    assert!(r.reports.is_empty());
    assert_eq!(r.dry.len(), 1, "{r:?}");
    assert!(
        r.dry[0].contains("esx1") && r.dry[0].contains("web -> "),
        "{r:?}"
    );
    assert!(e.watch_once().dry.is_empty(), "said once");
    assert!(!fake
        .calls()
        .iter()
        .any(|c| c.contains("bmc_power_off") || c.contains(" register ")));
    assert!(!st.host_state("esx1").evacuated);
}
