//! `ocf:fencekit:vm-evacuate` under a real Pacemaker (tests/support/util/pacemaker.rs), against
//! simulated free-ESXi hosts with simulated BMCs (tests/support/sim/evac.rs). The cluster finds the
//! agent as `/usr/lib/ocf/resource.d/fencekit/vm-evacuate` → `/usr/sbin/vm-evacuate` → the
//! built binary (`scripts/pcmk.sh install-agents`, the packaged layout).
//!
//! Scenarios of issue 11 (one cluster, in sequence; the cluster node is not one of the
//! simulated hosts, so cluster fencing is off: the hosts are fenced by the engine through
//! their BMCs):
//! - **3.** `pcs resource create evac ocf:fencekit:vm-evacuate config=…`; a host crashes → its VMs
//!   run on the other hosts, the event log shows its BMC read back off before the first
//!   registration; `pcs resource describe` shows the whole meta-data;
//! - **4.** the engine's daemon is SIGKILLed in the middle of an evacuation → Pacemaker's monitor
//!   sees it gone, restarts the resource, the evacuation finishes, no VM registered or started
//!   twice;
//! - **5.** `pcs resource disable evac` during an evacuation → the stop succeeds within its
//!   timeout, with no half-recorded step; `pcs resource enable evac` finishes the work;
//! - **6.** a second host failure beyond `brake_percent` → nothing moves off it; `vm-evacuate
//!   status` and the daemon's log say why.
//!
//! Run: `FENCE_REQUIRE_SIMULATORS=1 cargo test --locked --test integration
//! pacemaker_evacuate -- --test-threads=1` (as root).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fencekit::evacuate::ocf;

use crate::evacuate::{hosts, moved_once, nothing_before_fence, vm};
use crate::ocf::{daemon_log, journal_closed, wait_moved};
use crate::pacemaker_fake::{cluster_available, ok};
use crate::sim::evac::{Inventory, Sim};
use crate::util::pacemaker::{self, Cluster};

/// The resource `evac` for one scenario; deleted (and its daemon gone) on drop.
struct Evac<'c> {
    cluster: &'c Cluster,
    state_dir: PathBuf,
}

impl<'c> Evac<'c> {
    fn create(cluster: &'c Cluster, sim: &Sim) -> Evac<'c> {
        let cfg = format!("config={}", sim.config.display());
        let sd = format!("state_dir={}", sim.state_dir.display());
        let out = cluster.pcs(&[
            "resource",
            "create",
            "evac",
            "ocf:fencekit:vm-evacuate",
            &cfg,
            &sd,
            "op",
            "monitor",
            "interval=2s",
            "timeout=20s",
        ]);
        ok("pcs resource create evac", &out);
        let evac = Evac {
            cluster,
            state_dir: sim.state_dir.clone(),
        };
        if let Err(e) = cluster.wait_running("evac", Duration::from_secs(120)) {
            panic!("{e}\ndaemon log:\n{}", daemon_log(&sim.state_dir));
        }
        evac
    }

    fn daemon(&self) -> u32 {
        ocf::running_daemon(&self.state_dir)
            .unwrap_or_else(|| panic!("no detection daemon\n{}", daemon_log(&self.state_dir)))
    }

    /// Waits until crm_mon shows `evac` with `role`.
    fn wait_role(&self, role: &str, limit: Duration) {
        let t0 = Instant::now();
        while self.cluster.resource_role("evac").as_deref() != Some(role) {
            assert!(
                t0.elapsed() < limit,
                "evac not {role} within {limit:?}:\n{}\ndaemon log:\n{}",
                pacemaker::describe("crm_mon -1", &self.cluster.crm_mon()),
                daemon_log(&self.state_dir)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Evac<'_> {
    fn drop(&mut self) {
        let _ = self
            .cluster
            .pcs(&["resource", "disable", "evac", "--wait=90"]);
        let _ = self.cluster.pcs(&["resource", "delete", "evac", "--force"]);
        let _ = self.cluster.crm_resource(&["--cleanup"]);
        // Should Pacemaker have failed to stop it, end our own daemon (by its pid file).
        if let Some(pid) = ocf::running_daemon(&self.state_dir) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// Waits until the first probe reached every host (the snapshots exist).
fn wait_snapshots(sim: &Sim, names: &[&str]) {
    let t0 = Instant::now();
    while !names
        .iter()
        .all(|h| sim.state_dir.join(format!("snapshots/{h}.json")).exists())
    {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no snapshots:\n{}",
            daemon_log(&sim.state_dir)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn vm_evacuate(sim: &Sim, args: &[&str]) -> String {
    let out = sim
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run vm-evacuate");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn resource_failures(cluster: &Cluster, op: &str) -> bool {
    cluster
        .crm_mon_xml()
        .contains(&format!(r#"<failure op_key="evac_{op}"#))
}

#[test]
fn pacemaker_evacuate() {
    if !cluster_available() {
        return;
    }
    for p in ["/usr/bin/python3", "/usr/bin/ipmi_sim", "/usr/bin/ipmitool"] {
        if !Path::new(p).exists() {
            crate::sim::skip_or_fail(&format!("{p} not installed"));
            return;
        }
    }
    let dir = pacemaker::agents_dir().expect("agents dir");
    let cluster = Cluster::up(&dir).expect("cluster up");
    // The simulated ESXi hosts are not cluster nodes; the engine fences them itself.
    ok(
        "pcs property set stonith-enabled=false",
        &cluster.pcs(&["property", "set", "stonith-enabled=false"]),
    );
    let desc = cluster.pcs(&["resource", "describe", "ocf:fencekit:vm-evacuate"]);
    ok("pcs resource describe", &desc);
    let text = String::from_utf8_lossy(&desc.stdout);
    for want in [
        "config",
        "state_dir",
        "dry_run",
        "/etc/fencekit/evacuate.toml",
        "brake_percent",
        "OCF_ERR_GENERIC",
        "Default operations",
    ] {
        assert!(text.contains(want), "describe lacks {want:?}:\n{text}");
    }
    scenario_3_host_crash(&cluster);
    scenario_4_sigkill_mid_evacuation(&cluster);
    scenario_5_disable_mid_evacuation(&cluster);
    scenario_6_brake(&cluster);
    cluster.shutdown().expect("cluster shutdown");
}

fn scenario_3_host_crash(cluster: &Cluster) {
    let Some(sim) = Sim::start(
        &hosts(3),
        &[vm("p1", "esx1"), vm("p2", "esx1"), vm("q1", "esx2")],
        &Inventory::default(),
    ) else {
        return;
    };
    let evac = Evac::create(cluster, &sim);
    let pid = evac.daemon();
    wait_snapshots(&sim, &["esx1", "esx2", "esx3"]);
    sim.crash("esx1");
    wait_moved(&sim, &["p1", "p2"], "esx1", Duration::from_secs(120));
    moved_once(&sim, &["p1", "p2"], "esx1");
    nothing_before_fence(&sim, "esx1");
    assert_eq!(sim.running_on("q1"), ["esx2"]);
    // Still the same daemon, the resource still started, no failure recorded.
    assert_eq!(evac.daemon(), pid);
    assert_eq!(cluster.resource_role("evac").as_deref(), Some("Started"));
    assert!(!resource_failures(cluster, "monitor"));
}

fn scenario_4_sigkill_mid_evacuation(cluster: &Cluster) {
    let inv = Inventory::default().policy("max_parallel", "1");
    let Some(sim) = Sim::start(
        &hosts(2),
        &[vm("k1", "esx1"), vm("k2", "esx1"), vm("k3", "esx1")],
        &inv,
    ) else {
        return;
    };
    let evac = Evac::create(cluster, &sim);
    let pid = evac.daemon();
    wait_snapshots(&sim, &["esx1", "esx2"]);
    // The first registration acts, then answers only after 15 s: the daemon is killed then.
    sim.stall_after("esx2", "solo/registervm", 15, 1);
    sim.crash("esx1");
    sim.wait_event(Duration::from_secs(120), |e| {
        e["ev"] == "stall" && e["cmd"] == "solo/registervm"
    });
    let st = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    sim.clear_faults("esx2");
    // Pacemaker's monitor finds the daemon gone and restarts the resource; the new daemon
    // finishes the evacuation.
    wait_moved(&sim, &["k1", "k2", "k3"], "esx1", Duration::from_secs(180));
    moved_once(&sim, &["k1", "k2", "k3"], "esx1");
    nothing_before_fence(&sim, "esx1");
    evac.wait_role("Started", Duration::from_secs(60));
    let again = evac.daemon();
    assert_ne!(again, pid, "a new daemon");
    assert!(
        resource_failures(cluster, "monitor"),
        "the monitor failure that made Pacemaker restart it:\n{}",
        cluster.crm_mon_xml()
    );
    // The killed registration's intent was closed as reconciled by the new engine.
    let journal = std::fs::read_to_string(sim.state_dir.join("journal.jsonl")).unwrap();
    assert!(journal.contains("\"reconciled\""), "{journal}");
    let t0 = Instant::now();
    while !sim.state_dir.join("reports/esx1.json").exists() {
        assert!(t0.elapsed() < Duration::from_secs(60), "no report");
        std::thread::sleep(Duration::from_millis(100));
    }
    journal_closed(&sim.state_dir, "esx1");
}

fn scenario_5_disable_mid_evacuation(cluster: &Cluster) {
    let inv = Inventory::default().policy("max_parallel", "1");
    let Some(sim) = Sim::start(
        &hosts(2),
        &[vm("d1", "esx1"), vm("d2", "esx1"), vm("d3", "esx1")],
        &inv,
    ) else {
        return;
    };
    let evac = Evac::create(cluster, &sim);
    wait_snapshots(&sim, &["esx1", "esx2"]);
    // A registration that answers 5 s late: the stop must wait for it.
    sim.stall_after("esx2", "solo/registervm", 5, 1);
    sim.crash("esx1");
    sim.wait_event(Duration::from_secs(120), |e| {
        e["ev"] == "stall" && e["cmd"] == "solo/registervm"
    });
    ok(
        "pcs resource disable evac",
        &cluster.pcs(&["resource", "disable", "evac"]),
    );
    evac.wait_role("Stopped", Duration::from_secs(90));
    assert!(
        !resource_failures(cluster, "stop"),
        "{}",
        cluster.crm_mon_xml()
    );
    assert_eq!(ocf::running_daemon(&sim.state_dir), None);
    // The step under way finished and was recorded; nothing started after it.
    journal_closed(&sim.state_dir, "esx1");
    assert_eq!(sim.events_of("register").len(), 1, "{}", sim.events_text());
    assert!(
        sim.events_of("power_on").is_empty(),
        "{}",
        sim.events_text()
    );
    ok(
        "pcs resource enable evac",
        &cluster.pcs(&["resource", "enable", "evac"]),
    );
    wait_moved(&sim, &["d1", "d2", "d3"], "esx1", Duration::from_secs(180));
    moved_once(&sim, &["d1", "d2", "d3"], "esx1");
    nothing_before_fence(&sim, "esx1");
    let log = daemon_log(&sim.state_dir);
    assert!(log.contains("detection stopped"), "{log}");
}

fn scenario_6_brake(cluster: &Cluster) {
    let Some(sim) = Sim::start(
        &hosts(3),
        &[vm("b1", "esx1"), vm("b2", "esx2"), vm("b3", "esx3")],
        &Inventory::default().policy("brake_percent", "50"),
    ) else {
        return;
    };
    let _evac = Evac::create(cluster, &sim);
    wait_snapshots(&sim, &["esx1", "esx2", "esx3"]);
    sim.crash("esx1");
    wait_moved(&sim, &["b1"], "esx1", Duration::from_secs(120));
    let b1_on = sim.running_on("b1");
    // A second failure: 2 of 3 hosts failed is more than 50 %.
    let victim = if b1_on == ["esx2"] { "esx2" } else { "esx3" };
    let before = sim.mutating_calls();
    let bmc_offs = sim.events_of("bmc_power_off").len();
    sim.crash(victim);
    let t0 = Instant::now();
    while !daemon_log(&sim.state_dir).contains("brake:") {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no brake in the log:\n{}",
            daemon_log(&sim.state_dir)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Several more detection rounds: still nothing moves, no fence.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        sim.mutating_calls(),
        before,
        "nothing moves under the brake"
    );
    assert_eq!(sim.events_of("bmc_power_off").len(), bmc_offs, "no fence");
    assert!(sim.running_on("b1").is_empty(), "b1 died with {victim}");
    let status = vm_evacuate(&sim, &["status"]);
    assert!(
        status.contains("brake: 2 of 3 hosts are failed"),
        "{status}"
    );
    assert!(status.contains("brake_percent = 50%"), "{status}");
    let log = daemon_log(&sim.state_dir);
    assert!(log.contains("more than brake_percent = 50%"), "{log}");
    assert_eq!(cluster.resource_role("evac").as_deref(), Some("Started"));
}
