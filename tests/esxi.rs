//! The real `fence_esxi` binary against the fake ESXi hosts of `tests/support/sim/` (private
//! sshd on loopback + simulated `vim-cmd`), through argv (short and long options) and stdin.
//!
//! Covered: status/on/off/reboot/list/list-status/monitor/validate-all; plugs by name and by
//! vmid, names with spaces, brackets and non-ASCII, multi-line annotations, a suspended VM, an
//! unknown VM, a shell-injection attempt; keyboard-interactive, password-method, key (with and
//! without passphrase) logins and password_script; wrong password; unknown, changed, pinned
//! and accepted-new host keys; an empty environment (as under Pacemaker); use_sudo through a
//! `sudo` shim; method=cycle; faults (hang, dropped connection, garbled output, failing
//! vim-cmd, ignored power.off, slow transitions, frozen host), each ending with exit 1 and a
//! clear message, never success and never `Status: OFF`. Hostile input: VM notes shaped like
//! getallvms rows (phantom VMs, copies of real rows, a fault block, 1 MiB lines), suspended VMs
//! (powered off, never resumed), remote stderr with escape sequences.
//!
//! Every run checks that the password never shows in stdout/stderr, and every success that
//! stderr is empty. Time bounds are generous "it ended" checks only.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::agentcmd::{self, Mode, Run, MODES};
use crate::sim::sshd::{Auth, EsxiHost, SimVm, PASSWORD};

/// "It ended": far above any configured timeout used here, far below a hang.
const ENDED: Duration = Duration::from_secs(60);

fn bin() -> PathBuf {
    agentcmd::bin("fence_esxi")
}

use crate::support::fixture::flag;
pub(crate) use crate::support::fixture::{default_fx, fx, o, Fx, O};

/// fence_esxi against the fixture's host.
impl Fx {
    /// [`Fx::base`] with `extra` applied (same name replaces, `("x", None)` after a valued one
    /// turns it into a flag; use [`Fx::run_without`] to drop one).
    pub(crate) fn run(&self, mode: Mode, extra: &[O]) -> Run {
        self.run_without(mode, &[], extra)
    }

    fn run_without(&self, mode: Mode, drop: &[&str], extra: &[O]) -> Run {
        let r = self.run_agent("fence_esxi", mode, drop, extra);
        no_secret(&r);
        r
    }
}

fn run_opts(mode: Mode, opts: &[O]) -> Run {
    let r = crate::support::fixture::run_opts("fence_esxi", mode, opts);
    no_secret(&r);
    r
}

/// The password never appears in any output.
fn no_secret(r: &Run) {
    for s in [PASSWORD, "wrong-Secret-42", "pp-secret", "bad-pp-secret"] {
        assert!(
            !r.stdout.contains(s) && !r.stderr.contains(s),
            "a secret leaked into the output: {r:?}"
        );
    }
}

/// Exit 0, nothing on stderr.
fn success(r: &Run, what: &str) {
    assert_eq!(r.code, 0, "{what}: {r:?}");
    assert!(r.stderr.is_empty(), "{what}: stderr on success: {r:?}");
}

/// Exit 1 with a `Failed:` line naming `needle`, within the "it ended" bound, never a state.
fn failure(r: &Run, needle: &str, what: &str) {
    assert_eq!(r.code, 1, "{what}: {r:?}");
    assert!(r.elapsed < ENDED, "{what}: took {:?}", r.elapsed);
    assert!(
        !r.stdout.contains("Success") && !r.stdout.contains("Status: OFF"),
        "{what}: {r:?}"
    );
    assert!(r.stderr.contains("Failed:"), "{what}: {r:?}");
    assert!(
        r.stderr.to_lowercase().contains(&needle.to_lowercase()),
        "{what}: expected {needle:?} in stderr: {r:?}"
    );
}

fn count(calls: &[String], needle: &str) -> usize {
    calls.iter().filter(|c| c.as_str() == needle).count()
}

const DEFAULT_LIST: &str = "cl0,1\ncl1,2\ncl01,3\nnode 3 with spaces,4\nweb [old],5\ndbvm,6\n\
no-tools,7\nvm-äöü,8\n";

#[test]
fn list_and_list_status_in_every_input_mode() {
    let Some(f) = default_fx() else { return };
    for mode in MODES {
        let r = f.run(mode, &[o("action", "list")]);
        success(&r, "list");
        // Suspended dbvm is listed (ON: not fenced); the invalid VM and annotation lines are not.
        assert_eq!(r.stdout, DEFAULT_LIST, "{mode:?}");
        let r = f.run(mode, &[o("action", "list-status")]);
        success(&r, "list-status");
        assert_eq!(
            r.stdout,
            "cl0,1,ON\ncl1,2,ON\ncl01,3,OFF\nnode 3 with spaces,4,ON\nweb [old],5,OFF\n\
dbvm,6,ON\nno-tools,7,ON\nvm-äöü,8,OFF\n",
            "{mode:?}"
        );
    }
    // A custom separator.
    let r = f.run(Mode::Long, &[o("action", "list"), o("separator", ";")]);
    success(&r, "list -C ;");
    assert!(r.stdout.starts_with("cl0;1\ncl1;2\n"), "{r:?}");
}

#[test]
fn status_by_name_and_vmid_with_tricky_names() {
    let Some(f) = default_fx() else { return };
    let cases: &[(&str, i32, &str)] = &[
        ("cl0", 0, "Status: ON\n"),
        ("cl01", 2, "Status: OFF\n"),
        ("node 3 with spaces", 0, "Status: ON\n"),
        ("4", 0, "Status: ON\n"),
        ("web [old]", 2, "Status: OFF\n"),
        ("vm-äöü", 2, "Status: OFF\n"),
        ("8", 2, "Status: OFF\n"),
        // Suspended: ON (not fenced: a resume brings its saved memory back).
        ("dbvm", 0, "Status: ON\n"),
        ("6", 0, "Status: ON\n"),
    ];
    for mode in MODES {
        for (plug, code, out) in cases {
            let r = f.run(mode, &[o("action", "status"), o("plug", plug)]);
            assert_eq!(r.code, *code, "{mode:?} {plug}: {r:?}");
            assert_eq!(r.stdout, *out, "{mode:?} {plug}: {r:?}");
            assert!(r.stderr.is_empty(), "{mode:?} {plug}: {r:?}");
        }
    }
    // Only numeric vmids were ever sent to power.getstate.
    for c in f.calls() {
        if let Some(arg) = c.strip_prefix("vim-cmd vmsvc/power.getstate ") {
            assert!(
                arg.parse::<u32>().is_ok(),
                "non-numeric vim-cmd argument: {c}"
            );
        }
    }
}

#[test]
fn unknown_vm_and_lookalikes_are_not_found() {
    let Some(f) = default_fx() else { return };
    // Not prefixes, not patterns, not the invalid VM, not another case, not a stale vmid.
    // (Blanks around a plug are not tested: getallvms cannot show them, the parsers trim.)
    for plug in [
        "nosuch", "cl", "cl.", "cl*", "node 3", "web", "broken", "9", "99", "CL0", "0x1",
    ] {
        for mode in [Mode::Stdin, Mode::Long] {
            let r = f.run(mode, &[o("action", "status"), o("plug", plug)]);
            failure(&r, "not found", &format!("status {plug:?}"));
            assert!(r.stderr.contains(&format!("'{plug}'")), "{r:?}");
        }
    }
    // off of an unknown VM touches nothing.
    let r = f.run(Mode::Short, &[o("action", "off"), o("plug", "nosuch")]);
    failure(&r, "not found", "off nosuch");
    assert!(f.calls().iter().all(|c| !c.contains("power.off")));
}

#[test]
fn no_user_text_reaches_the_remote_shell() {
    let Some(f) = default_fx() else { return };
    let marker = f.dir.path().join("pwned");
    let m = marker.display().to_string();
    for plug in [
        format!("$(touch {m})"),
        format!("`touch {m}`"),
        format!("cl0; touch {m}"),
        format!("cl0' && touch {m} #"),
    ] {
        let r = f.run(Mode::Stdin, &[o("action", "off"), o("plug", &plug)]);
        failure(&r, "not found", "injection");
    }
    assert!(!marker.exists(), "a plug name was run by the remote shell");
    assert_eq!(f.host.vm_state("cl0").as_deref(), Some("on"));
}

#[test]
fn off_on_reboot_change_the_simulated_vm() {
    let Some(f) = default_fx() else { return };
    let st = |n: &str| f.host.vm_state(n);

    // off / on by name with spaces (stdin), then by vmid (short options).
    let r = f.run(
        Mode::Stdin,
        &[o("action", "off"), o("plug", "node 3 with spaces")],
    );
    success(&r, "off");
    assert_eq!(r.stdout, "Success: Powered OFF\n");
    assert_eq!(st("node 3 with spaces").as_deref(), Some("off"));
    let r = f.run(Mode::Short, &[o("action", "off"), o("plug", "4")]);
    success(&r, "off again");
    assert_eq!(r.stdout, "Success: Already OFF\n");
    let r = f.run(Mode::Short, &[o("action", "on"), o("plug", "4")]);
    success(&r, "on");
    assert_eq!(r.stdout, "Success: Powered ON\n");
    assert_eq!(st("node 3 with spaces").as_deref(), Some("on"));
    let r = f.run(
        Mode::Long,
        &[o("action", "on"), o("plug", "node 3 with spaces")],
    );
    success(&r, "on again");
    assert_eq!(r.stdout, "Success: Already ON\n");

    // Brackets and unicode.
    let r = f.run(Mode::Long, &[o("action", "on"), o("plug", "web [old]")]);
    success(&r, "on web [old]");
    assert_eq!(st("web [old]").as_deref(), Some("on"));
    let r = f.run(Mode::Stdin, &[o("action", "on"), o("plug", "vm-äöü")]);
    success(&r, "on unicode");
    assert_eq!(st("vm-äöü").as_deref(), Some("on"));

    // Suspended VM: `off` powers it off (discarding its suspend state); `on` boots it afresh.
    // (More in suspended_vms_are_powered_off_never_resumed.)
    let r = f.run(Mode::Long, &[o("action", "off"), o("plug", "dbvm")]);
    success(&r, "off suspended");
    assert_eq!(r.stdout, "Success: Powered OFF\n");
    assert_eq!(st("dbvm").as_deref(), Some("off"));
    let r = f.run(Mode::Long, &[o("action", "on"), o("plug", "dbvm")]);
    success(&r, "on after off of a suspended VM");
    assert_eq!(st("dbvm").as_deref(), Some("on"));

    // reboot (default action, stdin without action=): off confirmed, then on.
    let before = f.calls().len();
    let r = f.run_without(Mode::Stdin, &[], &[o("plug", "cl1")]);
    success(&r, "reboot");
    assert_eq!(r.stdout, "Success: Rebooted\n");
    assert_eq!(st("cl1").as_deref(), Some("on"));
    let calls: Vec<String> = f.calls().split_off(before);
    let off = calls.iter().position(|c| c == "vim-cmd vmsvc/power.off 2");
    let on = calls.iter().position(|c| c == "vim-cmd vmsvc/power.on 2");
    assert!(
        matches!((off, on), (Some(a), Some(b)) if a < b),
        "{calls:?}"
    );
    // The off was read back before the on was sent.
    let (a, b) = (off.unwrap(), on.unwrap());
    assert!(
        calls[a..b]
            .iter()
            .any(|c| c == "vim-cmd vmsvc/power.getstate 2"),
        "{calls:?}"
    );
    assert_eq!(count(&calls, "vim-cmd vmsvc/power.reset 2"), 0);
    // The neighbours with similar names were not touched.
    assert_eq!(st("cl0").as_deref(), Some("on"));
    assert_eq!(st("cl01").as_deref(), Some("off"));
    assert!(calls
        .iter()
        .all(|c| !c.ends_with(" 1") && !c.ends_with(" 3")));

    // reboot of an off VM powers it on.
    let r = f.run(Mode::Long, &[o("action", "reboot"), o("plug", "cl01")]);
    success(&r, "reboot off vm");
    assert_eq!(st("cl01").as_deref(), Some("on"));
}

#[test]
fn method_cycle_uses_power_reset() {
    let Some(f) = default_fx() else { return };
    let r = f.run(
        Mode::Short,
        &[
            o("action", "reboot"),
            o("plug", "cl1"),
            o("method", "cycle"),
        ],
    );
    success(&r, "reboot cycle");
    assert_eq!(r.stdout, "Success: Rebooted\n");
    let calls = f.calls();
    assert_eq!(count(&calls, "vim-cmd vmsvc/power.reset 2"), 1, "{calls:?}");
    assert_eq!(count(&calls, "vim-cmd vmsvc/power.off 2"), 0, "{calls:?}");
    assert_eq!(f.host.vm_state("cl1").as_deref(), Some("on"));
    // A failing reset is an error (the VM is on; power.reset returns a fault).
    f.host.set_fault(
        "exit",
        &["1", "msg=vim-cmd reset exploded", "match=power.reset"],
    );
    let r = f.run(
        Mode::Stdin,
        &[
            o("action", "reboot"),
            o("plug", "cl1"),
            o("method", "cycle"),
            o("retry_on", "0"),
        ],
    );
    failure(&r, "reset exploded", "failing reset");
    // method=cycle has no read-back, so an unrecognised acknowledgement is a failure too.
    f.host.clear_faults();
    f.host.set_fault("garble", &["junk", "match=power.reset"]);
    let r = f.run(
        Mode::Long,
        &[
            o("action", "reboot"),
            o("plug", "cl1"),
            o("method", "cycle"),
            o("retry_on", "0"),
        ],
    );
    failure(&r, "", "garbled reset acknowledgement");
}

#[test]
fn monitor_is_cheap_and_validate_all_does_not_connect() {
    let Some(f) = default_fx() else { return };
    for mode in MODES {
        let before = f.calls().len();
        let r = f.run(mode, &[o("action", "monitor")]);
        success(&r, "monitor");
        assert_eq!(r.stdout, "");
        let calls = f.calls().split_off(before);
        assert_eq!(calls, vec!["vmware -v".to_owned()], "{mode:?}");
    }
    for mode in MODES {
        let before = f.calls().len();
        let r = f.run(mode, &[o("action", "validate-all"), o("plug", "cl0")]);
        success(&r, "validate-all");
        assert_eq!(f.calls().len(), before, "validate-all contacted the host");
    }
    // validate-all rejects bad options without contacting anyone.
    let r = run_opts(
        Mode::Long,
        &[
            o("action", "validate-all"),
            o("username", "x"),
            o("password", "y"),
        ],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let r = f.run(
        Mode::Long,
        &[o("action", "validate-all"), o("method", "bogus")],
    );
    assert_eq!(r.code, 1, "{r:?}");
    // monitor of an unreachable host fails.
    let r = f.run(Mode::Long, &[o("action", "monitor"), o("ipport", "1")]);
    failure(&r, "127.0.0.1", "monitor refused");
}

#[test]
fn multiline_annotations_and_unicode_inventory() {
    let mut a = SimVm::new(10, "app server (prod) #1", "on");
    a.annotation = "line one\n20 starts with a number\n[ds] looks like a file vmx-19".into();
    let mut b = SimVm::new(11, "Ünïcødé ☃ vm", "suspended");
    b.annotation = "snow\nman".into();
    let c = SimVm::new(12, "tab\tname", "off");
    let mut d = SimVm::new(13, "invalid one", "off");
    d.invalid = true;
    let Some(f) = fx(EsxiHost::builder().vms(&[a, b, c, d])) else {
        return;
    };
    let r = f.run(Mode::Stdin, &[o("action", "list-status")]);
    success(&r, "list-status");
    assert_eq!(
        r.stdout,
        "app server (prod) #1,10,ON\nÜnïcødé ☃ vm,11,ON\ntab\tname,12,OFF\n"
    );
    let r = f.run(
        Mode::Long,
        &[o("action", "off"), o("plug", "app server (prod) #1")],
    );
    success(&r, "off");
    assert_eq!(
        f.host.vm_state("app server (prod) #1").as_deref(),
        Some("off")
    );
    let r = f.run(
        Mode::Short,
        &[o("action", "status"), o("plug", "Ünïcødé ☃ vm")],
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "Status: ON\n"), "{r:?}");
    let r = f.run(
        Mode::Short,
        &[o("action", "status"), o("plug", "invalid one")],
    );
    failure(&r, "not found", "invalid VM");
}

#[test]
fn esxi5_and_esxi6_hosts() {
    for layout in ["5", "6"] {
        let Some(f) = fx(EsxiHost::builder().layout(layout)) else {
            return;
        };
        let r = f.run(Mode::Stdin, &[o("action", "list")]);
        success(&r, "list");
        assert_eq!(r.stdout, DEFAULT_LIST, "layout {layout}");
        let r = f.run(Mode::Long, &[o("action", "reboot"), o("plug", "web [old]")]);
        success(&r, "reboot");
        let r = f.run(Mode::Long, &[o("action", "off"), o("plug", "web [old]")]);
        success(&r, "off");
        assert_eq!(f.host.vm_state("web [old]").as_deref(), Some("off"));
    }
}

#[test]
fn login_methods() {
    // Keyboard-interactive only, like real ESXi: covered by every default-host test; the
    // password method and key logins here.
    let Some(f) = fx(EsxiHost::builder().auth(Auth::Password)) else {
        return;
    };
    let r = f.run(Mode::Long, &[o("action", "status"), o("plug", "cl0")]);
    success(&r, "password method");

    // Key login: no password at all.
    let key = f.host.key_path().display().to_string();
    for mode in MODES {
        let r = f.run_without(
            mode,
            &["password"],
            &[
                o("action", "status"),
                o("plug", "cl0"),
                o("identity_file", &key),
            ],
        );
        success(&r, "key login");
        assert_eq!(r.stdout, "Status: ON\n");
    }
    // A missing key file is a clear error.
    let r = f.run_without(
        Mode::Long,
        &["password"],
        &[
            o("action", "status"),
            o("plug", "cl0"),
            o("identity_file", "/nonexistent/id_ed25519"),
        ],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("/nonexistent/id_ed25519"), "{r:?}");

    // password_script: a script file that prints the password (the secret never on argv).
    let pw_file = f.dir.path().join("pw");
    std::fs::write(&pw_file, format!("{PASSWORD}\n")).unwrap();
    let script = f.dir.path().join("pw.sh");
    std::fs::write(&script, format!("#!/bin/sh\ncat {}\n", pw_file.display())).unwrap();
    set_mode(&script, 0o755);
    for mode in MODES {
        let r = f.run_without(
            mode,
            &["password"],
            &[
                o("action", "status"),
                o("plug", "cl0"),
                o("password_script", &script.display().to_string()),
            ],
        );
        success(&r, "password_script");
    }
    // A failing password_script is an error, not an empty password.
    let r = f.run_without(
        Mode::Stdin,
        &["password"],
        &[
            o("action", "status"),
            o("plug", "cl0"),
            o("password_script", "exit 3"),
        ],
    );
    assert_eq!(r.code, 1, "{r:?}");
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn key_with_passphrase_login() {
    let dir = tempfile::tempdir().unwrap();
    let k = dir.path().join("id_pp");
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "pp-secret", "-f"])
        .arg(&k)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        crate::sim::skip_or_fail("ssh-keygen failed");
        return;
    }
    let Some(f) = fx(EsxiHost::builder()
        .auth(Auth::Pubkey)
        .extra_pubkey(&k.with_extension("pub")))
    else {
        return;
    };
    let key = k.display().to_string();
    let r = f.run(
        Mode::Stdin,
        &[
            o("action", "status"),
            o("plug", "cl0"),
            o("identity_file", &key),
            o("password", "pp-secret"),
        ],
    );
    success(&r, "key with passphrase");
    let r = f.run(
        Mode::Long,
        &[
            o("action", "status"),
            o("plug", "cl0"),
            o("identity_file", &key),
            o("password", "bad-pp-secret"),
        ],
    );
    failure(&r, "", "bad passphrase");
}

#[test]
fn wrong_password_is_refused_by_name() {
    let Some(f) = default_fx() else { return };
    for mode in [Mode::Stdin, Mode::Short] {
        let r = f.run(
            mode,
            &[
                o("action", "off"),
                o("plug", "cl0"),
                o("password", "wrong-Secret-42"),
            ],
        );
        failure(&r, "did not accept the password", "wrong password");
    }
    assert_eq!(f.host.vm_state("cl0").as_deref(), Some("on"));
    // Verbose debug output does not show it either.
    let r = f.run(
        Mode::Long,
        &[
            o("action", "status"),
            o("plug", "cl0"),
            o("password", "wrong-Secret-42"),
            flag("verbose"),
        ],
    );
    failure(&r, "did not accept the password", "wrong password -v");
    let r = f.run(
        Mode::Long,
        &[o("action", "status"), o("plug", "cl0"), flag("verbose")],
    );
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn host_keys_unknown_pinned_accept_new_changed() {
    let Some(mut f) = default_fx() else { return };
    let fp = f.host.fingerprint();
    let empty = f.dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let empty_s = empty.display().to_string();

    // Unknown: refused, naming the fingerprint and how to trust it; nothing was run.
    for mode in MODES {
        let r = f.run(
            mode,
            &[
                o("action", "off"),
                o("plug", "cl0"),
                o("known_hosts", &empty_s),
            ],
        );
        failure(&r, &fp, "unknown host key");
        assert!(r.stderr.contains("host_key_fingerprint"), "{r:?}");
        assert!(r.stderr.contains("accept_new_host_key"), "{r:?}");
    }
    assert!(f.calls().is_empty(), "commands ran on an untrusted host");
    assert_eq!(std::fs::read_to_string(&empty).unwrap(), "");

    // Pinned fingerprint: accepted without any known_hosts entry; a wrong pin is refused.
    let r = f.run(
        Mode::Long,
        &[
            o("action", "status"),
            o("plug", "cl0"),
            o("known_hosts", &empty_s),
            o("host_key_fingerprint", &fp),
        ],
    );
    success(&r, "pinned");
    let wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let r = f.run(
        Mode::Stdin,
        &[
            o("action", "status"),
            o("plug", "cl0"),
            o("known_hosts", &empty_s),
            o("host_key_fingerprint", wrong),
        ],
    );
    failure(&r, &fp, "wrong pin");

    // accept_new_host_key records the key; the next run trusts it without the flag.
    let fresh = f.dir.path().join("fresh_known_hosts");
    let fresh_s = fresh.display().to_string();
    let r = f.run(
        Mode::Stdin,
        &[
            o("action", "status"),
            o("plug", "cl0"),
            o("known_hosts", &fresh_s),
            flag("accept_new_host_key"),
        ],
    );
    success(&r, "accept new");
    let recorded = std::fs::read_to_string(&fresh).unwrap_or_default();
    assert!(
        recorded.contains(&format!("[127.0.0.1]:{}", f.host.port())),
        "{recorded}"
    );
    let r = f.run(
        Mode::Short,
        &[
            o("action", "status"),
            o("plug", "cl0"),
            o("known_hosts", &fresh_s),
        ],
    );
    success(&r, "recorded key");

    // The host is reinstalled (new keys): refused everywhere, even with accept_new.
    f.host.restart(true);
    let new_fp = f.host.fingerprint();
    assert_ne!(new_fp, fp);
    for kh in [&f.kh.display().to_string(), &fresh_s] {
        for extra in [None, Some(flag("accept_new_host_key"))] {
            let mut opts = vec![o("action", "off"), o("plug", "cl0"), o("known_hosts", kh)];
            opts.extend(extra);
            let r = f.run(Mode::Long, &opts);
            failure(&r, &new_fp, "changed host key");
            assert!(r.stderr.contains("does NOT match"), "{r:?}");
        }
    }
    let r = f.run(
        Mode::Long,
        &[
            o("action", "off"),
            o("plug", "cl0"),
            o("host_key_fingerprint", &fp),
        ],
    );
    failure(&r, &new_fp, "old pin after rekey");
    assert_eq!(f.host.vm_state("cl0").as_deref(), Some("on"));
    // The recorded file was not rewritten with the new key.
    assert_eq!(
        std::fs::read_to_string(&fresh).unwrap_or_default(),
        recorded
    );
    // Point at a fresh file: now the new key may be pinned.
    f.kh = f.dir.path().join("kh2");
    std::fs::write(&f.kh, "").unwrap();
    let r = f.run(
        Mode::Long,
        &[
            o("action", "status"),
            o("plug", "cl0"),
            o("host_key_fingerprint", &new_fp),
        ],
    );
    success(&r, "new pin");
}

#[test]
fn empty_environment_like_pacemaker() {
    let Some(f) = default_fx() else { return };
    let run = |text: &str| {
        let mut c = Command::new(bin());
        c.env_clear()
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        {
            use std::io::Write;
            let mut si = child.stdin.take().unwrap();
            si.write_all(text.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: Duration::ZERO,
        }
    };
    let common = format!(
        "ip={}\nipport={}\nusername={}\npassword={}\nport=cl0\n",
        f.host.ip(),
        f.host.port(),
        f.host.user(),
        PASSWORD
    );
    let r = run(&format!(
        "{common}action=status\nknown_hosts={}\n",
        f.kh.display()
    ));
    no_secret(&r);
    success(&r, "empty env");
    assert_eq!(r.stdout, "Status: ON\n");
    // Without known_hosts and without HOME: the key is unknown, refused clearly.
    let r = run(&format!("{common}action=off\n"));
    no_secret(&r);
    failure(&r, &f.host.fingerprint(), "empty env, no known_hosts");
    assert_eq!(f.host.vm_state("cl0").as_deref(), Some("on"));
}

#[test]
fn use_sudo_goes_through_sudo_n() {
    // ESXi has no sudo and the test machine need not have one: a `sudo` shim first on the
    // fake host's PATH checks for `-n` (never prompt), logs and runs the command.
    let Some(f) = default_fx() else { return };
    let tools = f.host.hostdir().join("tools");
    let shim = tools.join("sudo");
    let log = f.host.hostdir().join("sudo.log");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\n[ \"$1\" = -n ] || {{ echo 'sudo: a terminal is required' >&2; exit 1; }}\n\
             shift\nif [ -e {}/deny ]; then echo 'sudo: a password is required' >&2; exit 1; fi\nexec \"$@\"\n",
            log.display(),
            tools.display()
        ),
    )
    .unwrap();
    set_mode(&shim, 0o755);
    let r = f.run(
        Mode::Stdin,
        &[o("action", "off"), o("plug", "cl1"), flag("use_sudo")],
    );
    success(&r, "sudo off");
    assert_eq!(f.host.vm_state("cl1").as_deref(), Some("off"));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("-n vim-cmd vmsvc/getallvms"), "{logged}");
    assert!(logged.contains("-n vim-cmd vmsvc/power.off 2"), "{logged}");
    let r = f.run(Mode::Long, &[o("action", "list-status"), flag("use_sudo")]);
    success(&r, "sudo list-status");
    assert!(r.stdout.contains("cl1,2,OFF"), "{r:?}");
    // sudo refusing: a clear error naming sudo's message.
    std::fs::write(tools.join("deny"), "").unwrap();
    let r = f.run(
        Mode::Long,
        &[o("action", "on"), o("plug", "cl1"), flag("use_sudo")],
    );
    failure(&r, "a password is required", "sudo denied");
    assert_eq!(f.host.vm_state("cl1").as_deref(), Some("off"));
}

// ---------------------------------------------------------------------------------------------
// Faults

/// Options that keep fault runs short: one attempt, 4 s to confirm, 3 s per command.
fn quick(action: &str, plug: &str) -> Vec<O> {
    vec![
        o("action", action),
        o("plug", plug),
        o("shell_timeout", "3"),
        o("power_timeout", "4"),
        o("retry_on", "0"),
        o("stonith_status_sleep", "0.5"),
    ]
}

#[test]
fn fault_vim_cmd_hangs() {
    let Some(f) = default_fx() else { return };
    f.host.set_fault("hang", &["120", "match=power.getstate"]);
    for mode in [Mode::Stdin, Mode::Long] {
        let r = f.run(mode, &quick("status", "cl0"));
        failure(&r, "did not finish within", "getstate hangs");
        let r = f.run(mode, &quick("off", "cl0"));
        failure(&r, "did not finish within", "getstate hangs (off)");
    }
    f.host.clear_faults();
    // power.off hangs (and does nothing): never a success.
    f.host.set_fault("hang", &["120", "match=power.off"]);
    let r = f.run(Mode::Short, &quick("off", "cl0"));
    failure(&r, "power OFF", "power.off hangs");
    assert_eq!(f.host.vm_state("cl0").as_deref(), Some("on"));
    // getallvms hangs: list fails.
    f.host.clear_faults();
    f.host.set_fault("hang", &["120", "match=getallvms"]);
    let r = f.run(Mode::Short, &quick("list", "cl0"));
    failure(&r, "did not finish within", "getallvms hangs");
}

#[test]
fn fault_connection_drops() {
    let Some(f) = default_fx() else { return };
    // Killed before getstate answers.
    f.host.set_fault("drop", &["match=power.getstate"]);
    let r = f.run(Mode::Stdin, &quick("status", "cl0"));
    failure(&r, "connection lost", "drop on getstate");
    let r = f.run(Mode::Long, &quick("reboot", "cl0"));
    failure(&r, "", "drop on getstate (reboot)");
    f.host.clear_faults();
    // Killed while getallvms runs.
    f.host.set_fault("drop", &["match=getallvms"]);
    let r = f.run(Mode::Long, &quick("list-status", "cl0"));
    failure(&r, "connection lost", "drop on getallvms");
    f.host.clear_faults();
    // Killed at every power.off: the VM stays on, the fence fails.
    f.host.set_fault("drop", &["match=power.off"]);
    let r = f.run(Mode::Short, &quick("off", "cl0"));
    failure(&r, "power OFF", "drop on power.off");
    assert_eq!(f.host.vm_state("cl0").as_deref(), Some("on"));
    f.host.clear_faults();
    // The session's sshd stops answering (SIGSTOP) mid-command: a timeout.
    f.host
        .set_fault("drop", &["mode=stop", "match=power.getstate"]);
    let r = f.run(Mode::Stdin, &quick("status", "cl0"));
    failure(&r, "did not finish within", "frozen session");
    f.host.clear_faults();
    // Dropped right after power.off did its work: the agent reconnects and reads the state
    // back; success only because the VM was confirmed off.
    f.host
        .set_fault("drop", &["mode=after", "match=power.off", "times=1"]);
    let r = f.run(Mode::Long, &quick("off", "cl1"));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "Success: Powered OFF\n");
    assert_eq!(f.host.vm_state("cl1").as_deref(), Some("off"));
    let calls = f.calls();
    let off = calls
        .iter()
        .rposition(|c| c == "vim-cmd vmsvc/power.off 2")
        .unwrap();
    assert!(
        calls[off..]
            .iter()
            .any(|c| c == "vim-cmd vmsvc/power.getstate 2"),
        "{calls:?}"
    );
}

#[test]
fn fault_garbled_output_is_never_a_state() {
    let Some(f) = default_fx() else { return };
    for how in ["junk", "truncate", "binary"] {
        f.host.set_fault("garble", &[how, "match=power.getstate"]);
        for plug in ["cl0", "cl01"] {
            let r = f.run(Mode::Stdin, &quick("status", plug));
            failure(&r, "plug status", &format!("garble {how} status {plug}"));
            let r = f.run(Mode::Long, &quick("off", plug));
            failure(&r, "", &format!("garble {how} off {plug}"));
        }
        let r = f.run(Mode::Long, &quick("list-status", "cl0"));
        // list-status shows no state it cannot read: UNKNOWN, never a made-up OFF.
        assert!(
            r.code != 0 || r.stdout.lines().all(|l| l.ends_with(",UNKNOWN")),
            "garble {how}: {r:?}"
        );
        f.host.clear_faults();
    }
    assert_eq!(f.host.vm_state("cl0").as_deref(), Some("on"));
    // Truncated at a line boundary, getallvms cannot be told from a shorter inventory (rows
    // carry no count): the lost VMs are "not found", the others still fence correctly.
    f.host.set_fault("garble", &["truncate", "match=getallvms"]);
    let r = f.run(Mode::Short, &quick("list", "cl0"));
    assert!(
        r.code == 1 || DEFAULT_LIST.starts_with(&r.stdout),
        "truncated list: {r:?}"
    );
    let r = f.run(Mode::Short, &quick("off", "no-tools"));
    failure(&r, "", "truncated getallvms, VM in the lost half");
    f.host.clear_faults();
    for how in ["junk", "shuffle", "binary"] {
        f.host.set_fault("garble", &[how, "match=getallvms"]);
        let r = f.run(Mode::Short, &quick("list", "cl0"));
        failure(&r, "unrecognised", &format!("garble {how} list"));
        let r = f.run(Mode::Short, &quick("off", "cl0"));
        failure(&r, "", &format!("garble {how} off"));
        f.host.clear_faults();
    }
    assert_eq!(f.host.vm_state("cl0").as_deref(), Some("on"));
}

#[test]
fn fault_vim_cmd_fails() {
    // A host whose vim-cmd faults exit 0 (the real status is undocumented): decisions come
    // from the output, and a failing vim-cmd (status 1, message on stderr) is still an error.
    let Some(f) = fx(EsxiHost::builder().fault_rc(0)) else {
        return;
    };
    f.host.set_fault(
        "exit",
        &[
            "1",
            "msg=vim-cmd: Connection failed",
            "match=power.getstate",
        ],
    );
    let r = f.run(Mode::Stdin, &quick("status", "cl0"));
    failure(&r, "vim-cmd: Connection failed", "getstate exits 1");
    f.host.clear_faults();
    f.host.set_fault(
        "exit",
        &["1", "msg=vim-cmd: out of memory", "match=getallvms"],
    );
    let r = f.run(Mode::Stdin, &quick("list", "cl0"));
    failure(&r, "out of memory", "getallvms exits 1");
    f.host.clear_faults();
    f.host
        .set_fault("exit", &["1", "msg=vim-cmd: busy", "match=power.off"]);
    let r = f.run(Mode::Long, &quick("off", "cl0"));
    failure(&r, "power OFF", "power.off exits 1");
    assert_eq!(f.host.vm_state("cl0").as_deref(), Some("on"));
}

#[test]
fn fault_ignored_power_off() {
    let Some(f) = default_fx() else { return };
    f.host.set_fault("noop", &["power.off"]);
    for mode in [Mode::Stdin, Mode::Long] {
        let r = f.run(mode, &quick("off", "node 3 with spaces"));
        failure(&r, "Timed out waiting to power OFF", "noop off");
        assert_eq!(f.host.vm_state("node 3 with spaces").as_deref(), Some("on"));
    }
    let before = f.calls().len();
    let r = f.run(Mode::Short, &quick("reboot", "node 3 with spaces"));
    failure(&r, "Timed out waiting to power OFF", "noop reboot");
    let calls = f.calls().split_off(before);
    assert_eq!(count(&calls, "vim-cmd vmsvc/power.off 4"), 1, "{calls:?}");
    assert!(calls.iter().all(|c| !c.contains("power.on")), "{calls:?}");
    assert_eq!(f.host.vm_state("node 3 with spaces").as_deref(), Some("on"));
    // With the default retry_on=1 there are two attempts, still a failure.
    let mut opts = quick("off", "cl0");
    opts.retain(|(n, _)| *n != "retry_on");
    let before = f.calls().len();
    let r = f.run(Mode::Stdin, &opts);
    failure(&r, "Timed out waiting to power OFF", "noop off, 2 attempts");
    let calls = f.calls().split_off(before);
    assert_eq!(count(&calls, "vim-cmd vmsvc/power.off 1"), 2, "{calls:?}");
}

#[test]
fn fault_slow_transitions_still_succeed() {
    let Some(f) = default_fx() else { return };
    // The state changes 3 s after power.off/on returned (async), within power_timeout=30.
    f.host.set_fault("slow", &["3"]);
    let mut opts = quick("off", "cl1");
    opts.retain(|(n, _)| *n != "power_timeout");
    opts.push(o("power_timeout", "30"));
    let r = f.run(Mode::Stdin, &opts);
    success(&r, "slow off");
    assert_eq!(r.stdout, "Success: Powered OFF\n");
    assert_eq!(f.host.vm_state("cl1").as_deref(), Some("off"));
    // (retry_on=0 would mean "no power-on attempt" for reboot, as upstream.)
    opts.retain(|(n, _)| *n != "action" && *n != "retry_on");
    opts.push(o("action", "reboot"));
    let r = f.run(Mode::Long, &opts);
    success(&r, "slow reboot");
    assert_eq!(f.host.vm_state("cl1").as_deref(), Some("on"));
    f.host.clear_faults();
    // power.off itself takes 2 s (blocking), within shell_timeout=20.
    f.host
        .set_fault("slow", &["2", "mode=block", "ops=power.off"]);
    let r = f.run(
        Mode::Short,
        &[
            o("action", "off"),
            o("plug", "cl1"),
            o("power_timeout", "30"),
        ],
    );
    success(&r, "blocking slow off");
    assert_eq!(f.host.vm_state("cl1").as_deref(), Some("off"));
}

#[test]
fn fault_host_stops_answering() {
    let Some(f) = default_fx() else { return };
    f.host.freeze();
    let r = f.run(
        Mode::Stdin,
        &[
            o("action", "off"),
            o("plug", "cl0"),
            o("login_timeout", "3"),
        ],
    );
    f.host.thaw();
    failure(&r, "127.0.0.1", "frozen host");
    assert_eq!(f.host.vm_state("cl0").as_deref(), Some("on"));
    // Slow login (PAM/shell start) beyond login_timeout... the host answers, then
    // commands are slow to start: bounded by the timeouts too.
    f.host.set_fault("login_delay", &["30"]);
    let r = f.run(
        Mode::Long,
        &[
            o("action", "status"),
            o("plug", "cl0"),
            o("login_timeout", "3"),
            o("shell_timeout", "3"),
        ],
    );
    failure(&r, "", "login delay");
    f.host.clear_faults();
    // After thawing it works again.
    let r = f.run(Mode::Long, &[o("action", "status"), o("plug", "cl0")]);
    success(&r, "thawed");
}

#[test]
fn two_hosts_at_once() {
    let (Some(a), Some(b)) = (default_fx(), default_fx()) else {
        return;
    };
    let r = a.run(Mode::Stdin, &[o("action", "off"), o("plug", "cl0")]);
    success(&r, "off on a");
    // b has its own host key: a's known_hosts does not trust it.
    let r = b.run(
        Mode::Stdin,
        &[
            o("action", "off"),
            o("plug", "cl0"),
            o("known_hosts", &a.kh.display().to_string()),
        ],
    );
    failure(&r, "", "a's known_hosts for b");
    assert_eq!(a.host.vm_state("cl0").as_deref(), Some("off"));
    assert_eq!(b.host.vm_state("cl0").as_deref(), Some("on"));
}

// ---------------------------------------------------------------------------------------------
// Hostile input: VM notes and suspend states

/// A field of the simulated VM with this name (`vmss`, `last_start`, ...).
fn vm_field(host: &EsxiHost, name: &str, field: &str) -> serde_json::Value {
    host.state()
        .get("vms")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .find(|v| v.get("name").and_then(|n| n.as_str()) == Some(name))
        .and_then(|v| v.get(field).cloned())
        .unwrap_or(serde_json::Value::Null)
}

/// A getallvms row as the layout rule prints it, to put in a note.
fn row(vmid: u32, name: &str) -> String {
    format!("{vmid}      {name}   [datastore1] {name}/{name}.vmx   rhel8_64Guest   vmx-19")
}

fn with_note(vmid: u32, name: &str, power: &'static str, note: &str) -> SimVm {
    let mut v = SimVm::new(vmid, name, power);
    v.annotation = note.to_owned();
    v
}

#[test]
fn a_note_shaped_like_a_row_never_makes_a_vm() {
    // node1 and node2 moved to another host; notes of the VMs left here still hold rows for
    // them, with the vmids of other VMs (cl1 is off, web is on) or of no VM at all.
    let vms = [
        with_note(
            1,
            "cl0",
            "on",
            &format!("moved to esxi2:\n{}\n{}", row(2, "node1"), row(3, "node2")),
        ),
        SimVm::new(2, "cl1", "off"),
        with_note(
            3,
            "web",
            "on",
            &format!("old:\n{}\n{}", row(77, "node3"), row(9, "node4")),
        ),
        // An invalid VM (registered, not listed: `Skipping invalid VM '9'`).
        SimVm {
            invalid: true,
            ..SimVm::new(9, "broken", "off")
        },
    ];
    let Some(f) = fx(EsxiHost::builder().vms(&vms)) else {
        return;
    };
    // The phantom rows really are in getallvms, shaped like rows.
    let r = f.run(Mode::Long, &[o("action", "list")]);
    success(&r, "list");
    assert!(r.stdout.contains("node1,2\n"), "{r:?}");
    for plug in ["node1", "node2", "node3", "node4"] {
        for action in ["status", "off", "reboot"] {
            let r = f.run(Mode::Stdin, &[o("action", action), o("plug", plug)]);
            failure(&r, "not found", &format!("{action} phantom {plug}"));
            assert!(!r.stdout.contains("Already OFF"), "{r:?}");
        }
    }
    // Nothing was powered: not cl1 (vmid 2, off: "Already OFF" before the fix) and not web
    // (vmid 3, on: powered off in node2's place before the fix).
    let calls = f.calls();
    assert!(
        calls
            .iter()
            .all(|c| !c.contains("power.off") && !c.contains("power.on")),
        "{calls:?}"
    );
    assert_eq!(f.host.vm_state("web").as_deref(), Some("on"));
    assert_eq!(f.host.vm_state("cl1").as_deref(), Some("off"));
    // The vmid each phantom claimed was confirmed with the VM's own configuration.
    assert!(
        count(&calls, "vim-cmd vmsvc/get.config 2") >= 3,
        "{calls:?}"
    );
    // A plug no line names at all: not found, as always.
    let r = f.run(Mode::Stdin, &[o("action", "off"), o("plug", "nosuch")]);
    failure(&r, "not found", "unknown plug");
    assert!(r.stderr.contains("'nosuch'"), "{r:?}");
}

#[test]
fn a_note_copying_a_real_row_does_not_block_fencing() {
    // node1 is here (vmid 5). cl0's note copies its row with its own vmid and with vmid 7 (a
    // real VM, "other"), and names vmid 7 "5" (a numeric plug); a fault block follows.
    let note = format!(
        "copy:\n{}\n{}\n7      5   [datastore1] x/x.vmx   otherGuest64   vmx-19\n\
         (vim.fault.NotFound) {{\n   msg = \"nothing\"\n}}",
        row(5, "node1"),
        row(7, "node1")
    );
    let vms = [
        with_note(1, "cl0", "on", &note),
        SimVm::new(5, "node1", "on"),
        SimVm::new(7, "other", "on"),
    ];
    let Some(f) = fx(EsxiHost::builder().vms(&vms)) else {
        return;
    };
    let r = f.run(Mode::Stdin, &[o("action", "status"), o("plug", "node1")]);
    success(&r, "status node1");
    assert_eq!(r.stdout, "Status: ON\n");
    let before = f.calls().len();
    let r = f.run(Mode::Long, &[o("action", "off"), o("plug", "node1")]);
    success(&r, "off node1");
    assert_eq!(r.stdout, "Success: Powered OFF\n");
    let calls = f.calls().split_off(before);
    assert_eq!(count(&calls, "vim-cmd vmsvc/power.off 5"), 1, "{calls:?}");
    assert!(calls
        .iter()
        .all(|c| !c.ends_with(" 7") || c.contains("get.config")));
    assert_eq!(f.host.vm_state("node1").as_deref(), Some("off"));
    assert_eq!(f.host.vm_state("other").as_deref(), Some("on"));
    // The numeric plug "5" is vmid 5: the note's row naming vmid 7 "5" is not a VM.
    let r = f.run(Mode::Short, &[o("action", "status"), o("plug", "5")]);
    assert_eq!((r.code, r.stdout.as_str()), (2, "Status: OFF\n"), "{r:?}");
    assert_eq!(f.host.vm_state("other").as_deref(), Some("on"));
    // Two real VMs named alike stay ambiguous.
    let vms = [SimVm::new(1, "twin", "on"), SimVm::new(2, "twin", "on")];
    let Some(g) = fx(EsxiHost::builder().vms(&vms)) else {
        return;
    };
    let r = g.run(Mode::Stdin, &[o("action", "off"), o("plug", "twin")]);
    failure(&r, "ambiguous", "two real VMs named twin");
    assert_eq!(g.host.vm_state("twin").as_deref(), Some("on"));
}

#[test]
fn confirming_a_name_costs_at_most_one_vim_cmd_in_the_same_round_trip() {
    // No other row names cl0's vmid: nothing to confirm (a vmid only rows named cl0 carry is
    // cl0 or no VM at all), so by name costs what it always did.
    let Some(f) = default_fx() else { return };
    for plug in ["cl0", "1"] {
        let before = f.calls().len();
        let r = f.run(Mode::Stdin, &[o("action", "status"), o("plug", plug)]);
        success(&r, "status cl0");
        let calls = f.calls().split_off(before);
        assert_eq!(
            calls,
            vec!["vim-cmd vmsvc/getallvms", "vim-cmd vmsvc/power.getstate 1"],
            "{plug}"
        );
    }
    // A note gives cl0's vmid to another name: the first state read also reads cl0's own
    // name, in the same shell line (one SSH channel: getstate, then get.config).
    let vms = [
        SimVm::new(1, "cl0", "on"),
        with_note(2, "cl1", "on", &format!("x\n{}", row(1, "node1"))),
    ];
    let Some(f) = fx(EsxiHost::builder().vms(&vms)) else {
        return;
    };
    let before = f.calls().len();
    let r = f.run(Mode::Stdin, &[o("action", "status"), o("plug", "cl0")]);
    success(&r, "status cl0 with a phantom of vmid 1");
    assert_eq!(r.stdout, "Status: ON\n");
    let calls = f.calls().split_off(before);
    assert_eq!(
        calls,
        vec![
            "vim-cmd vmsvc/getallvms",
            "vim-cmd vmsvc/power.getstate 1",
            "vim-cmd vmsvc/get.config 1"
        ]
    );
    // off confirms once, then only reads state.
    let before = f.calls().len();
    let r = f.run(Mode::Stdin, &[o("action", "off"), o("plug", "cl0")]);
    success(&r, "off cl0");
    let calls = f.calls().split_off(before);
    assert_eq!(count(&calls, "vim-cmd vmsvc/get.config 1"), 1, "{calls:?}");
    assert_eq!(count(&calls, "vim-cmd vmsvc/power.off 1"), 1, "{calls:?}");
    // A garbled configuration is an error, never a state.
    f.host.set_fault("garble", &["junk", "match=get.config"]);
    let r = f.run(Mode::Long, &quick("status", "cl0"));
    failure(&r, "unrecognised", "garbled get.config");
    f.host.clear_faults();
    // With use_sudo, each vim-cmd of the line goes through `sudo -n` (a logging shim).
    let tools = f.host.hostdir().join("tools");
    let log = f.host.hostdir().join("sudo.log");
    let shim = tools.join("sudo");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\n[ \"$1\" = -n ] || exit 1\nshift\nexec \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    set_mode(&shim, 0o755);
    let r = f.run(
        Mode::Long,
        &[o("action", "status"), o("plug", "cl0"), flag("use_sudo")],
    );
    assert_eq!((r.code, r.stdout.as_str()), (2, "Status: OFF\n"), "{r:?}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("-n vim-cmd vmsvc/power.getstate 1\n"),
        "{logged}"
    );
    assert!(
        logged.contains("-n vim-cmd vmsvc/get.config 1\n"),
        "{logged}"
    );
}

#[test]
fn megabyte_note_lines_do_not_slow_the_parser() {
    // A note line of 1 MiB that starts with digits and repeats `   [` and `   vmx-`: quadratic
    // in the old row parser (10.8 s at 120 KB), linear now.
    let mut evil = String::from("2      node1");
    while evil.len() < 1 << 20 {
        evil.push_str("   [d] p   vmx-");
    }
    let vms = [
        with_note(1, "cl0", "on", &format!("x\n{evil}")),
        SimVm::new(2, "cl1", "on"),
    ];
    let Some(f) = fx(EsxiHost::builder().vms(&vms)) else {
        return;
    };
    let r = f.run(Mode::Stdin, &[o("action", "off"), o("plug", "cl1")]);
    success(&r, "off next to a 1 MiB note line");
    println!("off with a 1 MiB note line in getallvms: {:?}", r.elapsed);
    assert!(r.elapsed < Duration::from_secs(20), "{r:?}");
    assert_eq!(f.host.vm_state("cl1").as_deref(), Some("off"));
    let r = f.run(Mode::Long, &[o("action", "list")]);
    success(&r, "list");
    assert_eq!(r.stdout, "cl0,1\ncl1,2\n");
}

#[test]
fn suspended_vms_are_powered_off_never_resumed() {
    let vms = [
        SimVm::new(1, "s-off", "suspended"),
        SimVm::new(2, "s-reboot", "suspended"),
        SimVm::new(3, "s-on", "suspended"),
        SimVm::new(4, "s-cycle", "suspended"),
    ];
    let Some(f) = fx(EsxiHost::builder().vms(&vms)) else {
        return;
    };
    // status: ON (not fenced), exit 0.
    let r = f.run(Mode::Stdin, &[o("action", "status"), o("plug", "s-off")]);
    success(&r, "status suspended");
    assert_eq!(r.stdout, "Status: ON\n");
    // off: power.off was sent, the suspend state is gone, read back as powered off.
    let before = f.calls().len();
    let r = f.run(Mode::Stdin, &[o("action", "off"), o("plug", "s-off")]);
    success(&r, "off suspended");
    assert_eq!(r.stdout, "Success: Powered OFF\n");
    let calls = f.calls().split_off(before);
    let off = calls.iter().position(|c| c == "vim-cmd vmsvc/power.off 1");
    assert!(off.is_some(), "{calls:?}");
    assert!(
        calls[off.unwrap()..]
            .iter()
            .any(|c| c == "vim-cmd vmsvc/power.getstate 1"),
        "{calls:?}"
    );
    assert_eq!(f.host.vm_state("s-off").as_deref(), Some("off"));
    assert_eq!(vm_field(&f.host, "s-off", "vmss"), serde_json::json!(false));
    // on after the fence: a fresh boot, not a resume.
    let r = f.run(Mode::Long, &[o("action", "on"), o("plug", "s-off")]);
    success(&r, "on after off");
    assert_eq!(vm_field(&f.host, "s-off", "last_start"), "boot");
    // reboot: off (state discarded) then a fresh boot.
    let r = f.run(Mode::Long, &[o("action", "reboot"), o("plug", "s-reboot")]);
    success(&r, "reboot suspended");
    assert_eq!(r.stdout, "Success: Rebooted\n");
    assert_eq!(f.host.vm_state("s-reboot").as_deref(), Some("on"));
    assert_eq!(vm_field(&f.host, "s-reboot", "last_start"), "boot");
    assert_eq!(count(&f.calls(), "vim-cmd vmsvc/power.off 2"), 1);
    // on of a suspended VM: refused (it would resume the saved memory), nothing sent.
    let r = f.run(Mode::Short, &[o("action", "on"), o("plug", "s-on")]);
    failure(&r, "suspended", "on suspended");
    assert_eq!(f.host.vm_state("s-on").as_deref(), Some("suspended"));
    assert!(f.calls().iter().all(|c| !c.ends_with("power.on 3")));
    // method=cycle: no reset of a suspended VM; powered off (read back), then booted.
    let r = f.run(
        Mode::Short,
        &[
            o("action", "reboot"),
            o("plug", "s-cycle"),
            o("method", "cycle"),
        ],
    );
    success(&r, "cycle suspended");
    let calls = f.calls();
    assert_eq!(count(&calls, "vim-cmd vmsvc/power.reset 4"), 0, "{calls:?}");
    assert_eq!(count(&calls, "vim-cmd vmsvc/power.off 4"), 1, "{calls:?}");
    assert_eq!(f.host.vm_state("s-cycle").as_deref(), Some("on"));
    assert_eq!(vm_field(&f.host, "s-cycle", "last_start"), "boot");
    // A power.off the host ignores leaves it suspended: never a success.
    f.host.set_fault("noop", &["power.off"]);
    let r = f.run(Mode::Stdin, &quick("off", "s-on"));
    failure(
        &r,
        "Timed out waiting to power OFF",
        "ignored power.off of a suspended VM",
    );
    assert_eq!(f.host.vm_state("s-on").as_deref(), Some("suspended"));
}

#[test]
fn remote_stderr_is_quoted_through_excerpt() {
    let Some(f) = default_fx() else { return };
    let long = "x".repeat(5000);
    f.host.set_fault(
        "exit",
        &[
            "1",
            &format!("msg=\u{1b}[31mboom {long}"),
            "match=getallvms",
        ],
    );
    let r = f.run(Mode::Stdin, &quick("off", "cl0"));
    failure(&r, "boom", "stderr with ESC and 5000 bytes");
    assert!(!r.stderr.contains('\u{1b}'), "{r:?}");
    assert!(r.stderr.len() < 1000, "{}", r.stderr.len());
}
