//! The one option table, and the parsed, validated [`Options`] built from it.
//!
//! Every option an agent understands is one [`OptSpec`] row. The same rows drive argv parsing
//! (`argv.rs`, clap builder), stdin parsing (`stdin.rs`), metadata XML and the man page
//! (`metadata.rs`) and `-h` (`help.rs`). Shared rows live here, grouped by [`Feature`]; an agent
//! adds its own rows and overrides defaults in its [`AgentInfo`]. No agent mutates this table.
//!
//! Names: `name` is the canonical stdin/metadata name (`ip`); the long option is the name with
//! `_` turned into `-` (`--ip`, `--password-script`); `legacy` is the deprecated stdin name
//! (`ipaddr`) that metadata advertises with `deprecated="1"`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::protocol::agent::{AgentInfo, Feature};
use crate::protocol::secret::Secret;

/// What an option's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// On/off switch (`boolean` in metadata).
    Flag,
    /// Free text (`string`).
    Str,
    /// Whole number (`integer`).
    Int,
    /// Seconds, may be fractional (`second`).
    Second,
    /// One of a fixed list (`select`).
    Select(&'static [&'static str]),
    /// Free text that is a secret (`string` in metadata; never logged).
    Secret,
}

/// One row of the option table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptSpec {
    /// Canonical stdin/metadata name, snake_case (`ip`, `password_script`).
    pub name: &'static str,
    /// Deprecated stdin/metadata alias (`ipaddr`), if any.
    pub legacy: Option<&'static str>,
    /// Short option letter.
    pub short: Option<char>,
    /// Value kind.
    pub kind: Kind,
    /// Default value as text.
    pub default: Option<&'static str>,
    /// Required for device actions (metadata `required="1"`).
    pub required: bool,
    /// Placeholder shown in `getopt mixed` and help (`[ip]`), empty for flags.
    pub value_name: &'static str,
    /// One-line description.
    pub help: &'static str,
    /// Sort key for metadata and help (upstream's `order`).
    pub order: u16,
}

impl OptSpec {
    /// Long option name without dashes (`password-script`).
    pub fn long(&self) -> String {
        self.name.replace('_', "-")
    }

    /// True for switches.
    pub fn is_flag(&self) -> bool {
        matches!(self.kind, Kind::Flag)
    }

    /// Upstream's `getopt mixed` text: `-a, --ip=[ip]`.
    pub fn getopt_mixed(&self) -> String {
        let mut s = String::new();
        if let Some(c) = self.short {
            s.push('-');
            s.push(c);
            s.push_str(", ");
        }
        s.push_str("--");
        s.push_str(&self.long());
        if !self.is_flag() {
            s.push('=');
            s.push_str(self.value_name);
        }
        s
    }
}

/// A row with the usual defaults (not required, no legacy name), for agents' own tables.
pub const fn opt(
    name: &'static str,
    short: Option<char>,
    kind: Kind,
    default: Option<&'static str>,
    value_name: &'static str,
    help: &'static str,
    order: u16,
) -> OptSpec {
    OptSpec {
        name,
        legacy: None,
        short,
        kind,
        default,
        required: false,
        value_name,
        help,
        order,
    }
}

/// Rows every agent has.
pub static COMMON: &[OptSpec] = &[
    OptSpec {
        required: true,
        ..opt(
            "action",
            Some('o'),
            Kind::Str,
            Some("reboot"),
            "[action]",
            "Fencing action",
            1,
        )
    },
    opt("quiet", Some('q'), Kind::Flag, None, "", "Disable logging to stderr. Does not affect --verbose or --debug-file or logging to syslog.", 50),
    opt("verbose", Some('v'), Kind::Flag, None, "", "Verbose mode. Multiple -v flags can be stacked on the command line (e.g., -vvv) to increase verbosity.", 51),
    opt("verbose_level", None, Kind::Int, None, "[level]", "Level of debugging detail in output. Defaults to the number of --verbose flags specified on the command line, or to 1 if verbose=1 in a stonith device configuration (i.e., on stdin).", 52),
    OptSpec {
        legacy: Some("debug"),
        ..opt("debug_file", Some('D'), Kind::Str, None, "[debugfile]", "Write debug information to given file", 53)
    },
    opt("version", Some('V'), Kind::Flag, None, "", "Display version information and exit", 54),
    opt("help", Some('h'), Kind::Flag, None, "", "Display help and exit", 55),
    opt("delay", None, Kind::Second, Some("0"), "[seconds]", "Wait X seconds before fencing is started", 200),
    opt("disable_timeout", None, Kind::Str, None, "[true/false]", "Accepted for compatibility; fencekit keeps its own timeouts even under Pacemaker (a value of 1/true is ignored with a note in the debug log).", 200),
    opt("login_timeout", None, Kind::Second, Some("5"), "[seconds]", "Wait X seconds for the device to accept a connection and login", 200),
    opt("power_timeout", None, Kind::Second, Some("20"), "[seconds]", "Test X seconds for status change after ON/OFF", 200),
    opt("power_wait", None, Kind::Second, Some("0"), "[seconds]", "Wait X seconds after issuing ON/OFF", 200),
    opt("shell_timeout", None, Kind::Second, Some("3"), "[seconds]", "Wait X seconds for a command to complete on the device", 200),
    opt("stonith_status_sleep", None, Kind::Second, Some("1"), "[seconds]", "Sleep X seconds between status calls during a STONITH action", 200),
    opt("retry_on", None, Kind::Int, Some("1"), "[attempts]", "Count of attempts to retry power on", 201),
];

/// Rows of [`Feature::Address`].
pub static ADDRESS: &[OptSpec] = &[
    OptSpec {
        legacy: Some("ipaddr"),
        required: true,
        ..opt(
            "ip",
            Some('a'),
            Kind::Str,
            None,
            "[ip]",
            "IP address or hostname of fencing device",
            1,
        )
    },
    opt(
        "ipport",
        Some('u'),
        Kind::Int,
        None,
        "[port]",
        "TCP/UDP port to use for connection with device",
        1,
    ),
];

/// Rows of [`Feature::Login`].
pub static LOGIN: &[OptSpec] = &[OptSpec {
    legacy: Some("login"),
    required: true,
    ..opt(
        "username",
        Some('l'),
        Kind::Str,
        None,
        "[name]",
        "Login name",
        1,
    )
}];

/// Rows of [`Feature::Password`].
pub static PASSWORD: &[OptSpec] = &[
    OptSpec {
        legacy: Some("passwd"),
        ..opt(
            "password",
            Some('p'),
            Kind::Secret,
            None,
            "[password]",
            "Login password or passphrase",
            1,
        )
    },
    OptSpec {
        legacy: Some("passwd_script"),
        ..opt(
            "password_script",
            Some('S'),
            Kind::Str,
            None,
            "[script]",
            "Script to run to retrieve password",
            1,
        )
    },
];

/// Rows of [`Feature::Ssh`].
pub static SSH: &[OptSpec] = &[
    opt("identity_file", Some('k'), Kind::Str, None, "[filename]", "Identity file (private key) for SSH", 1),
    OptSpec {
        legacy: Some("secure"),
        ..opt("ssh", Some('x'), Kind::Flag, Some("1"), "", "Use SSH connection (always on; accepted for compatibility)", 1)
    },
    opt("known_hosts", None, Kind::Str, None, "[filename]", "known_hosts file used to verify the device's SSH host key (default: ~/.ssh/known_hosts, then /etc/ssh/ssh_known_hosts)", 1),
    opt("host_key_fingerprint", None, Kind::Str, None, "[SHA256:...]", "Pin the device's SSH host key by its SHA256 fingerprint instead of using known_hosts", 1),
    opt("accept_new_host_key", None, Kind::Flag, None, "", "On first contact, accept and record an unknown host key into known_hosts (a changed key is still refused)", 1),
];

/// Rows of [`Feature::Plugs`].
pub static PLUGS: &[OptSpec] = &[
    OptSpec {
        legacy: Some("port"),
        required: true,
        ..opt(
            "plug",
            Some('n'),
            Kind::Str,
            None,
            "[id]",
            "Physical plug number on device, UUID or identification of machine",
            1,
        )
    },
    opt(
        "separator",
        Some('C'),
        Kind::Str,
        Some(","),
        "[char]",
        "Separator for CSV created by 'list' operation",
        100,
    ),
    opt(
        "plug_separator",
        None,
        Kind::Str,
        Some(","),
        "[char]",
        "Separator for plug parameter when specifying more than 1 plug",
        100,
    ),
];

/// Rows of [`Feature::Sudo`].
pub static SUDO: &[OptSpec] = &[OptSpec {
    legacy: Some("sudo"),
    ..opt(
        "use_sudo",
        None,
        Kind::Flag,
        None,
        "",
        "Use sudo (without password) when calling 3rd party software",
        205,
    )
}];

/// Rows of [`Feature::Method`].
pub static METHOD: &[OptSpec] = &[opt(
    "method",
    Some('m'),
    Kind::Select(&["onoff", "cycle"]),
    Some("onoff"),
    "[method]",
    "Method to fence",
    1,
)];

/// Rows of [`Feature::MissingAsOff`].
pub static MISSING_AS_OFF: &[OptSpec] = &[opt(
    "missing_as_off",
    None,
    Kind::Flag,
    None,
    "",
    "Missing port returns OFF instead of failure",
    200,
)];

/// The full, ordered option table of an agent: common rows, feature rows, the agent's own rows,
/// with its default overrides applied. Sorted by (order, name) as upstream's metadata.
pub fn table(info: &AgentInfo) -> Vec<OptSpec> {
    let mut rows: Vec<OptSpec> = COMMON.to_vec();
    for f in info.features {
        let group: &[OptSpec] = match f {
            Feature::Address => ADDRESS,
            Feature::Login => LOGIN,
            Feature::Password => PASSWORD,
            Feature::Ssh => SSH,
            Feature::Plugs => PLUGS,
            Feature::Sudo => SUDO,
            Feature::Method => METHOD,
            Feature::MissingAsOff => MISSING_AS_OFF,
        };
        rows.extend(group.iter().cloned());
    }
    for own in info.options {
        rows.retain(|r| r.name != own.name);
        rows.push(own.clone());
    }
    for (name, default) in info.defaults {
        for r in rows.iter_mut().filter(|r| r.name == *name) {
            r.default = Some(default);
        }
    }
    rows.sort_by(|a, b| (a.order, a.name).cmp(&(b.order, b.name)));
    rows
}

/// Validated options of one invocation, keyed by canonical name.
#[derive(Clone)]
pub struct Options {
    values: BTreeMap<&'static str, String>,
    table: Vec<OptSpec>,
    password: Option<Secret>,
    verbose: u8,
    agent_name: String,
}

/// Redacts every secret row (`password`, `hexadecimal_kg`...): `{:?}` of the options must
/// never carry a secret into a log line or an error message.
impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.values {
            if self.is_secret(k) {
                m.entry(k, &"[set]");
            } else {
                m.entry(k, v);
            }
        }
        m.finish()
    }
}

impl Options {
    /// Builds options from already-resolved raw values (used by the parsers and by tests).
    pub fn new(
        agent_name: &str,
        table: Vec<OptSpec>,
        values: BTreeMap<&'static str, String>,
    ) -> Self {
        let password = values.get("password").map(|p| Secret::new(p.clone()));
        let verbose = values
            .get("verbose_level")
            .and_then(|v| v.parse::<u8>().ok())
            .or_else(|| values.get("verbose").and_then(|v| v.parse::<u8>().ok()))
            .unwrap_or(0);
        Options {
            values,
            table,
            password,
            verbose,
            agent_name: agent_name.to_string(),
        }
    }

    /// The executable's name (metadata `resource-agent@name`, syslog ident).
    pub fn agent_name(&self) -> &str {
        &self.agent_name
    }

    /// The option table in force.
    pub fn table(&self) -> &[OptSpec] {
        &self.table
    }

    fn spec(&self, name: &str) -> Option<&OptSpec> {
        self.table.iter().find(|s| s.name == name)
    }

    /// Raw value given by the user, without defaults. Never for a secret row (`password`,
    /// `hexadecimal_kg`...): those come only as [`Secret`] ([`Self::password`],
    /// [`Self::secret`]); [`Self::is_given`] says whether one was given.
    pub fn given(&self, name: &str) -> Option<&str> {
        if self.is_secret(name) {
            return None;
        }
        self.values.get(name).map(String::as_str)
    }

    /// Whether the user gave this option (secret rows included).
    pub fn is_given(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// A secret row's value, wrapped so that it cannot be printed.
    pub fn secret(&self, name: &str) -> Option<Secret> {
        if !self.is_secret(name) {
            return None;
        }
        self.values.get(name).map(|v| Secret::new(v.clone()))
    }

    fn is_secret(&self, name: &str) -> bool {
        name == "password"
            || self
                .table
                .iter()
                .any(|s| s.name == name && matches!(s.kind, Kind::Secret))
    }

    /// Value given by the user, else the table default. Never for secrets.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.given(name)
            .or_else(|| self.spec(name).and_then(|s| s.default))
    }

    /// A flag: given `1`, else the default (`1` means on).
    pub fn flag(&self, name: &str) -> bool {
        if name == "verbose" {
            return self.verbose > 0;
        }
        self.get(name) == Some("1")
    }

    /// Seconds as a duration (values were validated when parsed; 0 when absent).
    pub fn secs(&self, name: &str) -> Duration {
        self.get(name)
            .and_then(parse_secs)
            .map(Duration::from_secs_f64)
            .unwrap_or(Duration::ZERO)
    }

    /// Whole number (validated when parsed; `None` when absent).
    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(|v| v.trim().parse::<i64>().ok())
    }

    /// The password, after `password_script` (which wins) was run.
    pub fn password(&self) -> Option<&Secret> {
        self.password.as_ref()
    }

    /// Sets a value as if the user had given it (`name` must be a canonical name of the table;
    /// used for fence_ipmilan's `port_as_ip`, where the plug becomes the address).
    pub fn set(&mut self, name: &'static str, value: impl Into<String>) {
        self.values.insert(name, value.into());
    }

    /// Replaces the password (used after running `password_script`).
    pub fn set_password(&mut self, secret: Secret) {
        self.password = Some(secret);
    }

    /// Verbosity level (0 = quiet debug).
    pub fn verbose(&self) -> u8 {
        self.verbose
    }

    /// The action, lower-cased, `meta-data` folded into `metadata`.
    pub fn action(&self) -> String {
        let a = self.get("action").unwrap_or("reboot").to_ascii_lowercase();
        if a == "meta-data" {
            "metadata".into()
        } else {
            a
        }
    }

    /// The raw plug value (may hold several plugs joined by `plug_separator`).
    pub fn plug(&self) -> Option<&str> {
        self.given("plug")
    }

    /// The plugs, split on `plug_separator`.
    pub fn plugs(&self) -> Vec<String> {
        let sep = self.get("plug_separator").unwrap_or(",");
        match self.plug() {
            None => Vec::new(),
            Some(p) if sep.is_empty() => vec![p.to_string()],
            Some(p) => p
                .split(sep)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    /// `ip` (the device address).
    pub fn ip(&self) -> Option<&str> {
        self.given("ip")
    }

    /// `username`.
    pub fn username(&self) -> Option<&str> {
        self.given("username")
    }

    /// `login_timeout` as a duration.
    pub fn login_timeout(&self) -> Duration {
        self.secs("login_timeout")
    }

    /// `shell_timeout` as a duration.
    pub fn shell_timeout(&self) -> Duration {
        self.secs("shell_timeout")
    }

    /// `power_timeout` as a duration.
    pub fn power_timeout(&self) -> Duration {
        self.secs("power_timeout")
    }
}

/// Longest time option accepted, in seconds (a day).
pub const MAX_SECS: f64 = 86_400.0;

/// A time option's value: finite seconds from 0 to [`MAX_SECS`]; `None` otherwise. The one
/// parser behind validation and [`Options::secs`].
pub fn parse_secs(v: &str) -> Option<f64> {
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite() && (0.0..=MAX_SECS).contains(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let mut v = BTreeMap::new();
        v.insert("password", "hunter2".to_string());
        v.insert("ip", "127.0.0.1".to_string());
        let table = [COMMON, ADDRESS, PASSWORD].concat();
        let o = Options::new("fence_t", table, v);
        let text = format!("{o:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("127.0.0.1"));
    }

    #[test]
    fn secret_rows_only_come_as_secrets() {
        let mut v = BTreeMap::new();
        v.insert("password", "hunter2".to_string());
        v.insert("hexadecimal_kg", "abcd".to_string());
        let kg = opt("hexadecimal_kg", None, Kind::Secret, None, "[key]", "Kg", 1);
        let table = [COMMON, PASSWORD, &[kg]].concat();
        let o = Options::new("fence_t", table, v);
        for name in ["password", "hexadecimal_kg"] {
            assert_eq!(o.given(name), None, "{name}");
            assert_eq!(o.get(name), None, "{name}");
            assert!(o.is_given(name), "{name}");
        }
        assert_eq!(o.secret("hexadecimal_kg").unwrap().expose(), "abcd");
        assert_eq!(o.password().unwrap().expose(), "hunter2");
        assert!(o.secret("plug").is_none());
    }
}
