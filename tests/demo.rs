//! The README's demo (`bash scripts/demo.sh` runs it with `--ignored --nocapture`): simulated
//! devices on loopback, a real single-node Pacemaker, one fence through every agent, told in
//! plain words. Not part of the test run (it asserts, but its point is the narration).
//!
//! The last story is the evacuation: three simulated free-ESXi hosts with their BMCs, the
//! cluster running one fence_esxi device for every host (`inventory=`, `host_fence=bmc`) and
//! `ocf:fencekit:vm-evacuate`; the first host killed, the node whose VM ran there fenced
//! through that host's BMC, its VMs restarted on the others, with timings.

use std::fs;
use std::time::Duration;

use crate::ipmisim::Bmc;
use crate::kvmsim::KvmSim;
use crate::pacemaker_fake::ok;
use crate::sim::evac::{HostSpec, Inventory, Sim, VmSpec};
use crate::sim::sshd::{EsxiHost, SimVm};
use crate::util::pacemaker::{self, Cluster};

fn say(s: &str) {
    println!("demo: {s}");
}

#[test]
#[ignore = "the demo: run by scripts/demo.sh"]
fn demo() {
    if let Some(why) = pacemaker::unavailable() {
        panic!("the demo needs Pacemaker: {why} (run as root; scripts/demo.sh installs it)");
    }
    let dir = tempfile::tempdir().unwrap();
    say(
        "starting a single-node Pacemaker cluster on 127.0.0.1 (corosync + pacemakerd, no systemd)",
    );
    let cluster = Cluster::up(&pacemaker::agents_dir().unwrap()).unwrap();
    say(&format!(
        "cluster is up; this node is '{}' and will never be fenced",
        cluster.node()
    ));

    // fence_fake: a file-backed target.
    let state = dir.path().join("fake.state");
    fs::write(&state, "plug demo-node on\n").unwrap();
    say("fence_fake: a pretend machine 'demo-node' is ON (its power lives in a file)");
    ok(
        "pcs stonith create",
        &cluster.pcs(&[
            "stonith",
            "create",
            "demo_fake",
            "fence_fake",
            "pcmk_host_list=demo-node",
            "stonith_status_sleep=0.2",
            &format!("state_file={}", state.display()),
        ]),
    );
    cluster
        .wait_running("demo_fake", Duration::from_secs(60))
        .unwrap();
    say("fence_fake: `pcs stonith create demo_fake fence_fake ...` done; Pacemaker started the device");
    let out = cluster.stonith_admin(&["--reboot", "demo-node"]);
    assert_eq!(out.status.code(), Some(0));
    let log = fs::read_to_string(format!("{}.log", state.display())).unwrap_or_default();
    let steps: Vec<&str> = log.lines().filter(|l| l.starts_with("set ")).collect();
    say(&format!(
        "fence_fake: `stonith_admin --reboot demo-node` succeeded; the agent powered it {} (confirmed off before on)",
        steps.join(", then ").replace("set demo-node ", "")
    ));
    cluster.delete_device("demo_fake").unwrap();

    // fence_esxi: a simulated free-ESXi host (real OpenSSH sshd + simulated vim-cmd).
    let esxi = EsxiHost::start(&[SimVm::new(1, "web1", "on"), SimVm::new(2, "db1", "on")])
        .expect("the demo needs sshd and python3");
    let kh = dir.path().join("known_hosts");
    fs::write(&kh, esxi.known_hosts_lines().join("\n") + "\n").unwrap();
    say(&format!(
        "fence_esxi: a simulated ESXi host listens on 127.0.0.1:{} (SSH, keyboard-interactive login); VM 'web1' is {}",
        esxi.port(),
        esxi.vm_state("web1").unwrap_or_default()
    ));
    ok(
        "pcs stonith create",
        &cluster.pcs(&[
            "stonith",
            "create",
            "demo_esxi",
            "fence_esxi",
            "ip=127.0.0.1",
            &format!("ipport={}", esxi.port()),
            "username=fencetest",
            "password=fencetest-pw",
            &format!("known_hosts={}", kh.display()),
            "pcmk_host_list=web1",
            "stonith_status_sleep=0.2",
        ]),
    );
    cluster
        .wait_running("demo_esxi", Duration::from_secs(60))
        .unwrap();
    let out = cluster.stonith_admin(&["--reboot", "web1"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        pacemaker::describe("stonith_admin --reboot web1", &out)
    );
    let calls: Vec<String> = esxi
        .calls()
        .iter()
        .map(|c| c.to_string())
        .filter(|c| c.contains("power.off") || c.contains("power.on"))
        .collect();
    say(&format!(
        "fence_esxi: `stonith_admin --reboot web1` succeeded: the host ran {} power change(s) (off first: {}), and 'web1' is {} again",
        calls.len(),
        calls.first().is_some_and(|c| c.contains("power.off")),
        esxi.vm_state("web1").unwrap_or_default()
    ));
    cluster.delete_device("demo_esxi").unwrap();
    drop(esxi);

    // fence_bmc: a simulated BMC (OpenIPMI ipmi_sim) speaking IPMI 2.0 RMCP+.
    let bmc = Bmc::start(&[]).expect("the demo needs ipmi_sim and ipmitool");
    say(&format!(
        "fence_bmc: a simulated BMC (ipmi_sim) listens on 127.0.0.1:{}/udp; ipmitool says its chassis is {:?}",
        bmc.port,
        bmc.ipmitool_power()
    ));
    ok(
        "pcs stonith create",
        &cluster.pcs(&[
            "stonith",
            "create",
            "demo_bmc",
            "fence_bmc",
            "ip=127.0.0.1",
            &format!("ipport={}", bmc.port),
            "username=admin",
            "password=pass",
            "lanplus=1",
            "power_wait=0",
            "stonith_status_sleep=0.2",
            "pcmk_host_list=server1",
        ]),
    );
    cluster
        .wait_running("demo_bmc", Duration::from_secs(60))
        .unwrap();
    let out = cluster.stonith_admin(&["--reboot", "server1"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        pacemaker::describe("stonith_admin --reboot server1", &out)
    );
    say(&format!(
        "fence_bmc: `stonith_admin --reboot server1` succeeded; the BMC saw: {} (power read back between them); ipmitool now says {:?}",
        bmc.events()
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(_, e)| e.to_string()))
            .filter(|e| e.starts_with("set power"))
            .collect::<Vec<_>>()
            .join(", then "),
        bmc.ipmitool_power()
    ));
    cluster.delete_device("demo_bmc").unwrap();
    drop(bmc);

    // fence_kvmguest: two simulated KVM hosts (sshd + real libvirtd test driver); the guest
    // has live-migrated away from the host the map names.
    let mut kvm = KvmSim::new("demo").expect("the demo needs sshd, libvirtd and virsh");
    kvm.start_hosts(&[("cfhost1", vec![("guest11", true)]), ("cfhost2", vec![])]);
    kvm.migrate("cfhost1", "cfhost2", "guest11", true);
    let conf = dir.path().join("kvmguests.conf");
    fs::write(&conf, KvmSim::kvmguests_conf(&[("guest11", "cfhost1")])).unwrap();
    fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    say(&format!(
        "fence_kvmguest: the map says guest11 (cfguest11) lives on cfhost1, but it was live-migrated: {:?}",
        kvm.where_is("guest11")
    ));
    ok(
        "pcs stonith create",
        &cluster.pcs(&[
            "stonith",
            "create",
            "demo_kvm",
            "fence_kvmguest",
            &format!("guests_conf={}", conf.display()),
            &format!("hosts={}", kvm.hosts_option()),
            &format!("username={}", kvm.user()),
            &format!("identity_file={}", kvm.client_key().display()),
            &format!("known_hosts={}", kvm.known_hosts().display()),
            "pcmk_host_check=dynamic-list",
            "stonith_status_sleep=0.2",
        ]),
    );
    cluster
        .wait_running("demo_kvm", Duration::from_secs(60))
        .unwrap();
    let out = cluster.stonith_admin(&["--reboot", "cfguest11"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        pacemaker::describe("stonith_admin --reboot cfguest11", &out)
    );
    let destroyed_on: Vec<&str> = ["cfhost1", "cfhost2"]
        .into_iter()
        .filter(|h| kvm.calls(h).contains("destroy"))
        .collect();
    say(&format!(
        "fence_kvmguest: `stonith_admin --reboot cfguest11` succeeded: destroyed on {destroyed_on:?} (where it really ran), confirmed off on every host, then started; now {:?}",
        kvm.where_is("guest11")
    ));
    cluster.delete_device("demo_kvm").unwrap();
    drop(kvm);

    demo_evacuation(&cluster);

    say("stopping the cluster and everything the demo started");
    cluster.shutdown().unwrap();
    say("done: every fence above was confirmed by reading the target back as off");
}

/// The evacuation story: hosts die, VMs come back elsewhere, the fence first.
fn demo_evacuation(cluster: &Cluster) {
    let hosts: Vec<HostSpec> = ["esx1", "esx2", "esx3"]
        .iter()
        .map(|h| HostSpec::new(h, &["shared1"]))
        .collect();
    let vms: Vec<VmSpec> = ["app1", "app2", "db1"]
        .iter()
        .map(|v| VmSpec::new(v, "esx1", "shared1"))
        .chain(std::iter::once(VmSpec::new("web1", "esx2", "shared1")))
        .collect();
    let inv = Inventory::default()
        .policy("detect_failures", "3")
        .policy("detect_interval_s", "1");
    let sim = Sim::start(&hosts, &vms, &inv)
        .expect("the demo needs sshd, python3, ipmi_sim and ipmitool");
    say(&format!(
        "evacuation: three simulated free-ESXi hosts (SSH + vim-cmd on 127.0.0.1:{}, :{}, :{}), \
         each with its own simulated BMC, one shared datastore with VMFS-like locks; app1, app2 \
         and db1 run on esx1, web1 on esx2",
        sim.host("esx1").esxi.port(),
        sim.host("esx2").esxi.port(),
        sim.host("esx3").esxi.port()
    ));
    ok(
        "pcs stonith create",
        &cluster.pcs(&[
            "stonith",
            "create",
            "demo_esxi_all",
            "fence_esxi",
            &format!("inventory={}", sim.config.display()),
            "host_fence=bmc",
            "pcmk_host_map=guest-app1:app1",
            "power_wait=0",
            "stonith_status_sleep=0.2",
        ]),
    );
    cluster
        .wait_running("demo_esxi_all", Duration::from_secs(60))
        .unwrap();
    say(
        "evacuation: Pacemaker runs one fence_esxi device for every host (demo_esxi_all: \
         inventory=..., host_fence=bmc, pcmk_host_map=guest-app1:app1; the cluster node \
         guest-app1 is the VM app1 on esx1)",
    );
    let t_create = std::time::Instant::now();
    ok(
        "pcs resource create evac",
        &cluster.pcs(&[
            "resource",
            "create",
            "evac",
            "ocf:fencekit:vm-evacuate",
            &format!("config={}", sim.config.display()),
            &format!("state_dir={}", sim.state_dir.display()),
            "op",
            "monitor",
            "interval=5s",
        ]),
    );
    cluster
        .wait_running("evac", Duration::from_secs(60))
        .unwrap();
    say(&format!(
        "evacuation: `pcs resource create evac ocf:fencekit:vm-evacuate config=...` started in \
         {:.1} s: its detection daemon probes every host and BMC each second (3 failed probes \
         = dead; the defaults are 3 x 5 s)",
        t_create.elapsed().as_secs_f64()
    ));
    let t0 = std::time::Instant::now();
    while !["esx1", "esx2", "esx3"]
        .iter()
        .all(|h| sim.state_dir.join(format!("snapshots/{h}.json")).exists())
    {
        assert!(t0.elapsed() < Duration::from_secs(60), "no first probe");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    say("evacuation: killing esx1 (its sshd dies, its disk locks expire; its BMC still says ON)");
    sim.crash("esx1");
    let t0 = std::time::Instant::now();
    // Pacemaker fences the node whose VM ran there: esx1 does not answer, so fence_esxi
    // powers esx1 off through its BMC and reads it back off before it reports success.
    let out = cluster.stonith_admin(&["--reboot", "guest-app1", "--timeout", "60"]);
    assert!(
        out.status.success(),
        "{}",
        pacemaker::describe("stonith_admin --reboot guest-app1", &out)
    );
    say(&format!(
        "evacuation: `stonith_admin --reboot guest-app1` succeeded {:.1} s after the crash: \
         fence_esxi found esx1 silent, powered it off through its BMC and read it back off \
         (app1 counts as off only then; its power-on is left to the evacuation)",
        t0.elapsed().as_secs_f64()
    ));
    loop {
        let done = ["app1", "app2", "db1"].iter().all(|v| {
            let on = sim.running_on(v);
            on.len() == 1 && on[0] != "esx1"
        });
        if done {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "not recovered; events:\n{}",
            sim.events_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let evs = sim.events();
    let at = |f: &dyn Fn(&serde_json::Value) -> bool| {
        evs.iter().find(|e| f(e)).and_then(|e| e["t"].as_f64())
    };
    let crash = at(&|e| e["ev"] == "host_down" && e["host"] == "esx1").unwrap_or(0.0);
    let off = at(&|e| e["ev"] == "bmc_power_off" && e["host"] == "esx1").unwrap_or(0.0);
    let read = at(&|e| e["ev"] == "bmc_power_read" && e["host"] == "esx1" && e["power"] == "off")
        .unwrap_or(0.0);
    let first_reg = at(&|e| e["ev"] == "register").unwrap_or(0.0);
    say(&format!(
        "evacuation: +{:.1} s esx1's BMC was told to power off (by the fence of guest-app1); \
         +{:.1} s the BMC read back OFF (the fence is confirmed); +{:.1} s the engine, after \
         3 failed probes and its own BMC read-back, made the first registration elsewhere \
         (after the read-back: {})",
        off - crash,
        read - crash,
        first_reg - crash,
        read < first_reg
    ));
    for e in evs.iter().filter(|e| e["ev"] == "power_on") {
        say(&format!(
            "evacuation: +{:.1} s {} powered on on {}",
            e["t"].as_f64().unwrap_or(0.0) - crash,
            e["vm"].as_str().unwrap_or("?"),
            e["host"].as_str().unwrap_or("?")
        ));
    }
    say(&format!(
        "evacuation: web1 stayed where it was ({:?}); Pacemaker's view of evac: {:?}",
        sim.running_on("web1"),
        cluster.resource_role("evac").unwrap_or_default()
    ));
    let status = sim
        .command(&["status"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for l in status.lines() {
        say(&format!("evacuation: vm-evacuate status: {l}"));
    }
    ok(
        "pcs resource disable evac",
        &cluster.pcs(&["resource", "disable", "evac", "--wait=60"]),
    );
    ok(
        "pcs resource delete evac",
        &cluster.pcs(&["resource", "delete", "evac", "--force"]),
    );
    cluster.delete_device("demo_esxi_all").unwrap();
    say("evacuation: resource and device removed; the simulated hosts and BMCs stop now");
    drop(sim);
}
