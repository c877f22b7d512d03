//! The IPMI transport (`fencekit::transport::ipmi`) against real peers on loopback: ipmi_sim
//! BMCs (tests/support/sim_ipmi), ipmitool as the second opinion, a lossy UDP relay, and a
//! suite-17 responder (tests/support/ipmi17.rs).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use fencekit::transport::ipmi::{ChassisOp, IpmiConfig, IpmiError, Privilege, Session, Version};
use fencekit::{FenceError, PowerState, Secret};

use crate::ipmi17::Bmc17;
use crate::ipmisim::{ipmitool_at, Bmc};

fn wait_power(s: &mut Session, want: PowerState, within: Duration) -> bool {
    let end = Instant::now() + within;
    loop {
        if s.chassis_status().ok() == Some(want) {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn status_off_on_with_second_opinion() {
    let Some(bmc) = Bmc::start(&[]) else { return };
    let mut s = Session::open(&bmc.cfg()).unwrap();
    assert_eq!(s.cipher_suite(), Some(3));
    assert_eq!(s.chassis_status().unwrap(), PowerState::On);
    s.chassis_control(ChassisOp::PowerDown).unwrap();
    assert_eq!(s.chassis_status().unwrap(), PowerState::Off);
    assert_eq!(bmc.ipmitool_power(), Some(PowerState::Off));
    s.chassis_control(ChassisOp::PowerUp).unwrap();
    assert_eq!(s.chassis_status().unwrap(), PowerState::On);
    s.close().unwrap();
    assert_eq!(bmc.ipmitool_power(), Some(PowerState::On));
    assert_eq!(bmc.power_file(), "1");
}

#[test]
fn negotiated_suite_with_ipmi_sim() {
    let Some(bmc) = Bmc::start(&[]) else { return };
    let mut cfg = bmc.cfg();
    cfg.cipher = None;
    let t = Instant::now();
    let mut s = Session::open(&cfg).unwrap();
    eprintln!(
        "negotiated suite {:?} in {:?}",
        s.cipher_suite(),
        t.elapsed()
    );
    assert_eq!(s.cipher_suite(), Some(3));
    assert_eq!(s.chassis_status().unwrap(), PowerState::On);
}

#[test]
fn ipmi15_md5() {
    let Some(bmc) = Bmc::start(&[("BMC_V15", "1")]) else {
        return;
    };
    let mut cfg = bmc.cfg();
    cfg.version = Version::V15;
    let mut s = Session::open(&cfg).unwrap();
    assert_eq!(s.cipher_suite(), None);
    assert_eq!(s.chassis_status().unwrap(), PowerState::On);
    s.chassis_control(ChassisOp::PowerDown).unwrap();
    assert_eq!(s.chassis_status().unwrap(), PowerState::Off);
    s.close().unwrap();
    assert_eq!(bmc.ipmitool_power(), Some(PowerState::Off));
    // ipmi_sim drops an Activate Session with a bad MD5 code: no answer -> login denied.
    cfg.password = Secret::new("wrong");
    cfg.timeout = Duration::from_secs(1);
    let e = Session::open(&cfg).unwrap_err();
    assert!(matches!(FenceError::from(e), FenceError::LoginDenied(_)));
    // 1.5 passwords are at most 16 bytes.
    cfg.password = Secret::new("p".repeat(17));
    assert!(matches!(Session::open(&cfg), Err(IpmiError::Config(_))));
    // A BMC without 1.5 auth types.
    let Some(bmc2) = Bmc::start(&[]) else { return };
    let mut cfg2 = bmc2.cfg();
    cfg2.version = Version::V15;
    let e = Session::open(&cfg2).unwrap_err();
    assert!(e.to_string().contains("MD5"), "{e}");
}

#[test]
fn login_errors() {
    let Some(bmc) = Bmc::start(&[]) else { return };
    let mut cfg = bmc.cfg();
    cfg.password = Secret::new("wrong");
    let e = Session::open(&cfg).unwrap_err();
    assert!(e.to_string().contains("wrong password"), "{e}");
    assert!(!e.to_string().contains("wrong\""));
    assert!(matches!(FenceError::from(e), FenceError::LoginDenied(_)));
    let mut cfg = bmc.cfg();
    cfg.username = "nobody".into();
    let e = Session::open(&cfg).unwrap_err();
    assert!(e.to_string().contains("unknown user"), "{e}");
    // Length limits: a clear error before any traffic (no silent truncation).
    let mut cfg = bmc.cfg();
    cfg.username = "u".repeat(17);
    assert!(matches!(Session::open(&cfg), Err(IpmiError::Config(_))));
    let mut cfg = bmc.cfg();
    cfg.password = Secret::new("p".repeat(21));
    let e = Session::open(&cfg).unwrap_err();
    assert!(matches!(e, IpmiError::Config(_)) && !e.to_string().contains("ppp"));
    // USER-level session: status fine, Chassis Control refused with 0xd4 -> Privileges.
    let mut cfg = bmc.cfg();
    cfg.username = "user".into();
    cfg.password = Secret::new("userpass");
    cfg.privilege = Privilege::User;
    let mut s = Session::open(&cfg).unwrap();
    assert_eq!(s.chassis_status().unwrap(), PowerState::On);
    let e = s.chassis_control(ChassisOp::PowerDown).unwrap_err();
    assert!(matches!(FenceError::from(e), FenceError::Privileges(_)));
    drop(s);
    assert_eq!(bmc.ipmitool_power(), Some(PowerState::On));
    // (ipmi_sim quirk: it lets the "user" account raise itself to ADMINISTRATOR, as ipmitool
    // -L ADMINISTRATOR shows; the suite-17 responder refuses it, see suite17_library.)
    // OPERATOR is enough for Chassis Control.
    let mut cfg = bmc.cfg();
    cfg.username = "operator".into();
    cfg.password = Secret::new("oppass");
    cfg.privilege = Privilege::Operator;
    let mut s = Session::open(&cfg).unwrap();
    s.chassis_control(ChassisOp::PowerDown).unwrap();
    assert_eq!(s.chassis_status().unwrap(), PowerState::Off);
    drop(s);
    assert_eq!(bmc.ipmitool_power(), Some(PowerState::Off));
}

#[test]
fn kg() {
    let Some(bmc) = Bmc::start(&[("BMC_KG", "kgsecret")]) else {
        return;
    };
    let mut cfg = bmc.cfg();
    cfg.kg = Some(Secret::new("6b67736563726574"));
    let mut s = Session::open(&cfg).unwrap();
    assert_eq!(s.chassis_status().unwrap(), PowerState::On);
    s.close().unwrap();
    let (ok, out) = bmc.ipmitool(
        "admin",
        "pass",
        &["-y", "6b67736563726574", "chassis", "power", "status"],
    );
    assert!(ok && out.contains("is on"), "{out}");
    cfg.kg = Some(Secret::new("6b67736563726575"));
    let e = Session::open(&cfg).unwrap_err();
    assert!(matches!(FenceError::from(e), FenceError::LoginDenied(_)));
    cfg.kg = None;
    let e = Session::open(&cfg).unwrap_err();
    assert!(matches!(FenceError::from(e), FenceError::LoginDenied(_)));
    cfg.kg = Some(Secret::new("6b6")); // odd length
    assert!(matches!(Session::open(&cfg), Err(IpmiError::Config(_))));
}

#[test]
fn suite17_responder_proven_by_ipmitool() {
    if crate::ipmisim::need("ipmitool").is_none() {
        return;
    }
    let b = Bmc17::start(
        &[("admin", "pass17", 4), ("user", "userpass", 2)],
        None,
        &[3, 17],
    );
    let run = |args: &[&str]| {
        ipmitool_at(
            b.port,
            "admin",
            "pass17",
            &["-C", "17", "-L", "ADMINISTRATOR"],
            args,
        )
    };
    let (ok, out) = run(&["chassis", "power", "status"]);
    assert!(ok && out.contains("Chassis Power is on"), "{out}");
    let (ok, out) = run(&["chassis", "power", "off"]);
    assert!(ok && out.contains("Down/Off"), "{out}");
    let (ok, out) = run(&["chassis", "power", "status"]);
    assert!(ok && out.contains("Chassis Power is off"), "{out}");
    let (ok, out) = run(&["chassis", "power", "on"]);
    assert!(ok && out.contains("Up/On"), "{out}");
    let (ok, out) = ipmitool_at(
        b.port,
        "admin",
        "wrong",
        &["-C", "17"],
        &["chassis", "power", "status"],
    );
    assert!(!ok, "{out}");
    let (ok, out) = ipmitool_at(
        b.port,
        "admin",
        "pass17",
        &["-C", "3"],
        &["chassis", "power", "status"],
    );
    assert!(ok && out.contains("Chassis Power is on"), "suite 3: {out}");
    let st = b.state.lock().unwrap();
    assert_eq!(st.controls, vec![0, 1]);
    assert_eq!(st.open_sessions, 0, "ipmitool closes its sessions");
    assert!(st.suites_used.contains(&17));
}

fn cfg17(port: u16, user: &str, pw: &str) -> IpmiConfig {
    let mut c = IpmiConfig::new("127.0.0.1", user, Secret::new(pw));
    c.port = port;
    c.timeout = Duration::from_secs(3);
    c.command_timeout = Duration::from_secs(3);
    c
}

#[test]
fn suite17_library() {
    let b = Bmc17::start(
        &[("admin", "pass17", 4), ("user", "userpass", 2)],
        None,
        &[3, 17],
    );
    // Negotiated: the strongest common suite is 17.
    let mut s = Session::open(&cfg17(b.port, "admin", "pass17")).unwrap();
    assert_eq!(s.cipher_suite(), Some(17));
    assert_eq!(s.chassis_status().unwrap(), PowerState::On);
    s.chassis_control(ChassisOp::PowerDown).unwrap();
    assert_eq!(s.chassis_status().unwrap(), PowerState::Off);
    s.chassis_control(ChassisOp::PowerUp).unwrap();
    assert_eq!(s.chassis_status().unwrap(), PowerState::On);
    s.close().unwrap();
    // Explicit suites.
    for suite in [17u8, 3] {
        let mut c = cfg17(b.port, "admin", "pass17");
        c.cipher = Some(suite);
        let mut s = Session::open(&c).unwrap();
        assert_eq!(s.cipher_suite(), Some(suite));
        assert_eq!(s.chassis_status().unwrap(), PowerState::On);
    }
    // Wrong password.
    let e = Session::open(&cfg17(b.port, "admin", "nope")).unwrap_err();
    assert!(matches!(e, IpmiError::LoginDenied(_)), "{e:?}");
    // A USER account asking for ADMINISTRATOR: RAKP 2 "invalid role".
    let e = Session::open(&cfg17(b.port, "user", "userpass")).unwrap_err();
    assert!(
        matches!(FenceError::from(e.clone()), FenceError::Privileges(_)),
        "{e:?}"
    );
    // At USER level: status works, Chassis Control is 0xd4 -> Privileges.
    let mut c = cfg17(b.port, "user", "userpass");
    c.privilege = Privilege::User;
    let mut s = Session::open(&c).unwrap();
    assert_eq!(s.chassis_status().unwrap(), PowerState::On);
    let e = s.chassis_control(ChassisOp::PowerDown).unwrap_err();
    assert_eq!(
        e,
        IpmiError::Completion {
            command: "Chassis Control",
            code: 0xd4
        }
    );
    assert!(matches!(FenceError::from(e), FenceError::Privileges(_)));
    drop(s);
    // Suite 0 is never chosen, and an unsupported suite is a config error.
    let mut c = cfg17(b.port, "admin", "pass17");
    c.cipher = Some(4);
    assert!(matches!(Session::open(&c), Err(IpmiError::Config(_))));
    let st = b.state.lock().unwrap();
    assert_eq!(
        st.open_sessions, 0,
        "every session closed, error paths included"
    );
    assert_eq!(st.controls, vec![0, 1]);
}

#[test]
fn suite17_only_and_suite3_only() {
    let b = Bmc17::start(&[("admin", "pass17", 4)], None, &[17]);
    let mut c = cfg17(b.port, "admin", "pass17");
    assert_eq!(Session::open(&c).unwrap().cipher_suite(), Some(17));
    c.cipher = Some(3);
    let e = Session::open(&c).unwrap_err();
    assert!(matches!(e, IpmiError::NoCipherSuite(_)), "{e:?}");
    // A BMC that ignores Get Channel Cipher Suites: propose 17, then 3.
    let silent = Bmc17::start_with(&[("admin", "pass17", 4)], None, &[17], false);
    let c = cfg17(silent.port, "admin", "pass17");
    assert_eq!(Session::open(&c).unwrap().cipher_suite(), Some(17));
    let silent3 = Bmc17::start_with(&[("admin", "pass17", 4)], None, &[3], false);
    let c = cfg17(silent3.port, "admin", "pass17");
    assert_eq!(Session::open(&c).unwrap().cipher_suite(), Some(3));
    let b3 = Bmc17::start(&[("admin", "pass17", 4)], None, &[3]);
    let c = cfg17(b3.port, "admin", "pass17");
    assert_eq!(Session::open(&c).unwrap().cipher_suite(), Some(3));
}

#[test]
fn suite17_kg() {
    let b = Bmc17::start(&[("admin", "pass17", 4)], Some(b"kgsecret"), &[17]);
    let mut c = cfg17(b.port, "admin", "pass17");
    c.kg = Some(Secret::new("6b67736563726574"));
    let mut s = Session::open(&c).unwrap();
    assert_eq!(s.chassis_status().unwrap(), PowerState::On);
    drop(s);
    if crate::ipmisim::need("ipmitool").is_none() {
        return;
    }
    let (ok, out) = ipmitool_at(
        b.port,
        "admin",
        "pass17",
        &["-C", "17", "-y", "6b67736563726574"],
        &["chassis", "power", "status"],
    );
    assert!(ok && out.contains("is on"), "{out}");
    c.kg = Some(Secret::new("6b67736563726575"));
    let e = Session::open(&c).unwrap_err();
    assert!(matches!(e, IpmiError::LoginDenied(_)), "{e:?}");
    assert!(
        e.to_string().contains("Kg") || e.to_string().contains("kg"),
        "{e}"
    );
}

#[test]
fn cycle_reset_diag() {
    let Some(bmc) = Bmc::start(&[]) else { return };
    let mut s = Session::open(&bmc.cfg()).unwrap();
    s.chassis_control(ChassisOp::PowerCycle).unwrap();
    // ipmi_sim: off at once, on again about 1 s later.
    assert!(wait_power(&mut s, PowerState::On, Duration::from_secs(5)));
    assert!(bmc.events().contains("set power 0"), "{}", bmc.events());
    s.chassis_control(ChassisOp::HardReset).unwrap();
    assert!(bmc.events().contains("set reset 1"));
    // ipmi_sim 2.0.33 has no diagnostic interrupt: a clean completion-code error (0xcc).
    let r = s.chassis_control(ChassisOp::DiagInterrupt);
    assert!(
        matches!(r, Ok(()) | Err(IpmiError::Completion { .. })),
        "{r:?}"
    );
    assert_eq!(s.chassis_status().unwrap(), PowerState::On);
    s.close().unwrap();
    assert_eq!(bmc.ipmitool_power(), Some(PowerState::On));
}

#[test]
fn faults_fail_power_and_ignored_off() {
    let Some(bmc) = Bmc::start(&[]) else { return };
    let mut s = Session::open(&bmc.cfg()).unwrap();
    // Power-off accepted but ignored: the library reports the read-back truth (on).
    bmc.fault(&["poweroff=ignore"]);
    s.chassis_control(ChassisOp::PowerDown).unwrap();
    assert_eq!(s.chassis_status().unwrap(), PowerState::On);
    assert_eq!(bmc.ipmitool_power(), Some(PowerState::On));
    bmc.fault(&["clear"]);
    s.chassis_control(ChassisOp::PowerDown).unwrap();
    assert_eq!(s.chassis_status().unwrap(), PowerState::Off);
    // Power-on failing: completion code 0xff, a Device error, power stays off.
    bmc.fault(&["poweron=error"]);
    let e = s.chassis_control(ChassisOp::PowerUp).unwrap_err();
    assert_eq!(
        e,
        IpmiError::Completion {
            command: "Chassis Control",
            code: 0xff
        }
    );
    assert!(matches!(FenceError::from(e), FenceError::Device(_)));
    assert_eq!(s.chassis_status().unwrap(), PowerState::Off);
    assert_eq!(bmc.ipmitool_power(), Some(PowerState::Off));
    // The host changed by itself: the next read says so.
    bmc.set_power(true);
    assert_eq!(s.chassis_status().unwrap(), PowerState::On);
    bmc.set_power(false);
    assert_eq!(s.chassis_status().unwrap(), PowerState::Off);
    // Delayed power change becomes visible later.
    bmc.fault(&["clear", "delay=1"]);
    s.chassis_control(ChassisOp::PowerUp).unwrap();
    assert!(wait_power(&mut s, PowerState::On, Duration::from_secs(5)));
    s.close().unwrap();
}

#[test]
fn hung_bmc_times_out_then_recovers() {
    let Some(bmc) = Bmc::start(&[]) else { return };
    let mut cfg = bmc.cfg();
    cfg.timeout = Duration::from_secs(1);
    cfg.command_timeout = Duration::from_secs(1);
    let mut s = Session::open(&cfg).unwrap();
    bmc.hang();
    let t = Instant::now();
    let e = s.chassis_status().unwrap_err();
    assert!(
        matches!(FenceError::from(e.clone()), FenceError::TimedOut(_)),
        "{e:?}"
    );
    drop(s); // close attempt also bounded
    let e = Session::open(&cfg).unwrap_err();
    assert!(matches!(FenceError::from(e), FenceError::TimedOut(_)));
    eprintln!("hang: two timeouts + close in {:?}", t.elapsed());
    assert!(t.elapsed() < Duration::from_secs(10));
    bmc.resume();
    // Queued stale requests are answered now; a fresh session must not be confused by them.
    let mut s = Session::open(&bmc.cfg()).unwrap();
    assert_eq!(s.chassis_status().unwrap(), PowerState::On);
    s.close().unwrap();
}

#[test]
fn nothing_listening_times_out() {
    let port = crate::ipmisim::free_port();
    let mut cfg = IpmiConfig::new("127.0.0.1", "admin", Secret::new("pass"));
    cfg.port = port;
    cfg.timeout = Duration::from_millis(800);
    let e = Session::open(&cfg).unwrap_err();
    assert!(matches!(e, IpmiError::TimedOut(_)), "{e:?}");
    // What happened, in words: the ICMP "port unreachable" the kernel reported is named.
    let text = e.to_string();
    let want = format!(
        "no IPMI answer from 127.0.0.1 port {port} within 0.8 s: the host reports that nothing \
         listens on that UDP port (Get Channel Authentication Capabilities)"
    );
    assert_eq!(text, want);
}

#[test]
fn several_bmcs_in_parallel() {
    let bmcs: Vec<Bmc> = (0..3).filter_map(|_| Bmc::start(&[])).collect();
    if bmcs.len() < 3 {
        return;
    }
    std::thread::scope(|sc| {
        for b in &bmcs {
            sc.spawn(move || {
                let mut s = Session::open(&b.cfg()).unwrap();
                s.chassis_control(ChassisOp::PowerDown).unwrap();
                assert_eq!(s.chassis_status().unwrap(), PowerState::Off);
                s.chassis_control(ChassisOp::PowerUp).unwrap();
                assert_eq!(s.chassis_status().unwrap(), PowerState::On);
            });
        }
    });
    for b in &bmcs {
        assert_eq!(b.ipmitool_power(), Some(PowerState::On));
        assert!(b.events().contains("set power 0"));
    }
}

#[test]
fn no_session_leak_200_runs() {
    let Some(bmc) = Bmc::start(&[]) else { return };
    let cfg = bmc.cfg();
    let mut times = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let mut s = Session::open(&cfg).unwrap();
        assert_eq!(s.chassis_status().unwrap(), PowerState::On);
        s.close().unwrap();
        times.push(t.elapsed());
    }
    // Error paths close too (Drop): 70 sessions that fail a command (> the 63-slot table).
    let mut ucfg = bmc.cfg();
    ucfg.username = "user".into();
    ucfg.password = Secret::new("userpass");
    ucfg.privilege = Privilege::User;
    for _ in 0..70 {
        let mut s = Session::open(&ucfg).unwrap();
        assert!(s.chassis_control(ChassisOp::PowerDown).is_err());
    }
    // Wrong passwords: the half-open session is dropped (RAKP 3 with an error status).
    let mut wcfg = bmc.cfg();
    wcfg.password = Secret::new("wrong");
    for _ in 0..70 {
        assert!(matches!(
            Session::open(&wcfg),
            Err(IpmiError::LoginDenied(_))
        ));
    }
    times.sort();
    eprintln!("login+status+close: median {:?}", times[times.len() / 2]);
    let (ok, out) = bmc.ipmitool("admin", "pass", &["chassis", "power", "status"]);
    assert!(ok && out.contains("Chassis Power is on"), "{out}");
}

/// One fence-like cycle through `port`: off, read back, on, read back (one session).
fn off_on_cycle(cfg: &IpmiConfig) -> Result<(), IpmiError> {
    let mut s = Session::open(cfg)?;
    s.chassis_control(ChassisOp::PowerDown)?;
    assert_eq!(s.chassis_status()?, PowerState::Off);
    s.chassis_control(ChassisOp::PowerUp)?;
    assert_eq!(s.chassis_status()?, PowerState::On);
    let _ = s.close(); // a lost Close Session answer is not the action's failure
    Ok(())
}

#[test]
fn lossy_link_30_percent_both_ways() {
    let Some(bmc) = Bmc::start(&[]) else { return };
    let Some(relay) = crate::ipmisim::Relay::start(
        bmc.port,
        bmc.dir.path(),
        &[
            "--drop",
            "0.3",
            "--seed",
            &std::env::var("LOSSY_SEED").unwrap_or_else(|_| "7".into()),
        ],
    ) else {
        return;
    };
    let mut cfg = bmc.cfg();
    cfg.port = relay.port;
    cfg.retransmit = Duration::from_millis(100);
    cfg.timeout = Duration::from_secs(20);
    cfg.command_timeout = Duration::from_secs(20);
    for i in 0..4 {
        let t = Instant::now();
        let r = off_on_cycle(&cfg);
        eprintln!("lossy run {i}: {:?}", t.elapsed());
        if let Err(e) = r {
            panic!("run {i}: {e:?}\n{}", relay.log());
        }
        assert_eq!(bmc.ipmitool_power(), Some(PowerState::On));
    }
    let log = relay.log();
    let drops = log.matches("DROP").count();
    let total = log.lines().count();
    eprintln!("lossy: {drops} of {total} datagrams dropped");
    assert!(drops * 5 > total, "the relay really dropped (>20 %)");
}

#[test]
fn duplicated_delayed_replayed_replies_never_answer_another_request() {
    let Some(bmc) = Bmc::start(&[]) else { return };
    let Some(relay) = crate::ipmisim::Relay::start(
        bmc.port,
        bmc.dir.path(),
        &[
            "--dup",
            "0.3",
            "--delay",
            "0.3:600",
            "--replay-s2c",
            "9:300,12:300",
            "--seed",
            "3",
        ],
    ) else {
        return;
    };
    let mut cfg = bmc.cfg();
    cfg.port = relay.port;
    cfg.retransmit = Duration::from_millis(200);
    cfg.timeout = Duration::from_secs(10);
    cfg.command_timeout = Duration::from_secs(10);
    let mut s = Session::open(&cfg).unwrap();
    for _ in 0..6 {
        assert_eq!(s.chassis_status().unwrap(), PowerState::On);
        s.chassis_control(ChassisOp::PowerDown).unwrap();
        assert_eq!(s.chassis_status().unwrap(), PowerState::Off);
        assert_eq!(s.chassis_status().unwrap(), PowerState::Off);
        s.chassis_control(ChassisOp::PowerUp).unwrap();
        assert_eq!(s.chassis_status().unwrap(), PowerState::On);
    }
    let st = s.stats();
    eprintln!("dup/delay: {st:?}");
    assert!(
        st.ignored > 0,
        "some late/duplicate datagrams were seen and dropped"
    );
    let log = relay.log();
    assert!(log.contains("DUP") && log.contains("DELAY"));
}

#[test]
fn bmc_dies_mid_session() {
    let Some(bmc) = Bmc::start(&[]) else { return };
    // Login (5 datagrams, then one status with Set Session Privilege Level) passes, then the link dies.
    let Some(relay) = crate::ipmisim::Relay::start(bmc.port, bmc.dir.path(), &["--die-after", "6"])
    else {
        return;
    };
    let mut cfg = bmc.cfg();
    cfg.port = relay.port;
    cfg.command_timeout = Duration::from_secs(1);
    let mut s = Session::open(&cfg).unwrap();
    assert_eq!(s.chassis_status().unwrap(), PowerState::On);
    let e = s.chassis_control(ChassisOp::PowerDown).unwrap_err();
    assert!(matches!(FenceError::from(e), FenceError::TimedOut(_)));
}

#[test]
fn suite0_only_when_asked() {
    let Some(bmc) = Bmc::start(&[]) else { return };
    let mut cfg = bmc.cfg();
    cfg.cipher = Some(0);
    // ipmi_sim accepts suite 0 (no authentication at all) when the client asks for it.
    let mut s = Session::open(&cfg).unwrap();
    assert_eq!(s.cipher_suite(), Some(0));
    assert_eq!(s.chassis_status().unwrap(), PowerState::On);
    drop(s);
    // Never negotiated by itself although ipmi_sim lists suite 0 first.
    cfg.cipher = None;
    assert_eq!(Session::open(&cfg).unwrap().cipher_suite(), Some(3));
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Not a test: `cargo test --release --test integration bench_ -- --ignored --nocapture`.
/// Medians of one login + Get Chassis Status + close (this library, in-process) against one
/// `ipmitool -I lanplus -C 3 chassis power status` process, same ipmi_sim.
#[test]
#[ignore]
fn bench_status_vs_ipmitool() {
    let Some(bmc) = Bmc::start(&[]) else { return };
    let n = 30;
    let cfg = bmc.cfg();
    let mut ours = Vec::new();
    let mut neg = Vec::new();
    let mut tool = Vec::new();
    let mut ncfg = bmc.cfg();
    ncfg.cipher = None;
    for _ in 0..n {
        let t = Instant::now();
        let mut s = Session::open(&cfg).unwrap();
        assert_eq!(s.chassis_status().unwrap(), PowerState::On);
        s.close().unwrap();
        ours.push(t.elapsed());
        let t = Instant::now();
        let mut s = Session::open(&ncfg).unwrap();
        assert_eq!(s.chassis_status().unwrap(), PowerState::On);
        s.close().unwrap();
        neg.push(t.elapsed());
        let t = Instant::now();
        let (ok, _) = bmc.ipmitool("admin", "pass", &["chassis", "power", "status"]);
        assert!(ok);
        tool.push(t.elapsed());
    }
    let mut bare = Vec::new();
    let mut reboot = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        Session::open(&cfg).unwrap().close().unwrap();
        bare.push(t.elapsed());
        let t = Instant::now();
        let mut s = Session::open(&cfg).unwrap();
        s.chassis_control(ChassisOp::PowerDown).unwrap();
        assert!(wait_power(&mut s, PowerState::Off, Duration::from_secs(5)));
        s.chassis_control(ChassisOp::PowerUp).unwrap();
        assert!(wait_power(&mut s, PowerState::On, Duration::from_secs(5)));
        s.close().unwrap();
        reboot.push(t.elapsed());
    }
    let (o, g, i) = (median(ours), median(neg), median(tool));
    eprintln!(
        "n={n}: login+status+close -C 3 {o:?}, negotiated {g:?}; login+close {:?}; \
         one-session reboot (off, read back, on, read back) {:?}; \
         ipmitool -C 3 chassis power status {i:?}; ratio {:.1}x",
        median(bare),
        median(reboot),
        i.as_secs_f64() / o.as_secs_f64()
    );
}

#[test]
fn ipmi_sim_refusing_suite_3() {
    if crate::ipmisim::need("gcc").is_none() {
        return;
    }
    // ipmi_sim with a loadlib module that breaks suite 3: it still lists suite 3 but answers
    // Open Session with status 0x11.
    let Some(bmc) = Bmc::start(&[("BMC_REFUSE_SUITES", "3")]) else {
        return;
    };
    let cfg = bmc.cfg(); // cipher 3 forced
    let e = Session::open(&cfg).unwrap_err();
    assert!(matches!(e, IpmiError::NoCipherSuite(_)), "{e:?}");
    assert!(e.to_string().contains("0x11"), "{e}");
    assert!(matches!(FenceError::from(e), FenceError::LoginDenied(_)));
    // Negotiated: 3 is refused, the next strongest common suite (2) is used.
    let mut ncfg = bmc.cfg();
    ncfg.cipher = None;
    let mut s = Session::open(&ncfg).unwrap();
    assert_eq!(s.cipher_suite(), Some(2));
    s.chassis_control(ChassisOp::PowerDown).unwrap();
    assert_eq!(s.chassis_status().unwrap(), PowerState::Off);
    drop(s);
    let (ok, out) = crate::ipmisim::ipmitool_at(
        bmc.port,
        "admin",
        "pass",
        &["-C", "2"],
        &["chassis", "power", "status"],
    );
    assert!(ok && out.contains("is off"), "{out}");
}

/// Login requests that reach the BMC late and out of order (the BMC answers a resent request
/// first, then the original): Open Session (c2s 2), RAKP 1 (c2s 3), RAKP 3 (c2s 4).
#[test]
fn reordered_login_requests() {
    let Some(bmc) = Bmc::start(&[]) else { return };
    for (n, what) in [
        (2, "Open Session"),
        (3, "RAKP 1"),
        (4, "RAKP 3"),
        (5, "Set Session Privilege"),
    ] {
        let spec = format!("{n}:250");
        let Some(relay) =
            crate::ipmisim::Relay::start(bmc.port, bmc.dir.path(), &["--delay-c2s", &spec])
        else {
            return;
        };
        let mut cfg = bmc.cfg();
        cfg.port = relay.port;
        cfg.retransmit = Duration::from_millis(100);
        let t = Instant::now();
        let r = Session::open(&cfg).and_then(|mut s| s.chassis_status());
        eprintln!("{what} delayed: {r:?} in {:?}", t.elapsed());
        assert_eq!(r, Ok(PowerState::On), "{what}\n{}", relay.log());
    }
}
