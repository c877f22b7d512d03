//! fence_esxi across hosts (`inventory`, `hosts`, `host_fence=bmc`), the real binary against
//! several simulated ESXi hosts with their simulated BMCs (`tests/support/sim/evac.rs`: a BMC's
//! chassis power-off stops its host; `isolate` silences a host's SSH while its VMs keep
//! running; `crash` kills it while its BMC still reads on).
//!
//! Covered: a VM found on host 2 of 3; OFF only when every host answered; a silent host
//! without host_fence is an error (exit 1) and nothing is powered off; with host_fence=bmc the
//! host is powered off through its BMC, read back off, logged, and then the fence succeeds; a
//! later status reads that chassis off and answers OFF; a reboot of a VM of the dead host
//! succeeds with the failed on logged; a BMC that cannot be reached makes the fence fail and
//! the VM keeps running; a VM running on two hosts (ON and an error line naming both, off
//! powers both off); `on` with the VM registered on two hosts is refused naming both; list
//! and list-status across hosts; the `hosts` option without an inventory; validation and
//! metadata without ip/username.

use std::path::PathBuf;
use std::process::Command;

use crate::agentcmd::{self, Run};
use crate::sim::evac::{HostSpec, Inventory, Sim, VmSpec};

fn bin() -> PathBuf {
    agentcmd::bin("fence_esxi")
}

/// Runs fence_esxi with `pairs` on stdin (as Pacemaker does), plus `inventory=` the sim's.
fn run(sim: &Sim, pairs: &[(&str, &str)]) -> Run {
    let mut text = format!("inventory={}\n", sim.config.display());
    for (k, v) in pairs {
        text.push_str(&format!("{k}={v}\n"));
    }
    let r = agentcmd::stdin(&bin(), &text);
    eprintln!(
        "fence_esxi {pairs:?}: exit {} in {:?}\nstdout:\n{}\nstderr:\n{}",
        r.code, r.elapsed, r.stdout, r.stderr
    );
    // The inventory's BMC password is "pass": never a word of the output.
    for text in [&r.stdout, &r.stderr] {
        assert!(
            !text
                .split(|c: char| !c.is_alphanumeric())
                .any(|w| w == "pass"),
            "BMC password in the output"
        );
    }
    r
}

fn three_hosts() -> Option<Sim> {
    Sim::start(
        &[
            HostSpec::new("h1", &["ds1"]),
            HostSpec::new("h2", &["ds2"]),
            HostSpec::new("h3", &["ds3"]),
        ],
        &[
            VmSpec::new("other", "h1", "ds1"),
            VmSpec::new("node1", "h2", "ds2"),
            VmSpec::new("stale", "h3", "ds3"),
        ],
        &Inventory::default(),
    )
}

fn bmc_off_events(sim: &Sim, host: &str) -> usize {
    sim.events_of("bmc_power_off")
        .iter()
        .filter(|e| e["host"] == host)
        .count()
}

#[test]
fn vm_on_host_two_of_three_off_only_when_all_answer_and_bmc_escalation() {
    let Some(sim) = three_hosts() else { return };

    // Found on h2 of three, every host asked.
    let r = run(&sim, &[("action", "status"), ("plug", "node1")]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("Status: ON"), "{}", r.stdout);
    for h in ["h1", "h2", "h3"] {
        assert!(
            sim.call_lines(h).iter().any(|l| l.contains("getallvms")),
            "{h} not asked"
        );
    }

    // A vmid is never a plug across hosts (vmids are per host).
    let r = run(&sim, &[("action", "status"), ("plug", "1")]);
    assert_eq!(r.code, 1, "a vmid must not match across hosts");

    // List and list-status across hosts.
    let r = run(&sim, &[("action", "list-status")]);
    assert_eq!(r.code, 0);
    for (vm, host) in [("other", "h1"), ("node1", "h2"), ("stale", "h3")] {
        let line = r
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{vm},")))
            .unwrap_or_else(|| panic!("{vm} not listed:\n{}", r.stdout));
        assert!(line.contains(host), "{line}");
        assert!(line.ends_with(",ON"), "{line}");
    }

    // off: powered off on h2 and read back off on every host.
    let r = run(&sim, &[("action", "off"), ("plug", "node1")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("Success: Powered OFF"));
    assert_eq!(sim.vm_power("h2", "node1").as_deref(), Some("off"));
    let r = run(&sim, &[("action", "status"), ("plug", "node1")]);
    assert_eq!(r.code, 2, "OFF once every host answered");
    assert!(r.stdout.contains("Status: OFF"));

    // on: on the one host where it is registered.
    let r = run(&sim, &[("action", "on"), ("plug", "node1")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(sim.vm_power("h2", "node1").as_deref(), Some("on"));

    // h3 stops answering SSH; its VM keeps running there, its BMC reads on.
    sim.isolate("h3");
    let r = run(&sim, &[("action", "status"), ("plug", "node1")]);
    assert_eq!(r.code, 0, "ON where it runs, whatever h3 says");
    assert!(r.stdout.contains("Status: ON"));
    let r = run(&sim, &[("action", "status"), ("plug", "stale")]);
    assert_eq!(r.code, 1, "a silent host with its chassis on is never OFF");
    assert!(r.stderr.contains("h3"), "{}", r.stderr);
    assert!(!r.stdout.contains("Status: OFF"));

    // monitor: h3 does not answer over SSH but its BMC does: usable, with a warning.
    let r = run(&sim, &[("action", "monitor")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("its BMC answers"), "{}", r.stderr);

    // Without host_fence the fence of node1 fails: h3 could run a copy.
    let r = run(
        &sim,
        &[("action", "off"), ("plug", "node1"), ("power_timeout", "3")],
    );
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(!r.stdout.contains("Success"));
    assert!(r.stderr.contains("h3"), "{}", r.stderr);
    assert_eq!(
        bmc_off_events(&sim, "h3"),
        0,
        "host_fence=none never powers a host off"
    );
    assert_eq!(sim.vm_power("h2", "node1").as_deref(), Some("off"));

    // With host_fence=bmc: h3 powered off through its BMC, read back, logged; then success.
    let r = run(
        &sim,
        &[("action", "off"), ("plug", "stale"), ("host_fence", "bmc")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("Success"), "{}", r.stdout);
    assert_eq!(bmc_off_events(&sim, "h3"), 1);
    assert!(
        r.stderr.contains("host h3 did not answer over SSH")
            && r.stderr.contains("powered off through its BMC"),
        "{}",
        r.stderr
    );
    assert_eq!(sim.bmc_power("h3").trim(), "0", "chassis off");
    let reads: Vec<_> = sim
        .events()
        .into_iter()
        .filter(|e| e["host"] == "h3" && e["ev"] == "bmc_power_read")
        .collect();
    assert!(
        reads.last().is_some_and(|e| e["power"] == "off"),
        "read back off: {reads:?}"
    );

    // Later, without host_fence: h3 still silent, but its chassis reads off: OFF.
    let r = run(&sim, &[("action", "status"), ("plug", "stale")]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stdout.contains("Status: OFF"));
    assert!(r.stderr.contains("reads the chassis off"), "{}", r.stderr);

    // A reboot of the dead host's VM: off confirmed (chassis off), the on fails (registered
    // on no live host) and is logged; the reboot succeeds as in fence-agents.
    let r = run(
        &sim,
        &[
            ("action", "reboot"),
            ("plug", "stale"),
            ("host_fence", "bmc"),
            ("power_timeout", "3"),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("Success: Rebooted"));
    assert!(
        r.stderr.contains("Timed out waiting to power ON")
            && r.stderr
                .contains("not registered (powered off) on any host that answered"),
        "{}",
        r.stderr
    );
    assert_eq!(
        bmc_off_events(&sim, "h3"),
        1,
        "an off chassis is not powered off again"
    );
}

#[test]
fn crashed_host_with_unreachable_bmc_is_never_off() {
    let Some(mut sim) = Sim::start(
        &[HostSpec::new("h1", &["ds1"]), HostSpec::new("h2", &["ds2"])],
        &[VmSpec::new("node1", "h1", "ds1")],
        &Inventory::default(),
    ) else {
        return;
    };
    // h1 silent (its VM keeps running), its BMC gone.
    sim.isolate("h1");
    sim.stop_bmc("h1");
    for action in ["off", "reboot"] {
        let r = run(
            &sim,
            &[
                ("action", action),
                ("plug", "node1"),
                ("host_fence", "bmc"),
                ("power_timeout", "3"),
            ],
        );
        assert_eq!(r.code, 1, "{action}: {}", r.stdout);
        assert!(!r.stdout.contains("Success"), "{action}");
        assert!(
            r.stderr.contains("h1") && r.stderr.contains("BMC"),
            "{action}: {}",
            r.stderr
        );
    }
    let r = run(&sim, &[("action", "status"), ("plug", "node1")]);
    assert_eq!(r.code, 1);
    assert!(!r.stdout.contains("Status: OFF"));
    // The VM was never touched: it still runs on the silent host.
    assert_eq!(sim.vm_power("h1", "node1").as_deref(), Some("on"));
    // monitor: h1 answers neither over SSH nor through its BMC.
    let r = run(&sim, &[("action", "monitor")]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("h1"), "{}", r.stderr);
}

#[test]
fn crashed_host_fenced_through_its_bmc_then_its_vm_fenced_on_the_new_host() {
    let Some(sim) = Sim::start(
        &[HostSpec::new("h1", &["ds1"]), HostSpec::new("h2", &["ds1"])],
        &[VmSpec::new("node1", "h1", "ds1")],
        &Inventory::default(),
    ) else {
        return;
    };
    // A crash: no SSH, the BMC still reads on.
    sim.crash("h1");
    let r = run(
        &sim,
        &[
            ("action", "reboot"),
            ("plug", "node1"),
            ("host_fence", "bmc"),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("Success: Rebooted"));
    assert_eq!(sim.bmc_power("h1").trim(), "0");
    // The VM restarted on h2 (as the evacuation would): the same device fences it there.
    let reg = sim.ssh_vim("h2", "solo/registervm '[ds1] node1/node1.vmx'");
    assert!(reg.status.success(), "{reg:?}");
    let id = String::from_utf8_lossy(&reg.stdout).trim().to_owned();
    let on = sim.ssh_vim("h2", &format!("vmsvc/power.on {id}"));
    assert!(on.status.success(), "{on:?}");
    assert_eq!(sim.vm_power("h2", "node1").as_deref(), Some("on"));
    let r = run(
        &sim,
        &[("action", "off"), ("plug", "node1"), ("host_fence", "bmc")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(sim.vm_power("h2", "node1").as_deref(), Some("off"));
    // The old host stayed off (its chassis reads off, it was not powered on).
    assert_eq!(sim.bmc_power("h1").trim(), "0");
    assert!(sim.events_of("bmc_power_on").is_empty());
}

#[test]
fn running_on_two_hosts_and_registered_on_two_hosts() {
    let Some(sim) = Sim::start(
        &[HostSpec::new("h1", &["ds1"]), HostSpec::new("h2", &["ds2"])],
        &[
            VmSpec::new("dup", "h1", "ds1"),
            VmSpec::new("dup", "h2", "ds2"),
        ],
        &Inventory::default(),
    ) else {
        return;
    };
    let r = run(&sim, &[("action", "status"), ("plug", "dup")]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("Status: ON"));
    assert!(
        r.stderr.contains("ERROR") && r.stderr.contains("h1, h2"),
        "{}",
        r.stderr
    );
    let r = run(&sim, &[("action", "off"), ("plug", "dup")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(sim.running_on("dup"), Vec::<String>::new());
    // Registered (off) on two live hosts: `on` names both and powers on neither.
    let r = run(&sim, &[("action", "on"), ("plug", "dup")]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("h1, h2"), "{}", r.stderr);
    assert_eq!(sim.running_on("dup"), Vec::<String>::new());
    // list: one line, both hosts in its alias.
    let r = run(&sim, &[("action", "list")]);
    assert_eq!(r.code, 0);
    let lines: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("dup,")).collect();
    assert_eq!(lines.len(), 1, "{}", r.stdout);
    assert!(
        lines[0].contains("h1:") && lines[0].contains("h2:"),
        "{}",
        lines[0]
    );
}

#[test]
fn hosts_option_without_inventory_and_validation() {
    let Some(sim) = Sim::start(
        &[HostSpec::new("h1", &["ds1"]), HostSpec::new("h2", &["ds2"])],
        &[VmSpec::new("node1", "h2", "ds2")],
        &Inventory::default(),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let kh = dir.path().join("known_hosts");
    let mut lines = Vec::new();
    for h in &sim.hosts {
        lines.extend(h.esxi.known_hosts_lines());
    }
    std::fs::write(&kh, lines.join("\n") + "\n").expect("known_hosts");
    let h1 = sim.host("h1");
    let hosts = format!(
        "h1=127.0.0.1:{},h2=127.0.0.1:{}",
        h1.esxi.port(),
        sim.host("h2").esxi.port()
    );
    let base = format!(
        "hosts={hosts}\nusername={}\nidentity_file={}\nknown_hosts={}\nplug=node1\n",
        h1.esxi.user(),
        h1.esxi.key_path().display(),
        kh.display()
    );
    let r = agentcmd::stdin(&bin(), &format!("{base}action=status\n"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("Status: ON"));
    let r = agentcmd::stdin(&bin(), &format!("{base}action=off\n"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(sim.vm_power("h2", "node1").as_deref(), Some("off"));
    // host_fence=bmc needs the inventory's BMCs.
    let r = agentcmd::stdin(&bin(), &format!("{base}action=off\nhost_fence=bmc\n"));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("host_fence=bmc needs inventory"),
        "{}",
        r.stderr
    );

    // validate-all: the inventory alone is enough (no ip, username or password).
    let r = agentcmd::stdin(
        &bin(),
        &format!(
            "action=validate-all\nplug=node1\ninventory={}\n",
            sim.config.display()
        ),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Neither ip nor inventory nor hosts: today's messages.
    let r = agentcmd::stdin(&bin(), "action=validate-all\nplug=x\n");
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("You have to enter fence address"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("You have to set login name"));
    // Exclusive options.
    let r = agentcmd::stdin(
        &bin(),
        &format!(
            "action=validate-all\ninventory={}\nip=127.0.0.1\n",
            sim.config.display()
        ),
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("leave ip out"), "{}", r.stderr);
    // An inventory with errors is named with its line.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[host]]\nname = \"x\"\n").expect("write");
    let r = agentcmd::stdin(
        &bin(),
        &format!("action=validate-all\ninventory={}\n", bad.display()),
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("bad.toml"), "{}", r.stderr);

    // Metadata: neither ip nor username required, the new options described.
    let out = Command::new(bin())
        .args(["-o", "metadata"])
        .output()
        .expect("metadata");
    let xml = String::from_utf8_lossy(&out.stdout);
    for p in ["ip", "username"] {
        assert!(
            xml.contains(&format!(
                "<parameter name=\"{p}\" unique=\"0\" required=\"0\""
            )),
            "{p}"
        );
    }
    for p in ["inventory", "hosts", "host_fence"] {
        assert!(xml.contains(&format!("<parameter name=\"{p}\"")), "{p}");
    }
}
