//! Smoke test of the real single-node Pacemaker harness (`scripts/pcmk.sh`,
//! `tests/support/util/pacemaker.rs`): a device of Debian's `fence_dummy` fences a made-up target.

use crate::util::pacemaker::{self, Cluster};
use std::time::Duration;

#[test]
fn pacemaker_fences_target_with_fence_dummy() {
    let mut why = pacemaker::unavailable();
    if why.is_none() && pacemaker::find_binary("fence_dummy").is_none() {
        why = Some("fence_dummy missing (package fence-agents; run scripts/deps.sh)".into());
    }
    if let Some(why) = why {
        assert!(
            !pacemaker::peers_required(),
            "pacemaker peer missing: {why}"
        );
        println!("skipped: {why}");
        return;
    }

    let status_dir = tempfile::tempdir().unwrap();
    let status_file = status_dir.path().join("fence_dummy.status");
    let status_arg = format!("status_file={}", status_file.display());

    let agents = pacemaker::agents_dir().unwrap();
    let cluster = Cluster::up(&agents).unwrap();
    assert!(!cluster.node().is_empty());
    assert_ne!(
        cluster.node(),
        "target1",
        "the node itself must never be fenced"
    );

    let out = cluster.pcs(&[
        "stonith",
        "create",
        "smoke_dummy",
        "fence_dummy",
        "pcmk_host_list=target1",
        &status_arg,
    ]);
    assert!(
        out.status.success(),
        "{}",
        pacemaker::describe("pcs stonith create", &out)
    );
    cluster
        .wait_running("smoke_dummy", Duration::from_secs(60))
        .unwrap();

    let out = cluster.stonith_admin(&["--list-registered"]);
    assert!(
        out.status.success(),
        "{}",
        pacemaker::describe("stonith_admin -L", &out)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("smoke_dummy"));

    let log_mark = cluster.log_offset();
    let out = cluster.stonith_admin(&["--reboot", "target1"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        pacemaker::describe("stonith_admin --reboot target1", &out)
    );
    let out = cluster.stonith_admin(&["--history", "target1"]);
    let history = String::from_utf8_lossy(&out.stdout);
    assert!(
        history.contains("reboot of target1 successful"),
        "history: {history}"
    );
    let log = cluster.log_since(log_mark);
    assert!(
        log.contains("pacemaker-fenced"),
        "no fencer lines in the log since the reboot"
    );

    // A target no device can fence fails (no made-up success).
    let out = cluster.stonith_admin(&["--reboot", "target2", "--timeout", "10"]);
    assert_ne!(out.status.code(), Some(0), "target2 must not be fenceable");

    cluster.delete_device("smoke_dummy").unwrap();
    let out = cluster.stonith_admin(&["--list-registered"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("smoke_dummy"));

    // A device whose start (monitor) fails is reported as such, not as running:
    // fence_dummy fails on an empty status file.
    let empty = status_dir.path().join("empty.status");
    std::fs::write(&empty, "").unwrap();
    let empty_arg = format!("status_file={}", empty.display());
    let out = cluster.pcs(&[
        "stonith",
        "create",
        "smoke_dummy",
        "fence_dummy",
        "pcmk_host_list=target1",
        &empty_arg,
    ]);
    assert!(
        out.status.success(),
        "{}",
        pacemaker::describe("pcs stonith create", &out)
    );
    let err = cluster
        .wait_running("smoke_dummy", Duration::from_secs(60))
        .unwrap_err();
    assert!(err.contains("its start failed"), "{err}");
    cluster.delete_device("smoke_dummy").unwrap();

    // The same id again, healthy: the old failure must not linger.
    let out = cluster.pcs(&[
        "stonith",
        "create",
        "smoke_dummy",
        "fence_dummy",
        "pcmk_host_list=target1",
        &status_arg,
    ]);
    assert!(
        out.status.success(),
        "{}",
        pacemaker::describe("pcs stonith create", &out)
    );
    cluster
        .wait_running("smoke_dummy", Duration::from_secs(60))
        .unwrap();
    assert_eq!(
        cluster.resource_role("smoke_dummy").as_deref(),
        Some("Started")
    );
    cluster.delete_device("smoke_dummy").unwrap();

    cluster.shutdown().unwrap();
}
