//! fence_esxi across hosts under a real Pacemaker: one device for the whole cluster
//! (`inventory=… host_fence=bmc pcmk_host_map=node:VM;…`, created by `pcs stonith create`
//! without `--force`: neither ip nor username is required), against three simulated ESXi
//! hosts with their simulated BMCs (`tests/support/sim/evac.rs`).
//!
//! 1. The host running a node's VM crashes (no SSH, its BMC still reads on):
//!    `stonith_admin --reboot node` succeeds only once that host's BMC powered it off and read
//!    it back off; the log says which host and why.
//! 2. The VM is then registered and started on another host (as the evacuation does): the
//!    same device fences it there, and the old host stays off.
//! 3. A host that stops answering with its BMC unreachable: the fence fails (the reason in
//!    Pacemaker's log), its VM still runs, and nothing was changed on any host.

use std::time::{Duration, Instant};

use crate::pacemaker_fake::{cluster_available, ok};
use crate::sim::evac::{HostSpec, Inventory, Sim, VmSpec};
use crate::util::pacemaker::{self, Cluster};

/// `stonith_admin --reboot target`; its wall time is printed (a measurement, not asserted).
fn reboot(cluster: &Cluster, target: &str) -> std::process::Output {
    let t0 = Instant::now();
    let out = cluster.stonith_admin(&["--reboot", target, "--timeout", "120"]);
    eprintln!(
        "stonith_admin --reboot {target}: exit {:?} in {:.2} s",
        out.status.code(),
        t0.elapsed().as_secs_f64()
    );
    out
}

#[test]
fn pacemaker_fences_vms_across_esxi_hosts_with_bmc_escalation() {
    if !cluster_available() {
        return;
    }
    let Some(mut sim) = Sim::start(
        &[
            HostSpec::new("h1", &["ds1"]),
            HostSpec::new("h2", &["ds1"]),
            HostSpec::new("h3", &["ds3"]),
        ],
        &[
            VmSpec::new("pcmk-vm1", "h1", "ds1"),
            VmSpec::new("pcmk-vm2", "h2", "ds1"),
            VmSpec::new("pcmk-vm3", "h3", "ds3"),
        ],
        &Inventory::default(),
    ) else {
        return;
    };
    let cluster = Cluster::up(&pacemaker::agents_dir().unwrap()).unwrap();

    // The options pcs shows for the new topology.
    let out = cluster.pcs(&["stonith", "describe", "fence_esxi"]);
    ok("pcs stonith describe fence_esxi", &out);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for p in ["inventory", "hosts", "host_fence"] {
        assert!(text.contains(p), "describe lacks {p}: {text}");
    }

    // One device for the cluster, no ip/username/password, no --force.
    let inventory = format!("inventory={}", sim.config.display());
    let args = [
        "stonith",
        "create",
        "esxi_all",
        "fence_esxi",
        inventory.as_str(),
        "host_fence=bmc",
        "pcmk_host_map=nodeA:pcmk-vm1;nodeB:pcmk-vm2;nodeC:pcmk-vm3",
        "stonith_status_sleep=0.5",
        "power_timeout=10",
        "pcmk_reboot_timeout=110",
    ];
    ok("pcs stonith create esxi_all", &cluster.pcs(&args));
    cluster
        .wait_running("esxi_all", Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("esxi_all did not start: {e}"));

    // 1. h1 crashes: nodeA's VM is fenced by powering h1 off through its BMC.
    sim.crash("h1");
    let log_at = cluster.log_offset();
    let out = reboot(&cluster, "nodeA");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\nevents:\n{}",
        pacemaker::describe("stonith_admin --reboot nodeA", &out),
        sim.events_text()
    );
    assert_eq!(sim.bmc_power("h1").trim(), "0", "h1's chassis is off");
    let h1_off = sim
        .first_event(|e| e["host"] == "h1" && e["ev"] == "bmc_power_off")
        .expect("h1 powered off through its BMC");
    let read_off = sim
        .first_event(|e| e["host"] == "h1" && e["ev"] == "bmc_power_read" && e["power"] == "off")
        .expect("h1's chassis read back off");
    assert!(h1_off < read_off, "{}", sim.events_text());
    let log = cluster.log_since(log_at);
    assert!(
        log.contains("host h1 did not answer over SSH") && log.contains("powered off"),
        "pacemaker log lacks the host fence:\n{log}"
    );

    // 2. The VM restarted on h2 (as the evacuation would): the same device fences it there.
    let reg = sim.ssh_vim("h2", "solo/registervm '[ds1] pcmk-vm1/pcmk-vm1.vmx'");
    assert!(reg.status.success(), "{reg:?}");
    let vmid = String::from_utf8_lossy(&reg.stdout).trim().to_owned();
    let on = sim.ssh_vim("h2", &format!("vmsvc/power.on {vmid}"));
    assert!(on.status.success(), "{on:?}");
    let before = sim.call_lines("h2").len();
    let out = reboot(&cluster, "nodeA");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        pacemaker::describe("stonith_admin --reboot nodeA (on h2)", &out)
    );
    let calls: Vec<String> = sim.call_lines("h2").into_iter().skip(before).collect();
    let off = calls
        .iter()
        .position(|c| *c == format!("vim-cmd vmsvc/power.off {vmid}"))
        .unwrap_or_else(|| panic!("no power.off on h2: {calls:?}"));
    let on = calls
        .iter()
        .rposition(|c| *c == format!("vim-cmd vmsvc/power.on {vmid}"))
        .unwrap_or_else(|| panic!("no power.on on h2: {calls:?}"));
    assert!(off < on, "{calls:?}");
    assert_eq!(sim.vm_power("h2", "pcmk-vm1").as_deref(), Some("on"));
    assert_eq!(sim.bmc_power("h1").trim(), "0", "h1 stays off");
    assert!(
        sim.events_of("bmc_power_on").is_empty(),
        "nothing powered h1 on"
    );

    // 3. h3 stops answering and its BMC is gone: the fence fails, nothing changes.
    sim.isolate("h3");
    sim.stop_bmc("h3");
    let mutating = sim.mutating_calls().len();
    let log_at = cluster.log_offset();
    let out = reboot(&cluster, "nodeC");
    assert_ne!(
        out.status.code(),
        Some(0),
        "fenced with h3 and its BMC unreachable: {}",
        pacemaker::describe("stonith_admin --reboot nodeC", &out)
    );
    assert_eq!(sim.vm_power("h3", "pcmk-vm3").as_deref(), Some("on"));
    assert_eq!(
        sim.mutating_calls().len(),
        mutating,
        "{:?}",
        sim.mutating_calls()
    );
    let log = cluster.log_since(log_at);
    assert!(
        log.contains("host h3 did not answer") && log.contains("BMC"),
        "pacemaker log lacks the reason:\n{log}"
    );

    cluster.delete_device("esxi_all").unwrap();
    cluster.shutdown().unwrap();
}
