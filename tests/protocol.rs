//! The fence-agent protocol through the real `fence_fake` binary, in stdin, short-option and
//! long-option modes. Test names carry the checklist item of docs/protocol.md §9 (`cNN_`);
//! tests/CHECKLIST.md maps every item to a test or a written reason.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::agentcmd::{self, args, run_mode, run_mode_env, stdin, stdin_env, Mode, Opt, MODES};

struct Dev {
    _dir: tempfile::TempDir,
    state: PathBuf,
}

impl Dev {
    fn new(content: &str) -> Dev {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        fs::write(&state, content).unwrap();
        Dev { _dir: dir, state }
    }
    fn path(&self) -> &str {
        self.state.to_str().unwrap()
    }
    fn text(&self) -> String {
        fs::read_to_string(&self.state).unwrap()
    }
    fn log(&self) -> String {
        fs::read_to_string(format!("{}.log", self.path())).unwrap_or_default()
    }
    /// Options for a run: state file, fast polling, plus `extra`.
    fn opts<'a>(&'a self, extra: &[Opt<'a>]) -> Vec<Opt<'a>> {
        let mut v: Vec<Opt<'a>> = vec![
            ("state_file", None, "state-file", Some(self.path())),
            (
                "stonith_status_sleep",
                None,
                "stonith-status-sleep",
                Some("0.05"),
            ),
            ("power_timeout", None, "power-timeout", Some("2")),
        ];
        v.extend_from_slice(extra);
        v
    }
}

const TWO: &str = "plug node1 on\nplug node2 off aliasB\n";

fn fake() -> PathBuf {
    agentcmd::bin("fence_fake")
}

fn action(a: &str) -> Opt<'_> {
    ("action", Some('o'), "action", Some(a))
}
fn plug(p: &str) -> Opt<'_> {
    ("plug", Some('n'), "plug", Some(p))
}

#[test]
fn c01_argv_means_stdin_is_ignored() {
    let d = Dev::new(TWO);
    let input = format!("action=off\nstate_file={}\nplug=node1\n", d.path());
    let bin = fake();
    let out = std::process::Command::new(&bin)
        .args(["-o", "status", "-n", "node1", "--state-file", d.path()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            let _ = c.stdin.take().unwrap().write_all(input.as_bytes());
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Status: ON\n");
    assert!(d.text().contains("plug node1 on"));
}

#[test]
fn c02_double_dash_alone_runs_default_reboot() {
    // `--` alone: command-line mode with defaults (action reboot) → plug missing here.
    let r = args(&fake(), &["--"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("You have to enter plug number or machine identification"),
        "{}",
        r.stderr
    );
}

#[test]
fn c03_action_spellings() {
    let d = Dev::new(TWO);
    for a in [
        vec!["-ostatus"],
        vec!["-o", "status"],
        vec!["--action=status"],
        vec!["--action", "status"],
        vec!["--act=status"],
    ] {
        let mut full = a.clone();
        full.extend(["-n", "node1", "--state-file", d.path()]);
        let r = args(&fake(), &full);
        assert_eq!((r.code, r.stdout.as_str()), (0, "Status: ON\n"), "{a:?}");
    }
}

#[test]
fn c04_left_over_words_warn_only() {
    let d = Dev::new(TWO);
    let r = args(
        &fake(),
        &[
            "-o",
            "status",
            "-n",
            "node1",
            "--state-file",
            d.path(),
            "--",
            "-o",
            "off",
        ],
    );
    assert_eq!(r.code, 0);
    assert!(
        r.stderr
            .contains("Unused arguments on command line: ['-o', 'off']"),
        "{}",
        r.stderr
    );
    assert!(d.text().contains("plug node1 on"));
}

#[test]
fn c05_unknown_long_option_exits_1() {
    let r = args(&fake(), &["--bogus"]);
    assert_eq!(r.code, 1);
    assert!(r
        .stderr
        .contains("Parse error: option --bogus not recognized"));
    assert!(r.stderr.contains("Please use '-h' for usage"));
}

#[test]
fn c05b_clap_usage_errors_exit_1_never_2() {
    for a in [&["-o"][..], &["--plug"], &["-Z"], &["--quiet=maybe"]] {
        let r = args(&fake(), a);
        assert_eq!(r.code, 1, "{a:?}: {}", r.stderr);
    }
}

#[test]
fn c06_version_and_help() {
    let r = args(&fake(), &["-V"]);
    assert_eq!((r.code, r.stdout.trim()), (0, env!("CARGO_PKG_VERSION")));
    let r = args(&fake(), &["-h"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("--plug=[id]") && r.stdout.contains("--state-file"));
    assert!(r.stderr.is_empty());
}

#[test]
fn c07_stdin_blank_comment_and_spaces() {
    let d = Dev::new(TWO);
    let r = stdin(
        &fake(),
        &format!(
            "\n# a comment\n   action=status   \n\nplug=node1\nstate_file={}\n",
            d.path()
        ),
    );
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, "Status: ON\n", "")
    );
}

#[test]
fn c08_c09_spaces_around_equals_and_case() {
    let d = Dev::new(TWO);
    // `action = status` is unknown, so the default reboot runs (on node2, which is off → on).
    let r = stdin(&fake(), &format!("action = status\nAction=off\nplug=node2\nstate_file={}\npower_timeout=2\nstonith_status_sleep=0.05\n", d.path()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "Success: Rebooted\n");
    assert!(r.stderr.contains("Ignoring unknown option 'action '"));
    assert!(r.stderr.contains("Ignoring unknown option 'Action'"));
}

#[test]
fn c10_legacy_stdin_names() {
    let d = Dev::new(TWO);
    let r = stdin(
        &fake(),
        &format!("action=status\nport=node2\nstate_file={}\n", d.path()),
    );
    assert_eq!((r.code, r.stdout.as_str()), (2, "Status: OFF\n"));
    assert!(d.log().contains("plug=node2"));
}

#[test]
fn c11_c12_values_split_at_first_equals_and_quotes() {
    let d = Dev::new("plug a=b on\nplug q\"x on\n");
    let r = stdin(
        &fake(),
        &format!("action=status\nplug=a=b\nstate_file=\"{}\"\n", d.path()),
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "Status: ON\n"),
        "{}",
        r.stderr
    );
}

#[test]
fn c13_last_wins_between_port_and_plug() {
    let d = Dev::new(TWO);
    let r = stdin(
        &fake(),
        &format!(
            "action=status\nport=node1\nplug=node2\nstate_file={}\n",
            d.path()
        ),
    );
    assert_eq!(r.code, 2);
    let r = stdin(
        &fake(),
        &format!(
            "action=status\nplug=node2\nport=node1\nstate_file={}\n",
            d.path()
        ),
    );
    assert_eq!(r.code, 0);
}

#[test]
fn c14_nodename_is_silent() {
    let d = Dev::new(TWO);
    let r = stdin(
        &fake(),
        &format!(
            "nodename=node1\naction=status\nport=node1\nstate_file={}\n",
            d.path()
        ),
    );
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
}

#[test]
fn c15_unknown_key_warns_without_value() {
    let d = Dev::new(TWO);
    let r = stdin(
        &fake(),
        &format!(
            "pasword=hunter2\naction=status\nport=node1\nstate_file={}\n",
            d.path()
        ),
    );
    assert_eq!(r.code, 0);
    assert!(
        r.stderr
            .contains("Parse error: Ignoring unknown option 'pasword'"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("hunter2"), "secret leaked: {}", r.stderr);
}

#[test]
fn c16_flag_without_value_and_false_values() {
    let d = Dev::new(TWO);
    let r = stdin(
        &fake(),
        &format!(
            "verbose=\naction=status\nport=node1\nstate_file={}\n",
            d.path()
        ),
    );
    assert!(r
        .stderr
        .contains("Ignoring option 'verbose' because it does not have value"));
    // Divergence: quiet=0 means not quiet (upstream tests only presence).
    let r = stdin(
        &fake(),
        &format!(
            "quiet=0\nbogus=1\naction=status\nport=node1\nstate_file={}\n",
            d.path()
        ),
    );
    assert!(r.stderr.contains("Ignoring unknown option 'bogus'"));
    let r = stdin(
        &fake(),
        &format!(
            "quiet=1\nbogus=1\naction=status\nport=node1\nstate_file={}\n",
            d.path()
        ),
    );
    assert_eq!(r.stderr, "");
}

#[test]
fn c18_verbose_logs_debug() {
    let d = Dev::new(TWO);
    let r = stdin(&fake(), &format!("verbose=1\naction=off\nport=node1\nstate_file={}\npower_timeout=2\nstonith_status_sleep=0.05\n", d.path()));
    assert_eq!(r.code, 0);
    assert!(r.stderr.contains("DEBUG:"), "{}", r.stderr);
}

#[test]
fn c20_action_case_and_meta_data_alias() {
    let d = Dev::new(TWO);
    let r = args(
        &fake(),
        &["-o", "STATUS", "-n", "node1", "--state-file", d.path()],
    );
    assert_eq!(r.code, 0);
    let r = stdin(&fake(), "action=meta-data\n");
    assert_eq!(r.code, 0);
    assert!(r.stdout.starts_with("<?xml"));
}

#[test]
fn c21_unknown_action() {
    for mode in MODES {
        let d = Dev::new(TWO);
        let r = run_mode(&fake(), mode, &d.opts(&[action("bogus"), plug("node1")]));
        assert_eq!(r.code, 1, "{mode:?}");
        assert!(
            r.stderr.contains("Failed: Unrecognised action 'bogus'"),
            "{mode:?}: {}",
            r.stderr
        );
    }
}

#[test]
fn c22_c23_status_on_0_off_2() {
    for mode in MODES {
        let d = Dev::new(TWO);
        let r = run_mode(&fake(), mode, &d.opts(&[action("status"), plug("node1")]));
        assert_eq!(
            (r.code, r.stdout.as_str(), r.stderr.as_str()),
            (0, "Status: ON\n", ""),
            "{mode:?}"
        );
        let r = run_mode(&fake(), mode, &d.opts(&[action("status"), plug("node2")]));
        assert_eq!(
            (r.code, r.stdout.as_str(), r.stderr.as_str()),
            (2, "Status: OFF\n", ""),
            "{mode:?}"
        );
    }
}

#[test]
fn c24_unobtainable_status_is_exit_1_never_off() {
    for mode in MODES {
        let d = Dev::new("plug node1 off\nfault garbled\n");
        let r = run_mode(&fake(), mode, &d.opts(&[action("status"), plug("node1")]));
        assert_eq!(r.code, 1, "{mode:?}");
        assert_eq!(r.stdout, "");
        assert!(
            r.stderr
                .contains("Failed: Unable to obtain correct plug status or plug is not available"),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn c25_c26_on_off_and_already() {
    for mode in MODES {
        let d = Dev::new(TWO);
        let r = run_mode(&fake(), mode, &d.opts(&[action("off"), plug("node1")]));
        assert_eq!(
            (r.code, r.stdout.as_str(), r.stderr.as_str()),
            (0, "Success: Powered OFF\n", ""),
            "{mode:?}"
        );
        assert!(d.text().contains("plug node1 off"));
        let r = run_mode(&fake(), mode, &d.opts(&[action("off"), plug("node1")]));
        assert_eq!(r.stdout, "Success: Already OFF\n");
        let r = run_mode(&fake(), mode, &d.opts(&[action("on"), plug("node1")]));
        assert_eq!(r.stdout, "Success: Powered ON\n");
        let r = run_mode(&fake(), mode, &d.opts(&[action("on"), plug("node1")]));
        assert_eq!((r.code, r.stdout.as_str()), (0, "Success: Already ON\n"));
    }
}

#[test]
fn c27_off_never_confirmed_fails() {
    for mode in MODES {
        let d = Dev::new("plug node1 on\nfault ignore-off\n");
        let r = run_mode(
            &fake(),
            mode,
            &d.opts(&[
                action("off"),
                plug("node1"),
                ("power_timeout", None, "power-timeout", Some("0.3")),
            ]),
        );
        assert_eq!(r.code, 1, "{mode:?}");
        assert_eq!(r.stdout, "");
        assert!(r.stderr.contains("Failed: Timed out waiting to power OFF"));
    }
}

#[test]
fn c28_reboot_default_action() {
    let d = Dev::new(TWO);
    let r = stdin(
        &fake(),
        &format!(
            "port=node1\nstate_file={}\npower_timeout=2\nstonith_status_sleep=0.05\n",
            d.path()
        ),
    );
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, "Success: Rebooted\n", "")
    );
    assert!(d.text().contains("plug node1 on"));
}

#[test]
fn c27b_reboot_with_ignored_off_is_failure() {
    let d = Dev::new("plug node1 on\nfault ignore-off\n");
    let r = run_mode(
        &fake(),
        Mode::Stdin,
        &d.opts(&[
            action("reboot"),
            plug("node1"),
            ("power_timeout", None, "power-timeout", Some("0.3")),
        ]),
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("Timed out waiting to power OFF"));
    assert!(!r.stdout.contains("Success"));
}

#[test]
fn c29_reboot_where_on_fails_is_still_rebooted() {
    let d = Dev::new("plug node1 on\nfault ignore-on\n");
    let r = run_mode(
        &fake(),
        Mode::Stdin,
        &d.opts(&[
            action("reboot"),
            plug("node1"),
            ("power_timeout", None, "power-timeout", Some("0.3")),
        ]),
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "Success: Rebooted\n"));
    assert!(r.stderr.contains("Timed out waiting to power ON"));
    assert!(d.text().contains("plug node1 off"));
}

#[test]
fn c30_reboot_retry_on_0_never_sends_on() {
    let d = Dev::new(TWO);
    let r = run_mode(
        &fake(),
        Mode::Long,
        &d.opts(&[
            action("reboot"),
            plug("node1"),
            ("retry_on", None, "retry-on", Some("0")),
        ]),
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "Success: Rebooted\n"));
    assert!(d.text().contains("plug node1 off"));
}

#[test]
fn c31_on_retries_then_fails() {
    let d = Dev::new("plug node1 off\nfault ignore-on\n");
    let r = run_mode(
        &fake(),
        Mode::Stdin,
        &d.opts(&[
            action("on"),
            plug("node1"),
            ("power_timeout", None, "power-timeout", Some("0.2")),
            ("verbose", Some('v'), "verbose", None),
        ]),
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("Failed: Timed out waiting to power ON"));
    assert!(r.stderr.contains("attempt 2 of 2"), "{}", r.stderr);
}

#[test]
fn c32_c33_delay_only_for_off_and_reboot_even_when_unreachable() {
    let d = Dev::new("plug node1 on\nfault unreachable\n");
    let delay = ("delay", None, "delay", Some("1"));
    let lt = ("login_timeout", None, "login-timeout", Some("0"));
    let r = run_mode(
        &fake(),
        Mode::Stdin,
        &d.opts(&[action("off"), plug("node1"), delay, lt]),
    );
    assert_eq!(r.code, 1);
    assert!(r.elapsed >= Duration::from_secs(1), "{:?}", r.elapsed);
    let d2 = Dev::new(TWO);
    let r = run_mode(
        &fake(),
        Mode::Stdin,
        &d2.opts(&[action("status"), plug("node1"), delay]),
    );
    assert_eq!(r.code, 0);
    assert!(
        r.elapsed < Duration::from_secs(1),
        "status was delayed: {:?}",
        r.elapsed
    );
}

#[test]
fn c34_power_wait() {
    let d = Dev::new(TWO);
    let r = run_mode(
        &fake(),
        Mode::Stdin,
        &d.opts(&[
            action("off"),
            plug("node1"),
            ("power_wait", None, "power-wait", Some("1")),
        ]),
    );
    assert_eq!(r.code, 0);
    assert!(r.elapsed >= Duration::from_secs(1));
}

#[test]
fn c34b_slow_transition_succeeds_within_power_timeout() {
    let d = Dev::new("plug node1 on\nfault slow:0.5\n");
    let r = run_mode(
        &fake(),
        Mode::Stdin,
        &d.opts(&[action("off"), plug("node1")]),
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "Success: Powered OFF\n"),
        "{}",
        r.stderr
    );
}

#[test]
fn c35_divergence_keeps_timeouts_under_pacemaker() {
    // Upstream disables its timeouts when PCMK_service=pacemaker-fenced; we do not.
    let d = Dev::new("plug node1 on\nfault hang\n");
    let env = [("PCMK_service", "pacemaker-fenced")];
    let r = run_mode_env(
        &fake(),
        Mode::Stdin,
        &d.opts(&[
            action("off"),
            plug("node1"),
            ("shell_timeout", None, "shell-timeout", Some("0.5")),
        ]),
        &env,
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("Connection timed out"), "{}", r.stderr);
    assert!(r.elapsed < Duration::from_secs(30));
}

#[test]
fn c35b_watchdog_ends_a_hard_hang() {
    let d = Dev::new("plug node1 on\nfault hang-hard\n");
    let r = run_mode(
        &fake(),
        Mode::Stdin,
        &d.opts(&[
            action("off"),
            plug("node1"),
            ("login_timeout", None, "login-timeout", Some("0.5")),
            ("shell_timeout", None, "shell-timeout", Some("0.5")),
            ("power_timeout", None, "power-timeout", Some("0.5")),
        ]),
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("Failed: Connection timed out"),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains("Success"));
    assert!(r.elapsed < Duration::from_secs(60));
}

#[test]
fn c36_list_and_separator() {
    for mode in MODES {
        let d = Dev::new(TWO);
        let r = run_mode(&fake(), mode, &d.opts(&[action("list")]));
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, "node1,\nnode2,aliasB\n"),
            "{mode:?}"
        );
        let r = run_mode(
            &fake(),
            mode,
            &d.opts(&[
                action("list"),
                ("separator", Some('C'), "separator", Some(";")),
            ]),
        );
        assert_eq!(r.stdout, "node1;\nnode2;aliasB\n", "{mode:?}");
    }
}

#[test]
fn c37_list_status() {
    let d = Dev::new(TWO);
    let r = run_mode(&fake(), Mode::Stdin, &d.opts(&[action("list-status")]));
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "node1,,ON\nnode2,aliasB,OFF\n")
    );
    let d = Dev::new("plug node1 on\nfault garbled\n");
    let r = run_mode(&fake(), Mode::Stdin, &d.opts(&[action("list-status")]));
    assert_eq!(r.stdout, "node1,,UNKNOWN\n");
}

#[test]
fn c38_multi_plug_status_and_off() {
    let d = Dev::new(TWO);
    let r = run_mode(
        &fake(),
        Mode::Short,
        &d.opts(&[action("status"), plug("node1,node2")]),
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "Status: ON\n"));
    let r = run_mode(
        &fake(),
        Mode::Short,
        &d.opts(&[action("off"), plug("node1,node2")]),
    );
    assert_eq!(r.code, 0);
    assert!(d.text().contains("plug node1 off") && d.text().contains("plug node2 off"));
    let r = run_mode(
        &fake(),
        Mode::Stdin,
        &d.opts(&[
            action("status"),
            plug("node1:node2"),
            ("plug_separator", None, "plug-separator", Some(":")),
        ]),
    );
    assert_eq!(r.code, 2);
}

#[test]
fn c39_monitor_runs_list_prints_nothing() {
    let d = Dev::new(TWO);
    let r = run_mode(&fake(), Mode::Stdin, &d.opts(&[action("monitor")]));
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "", ""));
    assert!(d.log().contains("action=monitor"));
    let d = Dev::new("plug node1 on\nfault unreachable\n");
    let r = run_mode(
        &fake(),
        Mode::Stdin,
        &d.opts(&[
            action("monitor"),
            ("login_timeout", None, "login-timeout", Some("0")),
        ]),
    );
    assert_eq!(r.code, 1);
}

#[test]
fn c41_plug_required_except_list_and_monitor() {
    for a in ["on", "off", "reboot", "status", "validate-all"] {
        let d = Dev::new(TWO);
        let r = run_mode(&fake(), Mode::Stdin, &d.opts(&[action(a)]));
        assert_eq!(r.code, 1, "{a}");
        assert!(
            r.stderr
                .contains("Failed: You have to enter plug number or machine identification"),
            "{a}"
        );
    }
}

#[test]
fn c24b_unknown_plug_fails() {
    let d = Dev::new(TWO);
    let r = run_mode(
        &fake(),
        Mode::Stdin,
        &d.opts(&[action("off"), plug("nosuch")]),
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("nosuch"));
}

#[test]
fn c43_validate_all_silent_and_no_device_contact() {
    let d = Dev::new(TWO);
    let r = run_mode(
        &fake(),
        Mode::Stdin,
        &d.opts(&[action("validate-all"), plug("node1")]),
    );
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "", ""));
    assert_eq!(d.log(), "", "validate-all contacted the device");
}

#[test]
fn c44_c45_validate_all_prints_every_error() {
    let d = Dev::new(TWO);
    let r = run_mode(
        &fake(),
        Mode::Stdin,
        &d.opts(&[
            action("validate-all"),
            ("method", Some('m'), "method", Some("bogus")),
            ("power_wait", None, "power-wait", Some("soon")),
            ("retry_on", None, "retry-on", Some("x")),
        ]),
    );
    assert_eq!(r.code, 1);
    for needle in [
        "Failed: You have to enter plug number or machine identification",
        "Failed: You have to enter a valid choice for --method from the valid values: ['onoff', 'cycle']",
        "Failed: The value you have entered for --power-wait is not a valid time in seconds",
        "Failed: The value you have entered for --retry-on is not a valid integer",
        "validate-all failed",
        "Please use '-h' for usage",
    ] {
        assert!(r.stderr.contains(needle), "missing {needle}: {}", r.stderr);
    }
}

#[test]
fn c46_failures_exit_1() {
    let d = Dev::new("plug node1 on\nfault hang\n");
    let r = run_mode(
        &fake(),
        Mode::Stdin,
        &d.opts(&[
            action("status"),
            plug("node1"),
            ("shell_timeout", None, "shell-timeout", Some("0.2")),
        ]),
    );
    assert_eq!(r.code, 1);
    let r = args(
        &fake(),
        &[
            "-o",
            "status",
            "-n",
            "x",
            "--state-file",
            "/nonexistent/state",
        ],
    );
    assert_eq!(r.code, 1);
}

#[test]
fn c52_metadata_needs_nothing_else() {
    let r = stdin(&fake(), "action=metadata\n");
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert!(r.stdout.contains("<resource-agent name=\"fence_fake\""));
}

#[test]
fn c48_metadata_name_follows_argv0() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("fence_renamed");
    std::os::unix::fs::symlink(fake(), &link).unwrap();
    let r = args(&link, &["-o", "metadata"]);
    assert!(r.stdout.contains("<resource-agent name=\"fence_renamed\""));
}

#[test]
fn c51_c53_pacemaker_style_stdin() {
    // What stonith_admin --validate sends (2.1.5), in hash order.
    let d = Dev::new(TWO);
    let r = stdin(
        &fake(),
        &format!(
            "nodename=node1\nstate_file={}\naction=validate-all\nport=node1\n",
            d.path()
        ),
    );
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "", ""));
    // A fencing request as the fencer sends it.
    let r = stdin_env(&fake(), &format!("nodename=node1\nstate_file={}\naction=reboot\nport=node1\npower_timeout=2\nstonith_status_sleep=0.05\n", d.path()), &[("PCMK_service", "pacemaker-fenced")]);
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, "Success: Rebooted\n", "")
    );
}

#[test]
fn debug_file_and_its_failure() {
    let d = Dev::new(TWO);
    let log = d.state.with_file_name("debug.log");
    let r = run_mode(
        &fake(),
        Mode::Long,
        &d.opts(&[
            action("status"),
            plug("node1"),
            (
                "debug_file",
                Some('D'),
                "debug-file",
                Some(log.to_str().unwrap()),
            ),
            ("verbose", Some('v'), "verbose", None),
        ]),
    );
    assert_eq!(r.code, 0);
    assert!(Path::new(&log).exists());
    let r = run_mode(
        &fake(),
        Mode::Long,
        &d.opts(&[
            action("status"),
            plug("node1"),
            (
                "debug_file",
                Some('D'),
                "debug-file",
                Some("/nonexistent/dir/x.log"),
            ),
        ]),
    );
    assert_eq!(r.code, 1);
    assert!(r
        .stderr
        .contains("Failed: Unable to create file /nonexistent/dir/x.log"));
}

#[test]
fn cycle_method_from_on_and_from_off() {
    let d = Dev::new(TWO);
    let r = run_mode(
        &fake(),
        Mode::Short,
        &d.opts(&[
            action("reboot"),
            plug("node1"),
            ("method", Some('m'), "method", Some("cycle")),
        ]),
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "Success: Rebooted\n"));
    // From off: no cycle (devices refuse it, fence-agents #596): power on instead.
    let r = run_mode(
        &fake(),
        Mode::Short,
        &d.opts(&[
            action("reboot"),
            plug("node2"),
            ("method", Some('m'), "method", Some("CYCLE")),
        ]),
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "Success: Rebooted\n"));
    assert!(d.text().contains("plug node2 on"));
}

#[test]
fn secrets_never_on_stderr_or_debug() {
    let d = Dev::new(TWO);
    let log = d.state.with_file_name("debug.log");
    let script = d.state.with_file_name("pw.sh");
    fs::write(&script, "#!/bin/sh\necho s3cr3t-from-script\n").unwrap();
    let r = stdin(&fake(), &format!(
        "verbose=1\ndebug_file={}\naction=status\nport=node1\nstate_file={}\npassword=s3cr3t-plain\npasswd_script=sh {}\nsecret_token=s3cr3t-unknown\n",
        log.display(), d.path(), script.display()
    ));
    let all = format!(
        "{}{}{}",
        r.stdout,
        r.stderr,
        fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(!all.contains("s3cr3t"), "{all}");
}

#[test]
fn password_script_leaving_a_child_on_its_stdout_is_bounded() {
    let d = Dev::new(TWO);
    let script = d.state.with_file_name("pw-bg.sh");
    // Prints the password, exits, but a background child keeps the pipe open for 60 s.
    fs::write(&script, "#!/bin/sh\necho s3cr3t-bg\nsleep 60 &\n").unwrap();
    // fence_bmc runs the script before it contacts anything (nothing listens on port 9).
    let r = stdin(
        &agentcmd::bin("fence_bmc"),
        &format!(
            "action=status\nip=127.0.0.1\nipport=9\nlogin_timeout=1\npassword_script=sh {}\n",
            script.display()
        ),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("Password script timed out"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("s3cr3t"), "{}", r.stderr);
    assert!(
        r.elapsed < std::time::Duration::from_secs(40),
        "{:?}",
        r.elapsed
    );
}
