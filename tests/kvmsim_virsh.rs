//! The simulated KVM hosts, driven with the plain OpenSSH client and checked with the
//! `fencekit::device::virsh` / `fencekit::device::kvmconf` parsers (and those parsers against
//! the captured fixtures of `tests/fixtures/`): state round trips, persistence across
//! sessions, password login, migration, several hosts at once, and every fault.

// Test support code: failing loudly is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::indexing_slicing
)]

use std::time::Duration;

use fencekit::device::kvmconf;
use fencekit::device::virsh::{self, ActionOutcome, DomState, Reply, Virsh, VirshError};
use fencekit::PowerState;

use crate::kvmsim::{Daemon, KvmSim, SshResult};

const LIMIT: Duration = Duration::from_secs(30);

fn reply(r: &SshResult) -> Reply<'_> {
    Reply::new(r.exit(), &r.stdout, &r.stderr)
}

fn domstate(sim: &KvmSim, host: &str, v: &Virsh, guest: &str) -> Result<DomState, VirshError> {
    let r = sim.ssh(host, &v.domstate(guest).unwrap(), LIMIT);
    virsh::parse_domstate(&reply(&r))
}

#[test]
fn kvm_domstate_round_trip_and_lists() {
    let Some(mut sim) = KvmSim::new("rt") else {
        return;
    };
    sim.start_host(
        "cfhost1",
        &[
            ("guest11", true),
            ("web vm", false),
            ("it's", true),
            ("-dash", false),
        ],
    );
    for v in [Virsh::default(), Virsh::new("qemu:///system", true)] {
        assert_eq!(
            domstate(&sim, "cfhost1", &v, "guest11"),
            Ok(DomState::Running)
        );
        assert_eq!(
            domstate(&sim, "cfhost1", &v, "web vm"),
            Ok(DomState::ShutOff)
        );
        assert_eq!(domstate(&sim, "cfhost1", &v, "it's"), Ok(DomState::Running));
        assert_eq!(
            domstate(&sim, "cfhost1", &v, "-dash"),
            Ok(DomState::ShutOff)
        );
        assert_eq!(
            domstate(&sim, "cfhost1", &v, "nosuch"),
            Err(VirshError::NotFound)
        );
        // Shell metacharacters reach virsh verbatim (not found), never a shell.
        assert_eq!(
            domstate(&sim, "cfhost1", &v, "x'; touch /tmp/pwned-kvm; echo '"),
            Err(VirshError::NotFound)
        );
    }
    assert!(!std::path::Path::new("/tmp/pwned-kvm").exists());
    let v = Virsh::default();
    let names = sim.ssh("cfhost1", &v.list_names(), LIMIT);
    let mut names = virsh::parse_name_list(&reply(&names)).unwrap();
    names.sort();
    assert_eq!(names, vec!["-dash", "guest11", "it's", "web vm"]);
    let table = sim.ssh("cfhost1", &v.list_all(), LIMIT);
    let rows = virsh::parse_list_table(&reply(&table)).unwrap();
    assert_eq!(rows.len(), 4);
    let web = rows.iter().find(|r| r.name == "web vm").unwrap();
    assert_eq!(web.state, Some(DomState::ShutOff));
    assert_eq!(web.id, None);
    let info = sim.ssh("cfhost1", &v.dominfo("guest11").unwrap(), LIMIT);
    let info = virsh::parse_dominfo(&reply(&info)).unwrap();
    assert_eq!(info.name, "guest11");
    assert_eq!(info.state, Some(DomState::Running));
    // Same UUID on every host for the same guest name.
    assert_eq!(info.uuid.len(), 36);
    // Wrapper logged every call, the sudo ones too.
    let calls = sim.calls("cfhost1");
    assert!(calls.contains("virsh domstate guest11"), "{calls}");
    assert!(calls.contains("sudo -n virsh"), "{calls}");
}

/// The simulator's crashed and saved guests, through ssh and the parsers: a managed-save
/// image is seen by dominfo and `list --managed-save`, a plain start resumes it (`running
/// (restored)`, as qemu does), `start --force-boot` boots fresh; a crashed guest is `crashed`
/// everywhere until destroyed.
#[test]
fn kvm_sim_crashed_and_saved_guests() {
    let Some(mut sim) = KvmSim::new("saved") else {
        return;
    };
    sim.start_host("cfhost1", &[("guest11", true), ("web vm", true)]);
    let v = Virsh::default();
    let view = |g: &str| {
        let r = sim.ssh("cfhost1", &v.dominfo(g).unwrap(), LIMIT);
        virsh::HostView::from_dominfo(&reply(&r))
    };
    let reason = |g: &str| {
        let out = sim.virsh("cfhost1", &["domstate", "--reason", "--", g]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(
        view("guest11"),
        Ok(virsh::HostView {
            state: DomState::Running,
            managed_save: Some(false)
        })
    );
    // Managed save (backdoor): shut off with an image.
    assert!(sim
        .virsh("cfhost1", &["managedsave", "guest11"])
        .status
        .success());
    assert_eq!(
        view("guest11"),
        Ok(virsh::HostView {
            state: DomState::ShutOff,
            managed_save: Some(true)
        })
    );
    let t = sim.ssh("cfhost1", &v.list_all(), LIMIT);
    let rows = virsh::parse_list_table(&reply(&t)).unwrap();
    let g = rows.iter().find(|r| r.name == "guest11").unwrap();
    assert!(g.saved && g.state == Some(DomState::ShutOff), "{rows:?}");
    // A plain start resumes it from the image, as qemu does.
    let plain = v.domain_cmd("start", &[], "guest11").unwrap();
    let r = sim.ssh("cfhost1", &plain, LIMIT);
    assert_eq!(virsh::parse_start(&reply(&r)), Ok(ActionOutcome::Done));
    assert_eq!(reason("guest11"), "running (restored)");
    assert!(sim
        .events("cfhost1")
        .contains("'guest11': Started Restored"));
    // Saved again: removal, then a fresh boot.
    assert!(sim
        .virsh("cfhost1", &["managedsave", "guest11"])
        .status
        .success());
    let r = sim.ssh("cfhost1", &v.managedsave_remove("guest11").unwrap(), LIMIT);
    assert_eq!(
        virsh::parse_managedsave_remove(&reply(&r)),
        Ok(ActionOutcome::Done)
    );
    assert_eq!(view("guest11").unwrap().managed_save, Some(false));
    let r = sim.ssh("cfhost1", &v.managedsave_remove("guest11").unwrap(), LIMIT);
    assert_eq!(
        virsh::parse_managedsave_remove(&reply(&r)),
        Ok(ActionOutcome::AlreadyThere)
    );
    // (managedsave-remove leaves it shut off: start it, save it again, boot it fresh.)
    let r = sim.ssh("cfhost1", &v.start("guest11").unwrap(), LIMIT);
    assert_eq!(virsh::parse_start(&reply(&r)), Ok(ActionOutcome::Done));
    assert!(sim
        .virsh("cfhost1", &["managedsave", "guest11"])
        .status
        .success());
    let r = sim.ssh("cfhost1", &v.start("guest11").unwrap(), LIMIT);
    assert_eq!(virsh::parse_start(&reply(&r)), Ok(ActionOutcome::Done));
    assert_eq!(reason("guest11"), "running (booted)");
    assert_eq!(view("guest11").unwrap().managed_save, Some(false));

    // Crashed with qemu alive: crashed in domstate, dominfo and list; start refused (active);
    // destroy really stops it.
    sim.crash("cfhost1", "web vm");
    assert_eq!(view("web vm").unwrap().state, DomState::Crashed);
    assert_eq!(
        domstate(&sim, "cfhost1", &v, "web vm"),
        Ok(DomState::Crashed)
    );
    let t = sim.ssh("cfhost1", &v.list_all(), LIMIT);
    let rows = virsh::parse_list_table(&reply(&t)).unwrap();
    let w = rows.iter().find(|r| r.name == "web vm").unwrap();
    assert_eq!(w.state, Some(DomState::Crashed), "{rows:?}");
    let g = rows.iter().find(|r| r.name == "guest11").unwrap();
    assert_eq!(g.state, Some(DomState::Running), "{rows:?}");
    let r = sim.ssh("cfhost1", &v.start("web vm").unwrap(), LIMIT);
    assert_eq!(
        virsh::parse_start(&reply(&r)),
        Ok(ActionOutcome::AlreadyThere)
    );
    let r = sim.ssh("cfhost1", &v.destroy("web vm").unwrap(), LIMIT);
    assert_eq!(virsh::parse_destroy(&reply(&r)), Ok(ActionOutcome::Done));
    assert_eq!(view("web vm").unwrap().state, DomState::ShutOff);
    assert_eq!(reason("web vm"), "shut off (destroyed)");
}

#[test]
fn kvm_destroy_start_persist_across_sessions() {
    let Some(mut sim) = KvmSim::new("persist") else {
        return;
    };
    sim.start_host("cfhost1", &[("guest11", true)]);
    let v = Virsh::default();
    let r = sim.ssh("cfhost1", &v.destroy("guest11").unwrap(), LIMIT);
    assert_eq!(virsh::parse_destroy(&reply(&r)), Ok(ActionOutcome::Done));
    // A new ssh session, a new virsh connection: the state persisted.
    assert_eq!(
        domstate(&sim, "cfhost1", &v, "guest11"),
        Ok(DomState::ShutOff)
    );
    assert_eq!(
        sim.domstate("cfhost1", "guest11").as_deref(),
        Some("shut off")
    );
    let r = sim.ssh("cfhost1", &v.destroy("guest11").unwrap(), LIMIT);
    assert_eq!(
        virsh::parse_destroy(&reply(&r)),
        Ok(ActionOutcome::AlreadyThere)
    );
    let r = sim.ssh("cfhost1", &v.start("guest11").unwrap(), LIMIT);
    assert_eq!(virsh::parse_start(&reply(&r)), Ok(ActionOutcome::Done));
    let r = sim.ssh("cfhost1", &v.start("guest11").unwrap(), LIMIT);
    assert_eq!(
        virsh::parse_start(&reply(&r)),
        Ok(ActionOutcome::AlreadyThere)
    );
    assert_eq!(
        domstate(&sim, "cfhost1", &v, "guest11"),
        Ok(DomState::Running)
    );
    let ev = sim.events("cfhost1");
    assert!(ev.contains("'guest11': Stopped Destroyed"), "{ev}");
    assert!(ev.contains("'guest11': Started Booted"), "{ev}");
    // Start of an unknown guest.
    let r = sim.ssh("cfhost1", &v.start("nosuch").unwrap(), LIMIT);
    assert_eq!(virsh::parse_start(&reply(&r)), Err(VirshError::NotFound));
}

#[test]
fn kvm_password_login_and_host_key() {
    let Some(mut sim) = KvmSim::new("pw") else {
        return;
    };
    sim.start_host("cfhost1", &[("guest11", true)]);
    let cmd = Virsh::default().domstate("guest11").unwrap();
    let ok = sim.ssh_password("cfhost1", &cmd, &sim.password(), LIMIT);
    assert_eq!(
        virsh::parse_domstate(&reply(&ok)),
        Ok(DomState::Running),
        "{}",
        ok.err()
    );
    let bad = sim.ssh_password("cfhost1", &cmd, "wrong-password", LIMIT);
    assert_eq!(bad.code, Some(255), "{}", bad.err());
    assert!(virsh::parse_domstate(&reply(&bad)).is_err());
    // The private known_hosts carries both host key types for [127.0.0.1]:PORT.
    let kh = std::fs::read_to_string(sim.known_hosts()).unwrap();
    let h = sim.host("cfhost1");
    let tag = format!("[{}]:{} ", h.ip, h.port);
    assert_eq!(
        kh.lines().filter(|l| l.starts_with(&tag)).count(),
        2,
        "{kh}"
    );
    // A wrong known_hosts entry makes OpenSSH refuse (strict checking).
    let other =
        std::fs::read_to_string(sim.host_dir("cfhost1").join("ssh_host_ed25519_key.pub")).unwrap();
    assert!(kh.contains(other.split_whitespace().nth(1).unwrap()));
    // Restarting the host keeps its identity (cached keys).
    sim.start_host("cfhost1", &[("guest11", false)]);
    let again =
        std::fs::read_to_string(sim.host_dir("cfhost1").join("ssh_host_ed25519_key.pub")).unwrap();
    assert_eq!(other, again);
    assert_eq!(
        domstate(&sim, "cfhost1", &Virsh::default(), "guest11"),
        Ok(DomState::ShutOff)
    );
}

#[test]
fn kvm_migration_helper() {
    let Some(mut sim) = KvmSim::new("mig") else {
        return;
    };
    sim.start_hosts(&[
        ("cfhost1", vec![("guest11", true), ("guest12", false)]),
        ("cfhost2", vec![("guest21", true)]),
        ("cfhost3", vec![]),
    ]);
    let v = Virsh::default();
    // Keep: defined (shut off) on the source, running on the destination.
    sim.migrate("cfhost1", "cfhost3", "guest11", true);
    assert_eq!(
        domstate(&sim, "cfhost1", &v, "guest11"),
        Ok(DomState::ShutOff)
    );
    assert_eq!(
        domstate(&sim, "cfhost3", &v, "guest11"),
        Ok(DomState::Running)
    );
    assert_eq!(
        domstate(&sim, "cfhost2", &v, "guest11"),
        Err(VirshError::NotFound)
    );
    let w = sim.where_is("guest11");
    assert!(w.contains(&("cfhost1".into(), "shut off".into())), "{w:?}");
    assert!(w.contains(&("cfhost3".into(), "running".into())), "{w:?}");
    assert!(w.contains(&("cfhost2".into(), "absent".into())), "{w:?}");
    // Move on without keeping: gone from the source.
    sim.migrate("cfhost3", "cfhost2", "guest11", false);
    assert_eq!(
        domstate(&sim, "cfhost3", &v, "guest11"),
        Err(VirshError::NotFound)
    );
    assert_eq!(
        domstate(&sim, "cfhost2", &v, "guest11"),
        Ok(DomState::Running)
    );
    // A shut-off guest migrates shut off.
    sim.migrate("cfhost1", "cfhost2", "guest12", false);
    assert_eq!(
        domstate(&sim, "cfhost2", &v, "guest12"),
        Ok(DomState::ShutOff)
    );
    // Same UUID after migration.
    let a = sim.virsh("cfhost1", &["domuuid", "guest11"]);
    let b = sim.virsh("cfhost2", &["domuuid", "guest11"]);
    assert!(a.status.success() && b.status.success());
    assert_eq!(a.stdout, b.stdout);

    // The stale map: generated before migration, it still says cfhost1. Search order puts
    // the mapped host first, then the rest.
    let conf = KvmSim::kvmguests_conf(&[
        ("guest11", "cfhost1"),
        ("guest21", "cfhost2"),
        ("guest12", "cfhost1"),
    ]);
    let map = kvmconf::parse(&conf).unwrap();
    let e = map.find("cfguest11").unwrap();
    assert_eq!(map.hosts(e), vec!["cfhost1", "cfhost2"]);
    let hosts = kvmconf::parse_hosts(&sim.hosts_option()).unwrap();
    assert_eq!(hosts.len(), 3);
    let h2 = kvmconf::lookup_host(&hosts, "cfhost2").unwrap();
    assert_eq!(h2.port, Some(sim.host("cfhost2").port));
    // Find where it runs the way the agent will: ask every host, mapped host first.
    let order: Vec<&str> = map.hosts(e).into_iter().chain(["cfhost3"]).collect();
    let ask = |sim: &KvmSim| -> Vec<(String, Result<virsh::HostView, VirshError>)> {
        order
            .iter()
            .map(|h| {
                let r = sim.ssh(h, &v.dominfo(&e.guest_name).unwrap(), LIMIT);
                ((*h).to_owned(), virsh::HostView::from_dominfo(&reply(&r)))
            })
            .collect()
    };
    assert_eq!(
        virsh::locate(&e.guest_name, &ask(&sim)),
        Ok(virsh::GuestLocation::Running {
            hosts: vec!["cfhost2".into()],
            saved: vec![]
        })
    );
    // Off where it runs; one host unreachable -> error, never Off.
    assert!(sim
        .virsh("cfhost2", &["destroy", "guest11"])
        .status
        .success());
    sim.sshd_down("cfhost3");
    let answers = ask(&sim);
    assert!(answers[2].1.is_err());
    let err = virsh::locate(&e.guest_name, &answers).unwrap_err();
    assert!(matches!(err, fencekit::FenceError::Status(_)), "{err:?}");
    sim.sshd_up("cfhost3");
    assert_eq!(
        virsh::locate(&e.guest_name, &ask(&sim)),
        Ok(virsh::GuestLocation::Off {
            defined_on: vec!["cfhost1".into(), "cfhost2".into()]
        })
    );
}

#[test]
fn kvm_eight_hosts_and_clean_stop() {
    let Some(mut sim) = KvmSim::new("eight") else {
        return;
    };
    let names: Vec<String> = (1..=8).map(|i| format!("cfhost{i}")).collect();
    let guests: Vec<String> = (1..=8).map(|i| format!("guest{i}1")).collect();
    let specs: Vec<(&str, Vec<(&str, bool)>)> = names
        .iter()
        .zip(&guests)
        .map(|(h, g)| (h.as_str(), vec![(g.as_str(), true)]))
        .collect();
    let hosts = sim.start_hosts(&specs);
    assert_eq!(hosts.len(), 8);
    let mut ports: Vec<u16> = hosts.iter().map(|h| h.port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 8);
    let v = Virsh::default();
    for (h, g) in names.iter().zip(&guests) {
        assert_eq!(domstate(&sim, h, &v, g), Ok(DomState::Running), "{h}");
        assert_eq!(domstate(&sim, h, &v, "guest11x"), Err(VirshError::NotFound));
    }
    let pids: Vec<u32> = names.iter().flat_map(|h| sim.pids(h)).collect();
    assert!(pids.len() >= 24, "{pids:?}");
    for h in &names {
        sim.stop_host(h);
    }
    for p in pids {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
        assert!(
            matches!(state, None | Some('Z') | Some('X')),
            "pid {p} still alive: {stat}"
        );
    }
}

#[test]
fn kvm_faults_garble_exit_noop_drop_sudo() {
    let Some(mut sim) = KvmSim::new("faults") else {
        return;
    };
    sim.start_host("cfhost1", &[("guest11", true), ("guest12", false)]);
    let v = Virsh::default();
    // Garbled domstate is an error, for a running and for a shut-off guest, never Off.
    for mode in ["junk", "truncate", "binary"] {
        for g in ["guest11", "guest12"] {
            sim.fault("cfhost1", "garble", Some(mode), &[("times", "1")]);
            let st = domstate(&sim, "cfhost1", &v, g);
            assert!(st.is_err(), "garble {mode} on {g}: {st:?}");
        }
    }
    sim.clear_faults("cfhost1");
    assert_eq!(
        domstate(&sim, "cfhost1", &v, "guest12"),
        Ok(DomState::ShutOff)
    );

    // exit fault on destroy: a failure, and the guest still runs.
    sim.fault(
        "cfhost1",
        "exit",
        Some("1"),
        &[
            ("match", "virsh destroy"),
            (
                "msg",
                "error: Failed to terminate process 4242 with SIGKILL: Device or resource busy",
            ),
        ],
    );
    let r = sim.ssh("cfhost1", &v.destroy("guest11").unwrap(), LIMIT);
    assert!(
        matches!(virsh::parse_destroy(&reply(&r)), Err(VirshError::Failed(ref m)) if m.contains("Failed to terminate")),
        "{r:?}"
    );
    assert_eq!(
        domstate(&sim, "cfhost1", &v, "guest11"),
        Ok(DomState::Running)
    );
    sim.clear_faults("cfhost1");

    // noop (destroy ignored): success text, state unchanged. Only a read-back tells.
    sim.fault("cfhost1", "noop", None, &[]);
    let r = sim.ssh("cfhost1", &v.destroy("guest11").unwrap(), LIMIT);
    assert_eq!(virsh::parse_destroy(&reply(&r)), Ok(ActionOutcome::Done));
    assert_eq!(
        domstate(&sim, "cfhost1", &v, "guest11"),
        Ok(DomState::Running)
    );
    sim.clear_faults("cfhost1");

    // drop before: connection dies (255), nothing done.
    sim.fault(
        "cfhost1",
        "drop",
        None,
        &[("match", "destroy"), ("times", "1")],
    );
    let r = sim.ssh("cfhost1", &v.destroy("guest11").unwrap(), LIMIT);
    assert_eq!(r.code, Some(255), "{r:?}");
    assert!(virsh::parse_destroy(&reply(&r)).is_err());
    assert_eq!(
        sim.domstate("cfhost1", "guest11").as_deref(),
        Some("running")
    );
    // drop after: done, answer lost.
    sim.fault(
        "cfhost1",
        "drop",
        None,
        &[("match", "destroy"), ("times", "1"), ("mode", "after")],
    );
    let r = sim.ssh("cfhost1", &v.destroy("guest11").unwrap(), LIMIT);
    assert_eq!(r.code, Some(255), "{r:?}");
    assert_eq!(
        sim.domstate("cfhost1", "guest11").as_deref(),
        Some("shut off")
    );
    // times=1 used up: the next call is clean.
    let r = sim.ssh("cfhost1", &v.start("guest11").unwrap(), LIMIT);
    assert_eq!(virsh::parse_start(&reply(&r)), Ok(ActionOutcome::Done));

    // sudo without NOPASSWD.
    sim.fault("cfhost1", "sudo_denied", None, &[]);
    let vs = Virsh::new("qemu:///system", true);
    let r = sim.ssh("cfhost1", &vs.domstate("guest11").unwrap(), LIMIT);
    assert!(r.err().contains("sudo: a password is required"), "{r:?}");
    assert!(virsh::parse_domstate(&reply(&r)).is_err());
    // Without sudo it still works.
    assert_eq!(
        domstate(&sim, "cfhost1", &v, "guest11"),
        Ok(DomState::Running)
    );
    sim.clear_faults("cfhost1");

    // slow async destroy: success at once, the state follows later.
    sim.fault("cfhost1", "slow", Some("1"), &[("times", "1")]);
    let r = sim.ssh("cfhost1", &v.destroy("guest11").unwrap(), LIMIT);
    assert_eq!(virsh::parse_destroy(&reply(&r)), Ok(ActionOutcome::Done));
    let mut off = false;
    for _ in 0..300 {
        if sim.domstate("cfhost1", "guest11").as_deref() == Some("shut off") {
            off = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(off, "slow destroy never took effect");
    let calls = sim.calls("cfhost1");
    for tag in [
        "garble:junk",
        "exit:1",
        "noop",
        "drop:before",
        "drop:after",
        "sudo_denied",
        "slow:async:1",
    ] {
        assert!(calls.contains(tag), "{tag} missing in {calls}");
    }
}

#[test]
fn kvm_faults_hang_freeze_unreachable() {
    let Some(mut sim) = KvmSim::new("hang") else {
        return;
    };
    sim.start_host("cfhost1", &[("guest11", true)]);
    let v = Virsh::default();
    let short = Duration::from_secs(2);
    // virsh hangs: the client gives up at its deadline, no answer -> error.
    sim.fault("cfhost1", "hang", Some("60"), &[("times", "1")]);
    let r = sim.ssh("cfhost1", &v.domstate("guest11").unwrap(), short);
    assert!(r.timed_out, "{r:?}");
    assert!(virsh::parse_domstate(&reply(&r)).is_err());
    // libvirtd frozen: virsh hangs too.
    sim.freeze("cfhost1", Daemon::Libvirtd);
    let r = sim.ssh("cfhost1", &v.domstate("guest11").unwrap(), short);
    assert!(r.timed_out, "{r:?}");
    sim.thaw("cfhost1", Daemon::Libvirtd);
    assert_eq!(
        domstate(&sim, "cfhost1", &v, "guest11"),
        Ok(DomState::Running)
    );
    // sshd frozen: no banner, the connection attempt times out.
    sim.freeze("cfhost1", Daemon::Sshd);
    let r = sim.ssh("cfhost1", "true", short);
    assert!(r.timed_out, "{r:?}");
    sim.thaw("cfhost1", Daemon::Sshd);
    assert_eq!(
        domstate(&sim, "cfhost1", &v, "guest11"),
        Ok(DomState::Running)
    );
    // sshd down: refused at once, libvirt state kept.
    sim.sshd_down("cfhost1");
    let r = sim.ssh("cfhost1", &v.domstate("guest11").unwrap(), LIMIT);
    assert_eq!(r.code, Some(255));
    assert!(r.err().contains("refused"), "{r:?}");
    assert!(virsh::parse_domstate(&reply(&r)).is_err());
    assert_eq!(
        sim.domstate("cfhost1", "guest11").as_deref(),
        Some("running")
    );
    sim.sshd_up("cfhost1");
    assert_eq!(
        domstate(&sim, "cfhost1", &v, "guest11"),
        Ok(DomState::Running)
    );
    // login_delay: the session still works, only later.
    sim.fault("cfhost1", "login_delay", Some("1"), &[("times", "1")]);
    assert_eq!(
        domstate(&sim, "cfhost1", &v, "guest11"),
        Ok(DomState::Running)
    );
    // A hung session is killed by stop: its client returns.
    sim.fault("cfhost1", "hang", Some("120"), &[]);
    let c = sim.ssh_command("cfhost1", "virsh domstate guest11");
    let child = std::thread::spawn(move || crate::kvmsim::run_limited(c, Duration::from_secs(60)));
    // Wait until the session exists (the ForceCommand records its PID).
    let pids = sim.host_dir("cfhost1").join("pids");
    for _ in 0..1000 {
        let has_session = std::fs::read_dir(&pids)
            .map(|rd| {
                rd.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("session."))
            })
            .unwrap_or(false);
        if has_session && sim.calls("cfhost1").contains("hang:120") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    sim.stop_host("cfhost1");
    let r = child.join().unwrap();
    assert!(!r.timed_out, "stop did not end the hung session: {r:?}");
    assert_eq!(r.code, Some(255));
}

fn fixture_dir(kind: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind)
}

fn state_word(s: &Result<DomState, VirshError>) -> String {
    match s {
        Ok(DomState::Running) => "running".into(),
        Ok(DomState::Paused) => "paused".into(),
        Ok(DomState::ShutOff) => "shut_off".into(),
        Ok(DomState::InShutdown) => "in_shutdown".into(),
        Ok(DomState::Crashed) => "crashed".into(),
        Ok(DomState::PmSuspended) => "pmsuspended".into(),
        Ok(DomState::Blocked) => "idle".into(),
        Err(VirshError::NotFound) => "notfound".into(),
        Err(VirshError::NoState) => "nostate".into(),
        Err(VirshError::Failed(_)) => "failed".into(),
        Err(e) => format!("{e:?}"),
    }
}

fn action_word(a: &Result<ActionOutcome, VirshError>) -> String {
    match a {
        Ok(ActionOutcome::Done) => "done".into(),
        Ok(ActionOutcome::AlreadyThere) => "already".into(),
        Err(VirshError::NotFound) => "notfound".into(),
        Err(e) => format!("{e:?}"),
    }
}

/// Every captured virsh fixture parses as `expected.txt` says (no simulator needed).
#[test]
fn virsh_fixtures_parse() {
    let dir = fixture_dir("virsh");
    let expected = std::fs::read_to_string(dir.join("expected.txt")).unwrap();
    let mut n = 0;
    for line in expected
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let w: Vec<&str> = line.split_whitespace().collect();
        let (name, parser, want) = (w[0], w[1], w[2]);
        let stdout = std::fs::read(dir.join(format!("{name}.stdout"))).unwrap();
        let stderr = std::fs::read(dir.join(format!("{name}.stderr"))).unwrap();
        let rc: i32 = std::fs::read_to_string(dir.join(format!("{name}.rc")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let r = Reply::new(Some(rc), &stdout, &stderr);
        let got = match parser {
            "domstate" => state_word(&virsh::parse_domstate(&r)),
            "destroy" => action_word(&virsh::parse_destroy(&r)),
            "start" => action_word(&virsh::parse_start(&r)),
            "table" => virsh::parse_list_table(&r)
                .map(|v| v.len().to_string())
                .unwrap_or_else(|e| format!("{e:?}")),
            "names" => virsh::parse_name_list(&r)
                .map(|v| v.len().to_string())
                .unwrap_or_else(|e| format!("{e:?}")),
            "msremove" => action_word(&virsh::parse_managedsave_remove(&r)),
            "view" => match virsh::HostView::from_dominfo(&r) {
                Ok(v) => format!(
                    "{}+{}",
                    state_word(&Ok(v.state)),
                    match v.managed_save {
                        Some(true) => "saved",
                        Some(false) => "nosave",
                        None => "unknown",
                    }
                ),
                Err(e) => state_word(&Err(e)),
            },
            "saved" => virsh::parse_list_table(&r)
                .map(|v| {
                    v.iter()
                        .filter(|r| r.saved)
                        .map(|r| r.name.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_else(|e| format!("{e:?}")),
            "dominfo" => match virsh::parse_dominfo(&r) {
                Ok(i) => state_word(&i.state.ok_or(VirshError::NoState)),
                Err(e) => state_word(&Err(e)),
            },
            other => panic!("unknown parser {other}"),
        };
        assert_eq!(got, want, "fixture {name}");
        // Every fixture, mangled in every way the simulator mangles, never reads as Off.
        for cut in [stdout.len() / 2, stdout.len().saturating_sub(3)] {
            let t = Reply::new(Some(rc), &stdout[..cut], &stderr);
            if let Ok(s) = virsh::parse_domstate(&t) {
                assert_ne!(s.power(), PowerState::Off, "{name} truncated to {cut}");
            }
        }
        n += 1;
    }
    assert_eq!(n, 40);
    // Table details: names with spaces, leading blanks, C-locale escapes, UTF-8.
    let get = |name: &str| {
        let out = std::fs::read(dir.join(format!("{name}.stdout"))).unwrap();
        virsh::parse_list_table(&Reply::new(Some(0), &out, b"")).unwrap()
    };
    let rows = get("list_all");
    assert_eq!(rows[1].name, "web vm");
    assert_eq!(rows[1].state, Some(DomState::Paused));
    assert_eq!(rows[2].name, "  lead");
    assert_eq!(rows[3].name, "it's");
    assert!(rows[4].escaped);
    let rows = get("list_all_utf8");
    assert_eq!(rows[4].name, "vm-äöü");
    assert!(!rows[4].escaped);
    let out = std::fs::read(dir.join("list_all_name.stdout")).unwrap();
    let names = virsh::parse_name_list(&Reply::new(Some(0), &out, b"")).unwrap();
    assert_eq!(names, vec!["guest11", "web vm", "  lead", "it's", "vm-äöü"]);
}

/// kvmguests.conf fixtures: good file, every error kind with its line, file permissions.
#[test]
fn kvmconf_fixtures_and_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = fixture_dir("kvmconf");
    let good = std::fs::read_to_string(dir.join("good.conf")).unwrap();
    let map = kvmconf::parse(&good).unwrap();
    assert_eq!(map.entries().len(), 4);
    assert_eq!(map.all_hosts(), vec!["cfhost1", "cfhost2", "cfhost3"]);
    let e = map.find("guest21").unwrap();
    assert_eq!(e.guest_cfname, "cfguest21");
    assert_eq!(map.hosts(e), vec!["cfhost2", "cfhost1", "cfhost3"]);

    let bad = std::fs::read(dir.join("bad.conf")).unwrap();
    let errs = kvmconf::parse_bytes(&bad).unwrap_err();
    let got: Vec<(usize, String)> = errs.iter().map(|e| (e.line, e.to_string())).collect();
    let want_lines = [3, 4, 5, 6, 7, 8, 9, 10];
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        want_lines,
        "{got:?}"
    );
    for (i, frag) in [
        "expected 7 fields",
        "link-local",
        "not an IPv4 or IPv6 address",
        "duplicate guest-name 'guest11' (first on line 2)",
        "duplicate guest-cfname 'cfguest11' (first on line 2)",
        "invalid character ':' in host-cfname",
        "found 8",
        "carriage return",
    ]
    .iter()
    .enumerate()
    {
        assert!(got[i].1.contains(frag), "{:?} lacks {frag}", got[i]);
    }
    let dup = std::fs::read_to_string(dir.join("doc-duplicate.conf")).unwrap();
    let errs = kvmconf::parse(&dup).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].line, 3);

    // Permissions: 0600 fine, 0644 refused, relaxed = warning.
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("kvmguests.conf");
    std::fs::write(&p, &good).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (m, w) = kvmconf::load(&p, false).unwrap();
    assert_eq!((m.entries().len(), w.len()), (4, 0));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = kvmconf::load(&p, false).unwrap_err();
    assert!(err.to_string().contains("0644"), "{err}");
    let fe: fencekit::FenceError = err.into();
    assert!(matches!(fe, fencekit::FenceError::Usage(_)));
    let (_, w) = kvmconf::load(&p, true).unwrap();
    assert_eq!(w.len(), 1);
    assert!(w[0].starts_with("warning:"), "{w:?}");
    // Unreadable / missing file.
    assert!(matches!(
        kvmconf::load(&tmp.path().join("nope"), false),
        Err(kvmconf::LoadError::Io(_))
    ));
    // validate-all lines carry the path and the line number.
    std::fs::write(&p, &bad).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = kvmconf::load(&p, false).unwrap_err();
    let lines = err.lines("kvmguests.conf");
    assert_eq!(lines.len(), 8);
    assert!(
        lines[0].starts_with("kvmguests.conf: line 3: "),
        "{lines:?}"
    );
}
