//! The agent-test setup every SSH agent's tests share: one fake host on loopback (a real
//! OpenSSH sshd with the simulated `vim-cmd`, [`crate::sim::sshd`]) plus a known_hosts file
//! that trusts it, the device options that reach it, and a run of any agent binary with those
//! options in any input mode (argv spelled as the agent's own table says).
//!
//! A new SSH agent's tests start with `let Some(f) = default_fx() else { return };` and call
//! `f.run_agent("fence_<name>", mode, &[], &[o("plug", "…")])`.

use std::path::PathBuf;

use super::agentcmd::{self, Mode, Named, Run};
use super::sim::sshd::{Builder, EsxiHost};

/// A fake host plus a known_hosts file that trusts it.
pub struct Fx {
    pub host: EsxiHost,
    pub dir: tempfile::TempDir,
    pub kh: PathBuf,
}

/// Starts the host `b` describes and writes its known_hosts; `None` = skipped (see
/// [`super::skip_or_fail`]).
pub fn fx(b: Builder) -> Option<Fx> {
    let host = b.start()?;
    let dir = tempfile::tempdir().expect("tempdir");
    let kh = dir.path().join("known_hosts");
    let mut text = host.known_hosts_lines().join("\n");
    text.push('\n');
    std::fs::write(&kh, text).expect("write known_hosts");
    Some(Fx { host, dir, kh })
}

/// The default host (password and key login, the default VMs).
pub fn default_fx() -> Option<Fx> {
    fx(EsxiHost::builder())
}

/// One option: canonical (stdin) name and value; `None` = a flag.
pub type O = (&'static str, Option<String>);

/// A valued option.
pub fn o(name: &'static str, v: &str) -> O {
    (name, Some(v.to_owned()))
}

/// A flag.
pub fn flag(name: &'static str) -> O {
    (name, None)
}

/// `opts` with `extra` applied: the same name replaces (`("x", None)` after a valued one turns
/// it into a flag).
pub fn merged(mut opts: Vec<O>, extra: &[O]) -> Vec<O> {
    for (n, v) in extra {
        opts.retain(|(m, _)| m != n);
        opts.push((n, v.clone()));
    }
    opts
}

/// Runs agent `agent` with `opts` in `mode`.
pub fn run_opts(agent: &str, mode: Mode, opts: &[O]) -> Run {
    let rows: Vec<Named<'_>> = opts.iter().map(|(n, v)| (*n, v.as_deref())).collect();
    agentcmd::run_named(&agentcmd::bin(agent), mode, &rows)
}

impl Fx {
    /// Address, login, password, known_hosts and generous timeouts (the machine is shared).
    pub fn base(&self) -> Vec<O> {
        vec![
            o("ip", self.host.ip()),
            o("ipport", &self.host.port().to_string()),
            o("username", self.host.user()),
            o("password", self.host.password()),
            o("known_hosts", &self.kh.display().to_string()),
            o("login_timeout", "20"),
            o("shell_timeout", "20"),
        ]
    }

    /// Runs agent `agent` against this host: [`Fx::base`] without `drop`, `extra` applied.
    pub fn run_agent(&self, agent: &str, mode: Mode, drop: &[&str], extra: &[O]) -> Run {
        let base = self
            .base()
            .into_iter()
            .filter(|(n, _)| !drop.contains(n))
            .collect();
        run_opts(agent, mode, &merged(base, extra))
    }

    /// Simulator calls as `argv` strings (`vim-cmd vmsvc/power.off 2`).
    pub fn calls(&self) -> Vec<String> {
        calls_of(&self.host)
    }
}

/// The calls host `host` received, as `argv` strings.
pub fn calls_of(host: &EsxiHost) -> Vec<String> {
    host.calls()
        .iter()
        .filter_map(|c| c.get("argv")?.as_array().cloned())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}
