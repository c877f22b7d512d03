//! `virsh`: remote command lines and parsers of what virsh prints.
//!
//! Commands are built as one shell string for an SSH exec channel, with every variable part
//! (URI, domain name) in POSIX single quotes, and always `--` before the domain name, so a
//! domain called `-x` or `a b; reboot` is passed to virsh verbatim and never reaches a shell:
//!
//! ```text
//! env LC_ALL=C virsh -c 'qemu:///system' domstate -- 'guest 11'
//! env LC_ALL=C sudo -n virsh -c 'qemu:///system' destroy -- 'guest11'
//! ```
//!
//! `LC_ALL=C` keeps virsh's messages in English (sudo keeps `LC_*` by default); `sudo -n`
//! fails at once instead of prompting. Both `sudo` and `virsh` are taken from the remote
//! `PATH`.
//!
//! Parsers take the exit status, stdout and stderr of one remote command. The rule: only the
//! exact words virsh prints are recognised; anything else (garbled, truncated, empty, extra
//! lines, a non-zero exit without a known message, a missing exit status) is an error, never
//! Off. States ([`DomState`], from libvirt's `virshDomainStateToString`):
//!
//! | virsh word | meaning | power |
//! |---|---|---|
//! | `running`, `idle`, `blocked`, `paused`, `in shutdown`, `pmsuspended` | can run | On |
//! | `crashed` | qemu still alive (`on_crash=preserve`), not destroyed | On |
//! | `shut off` | not running | Off, **only** without a managed-save image |
//! | `no state` | hypervisor does not know | **error** |
//!
//! A paused or pm-suspended guest counts as On because it can resume without us; `in
//! shutdown` is still running; a crashed domain still holds its qemu process and its memory
//! until `virsh destroy`. `no state` (VIR_DOMAIN_NOSTATE) is an error: the state is unknown,
//! so neither On nor Off can be claimed. `error: failed to get domain` is
//! [`VirshError::NotFound`] (the domain is not defined on that host).
//!
//! A shut-off domain with a managed-save image (`virsh managedsave`) is **not** off: a plain
//! `virsh start` (or autostart) resumes it from its saved memory, and a fenced node resumed
//! from its old memory still believes it holds its resources. The agent reads each host's
//! view with `virsh dominfo` ([`parse_dominfo`]: `State:` and `Managed save: yes|no`, one
//! remote command like `domstate`); only `shut off` with `Managed save: no` is off. Off
//! therefore means `virsh destroy` where it runs and `virsh managedsave-remove` where an
//! image is kept; on is `virsh start --force-boot` (a fresh boot, never a resume).
//!
//! [`locate`] combines the answers of every host of the map into one verdict for a guest
//! that may have migrated: Off only when every host answered, none runs it and none keeps a
//! managed-save image of it.

use std::fmt;

use crate::protocol::agent::PowerState;
use crate::protocol::error::FenceError;

/// Default libvirt URI of a KVM host.
pub const DEFAULT_URI: &str = "qemu:///system";

/// A domain state as virsh prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomState {
    /// `running`.
    Running,
    /// `idle` (VIR_DOMAIN_BLOCKED; older virsh printed `blocked`).
    Blocked,
    /// `paused`.
    Paused,
    /// `in shutdown` (still running).
    InShutdown,
    /// `shut off`.
    ShutOff,
    /// `crashed`.
    Crashed,
    /// `pmsuspended`.
    PmSuspended,
}

impl DomState {
    /// Parses a state word exactly as virsh prints it. `no state` and everything else: `None`.
    pub fn from_word(w: &str) -> Option<DomState> {
        Some(match w {
            "running" => DomState::Running,
            "idle" | "blocked" => DomState::Blocked,
            "paused" => DomState::Paused,
            "in shutdown" => DomState::InShutdown,
            "shut off" => DomState::ShutOff,
            "crashed" => DomState::Crashed,
            "pmsuspended" => DomState::PmSuspended,
            _ => return None,
        })
    }

    /// The fencing view of this state: only `shut off` can be off (and then only without a
    /// managed-save image, see [`HostView`]); a crashed domain must be destroyed first.
    pub fn power(self) -> PowerState {
        match self {
            DomState::ShutOff => PowerState::Off,
            DomState::Running
            | DomState::Blocked
            | DomState::Paused
            | DomState::InShutdown
            | DomState::Crashed
            | DomState::PmSuspended => PowerState::On,
        }
    }

    /// The word virsh prints.
    pub fn word(self) -> &'static str {
        match self {
            DomState::Running => "running",
            DomState::Blocked => "idle",
            DomState::Paused => "paused",
            DomState::InShutdown => "in shutdown",
            DomState::ShutOff => "shut off",
            DomState::Crashed => "crashed",
            DomState::PmSuspended => "pmsuspended",
        }
    }
}

/// Words recognised as a state column / domstate line (longest first for suffix matching).
const STATE_WORDS: [&str; 10] = [
    "pmsuspended",
    "in shutdown",
    "shut off",
    "no state",
    "running",
    "blocked",
    "crashed",
    "paused",
    "saved",
    "idle",
];

/// What a virsh answer meant, when it was not the expected success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VirshError {
    /// `error: failed to get domain '…'`: the domain is not defined on this host.
    NotFound,
    /// virsh reported `no state`: the hypervisor does not know the state.
    NoState,
    /// virsh failed with a message of its own (first `error:` line, shortened).
    Failed(String),
    /// The host could not be asked at all (no session, a transport error): the transport's
    /// own words (`no SSH answer from 192.0.2.1 port 22 within 5 s`).
    Unreachable(String),
    /// Output we do not recognise (garbled, truncated, empty, no exit status...).
    Unrecognised(String),
    /// A domain name that cannot be passed safely (empty, NUL or control characters).
    BadName,
}

impl fmt::Display for VirshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VirshError::NotFound => f.write_str("domain not found"),
            VirshError::NoState => f.write_str("virsh reports 'no state'"),
            VirshError::Failed(m) => write!(f, "virsh failed: {m}"),
            VirshError::Unreachable(m) => f.write_str(m),
            VirshError::Unrecognised(m) => write!(f, "unrecognised virsh output: {m}"),
            VirshError::BadName => f.write_str(
                "domain name is empty, contains control characters, or reads as a domain ID/UUID",
            ),
        }
    }
}

impl std::error::Error for VirshError {}

impl From<VirshError> for FenceError {
    fn from(e: VirshError) -> Self {
        match e {
            VirshError::NotFound => FenceError::PlugNotFound(
                "You have to enter existing name/UUID of virtual machine!".to_owned(),
            ),
            VirshError::Failed(m) => FenceError::Device(format!("virsh: {m}")),
            VirshError::Unreachable(m) => FenceError::Device(m),
            VirshError::BadName => FenceError::Usage(e.to_string()),
            VirshError::NoState | VirshError::Unrecognised(_) => FenceError::Status(e.to_string()),
        }
    }
}

/// One finished remote command: exit status (`None` = unknown, e.g. killed by a signal or
/// the channel closed without one), stdout and stderr bytes.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    /// Exit status, if the remote side sent one.
    pub exit: Option<i32>,
    /// Standard output.
    pub stdout: &'a [u8],
    /// Standard error.
    pub stderr: &'a [u8],
}

impl<'a> Reply<'a> {
    /// Builds a reply.
    pub fn new(exit: Option<i32>, stdout: &'a [u8], stderr: &'a [u8]) -> Self {
        Reply {
            exit,
            stdout,
            stderr,
        }
    }
}

/// [`crate::protocol::error::excerpt`] of untrusted bytes.
fn excerpt(b: &[u8]) -> String {
    crate::protocol::error::excerpt(&String::from_utf8_lossy(b))
}

/// Non-empty lines of a text (virsh ends its answers with an empty line).
fn lines(b: &[u8]) -> Option<Vec<&str>> {
    let s = std::str::from_utf8(b).ok()?;
    Some(s.lines().filter(|l| !l.trim().is_empty()).collect())
}

/// Classifies a failed command from stderr: not-found, a virsh `error:` line, or unknown.
fn failure(r: &Reply<'_>) -> VirshError {
    let err = String::from_utf8_lossy(r.stderr);
    if err
        .lines()
        .any(|l| l.starts_with("error: failed to get domain"))
    {
        return VirshError::NotFound;
    }
    // Prefer the most specific error line (the last one: virsh prints the summary first).
    let errlines: Vec<&str> = err
        .lines()
        .filter_map(|l| l.strip_prefix("error: "))
        .collect();
    match errlines.last() {
        Some(last) => VirshError::Failed(excerpt(last.as_bytes())),
        None => VirshError::Unrecognised(format!(
            "exit {}, stdout: {}, stderr: {}",
            r.exit
                .map_or_else(|| "unknown".to_owned(), |c| c.to_string()),
            excerpt(r.stdout),
            excerpt(r.stderr)
        )),
    }
}

/// Parses `virsh domstate [--reason] -- NAME`.
pub fn parse_domstate(r: &Reply<'_>) -> Result<DomState, VirshError> {
    if r.exit != Some(0) {
        return Err(failure(r));
    }
    let Some(ls) = lines(r.stdout) else {
        return Err(VirshError::Unrecognised(excerpt(r.stdout)));
    };
    let [line] = ls.as_slice() else {
        return Err(VirshError::Unrecognised(excerpt(r.stdout)));
    };
    // `--reason` appends ` (reason)`.
    let word = match line.split_once(" (") {
        Some((w, rest)) if rest.ends_with(')') && !rest.contains('(') => w,
        Some(_) => return Err(VirshError::Unrecognised(excerpt(r.stdout))),
        None => line,
    };
    if word == "no state" {
        return Err(VirshError::NoState);
    }
    DomState::from_word(word).ok_or_else(|| VirshError::Unrecognised(excerpt(r.stdout)))
}

/// Result of a power command that virsh accepted or refused for a known reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionOutcome {
    /// virsh printed its success line (`Domain 'X' destroyed` / `started`).
    Done,
    /// The domain was already in the requested state (`domain is not running` for destroy,
    /// `Domain is already active` for start). Read the state back before relying on it.
    AlreadyThere,
}

fn parse_action(
    r: &Reply<'_>,
    success_suffix: &str,
    already: &str,
) -> Result<ActionOutcome, VirshError> {
    if r.exit == Some(0) {
        let ok = lines(r.stdout).is_some_and(|ls| {
            matches!(ls.as_slice(), [l] if l.starts_with("Domain '") && l.ends_with(success_suffix))
        });
        return if ok {
            Ok(ActionOutcome::Done)
        } else {
            Err(VirshError::Unrecognised(excerpt(r.stdout)))
        };
    }
    if r.exit.is_some() && String::from_utf8_lossy(r.stderr).contains(already) {
        return Ok(ActionOutcome::AlreadyThere);
    }
    Err(failure(r))
}

/// Parses `virsh destroy -- NAME`.
pub fn parse_destroy(r: &Reply<'_>) -> Result<ActionOutcome, VirshError> {
    parse_action(r, "' destroyed", "domain is not running")
}

/// Parses `virsh start [--force-boot] -- NAME`.
pub fn parse_start(r: &Reply<'_>) -> Result<ActionOutcome, VirshError> {
    parse_action(r, "' started", "Domain is already active")
}

/// Parses `virsh managedsave-remove -- NAME`: `Removed managedsave image for domain 'X'`
/// is [`ActionOutcome::Done`], `Domain 'X' has no manage save image; removal skipped` is
/// [`ActionOutcome::AlreadyThere`] (both exit 0); anything else is an error.
pub fn parse_managedsave_remove(r: &Reply<'_>) -> Result<ActionOutcome, VirshError> {
    if r.exit != Some(0) {
        return Err(failure(r));
    }
    let ls = lines(r.stdout).unwrap_or_default();
    match ls.as_slice() {
        [l] if l.starts_with("Removed managedsave image for domain '") && l.ends_with('\'') => {
            Ok(ActionOutcome::Done)
        }
        [l] if l.starts_with("Domain '")
            && l.ends_with("' has no manage save image; removal skipped") =>
        {
            Ok(ActionOutcome::AlreadyThere)
        }
        _ => Err(VirshError::Unrecognised(excerpt(r.stdout))),
    }
}

/// Parses `virsh list --all --name` (one exact name per line; blank lines skipped).
/// Names keep leading/trailing spaces. Non-UTF-8 output or a failure is an error.
pub fn parse_name_list(r: &Reply<'_>) -> Result<Vec<String>, VirshError> {
    if r.exit != Some(0) {
        return Err(failure(r));
    }
    let s =
        std::str::from_utf8(r.stdout).map_err(|_| VirshError::Unrecognised(excerpt(r.stdout)))?;
    let mut out = Vec::new();
    for l in s.split('\n') {
        if l.is_empty() {
            continue;
        }
        if l.chars().any(char::is_control) {
            return Err(VirshError::Unrecognised(excerpt(r.stdout)));
        }
        out.push(l.to_owned());
    }
    Ok(out)
}

/// One row of `virsh list --all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRow {
    /// Domain id (`None` for `-`, an inactive domain).
    pub id: Option<u32>,
    /// Domain name as printed (trailing spaces lost; in the C locale virsh prints
    /// non-ASCII bytes as `\xNN` escapes, see `escaped`).
    pub name: String,
    /// True when the name contains a `\x` escape (not the real name: use `--name` lists).
    pub escaped: bool,
    /// State (`None` for `no state`; `shut off` for `saved`).
    pub state: Option<DomState>,
    /// `saved` (with `--managed-save`): shut off with a managed-save image.
    pub saved: bool,
}

/// Parses the table of `virsh list --all`. Names may contain spaces; the state is matched
/// as a known suffix. Any row without a known state makes the whole table an error.
pub fn parse_list_table(r: &Reply<'_>) -> Result<Vec<ListRow>, VirshError> {
    if r.exit != Some(0) {
        return Err(failure(r));
    }
    let bad = || VirshError::Unrecognised(excerpt(r.stdout));
    let s = std::str::from_utf8(r.stdout).map_err(|_| bad())?;
    let mut it = s.lines();
    let header = it.next().ok_or_else(bad)?;
    let words: Vec<&str> = header.split_whitespace().collect();
    if words.as_slice() != ["Id", "Name", "State"] {
        return Err(bad());
    }
    let name_off = header.find("Name").ok_or_else(bad)?;
    let dashes = it.next().ok_or_else(bad)?;
    if dashes.is_empty() || !dashes.bytes().all(|b| b == b'-') {
        return Err(bad());
    }
    let mut rows = Vec::new();
    for row in it {
        if row.trim().is_empty() {
            continue;
        }
        let id_part = row.get(..name_off).ok_or_else(bad)?;
        let rest = row.get(name_off..).ok_or_else(bad)?.trim_end();
        let id = match id_part.trim() {
            "-" => None,
            n if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                Some(n.parse::<u32>().map_err(|_| bad())?)
            }
            _ => return Err(bad()),
        };
        let word = STATE_WORDS
            .iter()
            .find(|w| {
                rest.strip_suffix(**w)
                    .is_some_and(|n| n.ends_with(' ') && !n.trim().is_empty())
            })
            .ok_or_else(bad)?;
        let name = rest
            .strip_suffix(*word)
            .ok_or_else(bad)?
            .trim_end()
            .to_owned();
        let saved = *word == "saved";
        rows.push(ListRow {
            id,
            escaped: name.contains("\\x"),
            name,
            state: if saved {
                Some(DomState::ShutOff)
            } else {
                DomState::from_word(word)
            },
            saved,
        });
    }
    Ok(rows)
}

/// The useful fields of `virsh dominfo -- NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomInfo {
    /// `Name:`.
    pub name: String,
    /// `UUID:`.
    pub uuid: String,
    /// `State:` (`None` for `no state`).
    pub state: Option<DomState>,
    /// `Persistent:` yes/no.
    pub persistent: Option<bool>,
    /// `Managed save:` yes/no (`None`: `unknown`, or the line is missing).
    pub managed_save: Option<bool>,
}

impl DomInfo {
    /// This host's view of the domain (`None` for `no state`).
    pub fn view(&self) -> Option<HostView> {
        self.state.map(|state| HostView {
            state,
            managed_save: self.managed_save,
        })
    }
}

/// What one host knows of a guest: its state and whether a managed-save image is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostView {
    /// The domain state.
    pub state: DomState,
    /// `Some(true)`: a managed-save image exists; `None`: virsh could not tell.
    pub managed_save: Option<bool>,
}

/// `running`, `shut off (managed-save image kept)`, `shut off (managed save unknown)`: what a
/// debug line says of one host's view.
impl fmt::Display for HostView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.state.word())?;
        match self.managed_save {
            Some(true) => f.write_str(" (managed-save image kept)"),
            Some(false) => Ok(()),
            None => f.write_str(" (managed save unknown)"),
        }
    }
}

impl HostView {
    /// The view from `virsh dominfo` output (`no state` is [`VirshError::NoState`]).
    pub fn from_dominfo(r: &Reply<'_>) -> Result<HostView, VirshError> {
        parse_dominfo(r)?.view().ok_or(VirshError::NoState)
    }
}

/// Parses `virsh dominfo` (`Key:   value` lines). Missing Name/UUID/State is an error.
pub fn parse_dominfo(r: &Reply<'_>) -> Result<DomInfo, VirshError> {
    if r.exit != Some(0) {
        return Err(failure(r));
    }
    let bad = || VirshError::Unrecognised(excerpt(r.stdout));
    let ls = lines(r.stdout).ok_or_else(bad)?;
    let mut name = None;
    let mut uuid = None;
    let mut state = None;
    let mut persistent = None;
    let mut managed_save = None;
    for l in ls {
        let Some((k, v)) = l.split_once(':') else {
            return Err(bad());
        };
        let v = v.trim();
        match k {
            "Name" => name = Some(v.to_owned()),
            "UUID" => uuid = Some(v.to_owned()),
            "State" => {
                state = Some(if v == "no state" {
                    None
                } else {
                    Some(DomState::from_word(v).ok_or_else(bad)?)
                });
            }
            "Persistent" => persistent = yes_no(v),
            "Managed save" => managed_save = yes_no(v),
            _ => {}
        }
    }
    Ok(DomInfo {
        name: name.ok_or_else(bad)?,
        uuid: uuid.ok_or_else(bad)?,
        state: state.ok_or_else(bad)?,
        persistent,
        managed_save,
    })
}

fn yes_no(v: &str) -> Option<bool> {
    match v {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

/// Where a guest is, from the answers of every host of the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestLocation {
    /// On (running, paused, crashed, ... — any On state) on these hosts, in asking order.
    /// More than one host means the guest runs twice: fence every one.
    Running {
        /// Hosts where it is On.
        hosts: Vec<String>,
        /// Other hosts that keep a managed-save image of it.
        saved: Vec<String>,
    },
    /// Runs nowhere, but a managed-save image of it is kept on `saved`: a plain start there
    /// would resume it from its saved memory. Not off.
    Saved {
        /// Hosts with a managed-save image.
        saved: Vec<String>,
        /// Hosts where it is defined and not running (`saved` included).
        defined_on: Vec<String>,
    },
    /// Every host answered, none runs it and none keeps a managed-save image; it is defined
    /// (shut off) on these hosts.
    Off {
        /// Hosts where it is defined but not running.
        defined_on: Vec<String>,
    },
}

impl GuestLocation {
    /// The guest's power state for fencing: a saved guest is not off.
    pub fn power(&self) -> PowerState {
        match self {
            GuestLocation::Running { .. } | GuestLocation::Saved { .. } => PowerState::On,
            GuestLocation::Off { .. } => PowerState::Off,
        }
    }
}

/// Combines per-host answers (`(host, view)`, mapped host first) into one verdict, applying
/// the one rule across hosts:
///
/// - On anywhere (crashed included) → [`GuestLocation::Running`] (even if other hosts failed
///   to answer: the guest is known to be running there);
/// - else, any host that could not be asked, gave an unknown answer, or could not tell
///   whether a shut-off guest has a managed-save image → error: it may run (or resume) there,
///   so it is never reported Off;
/// - else a managed-save image somewhere → [`GuestLocation::Saved`];
/// - else defined somewhere → [`GuestLocation::Off`];
/// - else (not defined on any host) → `FenceError::PlugNotFound`.
pub fn locate(
    guest: &str,
    answers: &[(String, Result<HostView, VirshError>)],
) -> Result<GuestLocation, FenceError> {
    let mut running = Vec::new();
    let mut saved = Vec::new();
    let mut off = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    for (host, a) in answers {
        match a {
            Ok(v) if v.state.power() == PowerState::On => running.push(host.clone()),
            Ok(v) => match v.managed_save {
                Some(false) => off.push(host.clone()),
                Some(true) => {
                    saved.push(host.clone());
                    off.push(host.clone());
                }
                None => unknown.push(format!(
                    "{host}: virsh cannot tell whether a managed-save image is kept"
                )),
            },
            Err(VirshError::NotFound) => {}
            Err(e) => unknown.push(format!("{host}: {e}")),
        }
    }
    if !running.is_empty() {
        return Ok(GuestLocation::Running {
            hosts: running,
            saved,
        });
    }
    if !unknown.is_empty() {
        return Err(FenceError::Status(format!(
            "guest '{guest}' may be running on a host that gave no usable answer: {}",
            unknown.join("; ")
        )));
    }
    if answers.is_empty() {
        return Err(FenceError::Status(format!(
            "no host to ask for guest '{guest}'"
        )));
    }
    if !saved.is_empty() {
        return Ok(GuestLocation::Saved {
            saved,
            defined_on: off,
        });
    }
    if off.is_empty() {
        return Err(FenceError::PlugNotFound(format!(
            "guest '{guest}' is not defined on any host"
        )));
    }
    Ok(GuestLocation::Off { defined_on: off })
}

pub use crate::transport::ssh::shell_quote;

/// Builds virsh command lines for one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Virsh {
    /// libvirt URI passed with `-c` (default [`DEFAULT_URI`]).
    pub uri: String,
    /// Prefix with `sudo -n`.
    pub sudo: bool,
}

impl Default for Virsh {
    fn default() -> Self {
        Virsh {
            uri: DEFAULT_URI.to_owned(),
            sudo: false,
        }
    }
}

fn check_name(name: &str) -> Result<(), VirshError> {
    if name.is_empty() || name.chars().any(char::is_control) || looks_like_id_or_uuid(name) {
        Err(VirshError::BadName)
    } else {
        Ok(())
    }
}

/// virsh resolves a domain argument as an ID first, then a UUID, then a name: a name made
/// of digits only, or shaped like a UUID, could select another domain (`destroy -- 12` hits
/// whichever domain has ID 12). Such names are refused.
pub fn looks_like_id_or_uuid(name: &str) -> bool {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    let hex: String = name.chars().filter(|c| *c != '-').collect();
    hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()) && {
        let dashes = name.len().saturating_sub(hex.len());
        dashes == 0 || (dashes == 4 && name.split('-').map(str::len).eq([8, 4, 4, 4, 12]))
    }
}

impl Virsh {
    /// A builder for `uri`, with or without sudo.
    pub fn new(uri: &str, sudo: bool) -> Self {
        Virsh {
            uri: uri.to_owned(),
            sudo,
        }
    }

    fn prefix(&self) -> String {
        format!(
            "env LC_ALL=C {}virsh -c {}",
            crate::transport::ssh::sudo_prefix(self.sudo),
            shell_quote(&self.uri)
        )
    }

    /// `virsh … SUBCOMMAND [ARGS] -- 'NAME'` for a domain subcommand. `args` are fixed
    /// option words chosen by the caller (never user input).
    pub fn domain_cmd(
        &self,
        subcommand: &str,
        args: &[&str],
        name: &str,
    ) -> Result<String, VirshError> {
        check_name(name)?;
        let mut s = self.prefix();
        s.push(' ');
        s.push_str(subcommand);
        for a in args {
            s.push(' ');
            s.push_str(a);
        }
        s.push_str(" -- ");
        s.push_str(&shell_quote(name));
        Ok(s)
    }

    /// `virsh domstate -- NAME`.
    pub fn domstate(&self, name: &str) -> Result<String, VirshError> {
        self.domain_cmd("domstate", &[], name)
    }

    /// `virsh destroy -- NAME` (hard power-off).
    pub fn destroy(&self, name: &str) -> Result<String, VirshError> {
        self.domain_cmd("destroy", &[], name)
    }

    /// `virsh start --force-boot -- NAME`: a fresh boot, discarding any managed-save image
    /// (a plain start would resume the guest from its saved memory).
    pub fn start(&self, name: &str) -> Result<String, VirshError> {
        self.domain_cmd("start", &["--force-boot"], name)
    }

    /// `virsh managedsave-remove -- NAME` (discards a managed-save image).
    pub fn managedsave_remove(&self, name: &str) -> Result<String, VirshError> {
        self.domain_cmd("managedsave-remove", &[], name)
    }

    /// `virsh dominfo -- NAME`.
    pub fn dominfo(&self, name: &str) -> Result<String, VirshError> {
        self.domain_cmd("dominfo", &[], name)
    }

    /// `virsh list --all --name`.
    pub fn list_names(&self) -> String {
        format!("{} list --all --name", self.prefix())
    }

    /// `virsh list --all --managed-save` (inactive domains with a managed-save image show
    /// the state `saved`).
    pub fn list_all(&self) -> String {
        format!("{} list --all --managed-save", self.prefix())
    }

    /// `virsh version` (a cheap "does the host answer" probe for `monitor`).
    pub fn version(&self) -> String {
        format!("{} version", self.prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(out: &str) -> Reply<'_> {
        Reply::new(Some(0), out.as_bytes(), b"")
    }

    #[test]
    fn domstate_words() {
        for (txt, st) in [
            ("running\n\n", DomState::Running),
            ("idle\n", DomState::Blocked),
            ("paused\n\n", DomState::Paused),
            ("in shutdown\n\n", DomState::InShutdown),
            ("pmsuspended\n\n", DomState::PmSuspended),
            ("shut off\n\n", DomState::ShutOff),
            ("shut off (destroyed)\n\n", DomState::ShutOff),
            ("crashed\n\n", DomState::Crashed),
            ("running (booted)\n\n", DomState::Running),
        ] {
            assert_eq!(parse_domstate(&ok(txt)), Ok(st), "{txt:?}");
        }
        assert_eq!(
            parse_domstate(&ok("no state\n\n")),
            Err(VirshError::NoState)
        );
        for bad in [
            "",
            "\n",
            "shut\n",
            "Shut off\n",
            "shut  off\n",
            "off\n",
            "running\nshut off\n",
            "runn",
            "shut off (x\n",
            "\u{0}",
            "laufend\n",
        ] {
            assert!(parse_domstate(&ok(bad)).is_err(), "{bad:?}");
        }
        assert_eq!(DomState::ShutOff.power(), PowerState::Off);
        assert_eq!(DomState::Paused.power(), PowerState::On);
    }

    #[test]
    fn domstate_errors() {
        let nf = Reply::new(Some(1), b"\n", b"error: failed to get domain 'nosuch'\n");
        assert_eq!(parse_domstate(&nf), Err(VirshError::NotFound));
        let conn = Reply::new(
            Some(1),
            b"",
            b"error: failed to connect to the hypervisor\nerror: Failed to connect socket: No such file or directory\n",
        );
        assert!(
            matches!(parse_domstate(&conn), Err(VirshError::Failed(m)) if m.contains("socket"))
        );
        let killed = Reply::new(None, b"running\n", b"");
        assert!(matches!(
            parse_domstate(&killed),
            Err(VirshError::Unrecognised(_))
        ));
        let weird = Reply::new(Some(127), b"", b"bash: virsh: command not found\n");
        assert!(matches!(
            parse_domstate(&weird),
            Err(VirshError::Unrecognised(_))
        ));
        let fe: FenceError = VirshError::NotFound.into();
        assert!(matches!(fe, FenceError::PlugNotFound(_)));
    }

    #[test]
    fn actions() {
        assert_eq!(
            parse_destroy(&ok("Domain 'guest11' destroyed\n\n")),
            Ok(ActionOutcome::Done)
        );
        assert_eq!(
            parse_destroy(&Reply::new(
                Some(1),
                b"",
                b"error: Failed to destroy domain 'guest11'\nerror: Requested operation is not valid: domain is not running\n"
            )),
            Ok(ActionOutcome::AlreadyThere)
        );
        assert!(matches!(
            parse_destroy(&Reply::new(
                Some(1),
                b"",
                b"error: Failed to terminate process 4242 with SIGKILL: Device or resource busy\n"
            )),
            Err(VirshError::Failed(_))
        ));
        assert!(parse_destroy(&ok("Domain 'g' started\n")).is_err());
        assert_eq!(
            parse_start(&ok("Domain 'a b' started\n\n")),
            Ok(ActionOutcome::Done)
        );
        assert_eq!(
            parse_start(&Reply::new(
                Some(1),
                b"",
                b"error: Domain is already active\n"
            )),
            Ok(ActionOutcome::AlreadyThere)
        );
        assert_eq!(
            parse_start(&Reply::new(
                Some(1),
                b"",
                b"error: failed to get domain 'x'\n"
            )),
            Err(VirshError::NotFound)
        );
    }

    #[test]
    fn list_table_with_spaces() {
        let t = " Id   Name                          State\n\
                 ----------------------------------------------\n \
                 2    test                          running\n \
                 4    web vm                        paused\n \
                 -      lead                        shut off\n \
                 -    vm-\\xff\\xff                  shut off\n\n";
        let rows = parse_list_table(&ok(t)).unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[1].name, "web vm");
        assert_eq!(rows[1].state, Some(DomState::Paused));
        assert_eq!(rows[2].name, "  lead");
        assert_eq!(rows[2].id, None);
        assert!(rows[3].escaped);
        let garbled = t.replace("paused", "pa#sed");
        assert!(parse_list_table(&ok(&garbled)).is_err());
    }

    #[test]
    fn name_list() {
        let r = ok("test\nweb vm\n  lead\n\n");
        assert_eq!(
            parse_name_list(&r).unwrap(),
            vec!["test", "web vm", "  lead"]
        );
        assert_eq!(parse_name_list(&ok("\n")).unwrap(), Vec::<String>::new());
        assert!(parse_name_list(&Reply::new(Some(0), b"\xff\n", b"")).is_err());
    }

    #[test]
    fn quoting_and_builders() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        let v = Virsh::default();
        assert_eq!(
            v.domstate("guest 11").unwrap(),
            "env LC_ALL=C virsh -c 'qemu:///system' domstate -- 'guest 11'"
        );
        let s = Virsh::new("qemu+ssh://x/system?a='b'", true);
        assert_eq!(
            s.destroy("-x;reboot").unwrap(),
            "env LC_ALL=C sudo -n virsh -c 'qemu+ssh://x/system?a='\\''b'\\''' destroy -- '-x;reboot'"
        );
        assert_eq!(v.domstate(""), Err(VirshError::BadName));
        assert_eq!(v.start("a\nb"), Err(VirshError::BadName));
        assert_eq!(
            v.list_names(),
            "env LC_ALL=C virsh -c 'qemu:///system' list --all --name"
        );
    }

    fn view(state: DomState, managed_save: Option<bool>) -> Result<HostView, VirshError> {
        Ok(HostView {
            state,
            managed_save,
        })
    }

    #[test]
    fn locate_rules() {
        let a = |h: &str, r: Result<HostView, VirshError>| (h.to_owned(), r);
        let off = |st| view(st, Some(false));
        let run = locate(
            "g",
            &[
                a("h1", off(DomState::ShutOff)),
                a("h2", Err(VirshError::Unrecognised("x".into()))),
                a("h3", off(DomState::Paused)),
            ],
        )
        .unwrap();
        assert_eq!(
            run,
            GuestLocation::Running {
                hosts: vec!["h3".into()],
                saved: vec![]
            }
        );
        assert_eq!(run.power(), PowerState::On);
        // One host silent, nowhere running: error, never Off.
        let e = locate(
            "g",
            &[
                a("h1", off(DomState::ShutOff)),
                a("h2", Err(VirshError::Failed("timeout".into()))),
            ],
        )
        .unwrap_err();
        assert!(
            matches!(e, FenceError::Status(ref m) if m.contains("h2")),
            "{e:?}"
        );
        // What a debug line says of a view: virsh's words, no Rust debug formatting.
        let shown: Vec<String> = [
            (DomState::Running, Some(false)),
            (DomState::ShutOff, Some(true)),
            (DomState::ShutOff, None),
        ]
        .iter()
        .map(|(state, managed_save)| {
            HostView {
                state: *state,
                managed_save: *managed_save,
            }
            .to_string()
        })
        .collect();
        assert_eq!(
            shown,
            [
                "running",
                "shut off (managed-save image kept)",
                "shut off (managed save unknown)"
            ]
        );
        // A host that could not be asked is named with the transport's own words.
        let e = locate(
            "g",
            &[
                a("h1", off(DomState::ShutOff)),
                a(
                    "h2",
                    Err(VirshError::Unreachable(
                        "no SSH answer from 192.0.2.2 port 22 within 5 s".into(),
                    )),
                ),
            ],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Unable to obtain correct plug status or plug is not available (guest 'g' may be \
             running on a host that gave no usable answer: h2: no SSH answer from 192.0.2.2 port 22 \
             within 5 s)"
        );
        let e = locate("g", &[a("h1", Err(VirshError::NoState))]).unwrap_err();
        assert!(matches!(e, FenceError::Status(_)));
        let o = locate(
            "g",
            &[
                a("h1", Err(VirshError::NotFound)),
                a("h2", off(DomState::ShutOff)),
            ],
        )
        .unwrap();
        assert_eq!(
            o,
            GuestLocation::Off {
                defined_on: vec!["h2".into()]
            }
        );
        assert_eq!(o.power(), PowerState::Off);
        let nf = locate("g", &[a("h1", Err(VirshError::NotFound))]).unwrap_err();
        assert!(matches!(nf, FenceError::PlugNotFound(_)));
        assert!(locate("g", &[]).is_err());
        let two = locate(
            "g",
            &[
                a("h1", off(DomState::Running)),
                a("h2", off(DomState::Running)),
            ],
        )
        .unwrap();
        assert_eq!(
            two,
            GuestLocation::Running {
                hosts: vec!["h1".into(), "h2".into()],
                saved: vec![]
            }
        );
    }

    #[test]
    fn crashed_and_saved_guests_are_not_off() {
        let a = |h: &str, r: Result<HostView, VirshError>| (h.to_owned(), r);
        // Crashed (qemu alive, on_crash=preserve): On until destroyed.
        let c = locate("g", &[a("h1", view(DomState::Crashed, Some(false)))]).unwrap();
        assert_eq!(
            c,
            GuestLocation::Running {
                hosts: vec!["h1".into()],
                saved: vec![]
            }
        );
        assert_eq!(c.power(), PowerState::On);
        assert_eq!(DomState::Crashed.power(), PowerState::On);
        // Shut off with a managed-save image: Saved, not Off.
        let s = locate(
            "g",
            &[
                a("h1", view(DomState::ShutOff, Some(false))),
                a("h2", view(DomState::ShutOff, Some(true))),
            ],
        )
        .unwrap();
        assert_eq!(
            s,
            GuestLocation::Saved {
                saved: vec!["h2".into()],
                defined_on: vec!["h1".into(), "h2".into()]
            }
        );
        assert_eq!(s.power(), PowerState::On);
        // Running on one host, an image on another: both must be dealt with.
        let r = locate(
            "g",
            &[
                a("h1", view(DomState::ShutOff, Some(true))),
                a("h2", view(DomState::Running, Some(false))),
            ],
        )
        .unwrap();
        assert_eq!(
            r,
            GuestLocation::Running {
                hosts: vec!["h2".into()],
                saved: vec!["h1".into()]
            }
        );
        // Shut off, but virsh cannot tell about the image: an error, never Off.
        let e = locate("g", &[a("h1", view(DomState::ShutOff, None))]).unwrap_err();
        assert!(
            matches!(e, FenceError::Status(ref m) if m.contains("managed-save")),
            "{e:?}"
        );
    }

    #[test]
    fn dominfo_managed_save_and_removal() {
        let info = |ms: &str, st: &str| {
            format!(
                "Id:             -\nName:           g\nUUID:           6695eb01-f6a4-8304-79aa-97f2502e193f\n\
State:          {st}\nPersistent:     yes\nAutostart:      disable\nManaged save:   {ms}\n\
Security model: none\nSecurity DOI:   0\n\n"
            )
        };
        let v = |t: &str| HostView::from_dominfo(&ok(t));
        assert_eq!(
            v(&info("yes", "shut off")),
            Ok(HostView {
                state: DomState::ShutOff,
                managed_save: Some(true)
            })
        );
        assert_eq!(
            v(&info("no", "shut off")).unwrap().managed_save,
            Some(false)
        );
        assert_eq!(v(&info("unknown", "shut off")).unwrap().managed_save, None);
        assert_eq!(v(&info("no", "crashed")).unwrap().state, DomState::Crashed);
        assert_eq!(v(&info("no", "no state")), Err(VirshError::NoState));
        let without = info("no", "shut off").replace("Managed save:   no\n", "");
        assert_eq!(v(&without).unwrap().managed_save, None);
        assert_eq!(
            parse_managedsave_remove(&ok("Removed managedsave image for domain 'a b'\n\n")),
            Ok(ActionOutcome::Done)
        );
        assert_eq!(
            parse_managedsave_remove(&ok(
                "Domain 'a b' has no manage save image; removal skipped\n\n"
            )),
            Ok(ActionOutcome::AlreadyThere)
        );
        assert!(parse_managedsave_remove(&ok("Removed\n")).is_err());
        assert!(parse_managedsave_remove(&ok("")).is_err());
        let denied = Reply::new(
            Some(1),
            b"",
            b"error: Failed to remove managed save image for domain 'g'\nerror: Failed to remove managed save file '/var/lib/libvirt/qemu/save/g.save': Permission denied\n",
        );
        assert!(
            matches!(parse_managedsave_remove(&denied), Err(VirshError::Failed(m)) if m.contains("Permission denied"))
        );
        let v = Virsh::default();
        assert_eq!(
            v.managedsave_remove("g 1").unwrap(),
            "env LC_ALL=C virsh -c 'qemu:///system' managedsave-remove -- 'g 1'"
        );
        assert_eq!(
            v.start("g").unwrap(),
            "env LC_ALL=C virsh -c 'qemu:///system' start --force-boot -- 'g'"
        );
        // `list --all --managed-save`: `saved` is shut off with an image.
        let t = " Id   Name   State\n--------------------\n -    test   saved\n 3    x y    crashed\n\n";
        let rows = parse_list_table(&ok(t)).unwrap();
        assert_eq!(rows[0].state, Some(DomState::ShutOff));
        assert!(rows[0].saved);
        assert_eq!(rows[1].state, Some(DomState::Crashed));
        assert!(!rows[1].saved);
    }

    #[test]
    fn names_read_as_id_or_uuid_are_refused() {
        let v = Virsh::new(DEFAULT_URI, false);
        for bad in [
            "7",
            "0b1cbc9e-94d6-4f0f-a1f0-0123456789ab",
            "0B1CBC9E94D64F0FA1F00123456789AB",
        ] {
            assert_eq!(v.destroy(bad), Err(VirshError::BadName), "{bad}");
            assert_eq!(v.domstate(bad), Err(VirshError::BadName), "{bad}");
        }
        assert!(v.destroy("guest 7").is_ok());
        assert!(v.destroy("0b1cbc9e-94d6-4f0f-a1f0").is_ok());
    }

    #[test]
    fn fuzz_no_panic() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let seeds: [&[u8]; 5] = [
            b"running\n\n",
            b"shut off (destroyed)\n\n",
            b" Id   Name      State\n--------------------------\n 2    guest11   running\n -    guest22   shut off\n\n",
            b"Name:           test\nUUID:           6695eb01\nState:          shut off\n",
            b"Domain 'guest11' destroyed\n\n",
        ];
        let alphabet = b" \n\t-()'x\\\xff\xc3\xa4Iddomainrunning shut off:";
        for i in 0..20000usize {
            let base = seeds[i % seeds.len()];
            let mut buf = base.to_vec();
            for _ in 0..(next() % 8) {
                let b = alphabet[(next() % alphabet.len() as u64) as usize];
                match next() % 3 {
                    0 if !buf.is_empty() => {
                        let p = (next() % buf.len() as u64) as usize;
                        buf[p] = b;
                    }
                    1 if !buf.is_empty() => {
                        let p = (next() % buf.len() as u64) as usize;
                        buf.truncate(p);
                    }
                    _ => buf.push(b),
                }
            }
            let exit = match next() % 4 {
                0 => None,
                1 => Some(1),
                _ => Some(0),
            };
            let r = Reply::new(exit, &buf, &buf);
            let st = parse_domstate(&r);
            // Never Off unless the text was exactly a known off word.
            if let Ok(s) = st {
                if s.power() == PowerState::Off {
                    let t = String::from_utf8_lossy(&buf);
                    let t = t.trim();
                    assert!(t.starts_with("shut off"), "{t:?}");
                }
            }
            let _ = parse_list_table(&r);
            let _ = parse_name_list(&r);
            let _ = parse_dominfo(&r);
            let _ = parse_destroy(&r);
            let _ = parse_start(&r);
            let _ = parse_managedsave_remove(&r);
            if let Ok(v) = HostView::from_dominfo(&r) {
                // Off-able only as `shut off` (never from garbage).
                if v.state == DomState::ShutOff && v.managed_save == Some(false) {
                    let t = String::from_utf8_lossy(&buf);
                    assert!(t.contains("State:") && t.contains("Managed save:"), "{t:?}");
                }
            }
        }
    }
}
