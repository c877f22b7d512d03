//! What goes to the remote shell: POSIX quoting of untrusted text, the `sudo -n` prefix, and
//! [`RemoteShell`], the one way an agent runs a remote command (prefix, debug line, exit
//! status to error).

use super::{ExecOutput, LazySession};
use crate::protocol::error::{excerpt, FenceError, FenceResult};
use crate::protocol::log;

/// `sudo -n ` (never prompts: a missing sudo rule fails at once) when `sudo` is set, else
/// nothing; goes in front of a remote command.
pub fn sudo_prefix(sudo: bool) -> &'static str {
    if sudo {
        "sudo -n "
    } else {
        ""
    }
}

/// Quotes `s` for a POSIX shell: `'...'` with each `'` written as `'\''`.
pub fn shell_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// One remote shell over a [`LazySession`]: what an agent holds to run its commands. It puts
/// `sudo -n ` in front of each command when asked, writes one debug line per command, and
/// turns a failed exit status into an error that quotes the remote stderr only through
/// [`excerpt`]. Transport errors become [`FenceError`]s (the session reconnects next time).
pub struct RemoteShell {
    conn: LazySession,
    sudo: bool,
    name: Option<String>,
}

impl RemoteShell {
    /// A shell over `conn`; every command goes through `sudo -n` when `sudo` is set.
    pub fn new(conn: LazySession, sudo: bool) -> Self {
        RemoteShell {
            conn,
            sudo,
            name: None,
        }
    }

    /// Names the host in the debug lines (`<name>: executing <cmd>`), for agents that talk to
    /// several hosts.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// What goes in front of each command: `sudo -n ` or nothing. A script of several
    /// commands puts it in front of each one itself and runs through [`Self::exec_line`].
    pub fn sudo_prefix(&self) -> &'static str {
        sudo_prefix(self.sudo)
    }

    /// Runs `cmd` (behind the sudo prefix) and returns what it printed, whatever its exit
    /// status: for callers whose parser reads the failure from the output itself.
    pub fn exec(&mut self, cmd: &str) -> FenceResult<ExecOutput> {
        let line = format!("{}{cmd}", self.sudo_prefix());
        self.exec_line(&line)
    }

    /// Runs a shell line exactly as given (no sudo prefix added; `sudo -n for ...` would be a
    /// syntax error) and returns its output whatever its exit status.
    pub fn exec_line(&mut self, line: &str) -> FenceResult<ExecOutput> {
        log_command(self.name.as_deref(), line);
        Ok(self.conn.exec(line)?)
    }

    /// Runs `cmd` (behind the sudo prefix) and requires exit status 0: its stdout, or the
    /// error of [`ExecOutput::check`].
    pub fn run(&mut self, cmd: &str) -> FenceResult<String> {
        let out = self.exec(cmd)?;
        out.check(cmd)?;
        Ok(out.stdout_text())
    }
}

/// The debug line written for each remote command: `<host>: executing <line>` when a host is
/// named (agents and engines that talk to several), else `Executing: <line>`.
pub fn log_command(host: Option<&str>, line: &str) {
    match host {
        Some(h) => log::debug(&format!("{h}: executing {line}")),
        None => log::debug(&format!("Executing: {line}")),
    }
}

impl ExecOutput {
    /// `Ok` when the command exited with status 0; otherwise a [`FenceError::Device`] naming
    /// `cmd`, its exit status (or the signal that killed it) and the first non-blank line of
    /// its stderr through [`excerpt`].
    pub fn check(&self, cmd: &str) -> FenceResult<()> {
        if self.success() {
            return Ok(());
        }
        let how = match (&self.signal, self.status) {
            (Some(sig), _) => format!("was killed by signal {}", excerpt(sig)),
            (None, Some(s)) => format!("failed with status {s}"),
            (None, None) => "failed with status unknown".to_owned(),
        };
        Err(FenceError::Device(format!(
            "`{cmd}` {how}: {}",
            first_line(&self.stderr_text())
        )))
    }
}

/// The first non-blank line of remote output through [`excerpt`] (capped, control
/// characters blanked), `no output` when there is none: remote text never reaches an error
/// line raw.
pub fn first_line(text: &str) -> String {
    excerpt(
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("no output"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_is_posix_single_quoting() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$(x) `y` \\"), "'$(x) `y` \\'");
    }

    fn out(status: Option<i32>, signal: Option<&str>, stderr: &str) -> ExecOutput {
        ExecOutput {
            status,
            signal: signal.map(str::to_owned),
            stdout: b"ignored".to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    #[test]
    fn exit_status_becomes_an_error_quoting_stderr_safely() {
        assert_eq!(out(Some(0), None, "noise").check("true"), Ok(()));
        assert_eq!(
            out(Some(3), None, "\n  \nfirst\x1b[31m line\nsecond").check("virsh x"),
            Err(FenceError::Device(
                "`virsh x` failed with status 3: first [31m line".to_owned()
            ))
        );
        assert_eq!(
            out(None, Some("KILL"), "").check("c"),
            Err(FenceError::Device(
                "`c` was killed by signal KILL: no output".to_owned()
            ))
        );
        assert_eq!(
            out(None, None, "").check("c"),
            Err(FenceError::Device(
                "`c` failed with status unknown: no output".to_owned()
            ))
        );
        let long = "x".repeat(500);
        assert!(first_line(&long).chars().count() <= 121);
    }
}
