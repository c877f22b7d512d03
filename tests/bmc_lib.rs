//! fencekit::ipmi against real peers on loopback: ipmi_sim BMCs (tests/sim_ipmi), ipmitool
//! as the second opinion, a lossy UDP relay, and a suite-17 responder (tests/ipmi17.rs).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::time::{Duration, Instant};

use fencekit::ipmi::{ChassisOp, IpmiConfig, IpmiError, Privilege, Session, Version};
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
fn negotiated_suite_and_timing() {
    let Some(bmc) = Bmc::start(&[]) else { return };
    let mut cfg = bmc.cfg();
    cfg.cipher = None;
    let t = Instant::now();
    let mut s = Session::open(&cfg).unwrap();
    eprintln!("negotiated suite {:?} in {:?}, {:?}", s.cipher_suite(), t.elapsed(), s.stats());
    assert_eq!(s.cipher_suite(), Some(3));
    assert_eq!(s.chassis_status().unwrap(), PowerState::On);
}

#[test]
fn ipmi15_md5() {
    let Some(bmc) = Bmc::start(&[("BMC_V15", "1")]) else { return };
    let mut cfg = bmc.cfg();
    cfg.version = Version::V15;
    let mut s = Session::open(&cfg).unwrap();
    assert_eq!(s.cipher_suite(), None);
    assert_eq!(s.chassis_status().unwrap(), PowerState::On);
    s.chassis_control(ChassisOp::PowerDown).unwrap();
    assert_eq!(s.chassis_status().unwrap(), PowerState::Off);
    s.close().unwrap();
    assert_eq!(bmc.ipmitool_power(), Some(PowerState::Off));
    // wrong password
    cfg.password = Secret::new("wrong");
    let t = Instant::now();
    let e = Session::open(&cfg).unwrap_err();
    eprintln!("v15 wrong pw: {e:?} after {:?}", t.elapsed());
    // without 1.5 auth types on the BMC
    let Some(bmc2) = Bmc::start(&[]) else { return };
    let mut cfg2 = bmc2.cfg();
    cfg2.version = Version::V15;
    let e = Session::open(&cfg2).unwrap_err();
    eprintln!("v15 unsupported: {e:?}");
}

#[test]
fn login_errors() {
    let Some(bmc) = Bmc::start(&[]) else { return };
    let mut cfg = bmc.cfg();
    cfg.password = Secret::new("wrong");
    let e = Session::open(&cfg).unwrap_err();
    eprintln!("wrong pw: {e:?}");
    assert!(matches!(FenceError::from(e), FenceError::LoginDenied(_)));
    let mut cfg = bmc.cfg();
    cfg.username = "nobody".into();
    let e = Session::open(&cfg).unwrap_err();
    eprintln!("unknown user: {e:?}");
    // user account asking for administrator
    let mut cfg = bmc.cfg();
    cfg.username = "user".into();
    cfg.password = Secret::new("userpass");
    match Session::open(&cfg) {
        Err(e) => eprintln!("user as admin: {e:?}"),
        Ok(mut s) => {
            let r = s.raw(0x06, 0x3b, &[0]);
            eprintln!("user as admin: opened, priv now {r:?}");
            let e = s.chassis_control(ChassisOp::PowerDown);
            eprintln!("user as admin: control {e:?}");
        }
    }
    let (_, out) = bmc.ipmitool("user", "userpass", &["-L", "ADMINISTRATOR", "chassis", "power", "off"]);
    eprintln!("ipmitool user as admin: {out}");
    // user account at user level: status ok, control refused
    cfg.privilege = Privilege::User;
    let mut s = Session::open(&cfg).unwrap();
    assert_eq!(s.chassis_status().unwrap(), PowerState::On);
    let e = s.chassis_control(ChassisOp::PowerDown).unwrap_err();
    eprintln!("user control: {e:?}");
    assert!(matches!(FenceError::from(e), FenceError::Privileges(_)));
    drop(s);
    // operator can control
    let mut cfg = bmc.cfg();
    cfg.username = "operator".into();
    cfg.password = Secret::new("oppass");
    cfg.privilege = Privilege::Operator;
    let mut s = Session::open(&cfg).unwrap();
    s.chassis_control(ChassisOp::PowerDown).unwrap();
    assert_eq!(s.chassis_status().unwrap(), PowerState::Off);
}

#[test]
fn kg() {
    let Some(bmc) = Bmc::start(&[("BMC_KG", "kgsecret")]) else { return };
    let mut cfg = bmc.cfg();
    cfg.kg = Some(Secret::new("6b67736563726574"));
    let mut s = Session::open(&cfg).unwrap();
    assert_eq!(s.chassis_status().unwrap(), PowerState::On);
    s.close().unwrap();
    cfg.kg = Some(Secret::new("6b67736563726575"));
    let e = Session::open(&cfg).unwrap_err();
    eprintln!("wrong kg: {e:?}");
    cfg.kg = None;
    let e = Session::open(&cfg).unwrap_err();
    eprintln!("no kg: {e:?}");
}

#[test]
fn suite17_responder_proven_by_ipmitool() {
    if crate::ipmisim::need("ipmitool").is_none() {
        return;
    }
    let b = Bmc17::start(&[("admin", "pass17", 4), ("user", "userpass", 2)], None, &[3, 17]);
    let run = |args: &[&str]| ipmitool_at(b.port, "admin", "pass17", &["-C", "17", "-L", "ADMINISTRATOR"], args);
    let (ok, out) = run(&["chassis", "power", "status"]);
    assert!(ok && out.contains("Chassis Power is on"), "{out}");
    let (ok, out) = run(&["chassis", "power", "off"]);
    assert!(ok && out.contains("Down/Off"), "{out}");
    let (ok, out) = run(&["chassis", "power", "status"]);
    assert!(ok && out.contains("Chassis Power is off"), "{out}");
    let (ok, out) = run(&["chassis", "power", "on"]);
    assert!(ok && out.contains("Up/On"), "{out}");
    let (ok, out) = ipmitool_at(b.port, "admin", "wrong", &["-C", "17"], &["chassis", "power", "status"]);
    assert!(!ok, "{out}");
    let (ok, out) = ipmitool_at(b.port, "admin", "pass17", &["-C", "3"], &["chassis", "power", "status"]);
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
    let b = Bmc17::start(&[("admin", "pass17", 4), ("user", "userpass", 2)], None, &[3, 17]);
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
    assert!(matches!(FenceError::from(e.clone()), FenceError::Privileges(_)), "{e:?}");
    // At USER level: status works, Chassis Control is 0xd4 -> Privileges.
    let mut c = cfg17(b.port, "user", "userpass");
    c.privilege = Privilege::User;
    let mut s = Session::open(&c).unwrap();
    assert_eq!(s.chassis_status().unwrap(), PowerState::On);
    let e = s.chassis_control(ChassisOp::PowerDown).unwrap_err();
    assert_eq!(e, IpmiError::Completion { command: "Chassis Control", code: 0xd4 });
    assert!(matches!(FenceError::from(e), FenceError::Privileges(_)));
    drop(s);
    // Suite 0 is never chosen, and an unsupported suite is a config error.
    let mut c = cfg17(b.port, "admin", "pass17");
    c.cipher = Some(4);
    assert!(matches!(Session::open(&c), Err(IpmiError::Config(_))));
    let st = b.state.lock().unwrap();
    assert_eq!(st.open_sessions, 0, "every session closed, error paths included");
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
    let (ok, out) = ipmitool_at(b.port, "admin", "pass17", &["-C", "17", "-y", "6b67736563726574"], &["chassis", "power", "status"]);
    assert!(ok && out.contains("is on"), "{out}");
    c.kg = Some(Secret::new("6b67736563726575"));
    let e = Session::open(&c).unwrap_err();
    assert!(matches!(e, IpmiError::LoginDenied(_)), "{e:?}");
    assert!(e.to_string().contains("Kg") || e.to_string().contains("kg"), "{e}");
}
