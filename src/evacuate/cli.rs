//! The `vm-evacuate` command line (the binary only calls [`main_with`]).
//!
//! ```text
//! vm-evacuate [--config FILE] [--state-dir DIR] check
//! vm-evacuate plan --host H [--json] [--planned]
//! vm-evacuate run --host H [--planned]
//! vm-evacuate watch [--once] [--dry-run] [--daemon]
//! vm-evacuate status [--json]
//! vm-evacuate confirm-down --host H
//! vm-evacuate return --host H
//! ```
//!
//! `--config` (default [`inventory::DEFAULT_PATH`]) and `--state-dir` (default
//! [`state::DEFAULT_STATE_DIR`]) are accepted before or after the subcommand. Exit status: 0
//! done (warnings only in the report), 1 an error or a refusal for safety (the reason on
//! stderr), 2 a usage or inventory error. Progress lines go to stderr only when it is a
//! terminal; otherwise only the result is printed (stdout).
//!
//! `watch` and `run` end cleanly on SIGTERM or SIGINT: the step under way finishes and is
//! recorded, then the engine exits (status 0 for `watch`); an evacuation left open is continued
//! by the next engine. `watch --daemon` is how the OCF resource agent ([`super::ocf`]) runs
//! detection: it starts a new session, writes `watch.pid` in the state directory once it holds
//! the engine lock (removed on a clean exit), and logs progress with timestamps to stderr and
//! syslog.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::error::ErrorKind;
use clap::{Arg, ArgAction, ArgMatches, Command};
use serde::Serialize;

use super::backend::{BmcOps, EsxiHosts, HostOps, IpmiBmcs};
use super::engine::{Engine, EngineError};
use super::inventory::{self, Inventory, Role};
use super::plan::Disposition;
use super::report::{HostResult, Report};
use super::state::{self, StateDir};
use crate::protocol::agent::PowerState;
use crate::protocol::log;

/// Exit status: done.
pub const EXIT_OK: u8 = 0;
/// Exit status: an error or a refusal for safety.
pub const EXIT_ERROR: u8 = 1;
/// Exit status: a usage or inventory error.
pub const EXIT_USAGE: u8 = 2;

const HELP: &str = "\
vm-evacuate: fence a dead free-ESXi host through its BMC and restart its VMs elsewhere

Usage: vm-evacuate [--config FILE] [--state-dir DIR] <COMMAND>

Commands:
  check                       validate the inventory, reach every host and BMC
  plan --host H [--json]      dry run: what `run` would do (changes nothing, no BMC traffic)
       [--planned]            plan a planned evacuation of a live host instead of a rescue
  run --host H [--planned]    rescue a dead host (fence, confirm, move) or evacuate a live one
  watch [--once]              probe every host, rescue those that failed detect_failures probes
        [--dry-run]           plan only: log what a rescue would do, change nothing
        [--daemon]            run detached (new session, watch.pid; used by the OCF agent)
  status [--json]             hosts, last probes, evacuations, last reports
  confirm-down --host H       record that H is certainly down (accepted by the next `run`)
  return --host H             clean H's stale registrations, then trust it again

Options (every command):
  --config FILE     inventory (default /etc/fencekit/evacuate.toml)
  --state-dir DIR   state directory (default /var/lib/fencekit/evacuate)
  -h, --help        this text

Exit status: 0 done (warnings in the report), 1 error or refusal for safety (reason on
stderr), 2 usage or inventory error. `watch` and `run` stop cleanly on SIGTERM (the step under
way is finished and recorded; the next engine continues the evacuation).

Installed as /usr/lib/ocf/resource.d/fencekit/vm-evacuate (a symlink to this program), it is
the OCF resource agent ocf:fencekit:vm-evacuate (`vm-evacuate meta-data` under that name).
";

fn command() -> Command {
    let host = || {
        Arg::new("host")
            .long("host")
            .value_name("H")
            .required(true)
            .action(ArgAction::Set)
    };
    let flag = |name: &'static str| Arg::new(name).long(name).action(ArgAction::SetTrue);
    Command::new("vm-evacuate")
        .disable_help_flag(true)
        .disable_version_flag(true)
        .disable_help_subcommand(true)
        .subcommand_required(true)
        .arg(
            Arg::new("config")
                .long("config")
                .value_name("FILE")
                .global(true)
                .action(ArgAction::Set),
        )
        .arg(
            Arg::new("state-dir")
                .long("state-dir")
                .value_name("DIR")
                .global(true)
                .action(ArgAction::Set),
        )
        .arg(
            Arg::new("help")
                .short('h')
                .long("help")
                .global(true)
                .action(ArgAction::SetTrue),
        )
        .subcommand(Command::new("check"))
        .subcommand(
            Command::new("plan")
                .arg(host())
                .arg(flag("json"))
                .arg(flag("planned")),
        )
        .subcommand(Command::new("run").arg(host()).arg(flag("planned")))
        .subcommand(
            Command::new("watch")
                .arg(flag("once"))
                .arg(flag("dry-run"))
                .arg(flag("daemon")),
        )
        .subcommand(Command::new("status").arg(flag("json")))
        .subcommand(Command::new("confirm-down").arg(host()))
        .subcommand(Command::new("return").arg(host()))
}

/// Output streams and whether stderr is a terminal.
pub struct Io<'a> {
    /// Results.
    pub out: &'a mut dyn Write,
    /// Reasons, progress.
    pub err: &'a mut dyn Write,
    /// Show progress lines.
    pub tty: bool,
}

/// Runs the command line `args` (without the program name); the exit status.
pub fn main_with(args: Vec<OsString>, io: &mut Io<'_>) -> u8 {
    let wants_help = args.iter().any(|a| a == "-h" || a == "--help");
    if wants_help {
        let _ = io.out.write_all(HELP.as_bytes());
        return EXIT_OK;
    }
    let m = match command().no_binary_name(true).try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => {
            let text = match e.kind() {
                ErrorKind::MissingSubcommand
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    "a command is required".to_string()
                }
                _ => e.to_string(),
            };
            let _ = writeln!(io.err, "vm-evacuate: {}", text.trim_end());
            let _ = writeln!(io.err, "Try 'vm-evacuate --help'.");
            return EXIT_USAGE;
        }
    };
    let Some((name, sub)) = m.subcommand() else {
        return EXIT_USAGE;
    };
    let daemon = name == "watch" && sub.get_flag("daemon");
    if daemon {
        // Own session: Pacemaker's process handling of the agent that started us (and a
        // terminal's hangup) never reaches the engine. Fails only for a group leader, which a
        // spawned child is not.
        let _ = nix::unistd::setsid();
    }
    // The daemon's stderr is its log file: timestamped lines, progress included.
    let _ = log::init("vm-evacuate", !daemon, true, None);
    let config = sub
        .get_one::<String>("config")
        .or_else(|| m.get_one::<String>("config"))
        .map_or_else(|| PathBuf::from(inventory::DEFAULT_PATH), PathBuf::from);
    let state_dir = sub
        .get_one::<String>("state-dir")
        .or_else(|| m.get_one::<String>("state-dir"))
        .map_or_else(|| PathBuf::from(state::DEFAULT_STATE_DIR), PathBuf::from);
    let inv = match inventory::load(&config) {
        Ok(inv) => inv,
        Err(e) => {
            let _ = writeln!(io.err, "{e}");
            return EXIT_USAGE;
        }
    };
    let st = StateDir::new(state_dir);
    let hosts = EsxiHosts::new(&inv);
    let bmcs = IpmiBmcs::new(&inv);
    dispatch(name, sub, &inv, &st, &hosts, &bmcs, io)
}

/// Runs one subcommand over the given host and BMC operations (tests pass fakes).
pub fn dispatch(
    name: &str,
    sub: &ArgMatches,
    inv: &Inventory,
    st: &StateDir,
    hosts: &dyn HostOps,
    bmcs: &dyn BmcOps,
    io: &mut Io<'_>,
) -> u8 {
    let tty = io.tty;
    let daemon = name == "watch"
        && sub
            .try_get_one::<bool>("daemon")
            .ok()
            .flatten()
            .copied()
            .unwrap_or(false);
    let progress = move |line: &str| {
        if daemon {
            log::debug(line);
        } else if tty {
            let _ = writeln!(std::io::stderr(), "vm-evacuate: {line}");
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut eng = Engine::new(inv, st, hosts, bmcs, &progress).with_stop(&stop);
    let host = sub
        .try_get_one::<String>("host")
        .ok()
        .flatten()
        .cloned()
        .unwrap_or_default();
    let flag = |n: &str| {
        sub.try_get_one::<bool>(n)
            .ok()
            .flatten()
            .copied()
            .unwrap_or(false)
    };
    match name {
        "check" => check(&eng, io),
        "plan" => match eng.dry_plan(&host, flag("planned")) {
            Ok(p) => {
                if flag("json") {
                    let _ = writeln!(io.out, "{}", p.to_json());
                } else {
                    for v in &p.vms {
                        let what = match v.disposition {
                            Disposition::Placed => format!(
                                "-> {} by {}",
                                v.target.as_deref().unwrap_or("?"),
                                v.methods
                                    .iter()
                                    .map(|m| m.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", then ")
                            ),
                            Disposition::Unplaced => {
                                format!("UNPLACED: {}", v.reason.as_deref().unwrap_or(""))
                            }
                            Disposition::Skipped => {
                                format!("skipped: {}", v.reason.as_deref().unwrap_or(""))
                            }
                        };
                        let _ = writeln!(io.out, "{} (tier {}): {what}", v.name, v.tier);
                    }
                }
                EXIT_OK
            }
            Err(e) => fail(io, &e),
        },
        "run" => {
            let _lock = match st.lock() {
                Ok(l) => l,
                Err(e) => return refuse(io, &e),
            };
            on_term(&stop);
            match eng.run(&host, flag("planned")) {
                Ok(r) => report_out(io, &r),
                Err(e) => fail(io, &e),
            }
        }
        "watch" => {
            on_term(&stop);
            let _lock = match st.lock() {
                Ok(l) => l,
                Err(e) => {
                    if daemon {
                        log::error(&e);
                    }
                    return refuse(io, &e);
                }
            };
            eng.opts.dry_run = flag("dry-run");
            if !daemon {
                return watch(&eng, flag("once"), io);
            }
            if let Err(e) = super::ocf::write_pid_file(st.root()) {
                log::error(&e);
                return refuse(io, &e);
            }
            log::warn(&format!(
                "detection started (pid {}, every {} s, a host is rescued after {} failed \
                 probes{})",
                std::process::id(),
                inv.policy.detect_interval_s,
                inv.policy.detect_failures,
                if eng.opts.dry_run {
                    "; dry run: nothing is changed"
                } else {
                    ""
                }
            ));
            let rc = watch(&eng, false, io);
            super::ocf::remove_pid_file(st.root());
            log::warn("detection stopped");
            rc
        }
        "status" => status(&eng, flag("json"), io),
        "confirm-down" => match eng.confirm_down(&host) {
            Ok(()) => {
                let _ = writeln!(
                    io.out,
                    "{host}: down confirmed by the administrator; the next `run --host {host}` \
                     moves its VMs without a BMC confirmation"
                );
                EXIT_OK
            }
            Err(e) => fail(io, &e),
        },
        "return" => {
            let _lock = match st.lock() {
                Ok(l) => l,
                Err(e) => return refuse(io, &e),
            };
            match eng.return_host(&host) {
                Ok(r) => {
                    let _ = writeln!(
                        io.out,
                        "{}",
                        serde_json::to_string_pretty(&r).unwrap_or_default()
                    );
                    for w in &r.warnings {
                        let _ = writeln!(io.err, "warning: {w}");
                    }
                    if r.problems.is_empty() {
                        EXIT_OK
                    } else {
                        for p in &r.problems {
                            let _ = writeln!(io.err, "{p}");
                        }
                        let _ = writeln!(io.err, "{host} is not trusted yet");
                        EXIT_ERROR
                    }
                }
                Err(e) => fail(io, &e),
            }
        }
        _ => EXIT_USAGE,
    }
}

/// SIGTERM and SIGINT set `stop` instead of killing the process.
fn on_term(stop: &Arc<AtomicBool>) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for sig in [SIGTERM, SIGINT] {
        let _ = signal_hook::flag::register(sig, Arc::clone(stop));
    }
}

fn fail(io: &mut Io<'_>, e: &EngineError) -> u8 {
    let _ = writeln!(io.err, "vm-evacuate: {e}");
    match e {
        EngineError::Usage(_) => EXIT_USAGE,
        _ => EXIT_ERROR,
    }
}

fn refuse(io: &mut Io<'_>, why: &str) -> u8 {
    let _ = writeln!(io.err, "vm-evacuate: {why}");
    EXIT_ERROR
}

/// Prints a report (JSON on stdout, the problems on stderr); the exit status.
fn report_out(io: &mut Io<'_>, r: &Report) -> u8 {
    let _ = writeln!(io.out, "{}", r.to_json());
    for w in &r.warnings {
        let _ = writeln!(io.err, "warning: {w}");
    }
    if r.result == HostResult::Error {
        for p in r.problems() {
            let _ = writeln!(io.err, "vm-evacuate: {p}");
        }
        EXIT_ERROR
    } else {
        EXIT_OK
    }
}

fn check(eng: &Engine<'_>, io: &mut Io<'_>) -> u8 {
    let mut problems = Vec::new();
    for (h, p) in eng.probe_all(true) {
        if let Err(e) = &p.ssh {
            problems.push(format!("{h}: ssh: {e}"));
        }
        match &p.bmc {
            Some(Err(e)) => problems.push(format!("{h}: bmc: {e}")),
            Some(Ok(PowerState::Off)) => problems.push(format!("{h}: bmc: chassis power is off")),
            _ => {}
        }
    }
    for p in &problems {
        let _ = writeln!(io.out, "{p}");
    }
    if problems.is_empty() {
        let _ = writeln!(
            io.out,
            "ok: {} hosts and their BMCs answer",
            eng.inv.hosts.len()
        );
        EXIT_OK
    } else {
        EXIT_ERROR
    }
}

fn watch(eng: &Engine<'_>, once: bool, io: &mut Io<'_>) -> u8 {
    loop {
        // Rounds start every detect_interval_s (a round that takes longer is followed at once):
        // detection time does not grow with the time the probes take.
        let started = Instant::now();
        let round = eng.watch_once();
        let mut bad = false;
        if let Some(b) = &round.brake {
            let _ = writeln!(io.err, "vm-evacuate: {b}");
            log::error(b);
            bad = true;
        }
        for e in &round.errors {
            let _ = writeln!(io.err, "vm-evacuate: {e}");
            log::error(e);
            bad = true;
        }
        for p in &round.dry {
            let _ = writeln!(io.out, "{p}");
            log::warn(p);
        }
        for r in &round.reports {
            let _ = writeln!(io.out, "{}", r.summary());
            if r.result == HostResult::Error {
                for p in r.problems() {
                    let _ = writeln!(io.err, "vm-evacuate: {}: {p}", r.host);
                }
                bad = true;
            }
        }
        if once {
            if round.reports.is_empty() && round.brake.is_none() {
                let _ = writeln!(
                    io.out,
                    "probed {} hosts: {} failing ({}), {} counted as failed",
                    eng.inv.hosts.len(),
                    round.failing.len(),
                    round.failing.join(", "),
                    round.failed.len()
                );
            }
            return if bad { EXIT_ERROR } else { EXIT_OK };
        }
        let _ = io.out.flush();
        // Sleep in short slices so a stop request is seen at once.
        let until = started + Duration::from_secs(eng.inv.policy.detect_interval_s.max(1));
        loop {
            if eng.stopping() {
                let _ = writeln!(io.err, "vm-evacuate: stopped");
                return EXIT_OK;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            (eng.opts.sleep)(left.min(Duration::from_millis(100)));
        }
    }
}

#[derive(Serialize)]
struct HostStatus {
    name: String,
    role: Role,
    ssh: String,
    bmc: Option<String>,
    failures: u32,
    failed: bool,
    evacuated: bool,
    last_seen_alive_ms: Option<u64>,
    vms: usize,
}

#[derive(Serialize)]
struct EvacStatus {
    host: String,
    mode: String,
    in_progress: bool,
    started_ms: u64,
    finished_ms: Option<u64>,
    result: Option<String>,
}

#[derive(Serialize)]
struct Status {
    /// Set while more hosts are failed than `brake_percent` allows: why nothing moves.
    brake: Option<String>,
    hosts: Vec<HostStatus>,
    evacuations: Vec<EvacStatus>,
    reports: Vec<serde_json::Value>,
}

fn status(eng: &Engine<'_>, json: bool, io: &mut Io<'_>) -> u8 {
    let probes = eng.probe_all(true);
    let mut hosts = Vec::new();
    for h in &eng.inv.hosts {
        let p = probes.get(&h.name);
        let hs = eng.state.host_state(&h.name);
        let snap = eng.state.snapshot(&h.name);
        hosts.push(HostStatus {
            name: h.name.clone(),
            role: h.role,
            ssh: match p.map(|p| &p.ssh) {
                Some(Ok(_)) => "ok".into(),
                Some(Err(e)) => e.clone(),
                None => "not probed".into(),
            },
            bmc: p.and_then(|p| p.bmc.as_ref()).map(|b| match b {
                Ok(PowerState::On) => "on".to_string(),
                Ok(PowerState::Off) => "off".to_string(),
                Err(e) => e.clone(),
            }),
            failures: hs.failures,
            failed: hs.failed(),
            evacuated: hs.evacuated,
            last_seen_alive_ms: hs.last_seen_alive_ms,
            vms: snap.map_or(0, |s| s.vms.len()),
        });
    }
    let evacuations: Vec<EvacStatus> = eng
        .state
        .evacuations()
        .into_iter()
        .map(|e| EvacStatus {
            in_progress: e.finished_ms.is_none(),
            host: e.host,
            mode: e.mode,
            started_ms: e.started_ms,
            finished_ms: e.finished_ms,
            result: e.result,
        })
        .collect();
    let reports: Vec<serde_json::Value> = eng
        .inv
        .hosts
        .iter()
        .filter_map(|h| eng.state.last_report(&h.name))
        .filter_map(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .map(|v| {
            let pick = |k: &str| v.get(k).cloned().unwrap_or(serde_json::Value::Null);
            serde_json::json!({
                "host": pick("host"),
                "mode": pick("mode"),
                "result": pick("result"),
                "finished_ms": pick("finished_ms"),
            })
        })
        .collect();
    let failed: Vec<&str> = hosts
        .iter()
        .filter(|h| h.failed)
        .map(|h| h.name.as_str())
        .collect();
    let pct = u64::from(eng.inv.policy.brake_percent);
    let total = hosts.len() as u64;
    let brake = (total > 0 && (failed.len() as u64) * 100 > pct * total).then(|| {
        format!(
            "brake: {} of {total} hosts are failed ({}), more than brake_percent = {pct}%: no \
             host is rescued until failed hosts are returned (`vm-evacuate return --host H`)",
            failed.len(),
            failed.join(", ")
        )
    });
    let s = Status {
        brake,
        hosts,
        evacuations,
        reports,
    };
    if json {
        let _ = writeln!(
            io.out,
            "{}",
            serde_json::to_string_pretty(&s).unwrap_or_default()
        );
        return EXIT_OK;
    }
    for h in &s.hosts {
        let state = if h.evacuated {
            "EVACUATED (run `return` before trusting it)".to_string()
        } else if h.ssh != "ok" || h.bmc.as_deref() == Some("off") {
            "UNREACHABLE".to_string()
        } else if h.failures > 0 {
            format!("FAILING ({} consecutive failed probes)", h.failures)
        } else if h.failed {
            "FAILED EARLIER (counted for the brake until `return`)".to_string()
        } else {
            "ok".to_string()
        };
        let _ = writeln!(
            io.out,
            "{}: {state}; ssh {}; bmc {}; {} VMs",
            h.name,
            h.ssh,
            h.bmc.as_deref().unwrap_or("-"),
            h.vms
        );
    }
    if let Some(b) = &s.brake {
        let _ = writeln!(io.out, "{b}");
    }
    for e in &s.evacuations {
        let _ = writeln!(
            io.out,
            "evacuation of {} ({}): {}",
            e.host,
            e.mode,
            if e.in_progress {
                "in progress".to_string()
            } else {
                e.result.clone().unwrap_or_default()
            }
        );
    }
    EXIT_OK
}

/// True when stderr is a terminal (progress lines are shown then).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
    use super::*;

    fn run(args: &[&str]) -> (u8, String, String) {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = {
            let mut io = Io {
                out: &mut out,
                err: &mut err,
                tty: false,
            };
            main_with(args.iter().map(OsString::from).collect(), &mut io)
        };
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn usage_and_inventory_errors_exit_2() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("evacuate.toml");
        let st = dir.path().join("st");
        let (c, out, _) = run(&["--help"]);
        assert_eq!(c, EXIT_OK);
        assert!(out.contains("confirm-down"));
        assert_eq!(run(&[]).0, EXIT_USAGE);
        assert_eq!(run(&["frobnicate"]).0, EXIT_USAGE);
        assert_eq!(run(&["run"]).0, EXIT_USAGE, "--host is required");
        let c = cfg.to_str().unwrap();
        let s = st.to_str().unwrap();
        assert_eq!(run(&["check", "--config", c]).0, EXIT_USAGE, "missing file");
        std::fs::write(&cfg, "[policy]\nbogus = 1\n").unwrap();
        let (code, _, err) = run(&["--config", c, "status"]);
        assert_eq!(code, EXIT_USAGE);
        assert!(err.contains("bogus"), "{err}");
        std::fs::write(
            &cfg,
            "[ssh]\nusername = \"root\"\n[[host]]\nname = \"esx1\"\naddress = \"192.0.2.1\"\nbmc_address = \"192.0.2.2\"\n",
        )
        .unwrap();
        let (code, _, err) = run(&["plan", "--host", "nope", "--config", c, "--state-dir", s]);
        assert_eq!(code, EXIT_USAGE, "{err}");
        let (code, out, _) = run(&[
            "confirm-down",
            "--host",
            "esx1",
            "--config",
            c,
            "--state-dir",
            s,
        ]);
        assert_eq!(code, EXIT_OK);
        assert!(out.contains("esx1"));
        assert!(st.join("confirmed/esx1.json").exists());
        // A password readable by others is an inventory error.
        std::fs::write(
            &cfg,
            "[ssh]\nusername = \"root\"\n[bmc]\npassword = \"x\"\n[[host]]\nname = \"esx1\"\naddress = \"192.0.2.1\"\nbmc_address = \"192.0.2.2\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (code, _, err) = run(&["--config", c, "check"]);
        assert_eq!(code, EXIT_USAGE);
        assert!(err.contains("0644"), "{err}");
    }
}
