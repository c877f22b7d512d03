//! The SSH transport (`fencekit::transport::ssh`: logins, host keys, timeouts, faults) and the
//! `vim-cmd` parsers (`fencekit::device::vimcmd`) against the fake ESXi hosts of
//! `tests/support/sim/`.

// Test-harness code: failing loudly is the point here.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fencekit::device::vimcmd::{self, ParseError, VmPower};
use fencekit::transport::ssh::{
    HostKeyPolicy, HostKeyStatus, SshAuth, SshConfig, SshError, SshSession,
};
use fencekit::Secret;

use crate::sim::sshd::{Auth, EsxiHost, SimVm};

const SHORT: Duration = Duration::from_secs(10);

/// A known_hosts file holding `lines`, in a temp dir kept alive by the returned guard.
fn known_hosts(lines: &[String]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("known_hosts");
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(&path, text).expect("write known_hosts");
    (dir, path)
}

fn cfg(host: &EsxiHost, auth: SshAuth, kh: &Path) -> SshConfig {
    let mut c = SshConfig::new(host.ip(), host.user(), auth);
    c.port = host.port();
    c.host_key = HostKeyPolicy {
        known_hosts: Some(kh.to_owned()),
        ..HostKeyPolicy::default()
    };
    c.connect_timeout = SHORT;
    c
}

fn key(host: &EsxiHost) -> SshAuth {
    SshAuth::Key {
        path: host.key_path(),
        passphrase: None,
    }
}

fn password(pw: &str) -> SshAuth {
    SshAuth::Password(Secret::new(pw))
}

fn getstate(s: &mut SshSession, vmid: u32) -> Result<VmPower, ParseError> {
    let out = s
        .exec(&vimcmd::power_getstate(vmid), SHORT)
        .expect("exec getstate");
    vimcmd::parse_power_state(&out.stdout_text())
}

#[test]
fn key_login_getallvms_and_getstate_round_trip() {
    let Some(host) = EsxiHost::start(&[]) else {
        return;
    };
    let (_d, kh) = known_hosts(&host.known_hosts_lines());
    let mut s = SshSession::connect(&cfg(&host, key(&host), &kh)).expect("connect");
    assert_eq!(s.fingerprint(), host.fingerprint());
    assert!(matches!(s.host_key_status(), HostKeyStatus::Known(_)));

    let out = s.exec(&vimcmd::getallvms(), SHORT).expect("getallvms");
    assert_eq!(out.status, Some(0));
    assert_eq!(out.stderr_text(), "Skipping invalid VM '9'\n");
    let vms = vimcmd::parse_getallvms(&out.stdout_text()).expect("parse");
    assert_eq!(vms.len(), 8);
    let n3 = vimcmd::find_vm(&vms, "node 3 with spaces").expect("find");
    assert_eq!(n3.annotation, "Cluster node 3\nowner: ha-team");
    assert_eq!(getstate(&mut s, n3.vmid), Ok(VmPower::On));
    let web = vimcmd::find_vm(&vms, "web [old]").expect("find web");
    assert_eq!(getstate(&mut s, web.vmid), Ok(VmPower::Off));
    let db = vimcmd::find_vm(&vms, "dbvm").expect("find dbvm");
    assert_eq!(getstate(&mut s, db.vmid), Ok(VmPower::Suspended));
    let u = vimcmd::find_vm(&vms, "vm-äöü").expect("find unicode");
    assert_eq!(u.vmid, 8);
    assert!(vimcmd::find_vm(&vms, "broken").is_err());

    // Unknown vmid: a fault on stdout and a non-zero status, never a state.
    let out = s.exec(&vimcmd::power_getstate(99), SHORT).expect("exec");
    assert_eq!(out.status, Some(1));
    match vimcmd::parse_power_state(&out.stdout_text()) {
        Err(ParseError::Fault(f)) => assert_eq!(f.name, "vim.fault.NotFound"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn keyboard_interactive_login_like_real_esxi() {
    let Some(host) = EsxiHost::start(&[]) else {
        return;
    };
    let (_d, kh) = known_hosts(&host.known_hosts_lines());
    let mut s =
        SshSession::connect(&cfg(&host, password(host.password()), &kh)).expect("kbdint login");
    assert_eq!(getstate(&mut s, 6), Ok(VmPower::Suspended));
}

#[test]
fn password_method_login() {
    let Some(host) = EsxiHost::builder().auth(Auth::Password).start() else {
        return;
    };
    let (_d, kh) = known_hosts(&host.known_hosts_lines());
    let mut s =
        SshSession::connect(&cfg(&host, password(host.password()), &kh)).expect("password login");
    assert_eq!(getstate(&mut s, 1), Ok(VmPower::On));
}

#[test]
fn wrong_password_is_an_auth_error_without_the_password() {
    // kbdint only, like ESXi (each failed PAM attempt costs ~2 s of PAM delay).
    let Some(host) = EsxiHost::start(&[]) else {
        return;
    };
    let (_d, kh) = known_hosts(&host.known_hosts_lines());
    let err =
        SshSession::connect(&cfg(&host, password("wrong-Secret-42"), &kh)).expect_err("must fail");
    assert!(matches!(err, SshError::Auth(_)), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("wrong-Secret-42"), "{text}");
    assert!(text.contains("keyboard-interactive"), "{text}");
    println!("wrong password: {err}");
    let fe = fencekit::FenceError::from(err);
    assert!(matches!(fe, fencekit::FenceError::LoginDenied(_)));
}

#[test]
fn key_with_passphrase() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = dir.path().join("id_pp");
    let ok = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "pp-secret", "-f"])
        .arg(&k)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        crate::sim::skip_or_fail("ssh-keygen failed");
        return;
    }
    let Some(host) = EsxiHost::builder()
        .auth(Auth::Pubkey)
        .extra_pubkey(&k.with_extension("pub"))
        .start()
    else {
        return;
    };
    let (_d, kh) = known_hosts(&host.known_hosts_lines());
    let auth = |pp: &str| SshAuth::Key {
        path: k.clone(),
        passphrase: Some(Secret::new(pp)),
    };
    let mut s = SshSession::connect(&cfg(&host, auth("pp-secret"), &kh)).expect("login");
    assert_eq!(getstate(&mut s, 1), Ok(VmPower::On));
    let err = SshSession::connect(&cfg(&host, auth("bad-pp"), &kh)).expect_err("bad passphrase");
    assert!(matches!(err, SshError::Auth(_)), "{err:?}");
    assert!(!err.to_string().contains("bad-pp"));
    println!("bad passphrase: {err}");
    // Password login is not offered by a pubkey-only host.
    let err = SshSession::connect(&cfg(&host, password("x"), &kh)).expect_err("no method");
    assert!(matches!(err, SshError::Auth(_)), "{err:?}");
}

#[test]
fn host_keys_unknown_pinned_changed_accept_new() {
    let Some(mut host) = EsxiHost::start(&[]) else {
        return;
    };
    // Unknown: refused, naming the fingerprint and how to trust it.
    let (_d, empty) = known_hosts(&[]);
    let err = SshSession::connect(&cfg(&host, key(&host), &empty)).expect_err("unknown key");
    match &err {
        SshError::HostKeyUnknown { fingerprint, .. } => {
            assert_eq!(*fingerprint, host.fingerprint())
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    println!("unknown key: {text}");
    assert!(text.contains(&host.fingerprint()), "{text}");
    assert!(text.contains("ssh-keyscan -p"), "{text}");
    assert!(text.contains("host_key_fingerprint="), "{text}");

    // Pinned fingerprint (no known_hosts file at all): accepted.
    let mut c = cfg(&host, key(&host), Path::new("/nonexistent/known_hosts"));
    c.host_key.fingerprint = Some(host.fingerprint());
    let mut s = SshSession::connect(&c).expect("pinned");
    assert_eq!(s.host_key_status(), &HostKeyStatus::Pinned);
    assert_eq!(getstate(&mut s, 1), Ok(VmPower::On));
    drop(s);
    // A wrong pin: refused.
    c.host_key.fingerprint = Some(host.fingerprint_rsa());
    let err = SshSession::connect(&c).expect_err("wrong pin");
    assert!(matches!(err, SshError::HostKeyMismatch { .. }), "{err:?}");

    // Only the RSA key known: the RSA key is negotiated and accepted.
    let rsa_only: Vec<String> = host
        .known_hosts_lines()
        .into_iter()
        .filter(|l| l.contains("ssh-rsa"))
        .collect();
    let (_d2, kh_rsa) = known_hosts(&rsa_only);
    let s = SshSession::connect(&cfg(&host, key(&host), &kh_rsa)).expect("rsa known");
    assert_eq!(s.host_key_type(), "ssh-rsa");
    assert_eq!(s.fingerprint(), host.fingerprint_rsa());
    drop(s);

    // Hashed known_hosts (ssh-keygen -H).
    let (_d3, kh_hashed) = known_hosts(&host.known_hosts_lines());
    let hashed = std::process::Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&kh_hashed)
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(hashed);
    let text = std::fs::read_to_string(&kh_hashed).expect("read");
    assert!(text.starts_with("|1|"), "{text}");
    SshSession::connect(&cfg(&host, key(&host), &kh_hashed)).expect("hashed known_hosts");

    // accept_new: recorded on first contact, then known.
    let (_d4, kh_new) = known_hosts(&["# first line".to_owned()]);
    let mut c = cfg(&host, key(&host), &kh_new);
    c.host_key.accept_new = true;
    let s = SshSession::connect(&c).expect("accept new");
    assert_eq!(s.host_key_status(), &HostKeyStatus::Added(kh_new.clone()));
    drop(s);
    let recorded = std::fs::read_to_string(&kh_new).expect("read");
    assert!(
        recorded.contains(&format!("[127.0.0.1]:{} ssh-ed25519 ", host.port())),
        "{recorded}"
    );
    let s = SshSession::connect(&c).expect("known now");
    assert!(matches!(s.host_key_status(), HostKeyStatus::Known(_)));
    drop(s);

    // The host is reinstalled (new keys): the recorded key no longer matches; refused even
    // with accept_new.
    host.restart(true);
    let err = SshSession::connect(&c).expect_err("changed key");
    match &err {
        SshError::HostKeyMismatch { fingerprint, .. } => {
            assert_eq!(*fingerprint, host.fingerprint())
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("ssh-keygen -R"), "{err}");
    println!("changed key: {err}");
    // And the FenceError says "Host key verification failed".
    assert!(fencekit::FenceError::from(err)
        .to_string()
        .starts_with("Host key verification failed"));
}

#[test]
fn power_off_changes_state_and_register_round_trip() {
    let Some(host) = EsxiHost::start(&[]) else {
        return;
    };
    let (_d, kh) = known_hosts(&host.known_hosts_lines());
    let mut s = SshSession::connect(&cfg(&host, key(&host), &kh)).expect("connect");
    let out = s.exec(&vimcmd::power_off(1), SHORT).expect("power.off");
    assert_eq!(out.stdout_text(), "Powering off VM:\n");
    assert_eq!(vimcmd::check_power_op(&out.stdout_text()), Ok(()));
    assert_eq!(getstate(&mut s, 1), Ok(VmPower::Off));
    assert_eq!(host.vm_state("cl0").as_deref(), Some("off"));
    // Already off: a fault, reported as an error.
    let out = s
        .exec(&vimcmd::power_off(1), SHORT)
        .expect("power.off again");
    assert!(vimcmd::check_power_op(&out.stdout_text()).is_err());
    let out = s.exec(&vimcmd::power_on(1), SHORT).expect("power.on");
    assert_eq!(vimcmd::check_power_op(&out.stdout_text()), Ok(()));
    assert_eq!(host.vm_state("cl0").as_deref(), Some("on"));

    // unregister (VM off) + registervm by path: a new vmid.
    let out = s.exec(&vimcmd::unregister(3), SHORT).expect("unregister");
    assert_eq!(vimcmd::parse_unregister(&out.stdout_text()), Ok(()));
    let out = s
        .exec(
            &vimcmd::registervm("/vmfs/volumes/datastore1/cl01/cl01.vmx", None),
            SHORT,
        )
        .expect("registervm");
    assert_eq!(vimcmd::parse_registervm(&out.stdout_text()), Ok(Some(10)));
    let out = s
        .exec(
            &vimcmd::registervm("[datastore1] spare/spare.vmx", Some("spare it's")),
            SHORT,
        )
        .expect("registervm spare");
    assert_eq!(vimcmd::parse_registervm(&out.stdout_text()), Ok(Some(11)));
    let out = s.exec(&vimcmd::getallvms(), SHORT).expect("getallvms");
    let vms = vimcmd::parse_getallvms(&out.stdout_text()).expect("parse");
    assert_eq!(vimcmd::find_vm(&vms, "spare it's").map(|v| v.vmid), Ok(11));
    let out = s
        .exec(
            &vimcmd::registervm("[datastore1] nope/nope.vmx", None),
            SHORT,
        )
        .expect("registervm missing");
    assert!(matches!(
        vimcmd::parse_registervm(&out.stdout_text()),
        Err(ParseError::Fault(_))
    ));
    let out = s.exec(&vimcmd::hostsummary(), SHORT).expect("hostsummary");
    let sum = vimcmd::parse_hostsummary(&out.stdout_text()).expect("summary");
    assert_eq!(sum.num_cpu_cores, Some(16));
    assert!(sum.overall_memory_usage_mb.is_some());
}

#[test]
fn hang_ends_in_timeout_and_poisons_the_session() {
    let Some(host) = EsxiHost::start(&[]) else {
        return;
    };
    let (_d, kh) = known_hosts(&host.known_hosts_lines());
    let mut s = SshSession::connect(&cfg(&host, key(&host), &kh)).expect("connect");
    host.set_fault("hang", &["30", "match=power.getstate"]);
    let t0 = Instant::now();
    let err = s
        .exec(&vimcmd::power_getstate(1), Duration::from_secs(1))
        .expect_err("must time out");
    assert!(matches!(err, SshError::Timeout(_)), "{err:?}");
    println!("hang: {err}");
    // Ended by our timeout, not by the hang (30 s).
    assert!(t0.elapsed() < Duration::from_secs(25));
    assert!(fencekit::FenceError::from(err.clone()).is_transport());
    let again = s.exec("true", SHORT).expect_err("session is unusable");
    assert!(matches!(again, SshError::Lost(_)), "{again:?}");
}

#[test]
fn connection_drop_is_an_error() {
    let Some(host) = EsxiHost::start(&[]) else {
        return;
    };
    let (_d, kh) = known_hosts(&host.known_hosts_lines());
    let mut s = SshSession::connect(&cfg(&host, key(&host), &kh)).expect("connect");
    host.set_fault("drop", &["match=power.off", "times=1"]);
    let err = s.exec(&vimcmd::power_off(1), SHORT).expect_err("dropped");
    assert!(matches!(err, SshError::Lost(_)), "{err:?}");
    println!("drop: {err}");
    // mode=before: nothing was done.
    assert_eq!(host.vm_state("cl0").as_deref(), Some("on"));
}

#[test]
fn frozen_session_and_frozen_host_time_out() {
    let Some(host) = EsxiHost::start(&[]) else {
        return;
    };
    let (_d, kh) = known_hosts(&host.known_hosts_lines());
    // The session's sshd stops answering mid-command.
    let mut s = SshSession::connect(&cfg(&host, key(&host), &kh)).expect("connect");
    host.set_fault("drop", &["mode=stop", "times=1"]);
    let err = s
        .exec(&vimcmd::power_getstate(1), Duration::from_secs(1))
        .expect_err("frozen session");
    assert!(matches!(err, SshError::Timeout(_)), "{err:?}");
    drop(s);
    // The host stops answering: new connections hang in the handshake.
    host.freeze();
    let mut c = cfg(&host, key(&host), &kh);
    c.connect_timeout = Duration::from_secs(1);
    let err = SshSession::connect(&c).expect_err("frozen host");
    host.thaw();
    assert!(matches!(err, SshError::Timeout(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "no SSH answer from 127.0.0.1 port {} within 1 s",
            host.port()
        )
    );
}

#[test]
fn garbled_output_is_never_a_state() {
    let Some(host) = EsxiHost::start(&[]) else {
        return;
    };
    let (_d, kh) = known_hosts(&host.known_hosts_lines());
    let mut s = SshSession::connect(&cfg(&host, key(&host), &kh)).expect("connect");
    for mode in ["junk", "truncate", "shuffle", "binary"] {
        host.set_fault("garble", &[mode, "times=1"]);
        let out = s.exec(&vimcmd::power_getstate(2), SHORT).expect("exec");
        // An error, or (a shuffle may keep the order) the true state: never a wrong one.
        let parsed = vimcmd::parse_power_state(&out.stdout_text());
        assert!(
            parsed.is_err() || (mode == "shuffle" && parsed == Ok(VmPower::On)),
            "{mode}: {:?}",
            out.stdout_text()
        );
        host.set_fault("garble", &[mode, "times=1"]);
        let out = s.exec(&vimcmd::getallvms(), SHORT).expect("exec");
        // Garbled lists never yield a VM that is not on the host.
        if let Ok(vms) = vimcmd::parse_getallvms(&out.stdout_text()) {
            assert!(vms.len() < 8 || mode == "shuffle", "{mode}");
        }
    }
    // exit fault: nothing printed on stdout, message on stderr, status as configured.
    host.set_fault(
        "exit",
        &[
            "3",
            "msg=Failed to login: Connection reset by peer",
            "times=1",
        ],
    );
    let out = s.exec(&vimcmd::power_getstate(2), SHORT).expect("exec");
    assert_eq!(out.status, Some(3));
    assert!(out.stderr_text().contains("Connection reset by peer"));
    assert!(vimcmd::parse_power_state(&out.stdout_text()).is_err());
}

#[test]
fn output_cap_and_exit_status() {
    let Some(host) = EsxiHost::start(&[]) else {
        return;
    };
    let (_d, kh) = known_hosts(&host.known_hosts_lines());
    let mut c = cfg(&host, key(&host), &kh);
    c.max_output = 200;
    let mut s = SshSession::connect(&c).expect("connect");
    let err = s.exec(&vimcmd::getallvms(), SHORT).expect_err("too big");
    assert!(matches!(err, SshError::Protocol(_)), "{err:?}");
    let mut s = SshSession::connect(&cfg(&host, key(&host), &kh)).expect("connect");
    let out = s
        .exec("echo out; echo err >&2; exit 7", SHORT)
        .expect("exec");
    assert_eq!(
        (out.status, out.stdout_text(), out.stderr_text()),
        (Some(7), "out\n".into(), "err\n".into())
    );
    // Large output (1 MiB) arrives whole.
    let out = s
        .exec("head -c 1048576 /dev/zero", SHORT)
        .expect("exec big");
    assert_eq!(out.stdout.len(), 1_048_576);
    // A killed command is never a success (sshd reports a signal, or the shell above it 137).
    let out = s.exec("kill -9 $$", SHORT).expect("exec signal");
    assert!(!out.success(), "{out:?}");
}

#[test]
fn several_hosts_at_once() {
    let hosts: Vec<EsxiHost> = (0..3)
        .map(|i| {
            std::thread::spawn(move || {
                EsxiHost::start(&[SimVm::new(1, &format!("guest{i}"), "on")])
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .filter_map(|h| h.join().expect("start thread"))
        .collect();
    if hosts.len() < 3 {
        return;
    }
    let mut ports: Vec<u16> = hosts.iter().map(|h| h.port()).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 3);
    for (i, host) in hosts.iter().enumerate() {
        let (_d, kh) = known_hosts(&host.known_hosts_lines());
        let mut s = SshSession::connect(&cfg(host, key(host), &kh)).expect("connect");
        let out = s.exec(&vimcmd::getallvms(), SHORT).expect("getallvms");
        let vms = vimcmd::parse_getallvms(&out.stdout_text()).expect("parse");
        assert_eq!(
            vimcmd::find_vm(&vms, &format!("guest{i}")).map(|v| v.vmid),
            Ok(1)
        );
    }
}

/// Not a timed assertion: prints medians for the report
/// (`cargo test --test integration -- --ignored --nocapture measure_`).
#[test]
#[ignore]
fn measure_connect_exec_vs_openssh() {
    let Some(host) = EsxiHost::builder().auth(Auth::Both).start() else {
        return;
    };
    let (_d, kh) = known_hosts(&host.known_hosts_lines());
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let n = 11;
    let run = |auth: SshAuth| {
        let c = cfg(&host, auth, &kh);
        let mut v = Vec::new();
        for _ in 0..n {
            let t0 = Instant::now();
            let mut s = SshSession::connect(&c).expect("connect");
            let out = s.exec(&vimcmd::power_getstate(1), SHORT).expect("exec");
            assert!(out.success());
            drop(s);
            v.push(t0.elapsed().as_secs_f64());
        }
        median(v)
    };
    let key_t = run(key(&host));
    let kbd_t = run(password(host.password()));
    let mut v = Vec::new();
    for _ in 0..n {
        let t0 = Instant::now();
        let st = std::process::Command::new(host.ssh_wrapper())
            .args(["-p", &host.port().to_string(), "fencetest@127.0.0.1"])
            .arg(vimcmd::power_getstate(1))
            .output()
            .expect("ssh");
        assert!(st.status.success());
        v.push(t0.elapsed().as_secs_f64());
    }
    let ssh_t = median(v);
    let mut v = Vec::new();
    for _ in 0..n {
        let t0 = Instant::now();
        let st = std::process::Command::new(host.ssh_wrapper())
            .args([
                "-p",
                &host.port().to_string(),
                "fencetest@127.0.0.1",
                "true",
            ])
            .output()
            .expect("ssh");
        assert!(st.status.success());
        v.push(t0.elapsed().as_secs_f64());
    }
    let ssh_true = median(v);
    let c = cfg(&host, key(&host), &kh);
    let mut v = Vec::new();
    for _ in 0..n {
        let t0 = Instant::now();
        let mut s = SshSession::connect(&c).expect("connect");
        assert!(s.exec("true", SHORT).expect("exec").success());
        drop(s);
        v.push(t0.elapsed().as_secs_f64());
    }
    let lib_true = median(v);
    println!(
        "median of {n}: libssh2 key+getstate {key_t:.3}s, libssh2 kbdint+getstate {kbd_t:.3}s, \
         OpenSSH ssh key+getstate {ssh_t:.3}s (ratio {:.2}); `true`: libssh2 {lib_true:.3}s vs ssh {ssh_true:.3}s (ratio {:.2})",
        key_t / ssh_t,
        lib_true / ssh_true
    );
}

#[test]
fn simulator_noop_and_slow_faults() {
    let Some(host) = EsxiHost::start(&[]) else {
        return;
    };
    let (_d, kh) = known_hosts(&host.known_hosts_lines());
    let mut s = SshSession::connect(&cfg(&host, key(&host), &kh)).expect("connect");
    // noop: the success text, but the VM stays on.
    host.set_fault("noop", &[]);
    let out = s.exec(&vimcmd::power_off(1), SHORT).expect("power.off");
    assert_eq!(vimcmd::check_power_op(&out.stdout_text()), Ok(()));
    assert_eq!(getstate(&mut s, 1), Ok(VmPower::On));
    host.clear_faults();
    // slow (async): success at once, the state changes about a second later.
    host.set_fault("slow", &["1"]);
    let out = s.exec(&vimcmd::power_off(2), SHORT).expect("power.off");
    assert_eq!(out.stdout_text(), "Powering off VM:\n");
    let t0 = Instant::now();
    let mut seen_on = false;
    loop {
        match getstate(&mut s, 2) {
            Ok(VmPower::On) => seen_on = true,
            Ok(VmPower::Off) => break,
            other => panic!("{other:?}"),
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "never went off");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(seen_on, "the change was not delayed");
    let calls = host.calls();
    assert!(calls.iter().any(|c| c["faults"][0] == "slow"));
}

/// Not a timed assertion: prints the cost of listing a 2,000-VM host
/// (`cargo test --test integration -- --ignored --nocapture measure_`).
#[test]
#[ignore]
fn measure_big_host_list() {
    let vms: Vec<SimVm> = (1..=2000)
        .map(|i| {
            let mut v = SimVm::new(i, &format!("vm {i:04} [grp{}]", i % 17), "on");
            if i % 50 == 0 {
                v.annotation = format!("node {i}\n{i} GB reserved");
            }
            v
        })
        .collect();
    let Some(host) = EsxiHost::start(&vms) else {
        return;
    };
    let (_d, kh) = known_hosts(&host.known_hosts_lines());
    let mut s = SshSession::connect(&cfg(&host, key(&host), &kh)).expect("connect");
    let t0 = Instant::now();
    let out = s.exec(&vimcmd::getallvms(), SHORT).expect("getallvms");
    let t_exec = t0.elapsed();
    let text = out.stdout_text();
    let t1 = Instant::now();
    let parsed = vimcmd::parse_getallvms(&text).expect("parse");
    let t_parse = t1.elapsed();
    assert_eq!(parsed.len(), 2000);
    assert_eq!(
        vimcmd::find_vm(&parsed, "vm 1000 [grp14]").map(|v| (v.vmid, v.annotation.as_str())),
        Ok((1000, "node 1000\n1000 GB reserved"))
    );
    println!(
        "2000 VMs: {} bytes, exec {:.3}s, parse {:.1}ms",
        out.stdout.len(),
        t_exec.as_secs_f64(),
        t_parse.as_secs_f64() * 1000.0
    );
}

#[test]
fn refused_connection_is_a_connect_error() {
    // A port nobody listens on (bound then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let mut c = SshConfig::new("127.0.0.1", "nobody", password("x"));
    c.port = port;
    c.connect_timeout = Duration::from_secs(3);
    let err = SshSession::connect(&c).expect_err("refused");
    assert!(matches!(err, SshError::Connect(_)), "{err:?}");
    // What happened, in OpenSSH's words, without Rust's `(os error 111)`.
    assert_eq!(
        err.to_string(),
        format!("connect to host 127.0.0.1 port {port}: connection refused")
    );
    assert!(matches!(
        fencekit::FenceError::from(err),
        fencekit::FenceError::LoginDenied(_)
    ));
}

#[test]
fn interleaved_streams_and_many_commands_on_one_session() {
    let Some(host) = EsxiHost::builder().auth(Auth::Pubkey).start() else {
        return;
    };
    let (_d, kh) = known_hosts(&host.known_hosts_lines());
    let mut s = SshSession::connect(&cfg(&host, key(&host), &kh)).expect("connect");
    let cmd = "i=0; while [ $i -lt 3000 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done";
    for _ in 0..3 {
        let out = s.exec(cmd, SHORT).expect("interleaved");
        let o = out.stdout_text();
        let e = out.stderr_text();
        assert_eq!(o.lines().count(), 3000);
        assert_eq!(e.lines().count(), 3000);
        assert!(o.ends_with("out2999\n") && e.ends_with("err2999\n"));
    }
    // Many short commands: a lost wake-up would show up as a Timeout here.
    for i in 0..60 {
        let out = s
            .exec(&format!("echo {i}; echo e >&2"), Duration::from_secs(5))
            .expect("short command");
        assert_eq!(out.stdout_text(), format!("{i}\n"));
        assert_eq!(out.stderr_text(), "e\n");
    }
}

#[test]
fn esxi5_and_esxi6_layouts() {
    for layout in ["5", "6"] {
        let Some(host) = EsxiHost::builder().layout(layout).fault_rc(0).start() else {
            return;
        };
        let (_d, kh) = known_hosts(&host.known_hosts_lines());
        let mut s = SshSession::connect(&cfg(&host, key(&host), &kh)).expect("connect");
        let out = s.exec(&vimcmd::getallvms(), SHORT).expect("getallvms");
        let vms = vimcmd::parse_getallvms(&out.stdout_text()).expect("parse");
        assert_eq!(vms.len(), 8, "{layout}");
        // Already off: ESXi 6 says "Power off failed", ESXi 5 prints the old fault block;
        // with exit status 0 (fault_rc 0) only the text tells.
        let out = s.exec(&vimcmd::power_off(3), SHORT).expect("power.off");
        assert_eq!(out.status, Some(0));
        let err = vimcmd::check_power_op(&out.stdout_text()).expect_err(layout);
        match layout {
            "6" => assert!(matches!(err, ParseError::Failed(_)), "{err:?}"),
            _ => assert!(matches!(err, ParseError::Fault(_)), "{err:?}"),
        }
        assert_eq!(getstate(&mut s, 1), Ok(VmPower::On));
        assert_eq!(getstate(&mut s, 3), Ok(VmPower::Off));
        let out = s
            .exec(&vimcmd::power_getstate(99), SHORT)
            .expect("getstate");
        assert!(vimcmd::parse_power_state(&out.stdout_text()).is_err());
        let out = s.exec(&vimcmd::unregister(3), SHORT).expect("unregister");
        assert_eq!(vimcmd::parse_unregister(&out.stdout_text()), Ok(()));
        let out = s
            .exec(
                &vimcmd::registervm("[datastore1] cl01/cl01.vmx", None),
                SHORT,
            )
            .expect("registervm");
        let want = if layout == "5" { None } else { Some(10) };
        assert_eq!(vimcmd::parse_registervm(&out.stdout_text()), Ok(want));
        let out = s.exec_default(&vimcmd::host_version()).expect("vmware -v");
        assert!(vimcmd::parse_host_version(&out.stdout_text()).is_ok());
        // get.config: the VM's own name, in this layout too; NotFound for no VM.
        let out = s.exec(&vimcmd::get_config(4), SHORT).expect("get.config");
        assert_eq!(
            vimcmd::parse_config_name(&out.stdout_text()).as_deref(),
            Ok("node 3 with spaces"),
            "{layout}"
        );
        let out = s.exec(&vimcmd::get_config(99), SHORT).expect("get.config");
        assert!(matches!(
            vimcmd::parse_config_name(&out.stdout_text()),
            Err(ParseError::Fault(_))
        ));
        // The one-line state read + confirmation splits back into its two answers.
        let line = vimcmd::getstate_then_config(6, "");
        let out = s.exec(&line, SHORT).expect("getstate + get.config");
        let text = out.stdout_text();
        let (st, conf) = vimcmd::split_getstate_then_config(&text).expect("mark");
        assert_eq!(vimcmd::parse_power_state(st), Ok(VmPower::Suspended));
        assert_eq!(vimcmd::parse_config_name(conf).as_deref(), Ok("dbvm"));
    }
}
