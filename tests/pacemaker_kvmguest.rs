//! fence_kvmguest fenced by a real Pacemaker against simulated KVM hosts: `pcs stonith create`
//! with `pcmk_host_check=dynamic-list` (the agent's `list` prints `guest-cfname,guest-name`),
//! `stonith_admin --reboot cfguest11` after the guest migrated to a host the map does not
//! name: destroyed and started again where it really runs. A device whose destroy is ignored
//! makes the fence fail (no false success).
//!
//! Pacemaker runs agents with an empty environment (no HOME), so `known_hosts` and
//! `identity_file` are passed explicitly; the map is mode 0600.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::kvmsim::KvmSim;
use crate::pacemaker_fake::{cluster_available, ok};
use crate::util::pacemaker::{self, Cluster};

/// Lifecycle events of `guest` on `host` (`Stopped Destroyed`, `Started Booted`, ...).
fn events(sim: &KvmSim, host: &str, guest: &str) -> Vec<String> {
    let needle = format!("for domain '{guest}': ");
    sim.events(host)
        .lines()
        .filter_map(|l| l.split_once(&needle).map(|x| x.1.to_owned()))
        .collect()
}

#[test]
fn pacemaker_fences_kvm_guest_where_it_runs() {
    if !cluster_available() {
        return;
    }
    let Some(mut sim) = KvmSim::new("pcmk") else {
        return;
    };
    sim.start_hosts(&[
        ("cfhost1", vec![("guest11", true), ("guest12", true)]),
        ("cfhost2", vec![("guest21", true)]),
        ("cfhost3", vec![]),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("kvmguests.conf");
    std::fs::write(
        &conf,
        KvmSim::kvmguests_conf(&[
            ("guest11", "cfhost1"),
            ("guest12", "cfhost1"),
            ("guest21", "cfhost2"),
        ]),
    )
    .unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The map is stale: guest11 now runs on cfhost3, which the map does not name for it.
    sim.migrate("cfhost1", "cfhost3", "guest11", false);

    let params = [
        format!("guests_conf={}", conf.display()),
        format!("hosts={}", sim.hosts_option()),
        format!("username={}", sim.user()),
        format!("identity_file={}", sim.client_key().display()),
        format!("known_hosts={}", sim.known_hosts().display()),
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        v.extend(params.iter().cloned());
        v
    };

    let cluster = Cluster::up(&pacemaker::agents_dir().unwrap()).unwrap();

    // pcs knows the agent's own parameters.
    let out = cluster.pcs(&["stonith", "describe", "fence_kvmguest"]);
    ok("pcs stonith describe fence_kvmguest", &out);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for p in [
        "guests_conf",
        "hosts",
        "libvirt_uri",
        "relax_conf_permissions",
    ] {
        assert!(text.contains(p), "pcs stonith describe lacks {p}: {text}");
    }
    // stonith_admin --validate runs validate-all.
    let mut v = vec![
        "--validate".to_owned(),
        "--agent".to_owned(),
        "fence_kvmguest".to_owned(),
    ];
    for p in &params {
        v.push("--option".to_owned());
        v.push(p.clone());
    }
    let refs: Vec<&str> = v.iter().map(String::as_str).collect();
    ok("stonith_admin --validate", &cluster.stonith_admin(&refs));

    let args = with(&[
        "stonith",
        "create",
        "kvm_guests",
        "fence_kvmguest",
        "pcmk_host_check=dynamic-list",
        "stonith_status_sleep=0.2",
    ]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ok("pcs stonith create kvm_guests", &cluster.pcs(&refs));
    cluster
        .wait_running("kvm_guests", Duration::from_secs(60))
        .unwrap();
    // The start ran monitor: every host answered `virsh version`.
    for h in ["cfhost1", "cfhost2", "cfhost3"] {
        assert!(
            sim.calls(h).contains("virsh version"),
            "{h}: {}",
            sim.calls(h)
        );
    }

    // dynamic-list: the device claims the guest by its cfname (from `list`, which prints the
    // map and asks no host).
    let out = cluster.stonith_admin(&["--list", "cfguest11"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("kvm_guests"),
        "{}",
        pacemaker::describe("stonith_admin --list cfguest11", &out)
    );

    let before3 = events(&sim, "cfhost3", "guest11").len();
    let before1 = sim.events("cfhost1").len();
    let before2 = sim.events("cfhost2").len();
    let out = cluster.stonith_admin(&["--reboot", "cfguest11", "--timeout", "120"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        pacemaker::describe("stonith_admin --reboot cfguest11", &out)
    );
    // Off then on, both on cfhost3 where it runs; nothing done to it anywhere else.
    let ev = events(&sim, "cfhost3", "guest11");
    assert_eq!(
        ev.get(before3..).unwrap_or_default(),
        ["Stopped Destroyed", "Started Booted"],
        "{ev:?}"
    );
    assert_eq!(
        sim.domstate("cfhost3", "guest11").as_deref(),
        Some("running")
    );
    for (h, before) in [("cfhost1", before1), ("cfhost2", before2)] {
        assert!(
            !sim.calls(h).contains("destroy guest11"),
            "{}",
            sim.calls(h)
        );
        assert!(!sim.calls(h).contains("start guest11"), "{}", sim.calls(h));
        let ev = sim.events(h);
        assert_eq!(ev.get(before..).unwrap_or_default(), "", "{h}: {ev}");
    }
    let out = cluster.stonith_admin(&["--history", "cfguest11"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("successful"),
        "{}",
        pacemaker::describe("stonith_admin --history", &out)
    );
    cluster.delete_device("kvm_guests").unwrap();

    // A host whose destroy is ignored: the fence fails, the guest keeps running.
    sim.fault("cfhost1", "noop", None, &[("match", "destroy guest12")]);
    let args = with(&[
        "stonith",
        "create",
        "kvm_broken",
        "fence_kvmguest",
        "pcmk_host_check=dynamic-list",
        "power_timeout=2",
        "stonith_status_sleep=0.2",
    ]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ok("pcs stonith create kvm_broken", &cluster.pcs(&refs));
    cluster
        .wait_running("kvm_broken", Duration::from_secs(60))
        .unwrap();
    let out = cluster.stonith_admin(&["--reboot", "cfguest12", "--timeout", "60"]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "an ignored destroy was reported as fenced: {}",
        pacemaker::describe("stonith_admin --reboot cfguest12", &out)
    );
    assert_eq!(
        sim.domstate("cfhost1", "guest12").as_deref(),
        Some("running")
    );
    assert!(sim.calls("cfhost1").contains("destroy guest12"));
    sim.clear_faults("cfhost1");
    cluster.delete_device("kvm_broken").unwrap();
    cluster.shutdown().unwrap();
}
