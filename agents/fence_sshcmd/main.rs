//! fence_sshcmd: fences one machine with commands the administrator configures, run over SSH
//! on the device given by `ip`/`ipport` (a hypervisor, a management host, a PDU with a shell).
//!
//! `off_command` and `on_command` request a change; `status_command` prints the state, which
//! is ON when its output matches `status_on_regex` only, and OFF when it matches
//! `status_off_regex` only. Output matching neither or both, a command exiting non-zero, or
//! any transport error is an error, never OFF; the engine reports a fence only after OFF was
//! read back. A failing `off_command` is logged and the read-back still decides.
//!
//! Single device, by design: no `plug`. The commands name the target themselves, so no user
//! text ever reaches the remote shell except the configured commands; one Pacemaker device per
//! machine (`pcmk_host_list`). Command text is configuration that may carry credentials of a
//! further hop: it is never logged nor quoted in an error, only the option's name is.

use std::process::ExitCode;

use fencekit::protocol::error::excerpt;
use fencekit::protocol::log;
use fencekit::protocol::options::opt;
use fencekit::transport::ssh::{ExecOutput, LazySession, SshConfig};
use fencekit::{Agent, AgentInfo, Feature, FenceError, FenceResult, OptSpec, Options, PowerState};
use regex::Regex;

// The rows, as handles for `opts.get(&ROW)`.
#[rustfmt::skip]
const ON_COMMAND: OptSpec = opt("on_command").required().value("[command]").help("Command run on the device (by the login's shell) to power the target on; must exit with status 0");
#[rustfmt::skip]
const OFF_COMMAND: OptSpec = opt("off_command").required().value("[command]").help("Command run on the device to power the target off at once (no graceful shutdown); must exit with status 0");
#[rustfmt::skip]
const STATUS_COMMAND: OptSpec = opt("status_command").required().value("[command]").help("Command run on the device that prints the target's power state; must exit with status 0");
#[rustfmt::skip]
const STATUS_ON_REGEX: OptSpec = opt("status_on_regex").required().value("[regex]").help("Regular expression the output of status_command matches when the target is on (and status_off_regex does not)");
#[rustfmt::skip]
const STATUS_OFF_REGEX: OptSpec = opt("status_off_regex").required().value("[regex]").help("Regular expression the output of status_command matches when the target is off (and status_on_regex does not)");
#[rustfmt::skip]
static OPTIONS: &[OptSpec] = &[ON_COMMAND, OFF_COMMAND, STATUS_COMMAND, STATUS_ON_REGEX, STATUS_OFF_REGEX];

static INFO: AgentInfo = AgentInfo::new(
    "fence_sshcmd",
    "Fence agent running configurable commands over SSH",
)
.longdesc(
    "fence_sshcmd is a Power Fencing agent for one machine that another host can power off and \
on with shell commands (a hypervisor's CLI, a PDU or BMC tool on a management host). It logs in \
to the device given by ip/ipport over SSH (password or key; the host key is verified against \
known_hosts or a pinned fingerprint) and runs off_command, on_command and status_command there. \
The target is ON when the output of status_command (leading and trailing whitespace removed) \
matches status_on_regex and not status_off_regex, OFF when it matches status_off_regex and not \
status_on_regex; output matching neither or both, or a command exiting with a non-zero status, \
is an error, never OFF. A fence succeeds only once OFF is read back. There is no plug: the \
commands name the target, so configure one device per machine (pcmk_host_list). Each command \
must finish within shell_timeout. Regular expressions use Rust regex syntax; (?m) makes ^ and $ \
match at line ends. The command text is never logged.",
)
.features(&[
    Feature::Address,
    Feature::Login,
    Feature::Password,
    Feature::Ssh,
])
.options(OPTIONS)
.defaults(&[("ipport", "22")])
.needs_password();

/// The SSH session to the device, the configured commands and the compiled regexes.
struct SshCmd {
    conn: LazySession,
    opts: Options,
    on: Regex,
    off: Regex,
}

/// A regex option compiled; the error names the option and the regex crate's reason.
fn compile(opts: &Options, row: &OptSpec) -> Result<Option<Regex>, String> {
    let Some(text) = opts.get(row) else {
        return Ok(None);
    };
    Regex::new(text).map(Some).map_err(|e| {
        let why = e.to_string();
        let reason = why
            .lines()
            .last()
            .unwrap_or("")
            .trim_start_matches("error: ");
        format!(
            "--{} is not a valid regular expression: {reason}",
            row.name.replace('_', "-")
        )
    })
}

/// A required row missing: validation refuses that before `connect`, so it is only a fallback.
fn missing(row: &OptSpec) -> FenceError {
    FenceError::Usage(format!("You have to set --{}", row.long()))
}

/// How a command that did not exit with status 0 ended.
fn how_it_ended(out: &ExecOutput) -> String {
    match (out.status, &out.signal) {
        (_, Some(sig)) => format!("was killed by SIG{}", excerpt(sig)),
        (Some(code), None) => format!("exited with status {code}"),
        (None, None) => "ended without an exit status".to_string(),
    }
}

impl SshCmd {
    /// Runs the command of option `row`; its stdout when it exited with status 0.
    fn run(&mut self, row: &OptSpec) -> FenceResult<String> {
        let cmd = self.opts.get(row).ok_or_else(|| missing(row))?.to_owned();
        let name = row.name;
        log::debug(&format!("Running {name}"));
        let out = self.conn.exec(&cmd)?;
        if out.success() {
            return Ok(out.stdout_text());
        }
        let (stderr, stdout) = (out.stderr_text(), out.stdout_text());
        let said = [stderr.as_str(), stdout.as_str()]
            .iter()
            .flat_map(|t| t.lines())
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map_or_else(|| "no output".to_string(), excerpt);
        Err(FenceError::Device(format!(
            "{name} {}: {said}",
            how_it_ended(&out)
        )))
    }
}

impl Agent for SshCmd {
    fn info() -> &'static AgentInfo {
        &INFO
    }

    fn connect(opts: &Options) -> FenceResult<Self> {
        let regex = |row: &OptSpec| {
            compile(opts, row)
                .map_err(FenceError::Usage)?
                .ok_or_else(|| missing(row))
        };
        let (on, off) = (regex(&STATUS_ON_REGEX)?, regex(&STATUS_OFF_REGEX)?);
        Ok(SshCmd {
            conn: LazySession::connected(SshConfig::from_options(opts)?)?,
            opts: opts.clone(),
            on,
            off,
        })
    }

    fn power_status(&mut self, _plug: &str) -> FenceResult<PowerState> {
        let out = self.run(&STATUS_COMMAND)?;
        let text = out.trim();
        match (self.on.is_match(text), self.off.is_match(text)) {
            (true, false) => Ok(PowerState::On),
            (false, true) => Ok(PowerState::Off),
            (on, _) => Err(FenceError::Status(format!(
                "the output of status_command matches {} of status_on_regex and \
                 status_off_regex: {}",
                if on { "both" } else { "neither" },
                excerpt(text)
            ))),
        }
    }

    fn set_power(&mut self, _plug: &str, state: PowerState) -> FenceResult<()> {
        let row = match state {
            PowerState::On => &ON_COMMAND,
            PowerState::Off => &OFF_COMMAND,
        };
        self.run(row).map(|_| ())
    }

    fn validate(opts: &Options) -> Vec<String> {
        let mut problems = Vec::new();
        for row in [&STATUS_ON_REGEX, &STATUS_OFF_REGEX] {
            match compile(opts, row) {
                Err(e) => problems.push(e),
                // A regex that matches empty output matches any output: garbage would read as
                // that state (as OFF, for status_off_regex).
                Ok(Some(re)) if re.is_match("") => problems.push(format!(
                    "--{} matches empty output, so it would match any output",
                    row.long()
                )),
                Ok(_) => {}
            }
        }
        problems
    }
}

/// Entry point.
fn main() -> ExitCode {
    fencekit::protocol::run::run::<SshCmd>()
}
