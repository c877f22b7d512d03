//! The contract between an agent and the library.
//!
//! An agent describes itself ([`AgentInfo`]: names, docs, option rows, default overrides) and
//! implements [`Agent`]: connect/login, read power state, request a power change, and
//! optionally list plugs, cycle, and cross-check its options. Everything else (option parsing,
//! metadata, help, delay, polling, retries, output lines, exit codes) belongs to the library.
//!
//! The one rule: [`Agent::power_status`] returns `Off` only when the device said so in words
//! the agent recognises. Anything else is an `Err`, never `Off`.

use crate::protocol::error::FenceResult;
use crate::protocol::options::{OptSpec, Options};

/// A power state read back from the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    /// Running (or able to run without our intervention, e.g. a paused VM).
    On,
    /// Confirmed off.
    Off,
}

impl PowerState {
    /// Upper-case word used in `Status: ON` lines.
    pub fn word(self) -> &'static str {
        match self {
            PowerState::On => "ON",
            PowerState::Off => "OFF",
        }
    }
}

/// One entry of `list` / `list-status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outlet {
    /// The plug identifier a user passes as `plug=`.
    pub id: String,
    /// Its alias (second column), may be empty.
    pub alias: String,
    /// State for `list-status`; `None` prints `UNKNOWN`.
    pub state: Option<PowerState>,
}

/// Feature groups an agent enables; the library adds the matching option rows
/// (as fencing.py's `device_opt` + `DEPENDENCY_OPT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// `ip`/`ipaddr` and `ipport`.
    Address,
    /// `username`/`login`.
    Login,
    /// `password`/`passwd`, `password_script`/`passwd_script`.
    Password,
    /// SSH options: `identity_file`, `ssh` (accepted, always on), `known_hosts`,
    /// `host_key_fingerprint`, `accept_new_host_key`.
    Ssh,
    /// `plug`/`port`, `plug_separator`, `separator`; enables `list`/`list-status`.
    Plugs,
    /// `use_sudo`/`sudo`.
    Sudo,
    /// `method` (onoff|cycle).
    Method,
    /// `missing_as_off`.
    MissingAsOff,
}

/// Static description of an agent.
#[derive(Debug, Clone)]
pub struct AgentInfo {
    /// Default binary name (`fence_esxi`); metadata uses argv[0]'s basename.
    pub name: &'static str,
    /// One-line description.
    pub shortdesc: &'static str,
    /// Paragraph(s) for metadata `<longdesc>` and the man page.
    pub longdesc: &'static str,
    /// Vendor URL (may be empty).
    pub vendor_url: &'static str,
    /// Shared option groups.
    pub features: &'static [Feature],
    /// The agent's own option rows.
    pub options: &'static [OptSpec],
    /// Default overrides of shared options: `(name, default)`, e.g. `("ipport", "623")`.
    pub defaults: &'static [(&'static str, &'static str)],
    /// Whether the agent lists plugs ([`Agent::LIST`]; adds `list`/`list-status` to
    /// metadata). Set by the library from the trait ([`AgentInfo::of`]), never by an agent.
    pub(crate) has_list: bool,
    /// Whether the agent sends an NMI ([`Agent::DIAG`], the `diag` action); set by the library.
    pub(crate) has_diag: bool,
    /// Whether a password (or password script, or identity file with SSH) is required.
    pub needs_password: bool,
}

impl AgentInfo {
    /// A description with the usual defaults: no long description or vendor URL, no feature
    /// group, no own rows, no default overrides, no list/cycle/diag, no password required.
    /// Read it as a sentence: `AgentInfo::new("fence_x", "Fence agent for X")
    /// .features(&[Feature::Address]).options(OPTIONS).needs_password()`.
    pub const fn new(name: &'static str, shortdesc: &'static str) -> Self {
        AgentInfo {
            name,
            shortdesc,
            longdesc: "",
            vendor_url: "",
            features: &[],
            options: &[],
            defaults: &[],
            has_list: false,
            has_diag: false,
            needs_password: false,
        }
    }

    /// Paragraph(s) for metadata `<longdesc>` and the man page.
    pub const fn longdesc(mut self, text: &'static str) -> Self {
        self.longdesc = text;
        self
    }

    /// The vendor's URL.
    pub const fn vendor_url(mut self, url: &'static str) -> Self {
        self.vendor_url = url;
        self
    }

    /// The shared option groups it uses.
    pub const fn features(mut self, features: &'static [Feature]) -> Self {
        self.features = features;
        self
    }

    /// Its own option rows.
    pub const fn options(mut self, rows: &'static [OptSpec]) -> Self {
        self.options = rows;
        self
    }

    /// Default overrides of shared rows: `(name, default)`.
    pub const fn defaults(mut self, defaults: &'static [(&'static str, &'static str)]) -> Self {
        self.defaults = defaults;
        self
    }

    /// The agent's description with its capabilities read from what its [`Agent`] impl
    /// offers: an agent cannot claim a list, a cycle or a diag it does not implement.
    pub fn of<A: Agent>() -> AgentInfo {
        AgentInfo {
            has_list: A::LIST.is_some(),
            has_diag: A::DIAG.is_some(),
            ..A::info().clone()
        }
    }

    /// A password, password script (or, with SSH, an identity file) is required.
    pub const fn needs_password(mut self) -> Self {
        self.needs_password = true;
        self
    }
}

/// `list`/`list-status` of an agent: `(session, with_status)`.
pub type ListFn<A> = fn(&mut A, bool) -> FenceResult<Vec<Outlet>>;

/// An operation on one plug (`cycle`, `diag`).
pub type PlugFn<A> = fn(&mut A, &str) -> FenceResult<()>;

/// What a fence agent implements. The value returned by [`Agent::connect`] is the session;
/// dropping it logs out.
pub trait Agent: Sized {
    /// Static description, option rows and default overrides.
    fn info() -> &'static AgentInfo;

    /// Connects and logs in, within `login_timeout`.
    fn connect(opts: &Options) -> FenceResult<Self>;

    /// Reads the power state of one plug (single-device agents get an empty plug).
    fn power_status(&mut self, plug: &str) -> FenceResult<PowerState>;

    /// Requests a power change; the engine confirms by polling [`Agent::power_status`].
    fn set_power(&mut self, plug: &str, state: PowerState) -> FenceResult<()>;

    /// Lists plugs (with their states when `with_status`), when the device can: metadata
    /// offers `list`/`list-status` exactly when this is set.
    const LIST: Option<ListFn<Self>> = None;

    /// Device-level power cycle (`method=cycle`); success = the device acknowledged it.
    const CYCLE: Option<PlugFn<Self>> = None;

    /// Diagnostic interrupt (NMI), for the `diag` action (offered exactly when set).
    const DIAG: Option<PlugFn<Self>> = None;

    /// Cheap health check for `monitor`. Default: `list` for agents with a list, else
    /// `power_status` of the (possibly empty) plug. Agents on big hosts override it with
    /// something lighter.
    fn monitor(&mut self, opts: &Options) -> FenceResult<()> {
        if let Some(list) = Self::LIST {
            list(self, false).map(|_| ())
        } else {
            self.power_status(opts.plug().unwrap_or("")).map(|_| ())
        }
    }

    /// Agent-specific option checks for every action and `validate-all`; each string is one
    /// problem. Must not contact the device.
    fn validate(_opts: &Options) -> Vec<String> {
        Vec::new()
    }
}
