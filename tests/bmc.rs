//! The real `fence_bmc` binary against real peers on loopback: OpenIPMI `ipmi_sim` BMCs
//! (tests/support/sim_ipmi, guards in tests/support/ipmisim.rs), the suite-17 responder
//! (tests/support/ipmi17.rs) and the lossy UDP relay, with `ipmitool -I lanplus` reading the power state back as a second opinion
//! after every action. Input as Pacemaker writes it (stdin, legacy names, plug and nodename
//! present) and on argv (short and long options).
//!
//! Every failure must be exit 1 with a clear message on stderr, never a success and never
//! "Status: OFF"; every success has an empty stderr; no password or Kg ever appears in the
//! output. No timed assertions: only generous "it ended" bounds.
//!
//! ipmi_sim 2.0.33 quirk: an account whose lan.conf privilege is `user` still gets an
//! ADMINISTRATOR session over RMCP+ (ipmitool `-U user -L ADMINISTRATOR chassis power off`
//! works too), so "user-level account asking for administrator" is tested against the suite-17
//! responder, which refuses the role in RAKP 2 as a real BMC does.

use std::io::Write;
use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fencekit::PowerState;

use crate::agentcmd::{self, Mode, Opt, Run};
use crate::ipmi17::Bmc17;
use crate::ipmisim::{ipmitool_at, Bmc, Relay};

/// Distinctive passwords (at most 20 characters, no spaces or quotes: lan.conf), so that a
/// leak into any output is visible.
pub(crate) const ADMIN_PW: &str = "Adm1n-Zq7-secret";
const OP_PW: &str = "Op3r-Kx9-secret";
const USER_PW: &str = "Us3r-Wv5-secret";
/// The BMC key (Kg) and its hexadecimal form for `hexadecimal_kg`.
const KG: &str = "kg-Sekr1t-77";

fn kg_hex(kg: &str) -> String {
    kg.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Generous bound for "the run ended" (the default timeouts are 5 s login, 20 s power).
const ENDED: Duration = Duration::from_secs(60);

fn fence() -> PathBuf {
    agentcmd::bin("fence_bmc")
}

/// An ipmi_sim BMC with the distinctive passwords plus `extra` environment.
pub(crate) fn sim(extra: &[(&str, &str)]) -> Option<Bmc> {
    let mut env = vec![
        ("BMC_ADMIN_PW", ADMIN_PW),
        ("BMC_OP_PW", OP_PW),
        ("BMC_USER_PW", USER_PW),
    ];
    env.extend_from_slice(extra);
    Bmc::start(&env)
}

/// Stdin as Pacemaker's fenced writes it for a fence_ipmilan-style device: legacy names
/// (ipaddr/login/passwd), lanplus=1, the plug (`port=`) and `nodename=` present.
pub(crate) fn pcmk_stdin(port: u16, action: &str, extra: &[&str]) -> String {
    let mut s = format!(
        "action={action}\nipaddr=127.0.0.1\nipport={port}\nlogin=admin\npasswd={ADMIN_PW}\n\
         lanplus=1\nport=node-bmc1\nnodename=node-bmc1\n"
    );
    for e in extra {
        s.push_str(e);
        s.push('\n');
    }
    s
}

pub(crate) fn stdin(text: &str) -> Run {
    agentcmd::stdin(&fence(), text)
}

/// argv run: `-a 127.0.0.1 -u PORT -l admin -p PW` + `args`.
fn argv(port: u16, args: &[&str]) -> Run {
    let p = port.to_string();
    let mut a = vec!["-a", "127.0.0.1", "-u", &p, "-l", "admin", "-p", ADMIN_PW];
    a.extend_from_slice(args);
    agentcmd::args(&fence(), &a)
}

/// No secret in any output.
fn no_secret(r: &Run) {
    let hex = kg_hex(KG);
    for s in [ADMIN_PW, OP_PW, USER_PW, KG, hex.as_str()] {
        assert!(
            !r.stdout.contains(s) && !r.stderr.contains(s),
            "secret {s:?} in the output: {r:?}"
        );
    }
}

/// Exit `code`, exactly `stdout` (one line, or nothing), empty stderr, ended in time.
fn ok_code(r: &Run, code: i32, stdout: &str) {
    let want = if stdout.is_empty() {
        String::new()
    } else {
        format!("{stdout}\n")
    };
    assert_eq!((r.code, r.stdout.as_str()), (code, want.as_str()), "{r:?}");
    assert!(r.stderr.is_empty(), "stderr on success: {r:?}");
    assert!(r.elapsed < ENDED, "{r:?}");
    no_secret(r);
}

fn ok(r: &Run, stdout: &str) {
    ok_code(r, 0, stdout);
}

/// Exit 1, `needle` on stderr, no success and no "Status: OFF" anywhere, ended in time.
fn failed(r: &Run, needle: &str) {
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains(needle), "stderr lacks {needle:?}: {r:?}");
    for bad in ["Success", "Status: OFF", "Status: ON"] {
        assert!(!r.stdout.contains(bad), "{bad:?} on a failure: {r:?}");
    }
    assert!(r.elapsed < ENDED, "{r:?}");
    no_secret(r);
}

/// ipmitool's reading (second opinion) equals `want`.
fn second_opinion(bmc: &Bmc, want: PowerState) {
    assert_eq!(bmc.ipmitool_power(), Some(want), "ipmitool disagrees");
}

/// The chassis program's events since `mark` (a previous length of the log).
fn events_since(bmc: &Bmc, mark: usize) -> String {
    bmc.events().get(mark..).unwrap_or_default().to_string()
}

/// `set power 0` then `set power 1`, in that order, in `ev`.
fn off_then_on(ev: &str) -> bool {
    match (ev.find("set power 0 -> ok"), ev.rfind("set power 1 -> ok")) {
        (Some(off), Some(on)) => off < on,
        _ => false,
    }
}

#[test]
fn stdin_pacemaker_style_status_off_on_reboot_monitor() {
    let Some(bmc) = sim(&[]) else { return };
    let p = bmc.port;
    ok(&stdin(&pcmk_stdin(p, "status", &[])), "Status: ON");
    ok(&stdin(&pcmk_stdin(p, "monitor", &[])), "");
    // Pacemaker's default waits (power_wait 2) for off; then shorter ones.
    ok(&stdin(&pcmk_stdin(p, "off", &[])), "Success: Powered OFF");
    second_opinion(&bmc, PowerState::Off);
    assert_eq!(bmc.power_file(), "0");
    ok(&stdin(&pcmk_stdin(p, "off", &[])), "Success: Already OFF");
    ok_code(&stdin(&pcmk_stdin(p, "status", &[])), 2, "Status: OFF");
    // monitor checks the device, not the target: 0 whether on or off.
    ok(&stdin(&pcmk_stdin(p, "monitor", &[])), "");
    ok(
        &stdin(&pcmk_stdin(p, "on", &["power_wait=0"])),
        "Success: Powered ON",
    );
    second_opinion(&bmc, PowerState::On);
    ok(
        &stdin(&pcmk_stdin(p, "on", &["power_wait=0"])),
        "Success: Already ON",
    );
    let mark = bmc.events().len();
    ok(
        &stdin(&pcmk_stdin(p, "reboot", &["power_wait=1"])),
        "Success: Rebooted",
    );
    let ev = events_since(&bmc, mark);
    assert!(off_then_on(&ev), "reboot is off then on: {ev}");
    second_opinion(&bmc, PowerState::On);
    // Reboot of a target that is off: it is switched on.
    bmc.set_power(false);
    let mark = bmc.events().len();
    ok(
        &stdin(&pcmk_stdin(p, "reboot", &["power_wait=0"])),
        "Success: Rebooted",
    );
    let ev = events_since(&bmc, mark);
    assert!(!ev.contains("set power 0"), "{ev}");
    assert!(ev.contains("set power 1 -> ok"), "{ev}");
    second_opinion(&bmc, PowerState::On);
    // Canonical names on stdin work too (what a new `pcs stonith create` writes).
    let text = format!(
        "action=status\nip=127.0.0.1\nipport={p}\nusername=admin\npassword={ADMIN_PW}\n\
         lanplus=1\ncipher=3\nprivlvl=administrator\nport=node-bmc1\nnodename=node-bmc1\n"
    );
    ok(&stdin(&text), "Status: ON");
    // Verbose output (debug lines) holds no secret either.
    let r = stdin(&pcmk_stdin(p, "reboot", &["power_wait=0", "verbose=1"]));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("Chassis Power Control"), "{r:?}");
    no_secret(&r);
    second_opinion(&bmc, PowerState::On);
}

fn argv_opts<'a>(port: &'a str, action: &'a str) -> Vec<Opt<'a>> {
    vec![
        ("ip", Some('a'), "ip", Some("127.0.0.1")),
        ("ipport", Some('u'), "ipport", Some(port)),
        ("username", Some('l'), "username", Some("admin")),
        ("password", Some('p'), "password", Some(ADMIN_PW)),
        ("lanplus", Some('P'), "lanplus", None),
        ("cipher", Some('C'), "cipher", Some("3")),
        ("privlvl", Some('L'), "privlvl", Some("administrator")),
        ("power_wait", None, "power-wait", Some("0")),
        ("action", Some('o'), "action", Some(action)),
    ]
}

#[test]
fn argv_short_and_long_all_actions() {
    let Some(bmc) = sim(&[]) else { return };
    let port = bmc.port.to_string();
    for mode in [Mode::Short, Mode::Long, Mode::Stdin] {
        let run = |action: &str| agentcmd::run_mode(&fence(), mode, &argv_opts(&port, action));
        ok(&run("status"), "Status: ON");
        ok(&run("off"), "Success: Powered OFF");
        second_opinion(&bmc, PowerState::Off);
        ok_code(&run("status"), 2, "Status: OFF");
        ok(&run("monitor"), "");
        ok(&run("on"), "Success: Powered ON");
        second_opinion(&bmc, PowerState::On);
        ok(&run("monitor"), "");
        let mark = bmc.events().len();
        ok(&run("reboot"), "Success: Rebooted");
        assert!(off_then_on(&events_since(&bmc, mark)), "{mode:?}");
        second_opinion(&bmc, PowerState::On);
    }
    // The default action is reboot (fence_ipmilan's), and -v stacks.
    let mark = bmc.events().len();
    ok(
        &argv(bmc.port, &["-P", "--power-wait=0"]),
        "Success: Rebooted",
    );
    assert!(off_then_on(&events_since(&bmc, mark)));
    second_opinion(&bmc, PowerState::On);
}

#[test]
fn validate_all_and_metadata_make_no_traffic() {
    // A "BMC" that only listens: validate-all must not send it a single datagram.
    let listener = UdpSocket::bind("127.0.0.1:0").unwrap();
    listener
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    ok(&stdin(&pcmk_stdin(port, "validate-all", &[])), "");
    ok(&argv(port, &["-o", "validate-all", "-C", "17"]), "");
    let mut buf = [0u8; 64];
    assert!(
        listener.recv_from(&mut buf).is_err(),
        "validate-all sent a datagram"
    );
    // With the simulator stopped, validate-all still succeeds (no traffic), monitor fails.
    let Some(bmc) = sim(&[]) else { return };
    let port = bmc.port;
    drop(bmc);
    ok(&stdin(&pcmk_stdin(port, "validate-all", &[])), "");
    failed(&stdin(&pcmk_stdin(port, "monitor", &[])), "Failed:");
    // validate-all rejects bad options without traffic.
    failed(
        &stdin(&pcmk_stdin(port, "validate-all", &["cipher=abc"])),
        "cipher",
    );
    failed(
        &stdin(&pcmk_stdin(port, "validate-all", &["privlvl=root"])),
        "privlvl",
    );
    failed(
        &stdin(&pcmk_stdin(
            port,
            "validate-all",
            &["hexadecimal_kg=zz-not-hex"],
        )),
        "Failed:",
    );
    // Metadata: no BMC needed; fence_ipmilan's option names are there.
    let r = agentcmd::args(&fence(), &["-o", "metadata"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.is_empty(), "{r:?}");
    assert!(r.stdout.contains(r#"<resource-agent name="fence_bmc""#));
    for p in [
        "ip",
        "ipaddr",
        "ipport",
        "username",
        "login",
        "password",
        "passwd",
        "password_script",
        "lanplus",
        "cipher",
        "privlvl",
        "hexadecimal_kg",
        "method",
        "power_wait",
        "power_timeout",
        "login_timeout",
        "port_as_ip",
        "plug",
        "port",
    ] {
        assert!(
            r.stdout.contains(&format!(r#"<parameter name="{p}""#)),
            "metadata lacks {p}"
        );
    }
    for a in [
        "on",
        "off",
        "reboot",
        "status",
        "monitor",
        "metadata",
        "validate-all",
        "diag",
    ] {
        assert!(
            r.stdout.contains(&format!(r#"<action name="{a}""#)),
            "metadata lacks action {a}"
        );
    }
    assert!(
        !r.stdout.contains(r#"<action name="list""#),
        "single device: no list"
    );
    // The same on stdin.
    let r = stdin("action=metadata\n");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(r#"<resource-agent name="fence_bmc""#));
}

#[test]
fn ipmi15_md5_lanplus_0() {
    let Some(bmc) = sim(&[("BMC_V15", "1")]) else {
        return;
    };
    let p = bmc.port;
    let v15 = |action: &str| {
        let text = pcmk_stdin(p, action, &["power_wait=0"]).replace("lanplus=1", "lanplus=0");
        stdin(&text)
    };
    ok(&v15("status"), "Status: ON");
    ok(&v15("off"), "Success: Powered OFF");
    second_opinion(&bmc, PowerState::Off);
    ok_code(&v15("status"), 2, "Status: OFF");
    ok(&v15("on"), "Success: Powered ON");
    second_opinion(&bmc, PowerState::On);
    let mark = bmc.events().len();
    ok(&v15("reboot"), "Success: Rebooted");
    assert!(off_then_on(&events_since(&bmc, mark)));
    second_opinion(&bmc, PowerState::On);
    // argv: --lanplus=0; a wrong password is refused under 1.5 too.
    ok(&argv(p, &["--lanplus=0", "-o", "status"]), "Status: ON");
    let r = agentcmd::args(
        &fence(),
        &[
            "-a",
            "127.0.0.1",
            "-u",
            &p.to_string(),
            "-l",
            "admin",
            "-p",
            "Wrong-Pw-1",
            "--lanplus=0",
            "-o",
            "status",
        ],
    );
    failed(&r, "Failed:");
    // A BMC without IPMI 1.5 authentication: a clear error.
    let Some(plain) = sim(&[]) else { return };
    let text = pcmk_stdin(plain.port, "status", &[]).replace("lanplus=1", "lanplus=0");
    failed(&stdin(&text), "IPMI 1.5");
}

#[test]
fn cipher_3_negotiated_and_refused() {
    let Some(bmc) = sim(&[]) else { return };
    let p = bmc.port;
    ok(&argv(p, &["-P", "-C", "3", "-o", "status"]), "Status: ON");
    // Negotiated: ipmi_sim has no suite 17, so the strongest common suite is 3.
    let r = argv(p, &["-o", "status", "-v"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "Status: ON\n"), "{r:?}");
    assert!(
        r.stderr.contains("IPMI session open (cipher suite 3)"),
        "{r:?}"
    );
    no_secret(&r);
    ok(
        &argv(p, &["-o", "off", "--power-wait=0"]),
        "Success: Powered OFF",
    );
    second_opinion(&bmc, PowerState::Off);
    ok(
        &argv(p, &["-o", "on", "--power-wait=0"]),
        "Success: Powered ON",
    );
    second_opinion(&bmc, PowerState::On);
    // Suite 0 (no authentication) only when asked for, and then with a warning.
    let r = argv(p, &["-C", "0", "-o", "status"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "Status: ON\n"), "{r:?}");
    assert!(r.stderr.contains("WARNING: cipher suite 0"), "{r:?}");
    no_secret(&r);
    // Asking for 17 from a BMC without it is an error, not a silent downgrade.
    failed(&argv(p, &["-C", "17", "-o", "status"]), "Failed:");
    // An unknown suite is a usage error before any traffic.
    failed(&argv(p, &["-C", "99", "-o", "status"]), "cipher");
    // ipmi_sim refusing suite 3 (cipher-filter): negotiation finds another suite or fails
    // clearly; -C 3 fails clearly.
    let Some(no3) = sim(&[("BMC_REFUSE_SUITES", "3")]) else {
        return;
    };
    failed(&argv(no3.port, &["-C", "3", "-o", "status"]), "Failed:");
}

#[test]
fn suite17_responder() {
    if crate::ipmisim::need("ipmitool").is_none() {
        return;
    }
    let b = Bmc17::start(
        &[
            ("admin", ADMIN_PW, 4),
            ("operator", OP_PW, 3),
            ("user", USER_PW, 2),
        ],
        None,
        &[3, 17],
    );
    let p = b.port;
    let power = || b.state.lock().unwrap().power_on;
    // Second opinion: ipmitool -C 17 (the responder is proven against it in
    // tests/ipmi_transport.rs).
    let second17 = |want: &str| {
        let (ok, out) = ipmitool_at(
            p,
            "admin",
            ADMIN_PW,
            &["-C", "17"],
            &["chassis", "power", "status"],
        );
        assert!(ok && out.contains(want), "ipmitool -C 17: {out}");
    };
    ok(&argv(p, &["-C", "17", "-o", "status"]), "Status: ON");
    ok(
        &argv(p, &["-C", "17", "-o", "off", "--power-wait=0"]),
        "Success: Powered OFF",
    );
    assert!(!power());
    second17("Chassis Power is off");
    ok_code(&argv(p, &["-C", "17", "-o", "status"]), 2, "Status: OFF");
    ok(
        &argv(p, &["-C", "17", "-o", "on", "--power-wait=0"]),
        "Success: Powered ON",
    );
    second17("Chassis Power is on");
    // Negotiated: 17 is the strongest common suite; stdin as Pacemaker writes it.
    let r = stdin(&pcmk_stdin(p, "reboot", &["power_wait=0", "verbose=1"]));
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "Success: Rebooted\n"),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("IPMI session open (cipher suite 17)"),
        "{r:?}"
    );
    no_secret(&r);
    second17("Chassis Power is on");
    {
        let st = b.state.lock().unwrap();
        assert!(
            st.suites_used.iter().all(|s| *s == 17),
            "{:?}",
            st.suites_used
        );
        let n = st.controls.len();
        assert_eq!(
            st.controls.get(n - 2..),
            Some(&[0u8, 1][..]),
            "reboot = off, on"
        );
    }
    // diag: pulse diagnostic interrupt (Chassis Control 4) is accepted by this responder.
    let r = argv(p, &["-C", "17", "-o", "diag"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.is_empty(), "{r:?}");
    assert_eq!(b.state.lock().unwrap().controls.last(), Some(&4));
    // Operator account at operator level can fence.
    let op = |action: &str| {
        agentcmd::args(
            &fence(),
            &[
                "-a",
                "127.0.0.1",
                "-u",
                &p.to_string(),
                "-l",
                "operator",
                "-p",
                OP_PW,
                "-L",
                "operator",
                "-o",
                action,
                "--power-wait=0",
            ],
        )
    };
    ok(&op("off"), "Success: Powered OFF");
    second17("Chassis Power is off");
    ok(&op("on"), "Success: Powered ON");
    second17("Chassis Power is on");
    // A user-level account asking for administrator (the default) is refused in RAKP 2.
    let user_admin = agentcmd::args(
        &fence(),
        &[
            "-a",
            "127.0.0.1",
            "-u",
            &p.to_string(),
            "-l",
            "user",
            "-p",
            USER_PW,
            "-o",
            "off",
        ],
    );
    failed(&user_admin, "Failed:");
    assert!(
        user_admin.stderr.to_lowercase().contains("privilege")
            || user_admin.stderr.to_lowercase().contains("role"),
        "{user_admin:?}"
    );
    assert!(power());
    // privlvl=user: it can log in and read the state, but not fence.
    let user = |action: &str| {
        agentcmd::args(
            &fence(),
            &[
                "-a",
                "127.0.0.1",
                "-u",
                &p.to_string(),
                "-l",
                "user",
                "-p",
                USER_PW,
                "-L",
                "user",
                "-o",
                action,
            ],
        )
    };
    ok(&user("status"), "Status: ON");
    failed(&user("off"), "privileges");
    assert!(power());
    second17("Chassis Power is on");
    // Every session was closed.
    assert_eq!(b.state.lock().unwrap().open_sessions, 0);
    // A BMC with only suite 17 and a Kg.
    let kb = Bmc17::start(&[("admin", ADMIN_PW, 4)], Some(KG.as_bytes()), &[17]);
    let kp = kb.port;
    let hex = kg_hex(KG);
    ok(
        &argv(kp, &["--hexadecimal-kg", &hex, "-o", "status"]),
        "Status: ON",
    );
    failed(
        &argv(kp, &["--hexadecimal-kg", "0011223344", "-o", "status"]),
        "Failed:",
    );
    failed(&argv(kp, &["-C", "3", "-o", "status"]), "Failed:");
}

#[test]
fn privileges_with_ipmi_sim() {
    let Some(bmc) = sim(&[]) else { return };
    let p = bmc.port.to_string();
    let as_user = |user: &str, pw: &str, lvl: &str, action: &str| {
        agentcmd::args(
            &fence(),
            &[
                "-a",
                "127.0.0.1",
                "-u",
                &p,
                "-l",
                user,
                "-p",
                pw,
                "-L",
                lvl,
                "-o",
                action,
                "--power-wait=0",
            ],
        )
    };
    // Operator at operator level: enough for chassis control.
    ok(
        &as_user("operator", OP_PW, "operator", "off"),
        "Success: Powered OFF",
    );
    second_opinion(&bmc, PowerState::Off);
    ok(
        &as_user("operator", OP_PW, "operator", "on"),
        "Success: Powered ON",
    );
    second_opinion(&bmc, PowerState::On);
    let mark = bmc.events().len();
    ok(
        &as_user("operator", OP_PW, "operator", "reboot"),
        "Success: Rebooted",
    );
    assert!(off_then_on(&events_since(&bmc, mark)));
    second_opinion(&bmc, PowerState::On);
    // stdin, legacy names, operator.
    let text = pcmk_stdin(bmc.port, "status", &["privlvl=operator"])
        .replace("login=admin", "login=operator")
        .replace(ADMIN_PW, OP_PW);
    ok(&stdin(&text), "Status: ON");
    // privlvl=user: status yes, off no (cc 0xD4), for the user and for the admin account.
    ok(&as_user("user", USER_PW, "user", "status"), "Status: ON");
    for (u, pw) in [("user", USER_PW), ("admin", ADMIN_PW)] {
        let r = as_user(u, pw, "user", "off");
        failed(&r, "privileges");
        second_opinion(&bmc, PowerState::On);
        let r = as_user(u, pw, "user", "reboot");
        failed(&r, "privileges");
        second_opinion(&bmc, PowerState::On);
    }
    assert_eq!(bmc.power_file(), "1");
}

#[test]
fn kg_right_and_wrong() {
    let Some(bmc) = sim(&[("BMC_KG", KG)]) else {
        return;
    };
    let p = bmc.port;
    let hex = kg_hex(KG);
    ok(
        &argv(p, &["-C", "3", "--hexadecimal-kg", &hex, "-o", "status"]),
        "Status: ON",
    );
    let kg_line = format!("hexadecimal_kg={hex}");
    ok(
        &stdin(&pcmk_stdin(p, "off", &[&kg_line, "power_wait=0"])),
        "Success: Powered OFF",
    );
    let (okk, out) = ipmitool_at(
        p,
        "admin",
        ADMIN_PW,
        &["-C", "3", "-k", KG],
        &["chassis", "power", "status"],
    );
    assert!(okk && out.contains("Chassis Power is off"), "{out}");
    ok(
        &stdin(&pcmk_stdin(p, "on", &[&kg_line, "power_wait=0"])),
        "Success: Powered ON",
    );
    let (okk, out) = ipmitool_at(
        p,
        "admin",
        ADMIN_PW,
        &["-C", "3", "-k", KG],
        &["chassis", "power", "status"],
    );
    assert!(okk && out.contains("Chassis Power is on"), "{out}");
    // Wrong Kg, and no Kg at all, against a BMC that has one.
    let wrong = kg_hex("kg-wrong-key");
    failed(
        &argv(p, &["-C", "3", "--hexadecimal-kg", &wrong, "-o", "off"]),
        "BMC key",
    );
    failed(&argv(p, &["-C", "3", "-o", "off"]), "Failed:");
    assert_eq!(bmc.power_file(), "1");
}

#[test]
fn method_cycle_and_diag() {
    let Some(bmc) = sim(&[]) else { return };
    let p = bmc.port;
    let mark = bmc.events().len();
    ok(
        &argv(p, &["-m", "cycle", "-o", "reboot"]),
        "Success: Rebooted",
    );
    // ipmi_sim's power cycle: set power 0, then its 1 s timer sets power 1.
    let ev = events_since(&bmc, mark);
    assert!(ev.contains("set power 0 -> ok"), "{ev}");
    let end = Instant::now() + Duration::from_secs(30);
    while bmc.ipmitool_power() != Some(PowerState::On) {
        assert!(Instant::now() < end, "the cycle never powered on again");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(off_then_on(&events_since(&bmc, mark)));
    // Stdin spelling.
    ok(
        &stdin(&pcmk_stdin(p, "reboot", &["method=cycle"])),
        "Success: Rebooted",
    );
    // diag: ipmi_sim answers the NMI request with cc 0xCC -> exit 1, clear message.
    let r = argv(p, &["-o", "diag"]);
    failed(&r, "0xcc");
    assert!(r.stderr.contains("invalid data field"), "{r:?}");
    let end = Instant::now() + Duration::from_secs(30);
    while bmc.ipmitool_power() != Some(PowerState::On) {
        assert!(Instant::now() < end, "the cycle never powered on again");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn port_as_ip_plug_is_the_address() {
    let Some(bmc) = sim(&[]) else { return };
    let p = bmc.port;
    // Pacemaker style: the plug is the BMC address; no ipaddr at all.
    let text = format!(
        "action=status\nport=127.0.0.1\nport_as_ip=1\nipport={p}\nlogin=admin\n\
         passwd={ADMIN_PW}\nlanplus=1\nnodename=node-bmc1\n"
    );
    ok(&stdin(&text), "Status: ON");
    // ipaddr points at a loopback address where nothing listens: the plug wins.
    let text = format!(
        "action=off\nipaddr=127.0.0.2\nport=127.0.0.1\nport_as_ip=1\nipport={p}\n\
         login=admin\npasswd={ADMIN_PW}\nlanplus=1\npower_wait=0\n"
    );
    ok(&stdin(&text), "Success: Powered OFF");
    second_opinion(&bmc, PowerState::Off);
    let ps = p.to_string();
    let r = agentcmd::args(
        &fence(),
        &[
            "-n",
            "127.0.0.1",
            "--port-as-ip",
            "-u",
            &ps,
            "-l",
            "admin",
            "-p",
            ADMIN_PW,
            "-o",
            "on",
            "--power-wait=0",
        ],
    );
    ok(&r, "Success: Powered ON");
    second_opinion(&bmc, PowerState::On);
    // Without port_as_ip the plug is not an address: no ip -> usage error.
    let text =
        format!("action=status\nport=127.0.0.1\nipport={p}\nlogin=admin\npasswd={ADMIN_PW}\n");
    failed(&stdin(&text), "Failed:");
}

#[test]
fn password_script() {
    let Some(bmc) = sim(&[]) else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("pw.sh");
    let mut f = std::fs::File::create(&script).unwrap();
    writeln!(f, "#!/bin/sh\necho '{ADMIN_PW}'").unwrap();
    drop(f);
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    let s = script.to_str().unwrap();
    let p = bmc.port;
    let text = format!(
        "action=status\nipaddr=127.0.0.1\nipport={p}\nlogin=admin\npasswd_script={s}\n\
         lanplus=1\nport=node-bmc1\nnodename=node-bmc1\n"
    );
    ok(&stdin(&text), "Status: ON");
    let ps = p.to_string();
    let r = agentcmd::args(
        &fence(),
        &[
            "-a",
            "127.0.0.1",
            "-u",
            &ps,
            "-l",
            "admin",
            "-S",
            s,
            "-o",
            "off",
            "--power-wait=0",
        ],
    );
    ok(&r, "Success: Powered OFF");
    second_opinion(&bmc, PowerState::Off);
    let r = agentcmd::args(
        &fence(),
        &[
            "-a",
            "127.0.0.1",
            "-u",
            &ps,
            "-l",
            "admin",
            "--password-script",
            s,
            "-o",
            "on",
            "--power-wait=0",
        ],
    );
    ok(&r, "Success: Powered ON");
    second_opinion(&bmc, PowerState::On);
    // A failing script is an error, not an empty password.
    let bad = dir.path().join("bad.sh");
    std::fs::write(&bad, "#!/bin/sh\nexit 3\n").unwrap();
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o700)).unwrap();
    let text = format!(
        "action=off\nipaddr=127.0.0.1\nipport={p}\nlogin=admin\npasswd_script={}\n",
        bad.display()
    );
    failed(&stdin(&text), "Failed:");
    assert_eq!(bmc.power_file(), "1");
}

#[test]
fn bmc_stops_answering() {
    let Some(bmc) = sim(&[]) else { return };
    let p = bmc.port;
    bmc.hang();
    for action in ["status", "off", "reboot", "monitor"] {
        let r = stdin(&pcmk_stdin(p, action, &[]));
        failed(&r, "timed out");
    }
    bmc.resume();
    // Nothing happened while it was stopped, and a fresh run works after resume.
    assert_eq!(bmc.power_file(), "1");
    ok(&stdin(&pcmk_stdin(p, "status", &[])), "Status: ON");
    second_opinion(&bmc, PowerState::On);
    // Nothing listening at all.
    let dead = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    failed(&stdin(&pcmk_stdin(dead, "off", &[])), "Failed:");
}

#[test]
fn bmc_stops_answering_mid_reboot_is_never_success() {
    let Some(bmc) = sim(&[]) else { return };
    // Calibrate on a `status` run through a clean relay: it sends the login, one Get Chassis
    // Status and Close Session. A reboot sends the same login, the status, then the off: a
    // relay that forwards exactly that many client datagrams lets the off through and then
    // "dies", so the off happens but can never be read back. A run slower than the first
    // resend interval (250 ms) may hold a resend and is not a valid calibration.
    let mut sent = None;
    for _ in 0..10 {
        let Some(probe) = Relay::start(bmc.port, bmc.dir.path(), &[]) else {
            return;
        };
        let r = argv(probe.port, &["-C", "3", "-o", "status"]);
        ok(&r, "Status: ON");
        if r.elapsed < Duration::from_millis(200) {
            sent = Some(probe.log().lines().filter(|l| l.contains(" c2s ")).count());
            break;
        }
    }
    let Some(sent) = sent else {
        eprintln!("skipped: no calibration run below 200 ms on this machine");
        return;
    };
    let die_after = sent.to_string();
    let Some(relay) = Relay::start(bmc.port, bmc.dir.path(), &["--die-after", &die_after]) else {
        return;
    };
    let r = argv(
        relay.port,
        &[
            "-C",
            "3",
            "-o",
            "reboot",
            "--power-wait=0",
            "--power-timeout=3",
        ],
    );
    failed(&r, "Failed:");
    // Normally the off went through (a resend during the login would have used up the
    // budget before it; the run must fail either way).
    if bmc.power_file() == "0" {
        second_opinion(&bmc, PowerState::Off);
    } else {
        eprintln!("note: the off did not reach the BMC\n{}", relay.log());
        second_opinion(&bmc, PowerState::On);
    }
}

#[test]
fn wrong_password_and_unknown_user() {
    let Some(bmc) = sim(&[]) else { return };
    let p = bmc.port;
    let text = pcmk_stdin(p, "off", &[]).replace(ADMIN_PW, "Not-The-Pw-42");
    let r = stdin(&text);
    failed(&r, "wrong password");
    assert!(!r.stderr.contains("Not-The-Pw-42"), "{r:?}");
    let r = agentcmd::args(
        &fence(),
        &[
            "-a",
            "127.0.0.1",
            "-u",
            &p.to_string(),
            "-l",
            "nobody",
            "-p",
            ADMIN_PW,
            "-o",
            "status",
        ],
    );
    failed(&r, "Failed:");
    // Too long for IPMI: a clear error, not a silent truncation.
    let r = argv(p, &["-o", "status", "-l", "a-user-name-of-20-ch"]);
    failed(&r, "16");
    second_opinion(&bmc, PowerState::On);
    assert_eq!(bmc.power_file(), "1");
}

#[test]
fn power_off_accepted_but_ignored() {
    let Some(bmc) = sim(&[]) else { return };
    let p = bmc.port;
    bmc.fault(&["poweroff=ignore"]);
    for action in ["off", "reboot"] {
        let r = stdin(&pcmk_stdin(p, action, &["power_wait=0", "power_timeout=2"]));
        failed(&r, "Timed out waiting to power OFF");
        second_opinion(&bmc, PowerState::On);
    }
    // And when the off fails outright (cc 0xFF).
    bmc.fault(&["clear", "poweroff=error"]);
    let r = stdin(&pcmk_stdin(p, "off", &["power_wait=0", "power_timeout=2"]));
    failed(&r, "Failed:");
    second_opinion(&bmc, PowerState::On);
    // The change shows up late (delay 2 s): polling waits for it.
    bmc.fault(&["clear", "delay=2"]);
    ok(
        &stdin(&pcmk_stdin(p, "off", &["power_wait=0", "power_timeout=20"])),
        "Success: Powered OFF",
    );
    second_opinion(&bmc, PowerState::Off);
}

#[test]
fn power_on_failing_during_reboot_is_rebooted_with_a_warning() {
    let Some(bmc) = sim(&[]) else { return };
    let p = bmc.port;
    for fault in ["poweron=error", "poweron=ignore"] {
        bmc.fault(&["clear", fault]);
        bmc.set_power(true);
        let r = stdin(&pcmk_stdin(
            p,
            "reboot",
            &["power_wait=0", "power_timeout=2"],
        ));
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, "Success: Rebooted\n"),
            "{fault}: {r:?}"
        );
        assert!(r.stderr.contains("Timed out waiting to power ON"), "{r:?}");
        assert!(r.elapsed < ENDED);
        no_secret(&r);
        // The target is off, which is what fencing needs.
        second_opinion(&bmc, PowerState::Off);
        // A plain `on` with the same fault fails.
        let r = stdin(&pcmk_stdin(p, "on", &["power_wait=0", "power_timeout=2"]));
        failed(&r, "Failed:");
        second_opinion(&bmc, PowerState::Off);
    }
}

#[test]
fn lossy_link_30_percent_reboot_succeeds() {
    let Some(bmc) = sim(&[]) else { return };
    for seed in ["11", "12", "13"] {
        let Some(relay) =
            Relay::start(bmc.port, bmc.dir.path(), &["--drop", "0.3", "--seed", seed])
        else {
            return;
        };
        let mark = bmc.events().len();
        // 30 % loss both ways needs more than the default 5 s login budget (the login is
        // six exchanges, each resent after 0.25, 0.5, 1, 1... s).
        let r = stdin(&pcmk_stdin(
            relay.port,
            "reboot",
            &["power_wait=0", "login_timeout=20"],
        ));
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, "Success: Rebooted\n"),
            "seed {seed}: {r:?}\n{}",
            relay.log()
        );
        no_secret(&r);
        assert!(off_then_on(&events_since(&bmc, mark)));
        second_opinion(&bmc, PowerState::On);
        let log = relay.log();
        assert!(log.contains("DROP"), "the relay dropped nothing");
    }
    // Duplicated and delayed replies: still the right answers.
    let Some(relay) = Relay::start(
        bmc.port,
        bmc.dir.path(),
        &["--dup", "0.3", "--delay", "0.3:400", "--seed", "5"],
    ) else {
        return;
    };
    let via = |action: &str| {
        stdin(&pcmk_stdin(
            relay.port,
            action,
            &["power_wait=0", "login_timeout=20"],
        ))
    };
    ok(&via("off"), "Success: Powered OFF");
    second_opinion(&bmc, PowerState::Off);
    ok_code(&via("status"), 2, "Status: OFF");
    ok(&via("on"), "Success: Powered ON");
    second_opinion(&bmc, PowerState::On);
    ok(&via("status"), "Status: ON");
    let log = relay.log();
    assert!(log.contains("DUP") && log.contains("DELAY"), "{log}");
}

#[test]
fn no_session_leak_200_status_runs() {
    let Some(bmc) = sim(&[]) else { return };
    let p = bmc.port.to_string();
    let status = [
        "-a",
        "127.0.0.1",
        "-u",
        &p,
        "-l",
        "admin",
        "-p",
        ADMIN_PW,
        "-o",
        "status",
    ];
    for i in 0..200 {
        let r = agentcmd::args(&fence(), &status);
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, "Status: ON\n"),
            "run {i}: {r:?}"
        );
    }
    // Error paths close their sessions too: 70 refused offs (more than the 63-slot table).
    for i in 0..70 {
        let r = agentcmd::args(
            &fence(),
            &[
                "-a",
                "127.0.0.1",
                "-u",
                &p,
                "-l",
                "user",
                "-p",
                USER_PW,
                "-L",
                "user",
                "-o",
                "off",
            ],
        );
        assert_eq!(r.code, 1, "run {i}: {r:?}");
    }
    let (okk, out) = bmc.ipmitool("admin", ADMIN_PW, &["chassis", "power", "status"]);
    assert!(
        okk && out.contains("Chassis Power is on"),
        "ipmitool locked out: {out}"
    );
    ok(&agentcmd::args(&fence(), &status), "Status: ON");
}

#[test]
fn three_bmcs_fenced_in_parallel() {
    let bmcs: Vec<Bmc> = (0..3).filter_map(|_| sim(&[])).collect();
    if bmcs.len() < 3 {
        return;
    }
    let marks: Vec<usize> = bmcs.iter().map(|b| b.events().len()).collect();
    let runs: Vec<Run> = std::thread::scope(|sc| {
        let hs: Vec<_> = bmcs
            .iter()
            .map(|b| sc.spawn(move || stdin(&pcmk_stdin(b.port, "reboot", &["power_wait=1"]))))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for ((b, r), mark) in bmcs.iter().zip(&runs).zip(marks) {
        ok(r, "Success: Rebooted");
        assert!(off_then_on(&events_since(b, mark)), "{}", b.events());
        second_opinion(b, PowerState::On);
    }
}
