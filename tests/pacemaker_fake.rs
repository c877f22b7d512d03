//! fence_fake fenced by a real Pacemaker: `pcs stonith create` (static list and dynamic-list),
//! `stonith_admin --reboot`, `pcs stonith fence --off`, a device whose off is ignored, and
//! `stonith_admin --validate`. Asserts on the fake target's state and on what the agent received.

use std::fs;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::util::pacemaker::{self, Cluster};

/// Returns false (after a loud skip) when the Pacemaker peer is missing outside CI.
pub fn cluster_available() -> bool {
    match pacemaker::unavailable() {
        None => true,
        Some(why) => {
            assert!(
                !pacemaker::peers_required(),
                "pacemaker peer missing: {why}"
            );
            println!("skipped: {why}");
            false
        }
    }
}

/// Asserts a command succeeded, showing its output otherwise.
pub fn ok(what: &str, out: &Output) {
    assert!(out.status.success(), "{}", pacemaker::describe(what, out));
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn log_of(state: &Path) -> String {
    fs::read_to_string(format!("{}.log", state.display())).unwrap_or_default()
}

#[test]
fn pacemaker_fences_fence_fake() {
    if !cluster_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s1 = dir.path().join("static.state");
    let s2 = dir.path().join("dynamic.state");
    let s3 = dir.path().join("broken.state");
    fs::write(&s1, "plug target1 on\n").unwrap();
    fs::write(&s2, "plug target2 on\nplug target3 on alias3\n").unwrap();
    fs::write(&s3, "plug target4 on\nfault ignore-off\n").unwrap();
    let arg = |p: &Path| format!("state_file={}", p.display());

    let cluster = Cluster::up(&pacemaker::agents_dir().unwrap()).unwrap();

    // Metadata through pcs: every non-deprecated parameter is described.
    let out = cluster.pcs(&["stonith", "describe", "fence_fake"]);
    ok("pcs stonith describe", &out);
    let text = stdout(&out);
    for p in [
        "state_file",
        "plug",
        "method",
        "power_timeout",
        "delay",
        "retry_on",
    ] {
        assert!(text.contains(p), "pcs stonith describe lacks {p}: {text}");
    }
    // pcs refuses an option the metadata does not declare.
    let out = cluster.pcs(&["stonith", "create", "bad", "fence_fake", "bogus_option=1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid stonith option 'bogus_option'"));

    // stonith_admin --validate runs validate-all locally with a dummy target.
    let out =
        cluster.stonith_admin(&["--validate", "--agent", "fence_fake", "--option", &arg(&s1)]);
    ok("stonith_admin --validate", &out);

    // Static list device.
    ok(
        "pcs stonith create",
        &cluster.pcs(&[
            "stonith",
            "create",
            "fake_static",
            "fence_fake",
            "pcmk_host_list=target1",
            "stonith_status_sleep=0.1",
            &arg(&s1),
        ]),
    );
    cluster
        .wait_running("fake_static", Duration::from_secs(60))
        .unwrap();
    assert!(
        log_of(&s1).contains("action=monitor"),
        "start did not run monitor: {}",
        log_of(&s1)
    );
    let out = cluster.stonith_admin(&["--reboot", "target1"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        pacemaker::describe("stonith_admin --reboot target1", &out)
    );
    let log = log_of(&s1);
    assert!(log.contains("action=reboot plug=target1"), "{log}");
    let off = log.find("set target1 off").expect("reboot sent off");
    let on = log.rfind("set target1 on").expect("reboot sent on");
    assert!(off < on, "{log}");
    assert!(fs::read_to_string(&s1).unwrap().contains("plug target1 on"));

    // pcs stonith fence --off: the target stays off.
    let out = cluster.pcs(&["stonith", "fence", "target1", "--off"]);
    ok("pcs stonith fence --off", &out);
    assert!(fs::read_to_string(&s1)
        .unwrap()
        .contains("plug target1 off"));
    assert!(log_of(&s1).contains("action=off plug=target1"));

    // Dynamic list device: Pacemaker asks `list`, then fences the alias's plug.
    ok(
        "pcs stonith create",
        &cluster.pcs(&[
            "stonith",
            "create",
            "fake_dynamic",
            "fence_fake",
            "pcmk_host_check=dynamic-list",
            "stonith_status_sleep=0.1",
            &arg(&s2),
        ]),
    );
    cluster
        .wait_running("fake_dynamic", Duration::from_secs(60))
        .unwrap();
    let out = cluster.stonith_admin(&["--list", "target2"]);
    assert!(
        stdout(&out).contains("fake_dynamic"),
        "{}",
        pacemaker::describe("stonith_admin --list", &out)
    );
    assert!(!stdout(&out).contains("fake_static"));
    let out = cluster.stonith_admin(&["--reboot", "target2"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        pacemaker::describe("stonith_admin --reboot target2", &out)
    );
    let log = log_of(&s2);
    assert!(log.contains("action=list"), "{log}");
    assert!(
        log.contains("set target2 off") && log.contains("set target2 on"),
        "{log}"
    );
    assert!(!log_of(&s1).contains("target2"));

    // A device whose off is ignored: the fence fails, no false success.
    ok(
        "pcs stonith create",
        &cluster.pcs(&[
            "stonith",
            "create",
            "fake_broken",
            "fence_fake",
            "pcmk_host_list=target4",
            "power_timeout=1",
            "stonith_status_sleep=0.1",
            &arg(&s3),
        ]),
    );
    cluster
        .wait_running("fake_broken", Duration::from_secs(60))
        .unwrap();
    let out = cluster.stonith_admin(&["--reboot", "target4", "--timeout", "30"]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "an ignored power-off was reported as fenced"
    );
    assert!(fs::read_to_string(&s3).unwrap().contains("plug target4 on"));
    let out = cluster.pcs(&["stonith", "fence", "target4"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unable to fence 'target4'"),
        "{}",
        pacemaker::describe("pcs stonith fence", &out)
    );

    for id in ["fake_static", "fake_dynamic", "fake_broken"] {
        cluster.delete_device(id).unwrap();
    }
    cluster.shutdown().unwrap();
}
