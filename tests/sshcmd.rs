//! The real `fence_sshcmd` binary against the fake ESXi host of `tests/support/sim/` (a real
//! OpenSSH sshd on loopback whose sessions run commands under `/bin/sh -c`, with the simulated
//! `vim-cmd` on their PATH), set up by the shared host fixture of `tests/support/fixture.rs`.
//!
//! The configured commands drive a simulated VM (`vim-cmd vmsvc/power.off 1`...), so every
//! power change is read back from the simulator's own state. Covered: on/off/reboot/status/
//! monitor in every input mode, key login; a status output matching neither or both regexes
//! and a command exiting non-zero (exit 1, never OFF); an off the device ignores; an unknown
//! host key and a wrong password; validate-all and missing or unsafe options, with whole
//! stderr lines. Every run checks that no secret (password, command text) reaches the output.

use crate::agentcmd::{Mode, Run, MODES};
use crate::sim::sshd::PASSWORD;
use crate::support::fixture::{default_fx, o, Fx, O};

const WRONG: &str = "wrong-Secret-42";
/// Text inside a command: the command text is never logged, even with `verbose`.
const IN_COMMAND: &str = "cmd-Secret-17";

/// The commands of vmid `id` on the simulated host, as `(name, value)` options.
fn vm(id: u32) -> Vec<O> {
    vec![
        o("on_command", &format!("vim-cmd vmsvc/power.on {id}")),
        o("off_command", &format!("vim-cmd vmsvc/power.off {id}")),
        o(
            "status_command",
            &format!("vim-cmd vmsvc/power.getstate {id}"),
        ),
        o("status_on_regex", "(?m)^Powered on$"),
        o("status_off_regex", "(?m)^Powered off$"),
    ]
}

/// Runs fence_sshcmd against `f` with the device options and vmid 1's commands, `drop`
/// removed and `extra` applied (same name replaces; `None` value = a flag).
fn run(f: &Fx, mode: Mode, drop: &[&str], extra: &[O]) -> Run {
    let mut with_vm = vm(1);
    with_vm.retain(|(n, _)| !drop.contains(n));
    let r = f.run_agent(
        "fence_sshcmd",
        mode,
        drop,
        &crate::support::fixture::merged(with_vm, extra),
    );
    for s in [PASSWORD, WRONG, IN_COMMAND] {
        assert!(
            !r.stdout.contains(s) && !r.stderr.contains(s),
            "a secret leaked into the output: {r:?}"
        );
    }
    r
}

/// Each stderr line without its timestamp (`ERROR: Failed: ...`).
fn messages(r: &Run) -> Vec<String> {
    r.stderr
        .lines()
        .map(|l| l.get(24..).unwrap_or(l).to_owned())
        .collect()
}

/// Exit 0, this stdout, nothing on stderr.
fn ok(r: &Run, stdout: &str) {
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, stdout, ""),
        "{r:?}"
    );
}

/// Exit 1, nothing on stdout (never `Success`, never `Status: OFF`), exactly these lines.
fn failed(r: &Run, lines: &[&str]) {
    assert_eq!((r.code, r.stdout.as_str()), (1, ""), "{r:?}");
    assert_eq!(messages(r), lines, "{r:?}");
}

/// The simulator's calls so far (`vim-cmd vmsvc/power.off 1`).
fn calls(f: &Fx) -> Vec<String> {
    f.calls()
}

fn power(f: &Fx) -> Option<String> {
    f.host.vm_state("cl0")
}

#[test]
fn sshcmd_on_off_reboot_status_read_back() {
    let Some(f) = default_fx() else { return };
    for mode in MODES {
        ok(
            &run(&f, mode, &[], &[o("action", "status")]),
            "Status: ON\n",
        );
        ok(&run(&f, mode, &[], &[o("action", "monitor")]), "");
        ok(
            &run(&f, mode, &[], &[o("action", "off")]),
            "Success: Powered OFF\n",
        );
        assert_eq!(power(&f).as_deref(), Some("off"), "{mode:?}");
        let r = run(&f, mode, &[], &[o("action", "status")]);
        assert_eq!(
            (r.code, r.stdout.as_str(), r.stderr.as_str()),
            (2, "Status: OFF\n", "")
        );
        ok(
            &run(&f, mode, &[], &[o("action", "off")]),
            "Success: Already OFF\n",
        );
        ok(
            &run(&f, mode, &[], &[o("action", "on")]),
            "Success: Powered ON\n",
        );
        assert_eq!(power(&f).as_deref(), Some("on"), "{mode:?}");
        let before = calls(&f).len();
        ok(
            &run(&f, mode, &[], &[o("action", "reboot")]),
            "Success: Rebooted\n",
        );
        let c = calls(&f).split_off(before);
        let at = |cmd: &str| c.iter().position(|x| x == cmd);
        assert!(
            at("vim-cmd vmsvc/power.off 1") < at("vim-cmd vmsvc/power.on 1"),
            "{c:?}"
        );
        assert!(at("vim-cmd vmsvc/power.off 1").is_some(), "{c:?}");
        assert_eq!(power(&f).as_deref(), Some("on"), "{mode:?}");
    }
    // A key instead of a password.
    let key = f.host.key_path().display().to_string();
    let r = run(
        &f,
        Mode::Long,
        &["password"],
        &[o("identity_file", &key), o("action", "off")],
    );
    ok(&r, "Success: Powered OFF\n");
    assert_eq!(power(&f).as_deref(), Some("off"));
    // Verbose: the command text is not logged (only the option's name).
    let status = format!("echo {IN_COMMAND} >/dev/null; vim-cmd vmsvc/power.getstate 1");
    let r = run(
        &f,
        Mode::Stdin,
        &[],
        &[
            o("action", "status"),
            o("status_command", &status),
            o("verbose", "1"),
        ],
    );
    assert_eq!((r.code, r.stdout.as_str()), (2, "Status: OFF\n"), "{r:?}");
    assert!(r.stderr.contains("Running status_command"), "{r:?}");
}

/// The whole line of a status output matching `which` ("neither", "both") of the regexes.
fn unmatched(which: &str, output: &str) -> String {
    format!(
        "ERROR: Failed: Unable to obtain correct plug status or plug is not available (the \
         output of status_command matches {which} of status_on_regex and status_off_regex: \
         {output})"
    )
}

/// vmid `id`'s commands, then `extra`.
fn vm_and(id: u32, extra: &[O]) -> Vec<O> {
    vm(id).into_iter().chain(extra.iter().cloned()).collect()
}

#[test]
fn sshcmd_status_matching_neither_or_both_is_an_error_never_off() {
    let Some(f) = default_fx() else { return };
    // vmid 6 is suspended: `Suspended` matches neither regex.
    let neither = unmatched("neither", "Retrieved runtime info Suspended");
    for mode in MODES {
        let r = run(&f, mode, &[], &vm_and(6, &[o("action", "status")]));
        failed(&r, &[&neither]);
    }
    let r = run(&f, Mode::Stdin, &[], &vm_and(6, &[o("action", "off")]));
    failed(&r, &[&neither]);
    assert_eq!(f.host.vm_state("dbvm").as_deref(), Some("suspended"));
    // Empty output matches neither.
    let extra = [o("action", "status"), o("status_command", "echo; echo")];
    failed(
        &run(&f, Mode::Long, &[], &extra),
        &[&unmatched("neither", "(empty)")],
    );
    // vmid 3 is off; `Powered` matches its output too: both, so not OFF.
    let both = unmatched("both", "Retrieved runtime info Powered off");
    for action in ["status", "off", "reboot"] {
        let extra = vm_and(
            3,
            &[
                o("status_on_regex", "Powered"),
                o("status_off_regex", "Powered off"),
                o("action", action),
            ],
        );
        failed(&run(&f, Mode::Stdin, &[], &extra), &[&both]);
    }
    let c = calls(&f);
    assert!(c.iter().all(|c| !c.contains("power.o")), "{c:?}");
}

#[test]
fn sshcmd_a_command_exiting_non_zero_is_an_error() {
    let Some(f) = default_fx() else { return };
    // Output that matches OFF does not count when the command failed.
    let status = o(
        "status_command",
        "echo 'Powered off'; echo 'no such VM' >&2; exit 3",
    );
    let r = run(
        &f,
        Mode::Stdin,
        &[],
        &[o("action", "status"), status.clone()],
    );
    let why = "status_command exited with status 3: no such VM";
    failed(
        &r,
        &[&format!(
            "ERROR: Failed: Unable to obtain correct plug status or plug is not available: {why}"
        )],
    );
    let r = run(&f, Mode::Long, &[], &[o("action", "off"), status]);
    failed(&r, &[&format!("ERROR: Failed: {why}")]);
    // An off command that fails and changes nothing: the read-back decides, so a timeout;
    // the command's failure is the warning's last error.
    let extra = [
        o("action", "off"),
        o("off_command", "exit 7"),
        o("power_timeout", "1"),
        o("retry_on", "0"),
    ];
    let r = run(&f, Mode::Stdin, &[], &extra);
    failed(&r, &[
        "WARNING: Power OFF not confirmed; last error: off_command exited with status 7: no output",
        "ERROR: Failed: Timed out waiting to power OFF",
    ]);
    assert_eq!(power(&f).as_deref(), Some("on"));
}

#[test]
fn sshcmd_an_ignored_off_times_out() {
    let Some(f) = default_fx() else { return };
    f.host.set_fault("noop", &["power.off"]);
    for action in ["off", "reboot"] {
        let before = calls(&f).len();
        let r = run(
            &f,
            Mode::Stdin,
            &[],
            &[
                o("action", action),
                o("power_timeout", "2"),
                o("retry_on", "0"),
            ],
        );
        failed(&r, &["ERROR: Failed: Timed out waiting to power OFF"]);
        let c = calls(&f).split_off(before);
        assert!(c.contains(&"vim-cmd vmsvc/power.off 1".to_owned()), "{c:?}");
        assert!(c.iter().all(|x| !x.contains("power.on")), "{c:?}");
        assert_eq!(power(&f).as_deref(), Some("on"));
    }
}

#[test]
fn sshcmd_unknown_host_key_and_wrong_password_are_refused() {
    let Some(f) = default_fx() else { return };
    let empty = f.dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let r = run(
        &f,
        Mode::Stdin,
        &[],
        &[
            o("action", "off"),
            o("known_hosts", &empty.display().to_string()),
        ],
    );
    assert_eq!((r.code, r.stdout.as_str()), (1, ""), "{r:?}");
    let m = messages(&r);
    assert_eq!(m.len(), 1, "{r:?}");
    let head = format!(
        "ERROR: Failed: Host key verification failed: host key for [127.0.0.1]:{} is unknown \
         (ssh-ed25519 {})",
        f.host.port(),
        f.host.fingerprint()
    );
    assert!(m[0].starts_with(&head), "{r:?}");
    assert!(calls(&f).is_empty(), "commands ran on an untrusted host");
    for mode in MODES {
        let r = run(&f, mode, &[], &[o("action", "off"), o("password", WRONG)]);
        assert_eq!((r.code, r.stdout.as_str()), (1, ""), "{r:?}");
        let m = messages(&r);
        assert_eq!(m.len(), 1, "{r:?}");
        assert!(
            m[0].starts_with("ERROR: Failed: Unable to connect/login to fencing device: "),
            "{r:?}"
        );
        assert!(m[0].contains("did not accept the password"), "{r:?}");
    }
    assert!(calls(&f).is_empty());
    assert_eq!(power(&f).as_deref(), Some("on"));
}

#[test]
fn sshcmd_validate_all_and_missing_or_unsafe_options() {
    let Some(f) = default_fx() else { return };
    ok(
        &run(&f, Mode::Stdin, &[], &[o("action", "validate-all")]),
        "",
    );
    for mode in MODES {
        let r = run(&f, mode, &["off_command"], &[o("action", "validate-all")]);
        failed(
            &r,
            &[
                "ERROR: Failed: You have to set --off-command",
                "ERROR: validate-all failed",
                "ERROR: Please use '-h' for usage",
            ],
        );
        let r = run(&f, mode, &["status_off_regex"], &[o("action", "off")]);
        failed(
            &r,
            &[
                "ERROR: Failed: You have to set --status-off-regex",
                "ERROR: Please use '-h' for usage",
            ],
        );
    }
    // A regex that does not compile, and one that matches any output (garbage would be OFF).
    let r = run(
        &f,
        Mode::Stdin,
        &[],
        &[
            o("action", "off"),
            o("status_on_regex", "(on"),
            o("status_off_regex", "x*"),
        ],
    );
    failed(
        &r,
        &[
            "ERROR: Failed: --status-on-regex is not a valid regular expression: unclosed group",
            "ERROR: Please use '-h' for usage",
        ],
    );
    let r = run(
        &f,
        Mode::Stdin,
        &[],
        &[o("action", "validate-all"), o("status_off_regex", "x*")],
    );
    failed(
        &r,
        &[
            "ERROR: Failed: --status-off-regex matches empty output, so it would match any output",
            "ERROR: validate-all failed",
            "ERROR: Please use '-h' for usage",
        ],
    );
    assert!(calls(&f).is_empty(), "validation contacted the device");
    assert_eq!(power(&f).as_deref(), Some("on"));
}
