//! fence_kvmguest with `host_fence=bmc`: a KVM host (tests/support/sim_kvm) that stops answering SSH
//! while its guest keeps running, with a simulated BMC (tests/support/sim_ipmi) whose chassis
//! power-off stops that host (sshd, libvirtd and its guests), its address in an `inventory`.
//!
//! Without host_fence the guest's off fails (exit 1) and the host is not powered off; with
//! host_fence=bmc the host is powered off through its BMC, read back off, logged, and the off
//! succeeds; afterwards a status reads the chassis off and answers OFF. `monitor` passes
//! (with a warning) while the silent host's BMC answers.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::agentcmd::{Mode, Run};
use crate::ipmisim::Bmc;
use crate::kvmguest::{opt, run_opts, write_conf, OwnedOpt};
use crate::kvmsim::KvmSim;

fn show(r: &Run) -> String {
    format!(
        "code={} elapsed={:?}\n--- stdout\n{}--- stderr\n{}",
        r.code, r.elapsed, r.stdout, r.stderr
    )
}

#[test]
fn silent_kvm_host_is_powered_off_through_its_bmc() {
    let Some(mut sim) = KvmSim::new("hostfence") else {
        return;
    };
    sim.start_hosts(&[
        ("cfhost1", vec![("g1", true)]),
        ("cfhost2", vec![("g2", true)]),
    ]);
    let Some(bmc) = Bmc::start(&[]) else {
        return;
    };
    // The BMC's power-off stops cfhost1 (its guests die with it).
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/sim_kvm/kvmsim.sh");
    let hook = bmc.dir.path().join("hook");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nif [ \"$1\" = set ] && [ \"$2\" = 0 ]; then\n  exec {} stop {} cfhost1\nfi\nexit 0\n",
            script.display(),
            sim.root().display()
        ),
    )
    .expect("write hook");
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let dir = tempfile::tempdir().expect("tempdir");
    let conf = write_conf(
        dir.path(),
        "kvmguests.conf",
        &KvmSim::kvmguests_conf(&[("g1", "cfhost1"), ("g2", "cfhost2")]),
        0o600,
    );
    let h1 = sim.host("cfhost1");
    let inv = write_conf(
        dir.path(),
        "evacuate.toml",
        &format!(
            "[ssh]\nusername = \"{}\"\n\n[bmc]\nusername = \"admin\"\npassword = \"pass\"\n\
             cipher = 3\nprivlvl = \"administrator\"\nlogin_timeout_s = 2\n\n\
             [[host]]\nname = \"cfhost1\"\naddress = \"{}\"\nport = {}\n\
             bmc_address = \"127.0.0.1\"\nbmc_port = {}\n",
            sim.user(),
            h1.ip,
            h1.port,
            bmc.port
        ),
        0o600,
    );
    let base: Vec<OwnedOpt> = vec![
        opt("guests_conf", None, Some(&conf.display().to_string())),
        opt("hosts", None, Some(&sim.hosts_option())),
        opt("username", Some('l'), Some(&sim.user())),
        opt(
            "known_hosts",
            None,
            Some(&sim.known_hosts().display().to_string()),
        ),
        opt(
            "identity_file",
            Some('k'),
            Some(&sim.client_key().display().to_string()),
        ),
        opt("inventory", None, Some(&inv.display().to_string())),
        opt("stonith_status_sleep", None, Some("0.2")),
        opt("power_timeout", None, Some("3")),
    ];
    let run = |action: &str, plug: &str, extra: &[OwnedOpt]| -> Run {
        let mut all = base.clone();
        all.push(opt("action", Some('o'), Some(action)));
        all.push(opt("plug", Some('n'), Some(plug)));
        all.extend_from_slice(extra);
        let r = run_opts(Mode::Stdin, &all);
        eprintln!("{action} {plug} {extra:?}: {}", show(&r));
        r
    };

    sim.sshd_down("cfhost1");
    // g2 on the answering host is still ON; g1 is of unknown state: an error, never OFF.
    let r = run("status", "g2", &[]);
    assert_eq!(r.code, 0, "{}", show(&r));
    let r = run("status", "g1", &[]);
    assert_eq!(r.code, 1, "{}", show(&r));
    assert!(r.stderr.contains("cfhost1"), "{}", show(&r));
    // monitor: cfhost1 does not answer over SSH, but its BMC does (a fence can settle it).
    let r = run("monitor", "g1", &[]);
    assert_eq!(r.code, 0, "{}", show(&r));
    assert!(r.stderr.contains("its BMC answers"), "{}", show(&r));
    // Without host_fence: the off fails, the host is not powered off.
    let r = run("off", "g1", &[]);
    assert_eq!(r.code, 1, "{}", show(&r));
    assert!(!r.stdout.contains("Success"));
    assert_eq!(bmc.power_file(), "1");
    assert_eq!(sim.domstate("cfhost1", "g1").as_deref(), Some("running"));

    // host_fence=bmc: cfhost1 powered off through its BMC, read back off; the off succeeds.
    let r = run("off", "g1", &[opt("host_fence", None, Some("bmc"))]);
    assert_eq!(r.code, 0, "{}", show(&r));
    assert!(r.stdout.contains("Success"), "{}", show(&r));
    assert!(
        r.stderr.contains("host cfhost1 did not answer over SSH")
            && r.stderr.contains("powered off through its BMC"),
        "{}",
        show(&r)
    );
    assert_eq!(bmc.power_file(), "0");
    // Its chassis now reads off: a plain status answers OFF; g2 was never touched.
    let r = run("status", "g1", &[]);
    assert_eq!(r.code, 2, "{}", show(&r));
    assert!(r.stdout.contains("Status: OFF"));
    assert_eq!(sim.domstate("cfhost2", "g2").as_deref(), Some("running"));
}
