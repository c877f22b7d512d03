//! The evacuation inventory: a TOML file (default [`DEFAULT_PATH`]) that names the hosts, how
//! to reach them and their BMCs, per-VM settings and placement constraints.
//!
//! Tables and keys (unknown keys are errors everywhere):
//!
//! - `[policy]`: `methods` (ordered subset of `quick_migration`, `move`, `failover`; default
//!   all three in that order), `scope` (`running` | `all`, default `running`), `max_parallel`
//!   (4), `detect_failures` (3), `detect_interval_s` (5), `brake_percent` (50),
//!   `post_fence_wait_s` (0), `vm_retry_limit` (2), `notify_command` (optional).
//! - `[ssh]`, defaults for every host: `username`, `password` | `password_script` |
//!   `identity_file`, `known_hosts`, `host_key_fingerprint`, `port` (22), `login_timeout_s`,
//!   `shell_timeout_s`.
//! - `[bmc]`, defaults for every BMC: `username`, `password` | `password_script`, `port` (623),
//!   `cipher` (an integer suite number), `privlvl`, `hexadecimal_kg`, `login_timeout_s`.
//! - `[[host]]`: `name`, `address`, `port`, `bmc_address`, `bmc_port`, `memory_mb`,
//!   `reserve_mb` (0), `role` (`normal` | `spare` | `maintenance`), and `[host.ssh]` /
//!   `[host.bmc]` overrides of the defaults above.
//! - `[[vm]]` (optional; VMs are discovered on the hosts, these only add settings): `name`,
//!   `priority` (0, higher first), `depends_on`, `hold` (false), `managed` (true), `restart`
//!   (`always` | `never`), `memory_mb`.
//! - `[[constraint]]`: `kind` (`ne` | `eq` | `pin`), `vms`, `hosts` (pin only).
//!
//! Checked after parsing (all problems are collected, each with its line and key): unique host
//! and VM names, names in `depends_on` and constraints that exist (`[[vm]]` and `[[host]]`
//! entries), no dependency cycle, no NE group larger than the number of hosts, no two VMs kept
//! together by EQ and apart by NE, methods without duplicates, percentages in range, IPMI
//! settings fence_bmc accepts, an SSH user name for every host.
//!
//! Secrets (`password`, `hexadecimal_kg`) are held as [`Secret`] and never appear in `Debug`
//! output or error text. [`load`] refuses a file holding one when group or others may access it
//! (`mode & 0o077`), as `kvmguests.conf` is refused.
//!
//! Credentials merge per group: when `[host.ssh]` sets any of `password`, `password_script` or
//! `identity_file`, none of the three is taken from `[ssh]` (likewise `password` and
//! `password_script` for `[host.bmc]`), so a host never ends up with two conflicting ways to
//! log in. Every other key falls back to the default one by one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::protocol::secret::Secret;
use crate::protocol::userfile;
use crate::transport::ipmi::{parse_hex_kg, Privilege};

/// Where the inventory is read from unless `--config` names another file.
pub const DEFAULT_PATH: &str = "/etc/fencekit/evacuate.toml";

/// Largest inventory file read (thousands of hosts and VMs fit in far less).
pub const FILE_CAP: u64 = 8 << 20;

/// Default SSH port.
pub const DEFAULT_SSH_PORT: u16 = 22;
/// Default BMC (RMCP) port.
pub const DEFAULT_BMC_PORT: u16 = 623;
/// Login timeout when none is configured (the agents' `login_timeout` default).
pub const DEFAULT_LOGIN_TIMEOUT_S: u64 = 5;
/// Command timeout when none is configured (the agents' `shell_timeout` default).
pub const DEFAULT_SHELL_TIMEOUT_S: u64 = 3;

/// Cipher suites fence_bmc implements.
const CIPHER_SUITES: [u8; 7] = [0, 1, 2, 3, 15, 16, 17];

/// Keys whose values are secrets: their values never reach an error message.
const SECRET_KEYS: [&str; 2] = ["password", "hexadecimal_kg"];

// ---------------------------------------------------------------------------------------------
// Public model
// ---------------------------------------------------------------------------------------------

/// A way to move a VM off its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Suspend on the source, unregister, register on the target, resume (live source only).
    QuickMigration,
    /// Shut down (bounded, else power off), unregister, register, power on (live source only).
    Move,
    /// Register on the target and power on (the source is confirmed off).
    Failover,
}

impl Method {
    /// The name used in the inventory and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::QuickMigration => "quick_migration",
            Method::Move => "move",
            Method::Failover => "failover",
        }
    }

    /// All methods, in the default order.
    pub const ALL: [Method; 3] = [Method::QuickMigration, Method::Move, Method::Failover];
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which VMs of a failed host are moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Only VMs that were powered on (they are started after the move).
    #[default]
    Running,
    /// Every VM; only those that were powered on are started.
    All,
}

/// A host's role in placement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An ordinary host: runs VMs and receives them.
    #[default]
    Normal,
    /// A spare host, preferred as a target.
    Spare,
    /// In maintenance: never a target.
    Maintenance,
}

/// Whether a VM is restarted elsewhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Restart {
    /// Restarted elsewhere when its host fails.
    #[default]
    Always,
    /// Never moved (skipped with that reason).
    Never,
}

/// A placement constraint kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    /// The VMs run on distinct hosts.
    Ne,
    /// The VMs run together on one host.
    Eq,
    /// The VMs run only on the listed hosts.
    Pin,
}

impl ConstraintKind {
    /// The name used in the inventory.
    pub fn as_str(self) -> &'static str {
        match self {
            ConstraintKind::Ne => "ne",
            ConstraintKind::Eq => "eq",
            ConstraintKind::Pin => "pin",
        }
    }
}

/// `[policy]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Methods tried in this order (those the situation allows).
    pub methods: Vec<Method>,
    /// Running VMs only, or all.
    pub scope: Scope,
    /// VMs handled at once within a tier.
    pub max_parallel: u32,
    /// Consecutive failed probes before a host counts as failed.
    pub detect_failures: u32,
    /// Seconds between probe rounds.
    pub detect_interval_s: u64,
    /// When more than this share of hosts (percent) is failed at once, act on none.
    pub brake_percent: u32,
    /// Seconds to wait after a confirmed fence before the first registration.
    pub post_fence_wait_s: u64,
    /// Retries of one method on one VM.
    pub vm_retry_limit: u32,
    /// Command that receives the JSON report on stdin.
    pub notify_command: Option<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            methods: Method::ALL.to_vec(),
            scope: Scope::Running,
            max_parallel: 4,
            detect_failures: 3,
            detect_interval_s: 5,
            brake_percent: 50,
            post_fence_wait_s: 0,
            vm_retry_limit: 2,
            notify_command: None,
        }
    }
}

/// SSH settings as written (`[ssh]` defaults or a `[host.ssh]` override): every key optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshSettings {
    /// Login name.
    pub username: Option<String>,
    /// Password (or key passphrase with `identity_file`).
    pub password: Option<Secret>,
    /// Command whose output is the password.
    pub password_script: Option<String>,
    /// Private key file.
    pub identity_file: Option<PathBuf>,
    /// Where host keys are verified.
    pub known_hosts: Option<PathBuf>,
    /// Pinned host key (`SHA256:…`).
    pub host_key_fingerprint: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// Seconds for connect + login.
    pub login_timeout_s: Option<u64>,
    /// Seconds for one remote command.
    pub shell_timeout_s: Option<u64>,
}

/// BMC settings as written (`[bmc]` defaults or a `[host.bmc]` override): every key optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BmcSettings {
    /// IPMI user name.
    pub username: Option<String>,
    /// IPMI password.
    pub password: Option<Secret>,
    /// Command whose output is the password.
    pub password_script: Option<String>,
    /// UDP port.
    pub port: Option<u16>,
    /// Cipher suite number.
    pub cipher: Option<u8>,
    /// Session privilege level.
    pub privlvl: Option<Privilege>,
    /// BMC key (Kg), hexadecimal.
    pub hexadecimal_kg: Option<Secret>,
    /// Seconds for session set-up.
    pub login_timeout_s: Option<u64>,
}

/// One `[[host]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Unique name (as used in constraints, plans and reports).
    pub name: String,
    /// SSH address (name or IP).
    pub address: String,
    /// SSH port (wins over `[host.ssh] port` and `[ssh] port`).
    pub port: Option<u16>,
    /// BMC address.
    pub bmc_address: String,
    /// BMC port.
    pub bmc_port: Option<u16>,
    /// Memory for VMs, MB; `None`: taken from the host's own summary.
    pub memory_mb: Option<u64>,
    /// Memory kept free, MB.
    pub reserve_mb: u64,
    /// Role in placement.
    pub role: Role,
    /// `[host.ssh]` overrides.
    pub ssh: SshSettings,
    /// `[host.bmc]` overrides.
    pub bmc: BmcSettings,
    /// Line of its `[[host]]` header.
    pub line: usize,
}

/// One `[[vm]]`: settings for a VM discovered on the hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSettings {
    /// The VM's display name.
    pub name: String,
    /// Higher first.
    pub priority: i32,
    /// VMs that must be up before this one.
    pub depends_on: Vec<String>,
    /// Never moved, not counted in the result.
    pub hold: bool,
    /// Unmanaged VMs are never moved, not counted in the result.
    pub managed: bool,
    /// `never`: not restarted elsewhere.
    pub restart: Restart,
    /// Memory, MB; `None`: taken from the host.
    pub memory_mb: Option<u64>,
    /// Line of its `[[vm]]` header.
    pub line: usize,
}

impl VmSettings {
    /// Settings of a VM the inventory does not list.
    pub fn defaults(name: &str) -> Self {
        VmSettings {
            name: name.to_string(),
            priority: 0,
            depends_on: Vec::new(),
            hold: false,
            managed: true,
            restart: Restart::Always,
            memory_mb: None,
            line: 0,
        }
    }
}

/// One `[[constraint]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    /// NE, EQ or pin.
    pub kind: ConstraintKind,
    /// The VMs it binds.
    pub vms: Vec<String>,
    /// Pin only: the hosts the VMs may run on.
    pub hosts: Vec<String>,
    /// Line of its `[[constraint]]` header.
    pub line: usize,
}

/// The whole inventory, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// `[policy]`.
    pub policy: Policy,
    /// `[ssh]` defaults.
    pub ssh: SshSettings,
    /// `[bmc]` defaults.
    pub bmc: BmcSettings,
    /// `[[host]]` entries, in file order.
    pub hosts: Vec<Host>,
    /// `[[vm]]` entries, in file order.
    pub vms: Vec<VmSettings>,
    /// `[[constraint]]` entries, in file order.
    pub constraints: Vec<Constraint>,
}

/// How to log in over SSH: resolved for one host (defaults merged with its overrides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSsh {
    /// Address.
    pub address: String,
    /// Port.
    pub port: u16,
    /// Login name (checked to be present when the inventory is parsed).
    pub username: String,
    /// Password or key passphrase.
    pub password: Option<Secret>,
    /// Command whose output is the password.
    pub password_script: Option<String>,
    /// Private key file.
    pub identity_file: Option<PathBuf>,
    /// Where host keys are verified (`None`: the usual places).
    pub known_hosts: Option<PathBuf>,
    /// Pinned host key.
    pub host_key_fingerprint: Option<String>,
    /// Seconds for connect + login.
    pub login_timeout_s: u64,
    /// Seconds for one remote command.
    pub shell_timeout_s: u64,
}

/// How to reach a BMC: resolved for one host (defaults merged with its overrides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedBmc {
    /// Address.
    pub address: String,
    /// Port.
    pub port: u16,
    /// IPMI user name (`None`: the anonymous user).
    pub username: Option<String>,
    /// Password.
    pub password: Option<Secret>,
    /// Command whose output is the password.
    pub password_script: Option<String>,
    /// Cipher suite (`None`: negotiated, strongest first).
    pub cipher: Option<u8>,
    /// Privilege level (default: administrator, as fence_ipmilan).
    pub privlvl: Privilege,
    /// BMC key, hexadecimal.
    pub hexadecimal_kg: Option<Secret>,
    /// Seconds for session set-up.
    pub login_timeout_s: u64,
}

impl Inventory {
    /// Parses and checks inventory text. All problems found after parsing are returned, sorted
    /// by line; a TOML or type error stops at the first one.
    pub fn parse(text: &str) -> Result<Inventory, Vec<InventoryError>> {
        let raw: RawFile = toml::from_str(text).map_err(|e| vec![toml_error(text, &e)])?;
        let mut b = Builder {
            line_starts: std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
            errors: Vec::new(),
        };
        let inv = b.build(raw);
        if b.errors.is_empty() {
            Ok(inv)
        } else {
            let mut errs = b.errors;
            errs.sort_by(|a, b| a.line.cmp(&b.line).then_with(|| a.key.cmp(&b.key)));
            Err(errs)
        }
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The `[[vm]]` settings for `name`, if listed.
    pub fn vm(&self, name: &str) -> Option<&VmSettings> {
        self.vms.iter().find(|v| v.name == name)
    }

    /// True when the file holds a password or a BMC key (anywhere).
    pub fn holds_secret(&self) -> bool {
        let ssh = |s: &SshSettings| s.password.is_some();
        let bmc = |b: &BmcSettings| b.password.is_some() || b.hexadecimal_kg.is_some();
        ssh(&self.ssh) || bmc(&self.bmc) || self.hosts.iter().any(|h| ssh(&h.ssh) || bmc(&h.bmc))
    }

    /// SSH settings of `host`: its overrides, else the `[ssh]` defaults, else the built-in
    /// defaults.
    pub fn ssh_for(&self, host: &Host) -> ResolvedSsh {
        let (d, o) = (&self.ssh, &host.ssh);
        let own_creds =
            o.password.is_some() || o.password_script.is_some() || o.identity_file.is_some();
        let creds = if own_creds { o } else { d };
        ResolvedSsh {
            address: host.address.clone(),
            port: host.port.or(o.port).or(d.port).unwrap_or(DEFAULT_SSH_PORT),
            username: o
                .username
                .clone()
                .or_else(|| d.username.clone())
                .unwrap_or_default(),
            password: creds.password.clone(),
            password_script: creds.password_script.clone(),
            identity_file: creds.identity_file.clone(),
            known_hosts: o.known_hosts.clone().or_else(|| d.known_hosts.clone()),
            host_key_fingerprint: o
                .host_key_fingerprint
                .clone()
                .or_else(|| d.host_key_fingerprint.clone()),
            login_timeout_s: o
                .login_timeout_s
                .or(d.login_timeout_s)
                .unwrap_or(DEFAULT_LOGIN_TIMEOUT_S),
            shell_timeout_s: o
                .shell_timeout_s
                .or(d.shell_timeout_s)
                .unwrap_or(DEFAULT_SHELL_TIMEOUT_S),
        }
    }

    /// BMC settings of `host`: its overrides, else the `[bmc]` defaults, else the built-in
    /// defaults.
    pub fn bmc_for(&self, host: &Host) -> ResolvedBmc {
        let (d, o) = (&self.bmc, &host.bmc);
        let creds = if o.password.is_some() || o.password_script.is_some() {
            o
        } else {
            d
        };
        ResolvedBmc {
            address: host.bmc_address.clone(),
            port: host
                .bmc_port
                .or(o.port)
                .or(d.port)
                .unwrap_or(DEFAULT_BMC_PORT),
            username: o.username.clone().or_else(|| d.username.clone()),
            password: creds.password.clone(),
            password_script: creds.password_script.clone(),
            cipher: o.cipher.or(d.cipher),
            privlvl: o.privlvl.or(d.privlvl).unwrap_or(Privilege::Administrator),
            hexadecimal_kg: o
                .hexadecimal_kg
                .clone()
                .or_else(|| d.hexadecimal_kg.clone()),
            login_timeout_s: o
                .login_timeout_s
                .or(d.login_timeout_s)
                .unwrap_or(DEFAULT_LOGIN_TIMEOUT_S),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors and loading
// ---------------------------------------------------------------------------------------------

/// One problem in the inventory: where (line, dotted key) and what. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryError {
    /// 1-based line; 0 when the problem is the file as a whole.
    pub line: usize,
    /// Dotted key, e.g. `host.memory_mb` or `constraint.vms`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for InventoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.key, self.message)
        } else {
            write!(f, "line {}: {}: {}", self.line, self.key, self.message)
        }
    }
}

impl std::error::Error for InventoryError {}

/// Why [`load`] failed (every kind is an inventory error: exit status 2 for the CLI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The file could not be read (the message names it).
    Io(String),
    /// The file holds a secret and group or others may access it.
    Permissions {
        /// The path.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The content has problems.
    Invalid {
        /// The path.
        path: String,
        /// Every problem, by line.
        errors: Vec<InventoryError>,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io(s) => f.write_str(s),
            LoadError::Permissions { path, mode } => write!(
                f,
                "{path}: holds a password but mode {mode:04o} lets group or others access it \
                 (must be 0600 or stricter)"
            ),
            LoadError::Invalid { path, errors } => {
                let mut first = true;
                for e in errors {
                    if !first {
                        f.write_str("\n")?;
                    }
                    first = false;
                    write!(f, "{path}: {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// Reads (regular file, capped, without blocking on a FIFO), parses and checks the inventory;
/// refuses it when it holds a secret and its mode lets group or others access it.
pub fn load(path: &Path) -> Result<Inventory, LoadError> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display().to_string();
    let (bytes, meta) =
        userfile::read_capped(path, FILE_CAP, "inventory").map_err(LoadError::Io)?;
    let invalid = |errors| LoadError::Invalid {
        path: shown.clone(),
        errors,
    };
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let at = e.valid_up_to();
        let line = 1 + bytes
            .get(..at)
            .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count());
        invalid(vec![InventoryError {
            line,
            key: "(file)".into(),
            message: "not UTF-8".into(),
        }])
    })?;
    let inv = Inventory::parse(text).map_err(invalid)?;
    let mode = meta.permissions().mode() & 0o7777;
    if inv.holds_secret() && mode & 0o077 != 0 {
        return Err(LoadError::Permissions { path: shown, mode });
    }
    Ok(inv)
}

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    1 + text
        .as_bytes()
        .get(..end)
        .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
}

/// Turns a toml/serde error into an [`InventoryError`]: the line from its span, the dotted key
/// from the text around it. Only the message is used, never toml's rendering (which quotes the
/// source line, and so could quote a password).
fn toml_error(text: &str, e: &toml::de::Error) -> InventoryError {
    let Some(span) = e.span() else {
        return InventoryError {
            line: 0,
            key: "(file)".into(),
            message: e.message().to_string(),
        };
    };
    let line = line_of(text, span.start);
    let mut key = key_at(text, span.start);
    let msg = e.message();
    if let Some(field) = backticked(msg, "missing field `") {
        key = join_key(&key, field);
    }
    let last = key.rsplit('.').next().unwrap_or(&key);
    let message = if SECRET_KEYS.contains(&last)
        && !msg.starts_with("unknown field")
        && !msg.starts_with("missing field")
        && !msg.starts_with("duplicate key")
    {
        "invalid value (a secret: not shown); expected a string".to_string()
    } else {
        msg.to_string()
    };
    InventoryError { line, key, message }
}

/// The text after `prefix` up to the next backtick, when `msg` starts with `prefix`.
fn backticked<'a>(msg: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = msg.strip_prefix(prefix)?;
    rest.split('`').next()
}

fn join_key(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else if b.is_empty() {
        a.to_string()
    } else {
        format!("{a}.{b}")
    }
}

/// Dotted key at byte `offset`: the enclosing `[table]` / `[[array]]` header, then the key of
/// the line (or of the line a multi-line value started on), then an inline-table key before the
/// offset on that line.
fn key_at(text: &str, offset: usize) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    let line_no = line_of(text, offset); // 1-based
    let line_start: usize = lines
        .iter()
        .take(line_no.saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum();
    let col = offset.saturating_sub(line_start);
    let mut header = String::new();
    let mut key = String::new();
    let mut on_error_line = true;
    for idx in (0..line_no).rev() {
        let Some(l) = lines.get(idx) else { continue };
        if let Some(h) = header_name(l) {
            header = h;
            break;
        }
        if on_error_line && l.trim_start().starts_with('[') {
            // A broken header (`[policy`): name what it was meant to open.
            let t = l.trim_start().trim_start_matches('[');
            let end = t
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
                .unwrap_or(t.len());
            return t.get(..end).unwrap_or_default().to_string();
        }
        if key.is_empty() {
            let keys = keys_on_line(l);
            let before: Vec<&(usize, String)> = if on_error_line {
                keys.iter().filter(|(c, _)| *c <= col).collect()
            } else {
                keys.iter().collect()
            };
            if let Some((_, first)) = before.first() {
                key = first.clone();
                if on_error_line {
                    if let Some((_, inner)) = before.last() {
                        if before.len() > 1 {
                            key = join_key(&key, inner);
                        }
                    }
                }
            }
        }
        on_error_line = false;
    }
    join_key(&header, &key)
}

/// `host.ssh` for `[host.ssh]`, `host` for `[[host]]`; `None` for other lines.
fn header_name(line: &str) -> Option<String> {
    let t = line.trim_start();
    let t = t.strip_prefix('[')?;
    let t = t.strip_prefix('[').unwrap_or(t);
    let end = t.find(']')?;
    let name = t.get(..end)?.trim();
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' '));
    ok.then(|| name.replace(' ', ""))
}

/// `(column, key)` of every `key =` on a line, outside strings.
fn keys_on_line(line: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    let mut in_str: Option<u8> = None;
    let mut prev: u8 = b' ';
    while let Some(&c) = bytes.get(i) {
        if let Some(q) = in_str {
            if c == b'\\' && q == b'"' {
                i += 2;
                continue;
            }
            if c == q {
                in_str = None;
            }
            prev = c;
            i += 1;
            continue;
        }
        if c == b'#' {
            break;
        }
        if c == b'"' || c == b'\'' {
            in_str = Some(c);
            prev = c;
            i += 1;
            continue;
        }
        let is_key = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.';
        if is_key(c) && matches!(prev, b' ' | b'\t' | b'{' | b',') {
            let start = i;
            while bytes.get(i).is_some_and(|&b| is_key(b)) {
                i += 1;
            }
            let mut j = i;
            while bytes.get(j).is_some_and(|&b| b == b' ' || b == b'\t') {
                j += 1;
            }
            if bytes.get(j) == Some(&b'=') && bytes.get(j + 1) != Some(&b'=') {
                if let Some(k) = line.get(start..i) {
                    out.push((start, k.to_string()));
                }
            }
            prev = bytes.get(i.saturating_sub(1)).copied().unwrap_or(b' ');
            continue;
        }
        prev = c;
        i += 1;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Raw (as parsed) form
// ---------------------------------------------------------------------------------------------

/// A secret as parsed: a string, never echoed in an error (a wrong type is reported without
/// its value).
struct SecretField(Secret);

impl<'de> Deserialize<'de> for SecretField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const WRONG: &str = "invalid value (a secret: not shown); expected a string";
        impl<'de> Visitor<'de> for V {
            type Value = SecretField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SecretField, E> {
                Ok(SecretField(Secret::new(v)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<SecretField, E> {
                Err(E::custom(WRONG))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretField, E> {
                Err(E::custom(WRONG))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretField, E> {
                Err(E::custom(WRONG))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<SecretField, E> {
                Err(E::custom(WRONG))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<SecretField, A::Error> {
                Err(de::Error::custom(WRONG))
            }
            fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<SecretField, A::Error> {
                Err(de::Error::custom(WRONG))
            }
        }
        d.deserialize_any(V)
    }
}

type SpannedList = Spanned<Vec<Spanned<String>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    policy: Option<RawPolicy>,
    #[serde(default)]
    ssh: Option<RawSsh>,
    #[serde(default)]
    bmc: Option<RawBmc>,
    #[serde(default)]
    host: Vec<Spanned<RawHost>>,
    #[serde(default)]
    vm: Vec<Spanned<RawVm>>,
    #[serde(default)]
    constraint: Vec<Spanned<RawConstraint>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    methods: Option<Spanned<Vec<Spanned<Method>>>>,
    #[serde(default)]
    scope: Option<Scope>,
    #[serde(default)]
    max_parallel: Option<Spanned<u32>>,
    #[serde(default)]
    detect_failures: Option<Spanned<u32>>,
    #[serde(default)]
    detect_interval_s: Option<Spanned<u64>>,
    #[serde(default)]
    brake_percent: Option<Spanned<u32>>,
    #[serde(default)]
    post_fence_wait_s: Option<u64>,
    #[serde(default)]
    vm_retry_limit: Option<u32>,
    #[serde(default)]
    notify_command: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSsh {
    #[serde(default)]
    username: Option<Spanned<String>>,
    #[serde(default)]
    password: Option<Spanned<SecretField>>,
    #[serde(default)]
    password_script: Option<Spanned<String>>,
    #[serde(default)]
    identity_file: Option<Spanned<String>>,
    #[serde(default)]
    known_hosts: Option<Spanned<String>>,
    #[serde(default)]
    host_key_fingerprint: Option<Spanned<String>>,
    #[serde(default)]
    port: Option<Spanned<u16>>,
    #[serde(default)]
    login_timeout_s: Option<Spanned<u64>>,
    #[serde(default)]
    shell_timeout_s: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBmc {
    #[serde(default)]
    username: Option<Spanned<String>>,
    #[serde(default)]
    password: Option<Spanned<SecretField>>,
    #[serde(default)]
    password_script: Option<Spanned<String>>,
    #[serde(default)]
    port: Option<Spanned<u16>>,
    #[serde(default)]
    cipher: Option<Spanned<u8>>,
    #[serde(default)]
    privlvl: Option<Spanned<String>>,
    #[serde(default)]
    hexadecimal_kg: Option<Spanned<SecretField>>,
    #[serde(default)]
    login_timeout_s: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: Spanned<String>,
    address: Spanned<String>,
    #[serde(default)]
    port: Option<Spanned<u16>>,
    bmc_address: Spanned<String>,
    #[serde(default)]
    bmc_port: Option<Spanned<u16>>,
    #[serde(default)]
    memory_mb: Option<Spanned<u64>>,
    #[serde(default)]
    reserve_mb: Option<u64>,
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    ssh: Option<RawSsh>,
    #[serde(default)]
    bmc: Option<RawBmc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVm {
    name: Spanned<String>,
    #[serde(default)]
    priority: Option<i32>,
    #[serde(default)]
    depends_on: Option<SpannedList>,
    #[serde(default)]
    hold: Option<bool>,
    #[serde(default)]
    managed: Option<bool>,
    #[serde(default)]
    restart: Option<Restart>,
    #[serde(default)]
    memory_mb: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConstraint {
    kind: Spanned<ConstraintKind>,
    vms: SpannedList,
    #[serde(default)]
    hosts: Option<SpannedList>,
}

// ---------------------------------------------------------------------------------------------
// Checks and conversion
// ---------------------------------------------------------------------------------------------

struct Builder {
    /// Byte offset of each line's start, for span-to-line lookups.
    line_starts: Vec<usize>,
    errors: Vec<InventoryError>,
}

fn string_of(s: Option<Spanned<String>>) -> Option<String> {
    s.map(Spanned::into_inner)
}

impl Builder {
    /// 1-based line of a span's start.
    fn line(&self, span: &Range<usize>) -> usize {
        self.line_starts
            .partition_point(|&s| s <= span.start)
            .max(1)
    }

    fn err(&mut self, span: &Range<usize>, key: &str, message: impl Into<String>) {
        let line = self.line(span);
        self.errors.push(InventoryError {
            line,
            key: key.to_string(),
            message: message.into(),
        });
    }

    fn build(&mut self, raw: RawFile) -> Inventory {
        let policy = self.policy(raw.policy);
        let ssh = raw.ssh.map(|s| self.ssh(s, "ssh")).unwrap_or_default();
        let bmc = raw.bmc.map(|b| self.bmc(b, "bmc")).unwrap_or_default();
        let mut inv = Inventory {
            policy,
            ssh,
            bmc,
            ..Inventory::default()
        };
        let mut host_names: BTreeMap<String, usize> = BTreeMap::new();
        for h in raw.host {
            let span = h.span();
            let h = h.into_inner();
            let line = self.line(&span);
            let name_span = h.name.span();
            let name = h.name.into_inner();
            self.check_name(&name_span, "host.name", &name);
            if let Some(first) = host_names.get(&name) {
                let first = *first;
                self.err(
                    &name_span,
                    "host.name",
                    format!("duplicate host {name:?} (first on line {first})"),
                );
            } else {
                host_names.insert(name.clone(), self.line(&name_span));
            }
            let address = self.non_empty(h.address, "host.address");
            let bmc_address = self.non_empty(h.bmc_address, "host.bmc_address");
            let port = h.port.map(|p| self.port(p, "host.port"));
            let bmc_port = h.bmc_port.map(|p| self.port(p, "host.bmc_port"));
            let memory_mb = h.memory_mb.map(|m| {
                if *m.get_ref() == 0 {
                    self.err(&m.span(), "host.memory_mb", "must be greater than 0");
                }
                m.into_inner()
            });
            let (ssh, ssh_port_span) = match h.ssh {
                Some(s) => {
                    let sp = s.port.as_ref().map(Spanned::span);
                    (self.ssh(s, "host.ssh"), sp)
                }
                None => (SshSettings::default(), None),
            };
            let (bmc, bmc_port_span) = match h.bmc {
                Some(b) => {
                    let sp = b.port.as_ref().map(Spanned::span);
                    (self.bmc(b, "host.bmc"), sp)
                }
                None => (BmcSettings::default(), None),
            };
            if let (Some(_), Some(sp)) = (port, ssh_port_span) {
                self.err(&sp, "host.ssh.port", "the port is given twice (host.port)");
            }
            if let (Some(_), Some(sp)) = (bmc_port, bmc_port_span) {
                self.err(
                    &sp,
                    "host.bmc.port",
                    "the port is given twice (host.bmc_port)",
                );
            }
            let host = Host {
                name,
                address,
                port,
                bmc_address,
                bmc_port,
                memory_mb,
                reserve_mb: h.reserve_mb.unwrap_or(0),
                role: h.role.unwrap_or_default(),
                ssh,
                bmc,
                line,
            };
            if inv.ssh_for(&host).username.is_empty() {
                self.err(
                    &span,
                    "host.ssh.username",
                    format!(
                        "no SSH user name for host {:?} (set [ssh] username or [host.ssh] \
                         username)",
                        host.name
                    ),
                );
            }
            inv.hosts.push(host);
        }
        if inv.hosts.is_empty() {
            self.errors.push(InventoryError {
                line: 0,
                key: "host".into(),
                message: "no [[host]] entries".into(),
            });
        }

        // VMs: names first, so references can be checked in any order.
        let mut vm_names: BTreeMap<String, usize> = BTreeMap::new();
        let mut raw_deps: Vec<Option<SpannedList>> = Vec::new();
        for v in raw.vm {
            let span = v.span();
            let v = v.into_inner();
            let name_span = v.name.span();
            let name = v.name.into_inner();
            self.check_name(&name_span, "vm.name", &name);
            if let Some(first) = vm_names.get(&name) {
                let first = *first;
                self.err(
                    &name_span,
                    "vm.name",
                    format!("duplicate VM {name:?} (first on line {first})"),
                );
            } else {
                vm_names.insert(name.clone(), self.line(&name_span));
            }
            let memory_mb = v.memory_mb.map(|m| {
                if *m.get_ref() == 0 {
                    self.err(&m.span(), "vm.memory_mb", "must be greater than 0");
                }
                m.into_inner()
            });
            raw_deps.push(v.depends_on);
            inv.vms.push(VmSettings {
                name,
                priority: v.priority.unwrap_or(0),
                depends_on: Vec::new(),
                hold: v.hold.unwrap_or(false),
                managed: v.managed.unwrap_or(true),
                restart: v.restart.unwrap_or_default(),
                memory_mb,
                line: self.line(&span),
            });
        }
        for (vm, deps) in inv.vms.iter_mut().zip(raw_deps) {
            let Some(deps) = deps else { continue };
            let mut seen = BTreeSet::new();
            for d in deps.into_inner() {
                let sp = d.span();
                let d = d.into_inner();
                if !vm_names.contains_key(&d) {
                    self.err(
                        &sp,
                        "vm.depends_on",
                        format!("unknown VM {d:?} (no [[vm]] entry has this name)"),
                    );
                } else if !seen.insert(d.clone()) {
                    self.err(&sp, "vm.depends_on", format!("{d:?} is listed twice"));
                } else {
                    vm.depends_on.push(d);
                }
            }
        }
        self.check_cycles(&inv.vms);

        for c in raw.constraint {
            let span = c.span();
            let c = c.into_inner();
            let kind_span = c.kind.span();
            let kind = c.kind.into_inner();
            let vms_span = c.vms.span();
            let vms = self.names(c.vms, "constraint.vms", "VM", "[[vm]]", &vm_names);
            let min = if kind == ConstraintKind::Pin { 1 } else { 2 };
            if vms.len() < min {
                self.err(
                    &vms_span,
                    "constraint.vms",
                    format!(
                        "a {} constraint needs at least {min} VM{}",
                        kind.as_str(),
                        if min > 1 { "s" } else { "" }
                    ),
                );
            }
            let hosts = match (kind, c.hosts) {
                (ConstraintKind::Pin, Some(h)) => {
                    let hs = h.span();
                    let list = self.names(h, "constraint.hosts", "host", "[[host]]", &host_names);
                    if list.is_empty() {
                        self.err(&hs, "constraint.hosts", "a pin needs at least one host");
                    }
                    list
                }
                (ConstraintKind::Pin, None) => {
                    self.err(&kind_span, "constraint.hosts", "a pin needs `hosts`");
                    Vec::new()
                }
                (_, Some(h)) => {
                    self.err(
                        &h.span(),
                        "constraint.hosts",
                        format!("only a pin takes hosts (this is {})", kind.as_str()),
                    );
                    Vec::new()
                }
                (_, None) => Vec::new(),
            };
            if kind == ConstraintKind::Ne && vms.len() > inv.hosts.len() && !inv.hosts.is_empty() {
                self.err(
                    &vms_span,
                    "constraint.vms",
                    format!(
                        "NE group of {} VMs needs {} hosts; the inventory has {}",
                        vms.len(),
                        vms.len(),
                        inv.hosts.len()
                    ),
                );
            }
            inv.constraints.push(Constraint {
                kind,
                vms,
                hosts,
                line: self.line(&span),
            });
        }
        self.check_eq_ne(&inv.constraints);
        inv
    }

    fn check_name(&mut self, span: &Range<usize>, key: &str, name: &str) {
        if name.trim().is_empty() {
            self.err(span, key, "must not be empty");
        } else if name.chars().any(char::is_control) {
            self.err(span, key, "must not contain control characters");
        }
    }

    fn non_empty(&mut self, s: Spanned<String>, key: &str) -> String {
        if s.get_ref().trim().is_empty() {
            self.err(&s.span(), key, "must not be empty");
        }
        s.into_inner()
    }

    fn port(&mut self, p: Spanned<u16>, key: &str) -> u16 {
        if *p.get_ref() == 0 {
            self.err(&p.span(), key, "must be 1-65535");
        }
        p.into_inner()
    }

    /// A list of names that must each exist in `known`, without duplicates.
    fn names(
        &mut self,
        list: SpannedList,
        key: &str,
        what: &str,
        table: &str,
        known: &BTreeMap<String, usize>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for n in list.into_inner() {
            let sp = n.span();
            let n = n.into_inner();
            if !known.contains_key(&n) {
                self.err(
                    &sp,
                    key,
                    format!("unknown {what} {n:?} (no {table} entry has this name)"),
                );
            } else if out.contains(&n) {
                self.err(&sp, key, format!("{n:?} is listed twice"));
            } else {
                out.push(n);
            }
        }
        out
    }

    fn policy(&mut self, raw: Option<RawPolicy>) -> Policy {
        let mut p = Policy::default();
        let Some(r) = raw else { return p };
        if let Some(m) = r.methods {
            let span = m.span();
            let mut methods = Vec::new();
            for x in m.into_inner() {
                let sp = x.span();
                let x = x.into_inner();
                if methods.contains(&x) {
                    self.err(&sp, "policy.methods", format!("{x} is listed twice"));
                } else {
                    methods.push(x);
                }
            }
            if methods.is_empty() {
                self.err(
                    &span,
                    "policy.methods",
                    "needs at least one of quick_migration, move, failover",
                );
            }
            p.methods = methods;
        }
        if let Some(s) = r.scope {
            p.scope = s;
        }
        if let Some(v) = r.max_parallel {
            p.max_parallel = self.at_least_one(v, "policy.max_parallel");
        }
        if let Some(v) = r.detect_failures {
            p.detect_failures = self.at_least_one(v, "policy.detect_failures");
        }
        if let Some(v) = r.detect_interval_s {
            if *v.get_ref() == 0 {
                self.err(&v.span(), "policy.detect_interval_s", "must be at least 1");
            }
            p.detect_interval_s = v.into_inner();
        }
        if let Some(v) = r.brake_percent {
            if *v.get_ref() > 100 {
                self.err(
                    &v.span(),
                    "policy.brake_percent",
                    format!("{} is not a percentage (0-100)", v.get_ref()),
                );
            }
            p.brake_percent = v.into_inner();
        }
        if let Some(v) = r.post_fence_wait_s {
            p.post_fence_wait_s = v;
        }
        if let Some(v) = r.vm_retry_limit {
            p.vm_retry_limit = v;
        }
        if let Some(c) = r.notify_command {
            if c.get_ref().trim().is_empty() {
                self.err(&c.span(), "policy.notify_command", "must not be empty");
            }
            p.notify_command = Some(c.into_inner());
        }
        p
    }

    fn at_least_one(&mut self, v: Spanned<u32>, key: &str) -> u32 {
        if *v.get_ref() == 0 {
            self.err(&v.span(), key, "must be at least 1");
        }
        v.into_inner()
    }

    fn ssh(&mut self, r: RawSsh, table: &str) -> SshSettings {
        if let (Some(_), Some(s)) = (&r.password, &r.password_script) {
            self.err(
                &s.span(),
                &format!("{table}.password_script"),
                "give password or password_script, not both",
            );
        }
        for (v, k) in [
            (&r.username, "username"),
            (&r.password_script, "password_script"),
            (&r.identity_file, "identity_file"),
            (&r.known_hosts, "known_hosts"),
            (&r.host_key_fingerprint, "host_key_fingerprint"),
        ] {
            if let Some(v) = v {
                if v.get_ref().trim().is_empty() {
                    self.err(&v.span(), &format!("{table}.{k}"), "must not be empty");
                }
            }
        }
        if let Some(fp) = &r.host_key_fingerprint {
            if !fp.get_ref().starts_with("SHA256:") {
                self.err(
                    &fp.span(),
                    &format!("{table}.host_key_fingerprint"),
                    "must be SHA256:… as ssh-keygen -l prints it",
                );
            }
        }
        for (v, k) in [
            (&r.login_timeout_s, "login_timeout_s"),
            (&r.shell_timeout_s, "shell_timeout_s"),
        ] {
            if let Some(v) = v {
                if *v.get_ref() == 0 {
                    self.err(&v.span(), &format!("{table}.{k}"), "must be at least 1");
                }
            }
        }
        SshSettings {
            username: string_of(r.username),
            password: r.password.map(|p| p.into_inner().0),
            password_script: string_of(r.password_script),
            identity_file: string_of(r.identity_file).map(PathBuf::from),
            known_hosts: string_of(r.known_hosts).map(PathBuf::from),
            host_key_fingerprint: string_of(r.host_key_fingerprint),
            port: r.port.map(|p| self.port(p, &format!("{table}.port"))),
            login_timeout_s: r.login_timeout_s.map(Spanned::into_inner),
            shell_timeout_s: r.shell_timeout_s.map(Spanned::into_inner),
        }
    }

    fn bmc(&mut self, r: RawBmc, table: &str) -> BmcSettings {
        if let (Some(_), Some(s)) = (&r.password, &r.password_script) {
            self.err(
                &s.span(),
                &format!("{table}.password_script"),
                "give password or password_script, not both",
            );
        }
        if let Some(s) = &r.password_script {
            if s.get_ref().trim().is_empty() {
                self.err(
                    &s.span(),
                    &format!("{table}.password_script"),
                    "must not be empty",
                );
            }
        }
        if let Some(c) = &r.cipher {
            if !CIPHER_SUITES.contains(c.get_ref()) {
                self.err(
                    &c.span(),
                    &format!("{table}.cipher"),
                    format!(
                        "cipher suite {} is not supported (use 3 or 17; also 0, 1, 2, 15, 16)",
                        c.get_ref()
                    ),
                );
            }
        }
        let privlvl = r.privlvl.and_then(|p| {
            let got = Privilege::parse(p.get_ref().trim());
            if got.is_none() {
                self.err(
                    &p.span(),
                    &format!("{table}.privlvl"),
                    format!(
                        "{:?} is not one of callback, user, operator, administrator",
                        p.get_ref()
                    ),
                );
            }
            got
        });
        let kg = r.hexadecimal_kg.map(|k| {
            let span = k.span();
            let secret = k.into_inner().0;
            if let Err(e) = parse_hex_kg(secret.expose()) {
                // parse_hex_kg's messages never contain the key.
                self.err(&span, &format!("{table}.hexadecimal_kg"), e.to_string());
            }
            secret
        });
        if let Some(v) = &r.login_timeout_s {
            if *v.get_ref() == 0 {
                self.err(
                    &v.span(),
                    &format!("{table}.login_timeout_s"),
                    "must be at least 1",
                );
            }
        }
        BmcSettings {
            username: string_of(r.username),
            password: r.password.map(|p| p.into_inner().0),
            password_script: string_of(r.password_script),
            port: r.port.map(|p| self.port(p, &format!("{table}.port"))),
            cipher: r.cipher.map(Spanned::into_inner),
            privlvl,
            hexadecimal_kg: kg,
            login_timeout_s: r.login_timeout_s.map(Spanned::into_inner),
        }
    }

    /// Reports each dependency cycle once, at the line of its first VM (by name).
    fn check_cycles(&mut self, vms: &[VmSettings]) {
        let index: BTreeMap<&str, usize> = vms
            .iter()
            .enumerate()
            .map(|(i, v)| (v.name.as_str(), i))
            .collect();
        // 0 = unvisited, 1 = on the stack, 2 = done.
        let mut state = vec![0u8; vms.len()];
        let mut order: Vec<usize> = (0..vms.len()).collect();
        order.sort_by(|&a, &b| {
            let name = |i: usize| vms.get(i).map_or("", |v| v.name.as_str());
            name(a).cmp(name(b))
        });
        let mut reported: BTreeSet<Vec<String>> = BTreeSet::new();
        for start in order {
            if state.get(start) != Some(&0) {
                continue;
            }
            // Iterative DFS: (vm, next dependency index).
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            if let Some(s) = state.get_mut(start) {
                *s = 1;
            }
            while let Some(top) = stack.last_mut() {
                let (v, next) = *top;
                let dep = vms
                    .get(v)
                    .and_then(|x| x.depends_on.get(next))
                    .and_then(|d| index.get(d.as_str()).copied());
                let has_more = vms.get(v).is_some_and(|x| next < x.depends_on.len());
                if !has_more {
                    if let Some(s) = state.get_mut(v) {
                        *s = 2;
                    }
                    stack.pop();
                    continue;
                }
                top.1 += 1;
                let Some(d) = dep else { continue };
                match state.get(d) {
                    Some(0) => {
                        if let Some(s) = state.get_mut(d) {
                            *s = 1;
                        }
                        stack.push((d, 0));
                    }
                    Some(1) => {
                        let pos = stack.iter().position(|(x, _)| *x == d).unwrap_or(0);
                        let mut cycle: Vec<String> = stack
                            .iter()
                            .skip(pos)
                            .filter_map(|(x, _)| vms.get(*x).map(|v| v.name.clone()))
                            .collect();
                        // Rotate so the smallest name leads: one report per cycle.
                        let min = cycle
                            .iter()
                            .enumerate()
                            .min_by(|a, b| a.1.cmp(b.1))
                            .map_or(0, |(i, _)| i);
                        cycle.rotate_left(min);
                        if reported.insert(cycle.clone()) {
                            let first = cycle.first().cloned().unwrap_or_default();
                            let line = vms.iter().find(|x| x.name == first).map_or(0, |x| x.line);
                            let mut path = cycle.join(" -> ");
                            path.push_str(&format!(" -> {first}"));
                            self.errors.push(InventoryError {
                                line,
                                key: "vm.depends_on".into(),
                                message: format!("dependency cycle: {path}"),
                            });
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// EQ constraints join VMs (transitively); an NE constraint may not separate two VMs so
    /// joined.
    fn check_eq_ne(&mut self, cs: &[Constraint]) {
        let mut uf = UnionFind::default();
        for c in cs.iter().filter(|c| c.kind == ConstraintKind::Eq) {
            if let Some((first, rest)) = c.vms.split_first() {
                for v in rest {
                    uf.union(first, v);
                }
            }
        }
        for c in cs.iter().filter(|c| c.kind == ConstraintKind::Ne) {
            for (i, a) in c.vms.iter().enumerate() {
                for b in c.vms.iter().skip(i + 1) {
                    if uf.find(a) == uf.find(b) {
                        self.errors.push(InventoryError {
                            line: c.line,
                            key: "constraint.vms".into(),
                            message: format!(
                                "NE keeps {a:?} and {b:?} apart but EQ keeps them together"
                            ),
                        });
                    }
                }
            }
        }
    }
}

/// Union-find over names (EQ classes).
#[derive(Default)]
pub(crate) struct UnionFind {
    parent: BTreeMap<String, String>,
}

impl UnionFind {
    /// The class representative of `x` (the smallest name of its class once joined).
    pub(crate) fn find(&mut self, x: &str) -> String {
        let mut cur = x.to_string();
        let mut path = Vec::new();
        while let Some(p) = self.parent.get(&cur) {
            if *p == cur {
                break;
            }
            path.push(cur.clone());
            cur = p.clone();
        }
        for n in path {
            self.parent.insert(n, cur.clone());
        }
        cur
    }

    /// Joins the classes of `a` and `b`; the smaller name becomes the representative.
    pub(crate) fn union(&mut self, a: &str, b: &str) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return;
        }
        let (root, child) = if ra < rb { (ra, rb) } else { (rb, ra) };
        self.parent.insert(root.clone(), root.clone());
        self.parent.insert(child, root);
    }
}

#[cfg(test)]
mod tests;
