//! `ocf:fencekit:vm-evacuate` against real peers (simulated ESXi hosts + ipmi_sim BMCs), run
//! the way Pacemaker runs it: through an installed-layout symlink
//! `…/resource.d/fencekit/vm-evacuate` to the built binary, with `OCF_RESKEY_*` variables.
//!
//! - `ocf_tester_passes`: resource-agents' `ocf-tester` with a real inventory;
//! - `ocf_agent_rescues_and_stops_cleanly`: validate-all (also at `OCF_CHECK_LEVEL=10`: the
//!   hosts must answer), start → detection runs as a daemon → a crashed host is fenced (BMC
//!   read back off first) and its VMs run elsewhere; monitor 0 throughout; stop → 7;
//! - `ocf_stop_mid_evacuation_finishes_the_step`: a stop during a registration that stalls
//!   waits for that step, leaves no intent without its outcome; the next start finishes the
//!   evacuation, each VM registered and started once.
//!
//! Run: `FENCE_REQUIRE_SIMULATORS=1 cargo test --locked --test integration ocf::
//! -- --test-threads=2` (as root).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fencekit::evacuate::journal::{open_intents, Journal};
use fencekit::evacuate::ocf;

use crate::evacuate::{hosts, moved_once, nothing_before_fence, vm};
use crate::sim::evac::{Inventory, Sim};

/// The agent as Pacemaker finds it: `<dir>/resource.d/fencekit/vm-evacuate` → the binary.
pub(crate) fn installed_agent(dir: &Path) -> PathBuf {
    // scripts/check-packages.sh points this at the packaged agent
    // (/usr/lib/ocf/resource.d/fencekit/vm-evacuate), so ocf-tester runs the installed files.
    if let Some(p) = std::env::var_os("FENCEKIT_INSTALLED_OCF_AGENT") {
        return PathBuf::from(p);
    }
    let bin = crate::sim::evac::binary().expect("vm-evacuate is built with the tests");
    let d = dir.join("ocf/resource.d/fencekit");
    std::fs::create_dir_all(&d).expect("agent dir");
    let link = d.join("vm-evacuate");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(bin, &link).expect("agent symlink");
    link
}

/// Runs one action of the agent for `sim` (its inventory and state directory).
fn action(sim: &Sim, agent: &Path, act: &str, extra: &[(&str, &str)]) -> Output {
    let mut c = Command::new(agent);
    c.arg(act)
        .env("OCF_ROOT", "/usr/lib/ocf")
        .env("OCF_RESOURCE_INSTANCE", "evac")
        .env("OCF_RESKEY_config", &sim.config)
        .env("OCF_RESKEY_state_dir", &sim.state_dir)
        .env("OCF_RESKEY_CRM_meta_timeout", "60000")
        .stdin(Stdio::null());
    for (k, v) in extra {
        c.env(k, v);
    }
    let out = c.output().expect("run the agent");
    eprintln!(
        "agent {act}: {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn rc(o: &Output) -> Option<i32> {
    o.status.code()
}

/// The daemon's log (for failure messages).
pub(crate) fn daemon_log(state_dir: &Path) -> String {
    std::fs::read_to_string(state_dir.join(ocf::LOG_FILE)).unwrap_or_default()
}

/// Waits until every VM in `vms` runs on exactly one host other than `from`.
pub(crate) fn wait_moved(sim: &Sim, vms: &[&str], from: &str, limit: Duration) {
    let t0 = Instant::now();
    loop {
        let done = vms.iter().all(|v| {
            let on = sim.running_on(v);
            on.len() == 1 && on.first().is_some_and(|h| h != from)
        });
        if done {
            return;
        }
        assert!(
            t0.elapsed() < limit,
            "VMs {vms:?} not running elsewhere within {limit:?}\nevents:\n{}\ndaemon log:\n{}",
            sim.events_text(),
            daemon_log(&sim.state_dir)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every journal intent has its outcome.
pub(crate) fn journal_closed(state_dir: &Path, host: &str) {
    let recs = Journal::new(&state_dir.join("journal.jsonl")).since_return(host);
    assert!(!recs.is_empty(), "empty journal");
    let open = open_intents(&recs);
    assert!(open.is_empty(), "half-recorded steps: {open:#?}");
}

#[test]
fn ocf_tester_passes() {
    let Some(tester) = ["/usr/sbin/ocf-tester", "/usr/bin/ocf-tester"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    else {
        crate::sim::skip_or_fail("ocf-tester (resource-agents) not installed");
        return;
    };
    let Some(sim) = Sim::start(
        &hosts(3),
        &[vm("t1", "esx1"), vm("t2", "esx2")],
        &Inventory::default(),
    ) else {
        return;
    };
    let agent = installed_agent(&sim.dir);
    let cfg = format!("config={}", sim.config.display());
    let sd = format!("state_dir={}", sim.state_dir.display());
    let out = Command::new(tester)
        .args(["-n", "evac", "-o", &cfg, "-o", &sd])
        .arg(&agent)
        .env("HA_RSCTMP", &sim.dir)
        .stdin(Stdio::null())
        .output()
        .expect("run ocf-tester");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "ocf-tester failed:\n{text}\ndaemon log:\n{}",
        daemon_log(&sim.state_dir)
    );
    assert!(text.contains("passed all tests"), "{text}");
    // Detection really ran (the daemon probed the hosts) and nothing moved.
    assert!(
        !sim.calls("esx1").is_empty(),
        "no probe reached esx1:\n{}",
        daemon_log(&sim.state_dir)
    );
    assert!(
        sim.mutating_calls().is_empty(),
        "{:?}",
        sim.mutating_calls()
    );
    // Stopped at the end: no daemon left.
    assert_eq!(ocf::running_daemon(&sim.state_dir), None);
}

#[test]
fn ocf_agent_rescues_and_stops_cleanly() {
    let Some(sim) = Sim::start(
        &hosts(3),
        &[vm("r1", "esx1"), vm("r2", "esx1"), vm("o1", "esx2")],
        &Inventory::default(),
    ) else {
        return;
    };
    let agent = installed_agent(&sim.dir);
    assert_eq!(rc(&action(&sim, &agent, "validate-all", &[])), Some(0));
    // A probe of a resource never started: 7, and no network.
    let probe = action(
        &sim,
        &agent,
        "monitor",
        &[("OCF_RESKEY_CRM_meta_interval", "0")],
    );
    assert_eq!(rc(&probe), Some(7));
    assert!(sim.calls("esx1").is_empty(), "a probe touched a host");
    // OCF_CHECK_LEVEL=10: every host and BMC must answer.
    let deep = [("OCF_CHECK_LEVEL", "10")];
    assert_eq!(rc(&action(&sim, &agent, "validate-all", &deep)), Some(0));
    assert!(!sim.calls("esx1").is_empty(), "level 10 reached the hosts");
    assert_eq!(rc(&action(&sim, &agent, "start", &[])), Some(0));
    assert_eq!(
        rc(&action(&sim, &agent, "start", &[])),
        Some(0),
        "idempotent"
    );
    let pid = ocf::running_daemon(&sim.state_dir).expect("daemon");
    // Wait for the first snapshots, then crash esx1.
    let t0 = Instant::now();
    while sim.calls("esx1").is_empty() || sim.calls("esx3").is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(60), "no probe");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    sim.crash("esx1");
    wait_moved(&sim, &["r1", "r2"], "esx1", Duration::from_secs(120));
    moved_once(&sim, &["r1", "r2"], "esx1");
    nothing_before_fence(&sim, "esx1");
    assert_eq!(sim.running_on("o1"), ["esx2"]);
    let v = action(&sim, &agent, "validate-all", &deep);
    assert_eq!(rc(&v), Some(1), "esx1 is down");
    let why = String::from_utf8_lossy(&v.stderr);
    assert!(why.contains("ocf-exit-reason:esx1: "), "{why}");
    let mon = action(&sim, &agent, "monitor", &[]);
    assert_eq!(rc(&mon), Some(0));
    assert_eq!(
        ocf::running_daemon(&sim.state_dir),
        Some(pid),
        "same daemon"
    );
    // The report was delivered.
    let t0 = Instant::now();
    while !sim.state_dir.join("reports/esx1.json").exists() {
        assert!(t0.elapsed() < Duration::from_secs(60), "no report");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(rc(&action(&sim, &agent, "stop", &[])), Some(0));
    assert_eq!(ocf::running_daemon(&sim.state_dir), None);
    assert_eq!(rc(&action(&sim, &agent, "monitor", &[])), Some(7));
    assert_eq!(
        rc(&action(&sim, &agent, "stop", &[])),
        Some(0),
        "idempotent"
    );
    journal_closed(&sim.state_dir, "esx1");
    // The command line keeps working with OCF variables set (status is a command here).
    let st = sim
        .command(&["status"])
        .env("OCF_ROOT", "/usr/lib/ocf")
        .env("OCF_RESOURCE_INSTANCE", "evac")
        .output()
        .expect("vm-evacuate status");
    let text = String::from_utf8_lossy(&st.stdout);
    assert_eq!(st.status.code(), Some(0), "{text}");
    assert!(text.contains("evacuation of esx1 (rescue): ok"), "{text}");
    let log = daemon_log(&sim.state_dir);
    assert!(log.contains("detection started"), "{log}");
    assert!(log.contains("detection stopped"), "{log}");
}

#[test]
fn ocf_stop_mid_evacuation_finishes_the_step() {
    let inv = Inventory::default().policy("max_parallel", "1");
    let Some(sim) = Sim::start(
        &hosts(2),
        &[vm("s1", "esx1"), vm("s2", "esx1"), vm("s3", "esx1")],
        &inv,
    ) else {
        return;
    };
    let agent = installed_agent(&sim.dir);
    assert_eq!(rc(&action(&sim, &agent, "start", &[])), Some(0));
    let t0 = Instant::now();
    while sim.calls("esx1").is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(60), "no probe");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    // The first registration on esx2 acts, then answers only 4 s later.
    sim.stall_after("esx2", "solo/registervm", 4, 1);
    sim.crash("esx1");
    sim.wait_event(Duration::from_secs(120), |e| {
        e["ev"] == "stall" && e["cmd"] == "solo/registervm"
    });
    let stop = action(&sim, &agent, "stop", &[]);
    assert_eq!(rc(&stop), Some(0));
    assert_eq!(ocf::running_daemon(&sim.state_dir), None);
    // The step under way was finished and recorded; nothing else started.
    journal_closed(&sim.state_dir, "esx1");
    assert_eq!(sim.events_of("register").len(), 1, "{}", sim.events_text());
    assert!(
        sim.events_of("power_on").is_empty(),
        "{}",
        sim.events_text()
    );
    let ev = std::fs::read_to_string(sim.state_dir.join("evacuations/esx1.json")).unwrap();
    assert!(ev.contains("\"finished_ms\": null"), "left open: {ev}");
    // Started again: it finishes, nothing twice.
    assert_eq!(rc(&action(&sim, &agent, "start", &[])), Some(0));
    wait_moved(&sim, &["s1", "s2", "s3"], "esx1", Duration::from_secs(120));
    moved_once(&sim, &["s1", "s2", "s3"], "esx1");
    nothing_before_fence(&sim, "esx1");
    assert_eq!(rc(&action(&sim, &agent, "stop", &[])), Some(0));
    journal_closed(&sim.state_dir, "esx1");
}

/// `meta-data` as user `nobody` with no configuration: valid against the installed
/// `ra-api-1.dtd` (xmllint run in /usr/share/resource-agents, as ocf-tester does) and
/// against pcs's OCF 1.0 schema and resource-agents' metadata.rng when installed.
#[test]
fn ocf_meta_data_is_valid_as_nobody() {
    let dtd_dir = Path::new("/usr/share/resource-agents");
    if !dtd_dir.join("ra-api-1.dtd").exists() || !Path::new("/usr/bin/xmllint").exists() {
        crate::sim::skip_or_fail("resource-agents' ra-api-1.dtd or xmllint not installed");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("fk-ocf-md")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let agent = installed_agent(dir.path());
    let md = Command::new("su")
        .args(["nobody", "-s", "/bin/sh", "-c"])
        .arg(format!("{} meta-data", agent.display()))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .output()
        .expect("su nobody");
    assert_eq!(
        md.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&md.stderr)
    );
    assert!(
        md.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&md.stderr)
    );
    let file = dir.path().join("md.xml");
    std::fs::write(&file, &md.stdout).expect("write meta-data");
    let mut checks: Vec<Vec<String>> = vec![vec!["--valid".into()]];
    for rng in [
        "/usr/share/pcs/data/ocf-1.0.rng",
        "/usr/share/resource-agents/metadata.rng",
    ] {
        if Path::new(rng).exists() {
            checks.push(vec!["--relaxng".into(), rng.into()]);
        }
    }
    for c in checks {
        let out = Command::new("xmllint")
            .arg("--noout")
            .args(&c)
            .arg("-")
            .current_dir(dtd_dir)
            .stdin(std::fs::File::open(&file).expect("open"))
            .output()
            .expect("xmllint");
        assert_eq!(
            out.status.code(),
            Some(0),
            "xmllint {c:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
