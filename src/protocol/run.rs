//! The process entry point: the only module that prints results and picks exit codes.
//!
//! Order of work: read input (argv if any argument, else stdin), handle special modes
//! (`-h`, `-V`, `metadata`, `manpage`) before any validation, set up logging, validate, run
//! `password_script`, start the watchdog, run the action, print the outcome.
//!
//! Exit codes: 0 success, 2 only for `status` OFF, 1 for every failure (clap usage errors
//! included). The watchdog ends the process with a clear `Failed:` line and exit 1 when the
//! action outlives its whole time budget, even under Pacemaker (upstream disables its own
//! timeouts there and gets SIGKILLed instead).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the one module that prints results"
)]

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::protocol::agent::{Agent, AgentInfo, Outlet, PowerState};
use crate::protocol::engine::{self, Outcome};
use crate::protocol::error::FenceError;
use crate::protocol::log;
use crate::protocol::metadata;
use crate::protocol::options::{self, Options};
use crate::protocol::secret::Secret;
use crate::protocol::{argv, stdin, validate};

/// Runs an agent as a process (argv from the environment, stdin, stdout).
pub fn run<A: Agent>() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let name = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .unwrap_or_else(|| A::info().name.to_string());
    let rest = args.get(1..).unwrap_or(&[]);
    ExitCode::from(main_with::<A>(&name, rest, || {
        let mut buf = Vec::new();
        let _ = std::io::stdin()
            .lock()
            .take(stdin::MAX_STDIN as u64)
            .read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }))
}

fn fail(msg: &str) -> u8 {
    log::error(&format!("Failed: {msg}"));
    log::flush_early();
    1
}

/// The whole run with explicit inputs; returns the exit code.
pub fn main_with<A: Agent>(
    name: &str,
    args: &[OsString],
    read_stdin: impl FnOnce() -> String,
) -> u8 {
    let info = A::info();
    let table = match options::table(info) {
        Ok(t) => t,
        Err(e) => {
            let _ = log::init(name, false, false, None);
            return fail(&format!("option table: {e}"));
        }
    };
    let (values, warnings, verbose_count) = if args.is_empty() {
        let p = stdin::parse(&read_stdin(), &table);
        (p.values, p.warnings, 0)
    } else {
        match argv::parse(args, &table) {
            Ok(p) => (p.values, p.warnings, p.verbose_count),
            Err(e) => {
                let _ = log::init(name, false, false, None);
                log::error(&e);
                log::error("Please use '-h' for usage");
                return 1;
            }
        }
    };
    for w in &warnings {
        log::warn(w);
    }
    let mut opts = Options::new(name, table, values);
    // Special modes: no validation, no device.
    if opts.flag("help") {
        out(&metadata::help(name, info, opts.table()));
        return 0;
    }
    if opts.flag("version") {
        out(&format!("{}\n", metadata::VERSION));
        return 0;
    }
    let action = opts.action();
    if action == "metadata" {
        out(&metadata::xml(name, info, opts.table()));
        return 0;
    }
    if action == "manpage" {
        out(&metadata::manpage(name, info, opts.table()));
        return 0;
    }
    if let Err(e) = log::init(
        name,
        opts.flag("quiet"),
        opts.verbose() > 0 || verbose_count > 0,
        opts.given("debug_file"),
    ) {
        let _ = log::init(name, false, false, None);
        return fail(&e);
    }
    if opts.given("disable_timeout").is_some() {
        log::debug("disable_timeout is accepted but fencekit always keeps its own timeouts");
    }
    if !is_known_action(info, &action) {
        return fail(&format!(
            "Unrecognised action '{}'",
            action.chars().take(64).collect::<String>()
        ));
    }
    let problems = validate::problems::<A>(&opts);
    if !problems.is_empty() {
        if action == "validate-all" {
            for p in &problems {
                log::error(&format!("Failed: {p}"));
            }
            log::error("validate-all failed");
        } else if let Some(first) = problems.first() {
            log::error(&format!("Failed: {first}"));
        }
        log::error("Please use '-h' for usage");
        return 1;
    }
    if action == "validate-all" {
        return 0;
    }
    if let Some(script) = opts.given("password_script").map(str::to_string) {
        match run_password_script(&script, opts.login_timeout().max(Duration::from_secs(10))) {
            Ok(secret) => opts.set_password(secret),
            Err(e) => return fail(&e),
        }
    }
    start_watchdog(budget(&opts, &action));
    match engine::execute::<A>(&opts) {
        Ok(outcome) => print_outcome(&opts, outcome),
        Err(e) => fail(&failure_text(&action, &e)),
    }
}

fn is_known_action(info: &AgentInfo, action: &str) -> bool {
    action == "on"
        || metadata::actions(info).contains(&action)
        || action == "list"
        || action == "list-status"
}

/// Upstream prints the status failure with its own sentence; keep the cause after it.
fn failure_text(action: &str, e: &FenceError) -> String {
    match (action, e) {
        ("status", FenceError::Status(_)) => e.to_string(),
        ("status", other) if !matches!(other, FenceError::PlugNotFound(_)) => {
            format!("Unable to obtain correct plug status or plug is not available: {other}")
        }
        _ => e.to_string(),
    }
}

fn print_outcome(opts: &Options, outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Status(PowerState::On) => {
            out("Status: ON\n");
            0
        }
        Outcome::Status(PowerState::Off) => {
            out("Status: OFF\n");
            2
        }
        Outcome::Success(line) => {
            out(&format!("{line}\n"));
            0
        }
        Outcome::RebootedWithoutOn(why) => {
            out("Success: Rebooted\n");
            log::error(&why);
            0
        }
        Outcome::List {
            outlets,
            with_status,
        } => {
            let sep = opts.get("separator").unwrap_or(",");
            for o in outlets {
                out(&format!("{}\n", list_line(&o, sep, with_status)));
            }
            0
        }
        Outcome::Notice(line) => {
            out(&format!("{line}\n"));
            0
        }
        Outcome::Silent => 0,
    }
}

/// Writes result text to stdout. A closed or broken stdout is not a reason to panic (exit 101
/// means nothing to a fence caller): the exit code still tells the result.
fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes()).and_then(|()| o.flush());
}

/// `id<sep>alias[<sep>STATE]`.
pub fn list_line(o: &Outlet, sep: &str, with_status: bool) -> String {
    let mut line = format!("{}{sep}{}", o.id, o.alias);
    if with_status {
        line.push_str(sep);
        line.push_str(o.state.map(PowerState::word).unwrap_or("UNKNOWN"));
    }
    line
}

/// Longest a whole action may take: every phase's own bound, plus a margin.
fn budget(opts: &Options, action: &str) -> Duration {
    let attempts = engine::retries(opts);
    // A 0 timeout means "the transport's default" (SSH: 5 s login, 3 s per command); each
    // plug of a multi-plug action has its own commands.
    let or = |d: Duration, default: u64| {
        if d.is_zero() {
            Duration::from_secs(default)
        } else {
            d
        }
    };
    let login = or(opts.login_timeout(), 5);
    let shell = or(opts.shell_timeout(), 3);
    let plugs = u32::try_from(opts.plugs().len().clamp(1, 1000)).unwrap_or(1);
    let step = shell * 2 * plugs + opts.secs("power_wait") + opts.power_timeout();
    let phases = match action {
        "on" | "off" => 1 + attempts,
        "reboot" => 1 + attempts.max(1) + 1,
        _ => 1,
    };
    opts.secs("delay") + login + shell * 2 + step * phases + Duration::from_secs(5)
}

#[allow(
    clippy::exit,
    reason = "the watchdog is the last resort against a hang"
)]
fn start_watchdog(budget: Duration) {
    let started = Instant::now();
    let _ = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            std::thread::sleep(budget);
            // Logging may block (stderr is a pipe nobody drains, or its lock is held by a
            // thread stuck writing): say it from another thread, and exit within a second
            // whether or not the line got out.
            let (done, said) = std::sync::mpsc::channel::<()>();
            let secs = started.elapsed().as_secs_f64();
            let _ = std::thread::Builder::new().spawn(move || {
                log::error(&format!(
                    "Failed: Connection timed out: the action did not finish within its time budget of {secs:.0} s"
                ));
                let _ = done.send(());
            });
            let _ = said.recv_timeout(Duration::from_secs(1));
            std::process::exit(1);
        });
}

/// Runs `password_script` through `sh -c` with a time bound; its stdout (right-stripped) is
/// the password. The script text is configuration, not a secret; its output is.
fn run_password_script(script: &str, limit: Duration) -> Result<Secret, String> {
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("Unable to run password script: {e}"))?;
    let mut stdout = child.stdout.take();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(o) = stdout.as_mut() {
            let _ = o.take(64 * 1024).read_to_end(&mut buf);
        }
        let _ = tx.send(buf);
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("Password script timed out".to_string());
            }
        }
    };
    // A background child of the script may keep the pipe open after the script exited:
    // the output is waited for only until the same deadline.
    let wait = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(200));
    let Ok(buf) = rx.recv_timeout(wait) else {
        return Err("Password script timed out".to_string());
    };
    if !status.success() {
        return Err("Password script failed".to_string());
    }
    let text = String::from_utf8_lossy(&buf);
    Ok(Secret::new(text.trim_end()))
}
