//! The process entry point: the only module that prints results and picks exit codes.
//!
//! Order of work: catch SIGTERM and SIGINT, read input (argv if any argument, else stdin;
//! stdin over its cap is refused, never cut), handle special modes (`-h`, `-V`, `metadata`,
//! `manpage`) before any validation, start the watchdog, set up logging, validate, run
//! `password_script`, run the action, print the outcome. The watchdog starts before anything
//! that opens a file the user names (`debug_file`, `known_hosts`, ...).
//!
//! Exit codes: 0 success, 2 only for `status` OFF, 1 for every failure (clap usage errors
//! included). The watchdog ends the process with a clear `Failed:` line and exit 1 when the
//! action outlives its whole time budget, even under Pacemaker (upstream disables its own
//! timeouts there and gets SIGKILLed instead). SIGTERM and SIGINT end it the same way. Both
//! first run the transports' close-on-abort closures ([`crate::protocol::abort`]: an IPMI
//! session is closed on the BMC), bounded by [`ABORT_BOUND`].
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

use crate::protocol::abort;
use crate::protocol::action::Action;
use crate::protocol::agent::{Agent, AgentInfo, Outlet, PowerState};
use crate::protocol::engine::{self, Outcome};
use crate::protocol::error::{printable, FenceError};
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
    catch_signals();
    ExitCode::from(main_with::<A>(&name, rest, || {
        stdin::read_all(std::io::stdin().lock())
    }))
}

/// Longest time the close-on-abort closures get after a signal or the watchdog.
pub const ABORT_BOUND: Duration = Duration::from_secs(1);

/// Waits for the thread that is ending the process.
fn park_forever() -> ! {
    loop {
        std::thread::park();
    }
}

/// Ends the run from a signal or the watchdog: one `Failed:` line, the transports'
/// close-on-abort closures within [`ABORT_BOUND`], exit 1. Only the first ending prints.
#[allow(
    clippy::exit,
    reason = "a signal or the watchdog ends the process from a thread of its own"
)]
fn abort_exit(msg: String) -> ! {
    if !abort::claim_end() {
        park_forever();
    }
    let started = Instant::now();
    // Logging may block (stderr is a pipe nobody drains, or its lock is held by a thread
    // stuck writing): say it from another thread, and exit within the bound whether or not
    // the line got out.
    let (done, said) = std::sync::mpsc::channel::<()>();
    let _ = std::thread::Builder::new().spawn(move || {
        log::error(&format!("Failed: {}", printable(&msg, log::MAX_MESSAGE)));
        log::flush_early();
        let _ = done.send(());
    });
    abort::run_hooks(ABORT_BOUND);
    let _ = said.recv_timeout(ABORT_BOUND.saturating_sub(started.elapsed()));
    std::process::exit(1);
}

/// SIGTERM and SIGINT end the run through [`abort_exit`] (a `Failed:` line, open sessions
/// closed, exit 1) instead of killing it silently. The handler only writes to a pipe
/// (signal-hook); the work is done on a thread.
fn catch_signals() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGTERM, SIGINT]) else {
        log::debug("Unable to catch SIGTERM/SIGINT: they end the process at once");
        return;
    };
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                abort_exit(format!("Interrupted by {name} before the action finished"));
            }
        });
}

/// Why a run failed. The one conversion to what is printed and to the exit code is
/// [`Failure::end`]: messages never carry their own `Failed: ` prefix, and only a mistake in
/// the caller's input gets the `Please use '-h' for usage` footer (never a device failure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The options are wrong: every problem (validate-all) or the first one, then the footer.
    Usage {
        /// Each problem, without a prefix.
        problems: Vec<String>,
        /// Print them all (validate-all) and say `validate-all failed`.
        all: bool,
    },
    /// The command line does not parse: the parser's own sentence, then the footer.
    Syntax(String),
    /// The run failed: one `Failed:` line.
    Run(String),
}

impl Failure {
    /// The exit code: 1 for every failure (fence-agents' `EC_*` all exit 1; only `status`
    /// reporting OFF exits 2, and that is an outcome).
    pub fn exit_code(&self) -> u8 {
        1
    }

    /// The lines this failure prints on the log (stderr, syslog, debug_file), in order.
    pub fn lines(&self) -> Vec<String> {
        let failed = |m: &str| format!("Failed: {}", printable(m, log::MAX_MESSAGE));
        match self {
            Failure::Usage { problems, all } => {
                let mut v: Vec<String> = if *all {
                    problems.iter().map(|p| failed(p)).collect()
                } else {
                    problems.iter().take(1).map(|p| failed(p)).collect()
                };
                if *all {
                    v.push("validate-all failed".into());
                }
                v.push(USAGE_FOOTER.into());
                v
            }
            Failure::Syntax(e) => vec![printable(e, log::MAX_MESSAGE), USAGE_FOOTER.into()],
            Failure::Run(m) => vec![failed(m)],
        }
    }

    /// Prints the failure (unless a signal or the watchdog is already ending the run) and
    /// returns the exit code.
    fn end(self) -> u8 {
        if !abort::claim_end() {
            // A signal or the watchdog is already ending the run with its own line.
            park_forever();
        }
        for line in self.lines() {
            log::error(&line);
        }
        log::flush_early();
        self.exit_code()
    }
}

/// The footer of a usage error (upstream's `fail_usage`).
pub const USAGE_FOOTER: &str = "Please use '-h' for usage";

/// How a run that did not fail ends.
enum Done {
    /// A document on stdout (help, version, metadata, man page), exit 0.
    Text(String),
    /// validate-all found nothing wrong, exit 0.
    Valid,
    /// The action's outcome (printed by [`print_outcome`], which picks 0 or 2).
    Outcome(Box<Options>, Outcome),
}

/// The whole run with explicit inputs; returns the exit code.
pub fn main_with<A: Agent>(
    name: &str,
    args: &[OsString],
    read_stdin: impl FnOnce() -> Result<String, String>,
) -> u8 {
    match attempt::<A>(name, args, read_stdin) {
        Ok(Done::Text(text)) => {
            out(&text);
            0
        }
        Ok(Done::Valid) => 0,
        Ok(Done::Outcome(opts, outcome)) => {
            if !abort::claim_end() {
                park_forever();
            }
            print_outcome(&opts, outcome)
        }
        Err(f) => {
            // Failures found before logging was set up still reach stderr and syslog.
            let _ = log::init(name, false, false, None);
            f.end()
        }
    }
}

fn attempt<A: Agent>(
    name: &str,
    args: &[OsString],
    read_stdin: impl FnOnce() -> Result<String, String>,
) -> Result<Done, Failure> {
    let described = AgentInfo::of::<A>();
    let info = &described;
    let table = options::table(info).map_err(|e| Failure::Run(format!("option table: {e}")))?;
    let (values, warnings, verbose_count) = if args.is_empty() {
        let p = read_stdin()
            .and_then(|text| stdin::parse(&text, &table))
            .map_err(Failure::Run)?;
        (p.values, p.warnings, 0)
    } else {
        let p = argv::parse(args, &table).map_err(Failure::Syntax)?;
        (p.values, p.warnings, p.verbose_count)
    };
    for w in &warnings {
        log::warn(w);
    }
    let mut opts = Options::new(name, table, values);
    // Special modes: no validation, no device.
    if opts.flag(&options::HELP) {
        return Ok(Done::Text(metadata::help(name, info, opts.table())));
    }
    if opts.flag(&options::VERSION) {
        return Ok(Done::Text(format!("{}\n", metadata::VERSION)));
    }
    // The action, parsed once: every later step matches on it. An empty or unknown word is
    // reported after logging is set up (never the default reboot).
    let parsed = opts.action();
    if parsed == Some(Action::Metadata) {
        return Ok(Done::Text(metadata::xml(name, info, opts.table())));
    }
    if parsed == Some(Action::Manpage) {
        return Ok(Done::Text(metadata::manpage(name, info, opts.table())));
    }
    // Before anything opens a file the user names (a FIFO must not hang the run) and before
    // password_script runs; options are not validated yet, so the budget is computed with
    // saturating arithmetic on bounded values.
    start_watchdog(budget(&opts, parsed.unwrap_or(Action::Status)));
    log::init(
        name,
        opts.flag(&options::QUIET),
        opts.verbose() > 0 || verbose_count > 0,
        opts.given(&options::DEBUG_FILE),
    )
    .map_err(Failure::Run)?;
    if opts.given(&options::DISABLE_TIMEOUT).is_some() {
        log::debug("disable_timeout is accepted but fencekit always keeps its own timeouts");
    }
    for name in opts.ignored_given() {
        log::debug(&format!(
            "{name} is accepted for compatibility with fence-agents and ignored"
        ));
    }
    // An empty action (`action=` on stdin, `-o ''`) lands here too: never the default reboot.
    // A mistake in the caller's input, so the usage footer follows (as upstream's fail_usage).
    let action = parsed
        .filter(|a| is_known_action(info, *a))
        .ok_or_else(|| Failure::Usage {
            problems: vec![format!(
                "Unrecognised action '{}'",
                printable(opts.action_word(), 64)
            )],
            all: false,
        })?;
    let problems = validate::problems::<A>(&opts, action);
    if !problems.is_empty() {
        return Err(Failure::Usage {
            problems,
            all: action == Action::ValidateAll,
        });
    }
    if action == Action::ValidateAll {
        return Ok(Done::Valid);
    }
    if let Some(script) = opts.given(&options::PASSWORD_SCRIPT).map(str::to_string) {
        let secret =
            run_password_script(&script, password_script_limit(&opts)).map_err(Failure::Run)?;
        opts.set_password(secret);
    }
    let outcome =
        engine::execute::<A>(&opts, action).map_err(|e| Failure::Run(failure_text(action, &e)))?;
    Ok(Done::Outcome(Box::new(opts), outcome))
}

/// How long `password_script` may run.
fn password_script_limit(opts: &Options) -> Duration {
    opts.login_timeout().max(Duration::from_secs(10))
}

/// `on` and the listing actions are always understood (`list` on an agent without a list
/// prints upstream's notice); the others when the agent offers them.
fn is_known_action(info: &AgentInfo, action: Action) -> bool {
    matches!(action, Action::On | Action::List | Action::ListStatus)
        || metadata::actions(info).contains(&action)
}

/// Upstream prints the status failure with its own sentence; keep the cause after it.
fn failure_text(action: Action, e: &FenceError) -> String {
    match (action, e) {
        (Action::Status, FenceError::Status(_)) => e.to_string(),
        (Action::Status, other) if !matches!(other, FenceError::PlugNotFound(_)) => {
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
            let sep = opts.get(&options::SEPARATOR).unwrap_or(",");
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
fn budget(opts: &Options, action: Action) -> Duration {
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
    // Saturating: the watchdog starts before validation, on values nobody has checked yet.
    let step = shell
        .saturating_mul(2)
        .saturating_mul(plugs)
        .saturating_add(opts.secs(&options::POWER_WAIT))
        .saturating_add(opts.power_timeout());
    let phases = match action {
        Action::On | Action::Off => attempts.saturating_add(1),
        Action::Reboot => attempts.max(1).saturating_add(2),
        _ => 1,
    };
    let script = if opts.given(&options::PASSWORD_SCRIPT).is_some() {
        password_script_limit(opts)
    } else {
        Duration::ZERO
    };
    opts.secs(&options::DELAY)
        .saturating_add(script)
        .saturating_add(login)
        .saturating_add(shell.saturating_mul(2))
        .saturating_add(step.saturating_mul(phases))
        .saturating_add(Duration::from_secs(5))
}

/// The watchdog: the last resort against a hang.
fn start_watchdog(budget: Duration) {
    let started = Instant::now();
    let _ = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            std::thread::sleep(budget);
            let secs = started.elapsed().as_secs_f64();
            abort_exit(format!(
                "Connection timed out: the action did not finish within its time budget of {secs:.0} s"
            ));
        });
}

/// Runs `password_script` through `sh -c` with a time bound; its stdout (right-stripped) is
/// the password. The script text is configuration, not a secret; its output is.
///
/// The script runs in a process group of its own, and the whole group is killed when the
/// script is done with or its time is up (and on a signal or the watchdog): a child it left
/// behind (`sleep 300 &`) dies with it instead of outliving the agent.
fn run_password_script(script: &str, limit: Duration) -> Result<Secret, String> {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!(
                "Unable to run password script: {}",
                crate::protocol::error::io_words(&e)
            )
        })?;
    let group = ScriptGroup::new(child.id());
    let _on_abort = abort::on_abort(move || group.kill());
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
                group.kill();
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
    let output = rx.recv_timeout(wait);
    // Whatever the script left running in its group dies now.
    group.kill();
    let Ok(buf) = output else {
        return Err("Password script timed out".to_string());
    };
    if !status.success() {
        return Err("Password script failed".to_string());
    }
    let text = String::from_utf8_lossy(&buf);
    Ok(Secret::new(text.trim_end()))
}

/// The process group of a `password_script` (its ID is the script shell's PID).
#[derive(Debug, Clone, Copy)]
struct ScriptGroup(Option<nix::unistd::Pid>);

impl ScriptGroup {
    fn new(pid: u32) -> ScriptGroup {
        ScriptGroup(
            i32::try_from(pid)
                .ok()
                .filter(|p| *p > 1)
                .map(nix::unistd::Pid::from_raw),
        )
    }

    /// SIGKILL to every process of the group (nothing when it is already gone).
    fn kill(self) {
        if let Some(pgid) = self.0 {
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_lines_own_the_prefix_and_the_footer() {
        let run = Failure::Run("guest 'x' is not in the guests map".into());
        assert_eq!(
            run.lines(),
            vec!["Failed: guest 'x' is not in the guests map"]
        );
        assert_eq!(run.exit_code(), 1);
        let usage = Failure::Usage {
            problems: vec!["You have to enter fence address".into(), "second".into()],
            all: false,
        };
        assert_eq!(
            usage.lines(),
            vec!["Failed: You have to enter fence address", USAGE_FOOTER]
        );
        let all = Failure::Usage {
            problems: vec!["a".into(), "b".into()],
            all: true,
        };
        assert_eq!(
            all.lines(),
            vec![
                "Failed: a",
                "Failed: b",
                "validate-all failed",
                USAGE_FOOTER
            ]
        );
        let forged = Failure::Run("x\nSuccess: Rebooted".into());
        assert_eq!(forged.lines(), vec!["Failed: x\\nSuccess: Rebooted"]);
    }
}
