//! The README's demo (`bash scripts/demo.sh` runs it with `--ignored --nocapture`): simulated
//! devices on loopback, a real single-node Pacemaker, one fence through every agent, told in
//! plain words. Not part of the test run (it asserts, but its point is the narration).

use std::fs;
use std::time::Duration;

use crate::pacemaker_fake::ok;
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

    say("stopping the cluster and everything the demo started");
    cluster.shutdown().unwrap();
    say("done: every fence above was confirmed by reading the target back as off");
}
