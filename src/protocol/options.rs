//! The one option table, and the parsed, validated [`Options`] built from it.
//!
//! Every option an agent understands is one [`OptSpec`] row. The same rows drive argv parsing
//! (`argv.rs`, clap builder), stdin parsing (`stdin.rs`), metadata XML and the man page
//! (`metadata.rs`) and `-h` (also `metadata.rs`). Shared rows live here as named constants
//! (`IP`, `PLUG`...), grouped by [`Feature`]; an agent adds its own rows and overrides defaults
//! in its [`AgentInfo`]. No agent mutates this table.
//!
//! A row reads as a sentence, built with [`opt`]:
//! `opt("ip").legacy("ipaddr").short('a').required().value("[ip]").help("...")`.
//!
//! A row is also the typed handle its value is read with: `opts.get(&IP)`, `opts.flag(&USE_SUDO)`;
//! [`Options`] has no lookup by string, so a misspelled option name does not compile.
//!
//! Names: `name` is the canonical stdin/metadata name (`ip`); the long option is the name with
//! `_` turned into `-` (`--ip`, `--password-script`); `legacy` is the deprecated stdin name
//! (`ipaddr`) that metadata advertises with `deprecated="1"`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::protocol::action::Action;
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
    /// Required for device actions (metadata `required="1"`); validation enforces it.
    pub required: bool,
    /// Actions for which a required row may be left out (`plug` for `list`, `monitor`...).
    pub optional_for: &'static [Action],
    /// Placeholder shown in `getopt mixed` and help (`[ip]`), empty for flags.
    pub value_name: &'static str,
    /// One-line description.
    pub help: &'static str,
    /// Sort key for metadata and help (upstream's `order`).
    pub order: u16,
    /// Accepted for compatibility with a fence-agents peer and ignored: a migrated device may
    /// carry it (pcs refuses unknown names without `--force`), and giving it only leaves one
    /// debug line ([`Options::ignored_given`]). The help says why it is ignored.
    pub ignored: bool,
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

/// Starts a row: a text option named `name` with no short letter, no default, not required,
/// sorted with upstream's default order (1). Read a row as a sentence:
/// `opt("ip").legacy("ipaddr").short('a').required().value("[ip]").help("...")`.
pub const fn opt(name: &'static str) -> OptSpec {
    OptSpec {
        name,
        legacy: None,
        short: None,
        kind: Kind::Str,
        default: None,
        required: false,
        optional_for: &[],
        value_name: "",
        help: "",
        order: 1,
        ignored: false,
    }
}

impl OptSpec {
    /// Its deprecated stdin/metadata alias (`ipaddr` for `ip`).
    pub const fn legacy(mut self, name: &'static str) -> Self {
        self.legacy = Some(name);
        self
    }

    /// Its short option letter (`-a`).
    pub const fn short(mut self, letter: char) -> Self {
        self.short = Some(letter);
        self
    }

    /// An on/off switch (`boolean` in metadata).
    pub const fn flag(mut self) -> Self {
        self.kind = Kind::Flag;
        self
    }

    /// A whole number (`integer`).
    pub const fn int(mut self) -> Self {
        self.kind = Kind::Int;
        self
    }

    /// Seconds, may be fractional (`second`).
    pub const fn seconds(mut self) -> Self {
        self.kind = Kind::Second;
        self
    }

    /// One of `choices` (`select`).
    pub const fn select(mut self, choices: &'static [&'static str]) -> Self {
        self.kind = Kind::Select(choices);
        self
    }

    /// A secret: never logged, never returned as plain text.
    pub const fn secret(mut self) -> Self {
        self.kind = Kind::Secret;
        self
    }

    /// Its default value, as text.
    pub const fn default(mut self, value: &'static str) -> Self {
        self.default = Some(value);
        self
    }

    /// Required for device actions (metadata `required="1"`; validation enforces it).
    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Not needed by these actions even though required by the others (`list` needs no plug).
    pub const fn optional_for(mut self, actions: &'static [Action]) -> Self {
        self.optional_for = actions;
        self
    }

    /// Its value placeholder in `-h` and `getopt mixed` (`[ip]`).
    pub const fn value(mut self, placeholder: &'static str) -> Self {
        self.value_name = placeholder;
        self
    }

    /// Its one-line description.
    pub const fn help(mut self, text: &'static str) -> Self {
        self.help = text;
        self
    }

    /// Its sort key in metadata and `-h` (upstream's `order`).
    pub const fn order(mut self, order: u16) -> Self {
        self.order = order;
        self
    }

    /// Accepted for compatibility and ignored (one debug line when given); `help` says why.
    pub const fn ignored(mut self) -> Self {
        self.ignored = true;
        self
    }
}

/// The `action` row.
pub const ACTION: OptSpec = opt("action")
    .short('o')
    .default("reboot")
    .required()
    .value("[action]")
    .help("Fencing action");

/// The `quiet` row.
pub const QUIET: OptSpec = opt("quiet")
    .short('q')
    .flag()
    .help("Disable logging to stderr. Does not affect --verbose or --debug-file or logging to syslog.")
    .order(50);

/// The `verbose` row.
pub const VERBOSE: OptSpec = opt("verbose")
    .short('v')
    .flag()
    .help("Verbose mode. Multiple -v flags can be stacked on the command line (e.g., -vvv) to increase verbosity.")
    .order(51);

/// The `verbose_level` row.
pub const VERBOSE_LEVEL: OptSpec = opt("verbose_level")
    .int()
    .value("[level]")
    .help("Level of debugging detail in output. Defaults to the number of --verbose flags specified on the command line, or to 1 if verbose=1 in a stonith device configuration (i.e., on stdin).")
    .order(52);

/// The `debug_file` row.
pub const DEBUG_FILE: OptSpec = opt("debug_file")
    .legacy("debug")
    .short('D')
    .value("[debugfile]")
    .help("Write debug information to given file")
    .order(53);

/// The `version` row.
pub const VERSION: OptSpec = opt("version")
    .short('V')
    .flag()
    .help("Display version information and exit")
    .order(54);

/// The `help` row.
pub const HELP: OptSpec = opt("help")
    .short('h')
    .flag()
    .help("Display help and exit")
    .order(55);

/// The `delay` row.
pub const DELAY: OptSpec = opt("delay")
    .seconds()
    .default("0")
    .value("[seconds]")
    .help("Wait X seconds before fencing is started")
    .order(200);

/// The `disable_timeout` row.
pub const DISABLE_TIMEOUT: OptSpec = opt("disable_timeout")
    .value("[true/false]")
    .help("Accepted for compatibility; fencekit keeps its own timeouts even under Pacemaker (a value of 1/true is ignored with a note in the debug log).")
    .order(200);

/// The `login_timeout` row.
pub const LOGIN_TIMEOUT: OptSpec = opt("login_timeout")
    .seconds()
    .default("5")
    .value("[seconds]")
    .help("Wait X seconds for the device to accept a connection and login")
    .order(200);

/// The `power_timeout` row.
pub const POWER_TIMEOUT: OptSpec = opt("power_timeout")
    .seconds()
    .default("20")
    .value("[seconds]")
    .help("Test X seconds for status change after ON/OFF")
    .order(200);

/// The `power_wait` row.
pub const POWER_WAIT: OptSpec = opt("power_wait")
    .seconds()
    .default("0")
    .value("[seconds]")
    .help("Wait X seconds after issuing ON/OFF")
    .order(200);

/// The `shell_timeout` row.
pub const SHELL_TIMEOUT: OptSpec = opt("shell_timeout")
    .seconds()
    .default("3")
    .value("[seconds]")
    .help("Wait X seconds for a command to complete on the device")
    .order(200);

/// The `stonith_status_sleep` row.
pub const STONITH_STATUS_SLEEP: OptSpec = opt("stonith_status_sleep")
    .seconds()
    .default("1")
    .value("[seconds]")
    .help("Sleep X seconds between status calls during a STONITH action")
    .order(200);

/// The `retry_on` row.
pub const RETRY_ON: OptSpec = opt("retry_on")
    .int()
    .default("1")
    .value("[attempts]")
    .help("Count of attempts to retry power on")
    .order(201);

// IPMI rows (fence_bmc's, read by the IPMI transport and by validation).

/// The `lanplus` row (IPMI 2.0 RMCP+; 0 selects IPMI 1.5).
pub const LANPLUS: OptSpec = opt("lanplus")
    .short('P')
    .flag()
    .default("1")
    .help("Use Lanplus (IPMI 2.0 RMCP+) to improve security of connection; lanplus=0 selects IPMI 1.5 with MD5 authentication");

/// The `cipher` row (RMCP+ cipher suite).
pub const CIPHER: OptSpec = opt("cipher")
    .short('C')
    .value("[cipher]")
    .help("Ciphersuite to use (same as ipmitool -C parameter); default: the strongest suite both ends support, of 17, 3, 16 and 2 in that order. Suites 0, 1 and 15 (no integrity code) only when given here, with a warning");

/// The `privlvl` row (session privilege level).
pub const PRIVLVL: OptSpec = opt("privlvl")
    .short('L')
    .select(&["callback", "user", "operator", "administrator"])
    .default("administrator")
    .value("[level]")
    .help("Privilege level on IPMI device");

/// The `hexadecimal_kg` row (the BMC key Kg, a secret).
pub const HEXADECIMAL_KG: OptSpec = opt("hexadecimal_kg")
    .secret()
    .value("[key]")
    .help("Hexadecimal-encoded Kg key for IPMIv2 authentication");

/// The `port_as_ip` row (the plug is the address).
pub const PORT_AS_IP: OptSpec = opt("port_as_ip")
    .flag()
    .help("Make \"port/plug\" to be an alias to IP address")
    .order(200);

/// Rows every agent has.
pub static COMMON_ROWS: &[OptSpec] = &[
    ACTION,
    QUIET,
    VERBOSE,
    VERBOSE_LEVEL,
    DEBUG_FILE,
    VERSION,
    HELP,
    DELAY,
    DISABLE_TIMEOUT,
    LOGIN_TIMEOUT,
    POWER_TIMEOUT,
    POWER_WAIT,
    SHELL_TIMEOUT,
    STONITH_STATUS_SLEEP,
    RETRY_ON,
];

/// The `ip` row.
pub const IP: OptSpec = opt("ip")
    .legacy("ipaddr")
    .short('a')
    .required()
    .value("[ip]")
    .help("IP address or hostname of fencing device");

/// The `ipport` row.
pub const IPPORT: OptSpec = opt("ipport")
    .short('u')
    .int()
    .value("[port]")
    .help("TCP/UDP port to use for connection with device");

/// Rows of [`Feature::Address`].
pub static ADDRESS_ROWS: &[OptSpec] = &[IP, IPPORT];

/// The `username` row.
pub const USERNAME: OptSpec = opt("username")
    .legacy("login")
    .short('l')
    .required()
    .value("[name]")
    .help("Login name");

/// Rows of [`Feature::Login`].
pub static LOGIN_ROWS: &[OptSpec] = &[USERNAME];

/// The `password` row.
pub const PASSWORD: OptSpec = opt("password")
    .legacy("passwd")
    .short('p')
    .secret()
    .value("[password]")
    .help("Login password or passphrase");

/// The `password_script` row.
pub const PASSWORD_SCRIPT: OptSpec = opt("password_script")
    .legacy("passwd_script")
    .short('S')
    .value("[script]")
    .help("Script to run to retrieve password");

/// Rows of [`Feature::Password`].
pub static PASSWORD_ROWS: &[OptSpec] = &[PASSWORD, PASSWORD_SCRIPT];

/// The `identity_file` row.
pub const IDENTITY_FILE: OptSpec = opt("identity_file")
    .short('k')
    .value("[filename]")
    .help("Identity file (private key) for SSH");

/// The `ssh` row.
pub const SSH: OptSpec = opt("ssh")
    .legacy("secure")
    .short('x')
    .flag()
    .default("1")
    .help("Use SSH connection (always on; accepted for compatibility)");

/// The `known_hosts` row.
pub const KNOWN_HOSTS: OptSpec = opt("known_hosts")
    .value("[filename]")
    .help("known_hosts file used to verify the device's SSH host key (default: ~/.ssh/known_hosts, then /etc/ssh/ssh_known_hosts)");

/// The `host_key_fingerprint` row.
pub const HOST_KEY_FINGERPRINT: OptSpec = opt("host_key_fingerprint")
    .value("[SHA256:...]")
    .help("Pin the device's SSH host key by its SHA256 fingerprint instead of using known_hosts");

/// The `accept_new_host_key` row.
pub const ACCEPT_NEW_HOST_KEY: OptSpec = opt("accept_new_host_key")
    .flag()
    .help("On first contact, accept and record an unknown host key into known_hosts (a changed key is still refused)");

/// The `command_prompt` row (fence-agents' expect prompt): accepted and ignored.
pub const COMMAND_PROMPT: OptSpec = opt("command_prompt")
    .legacy("cmd_prompt")
    .short('c')
    .value("[prompt]")
    .help("Accepted for compatibility with fence_virsh and fence_ESXi and ignored: commands run on an SSH exec channel, no prompt is matched")
    .ignored();

/// The `ssh_options` row: accepted and ignored.
pub const SSH_OPTIONS: OptSpec = opt("ssh_options")
    .value("[options]")
    .help("Accepted for compatibility with fence-agents and ignored: no ssh client is run (host keys are always verified; see known_hosts, host_key_fingerprint)")
    .ignored();

/// The `ssh_path` row: accepted and ignored.
pub const SSH_PATH: OptSpec = opt("ssh_path")
    .value("[path]")
    .help("Accepted for compatibility with fence-agents and ignored: SSH is built in, no ssh binary is run")
    .order(300)
    .ignored();

/// The `inet4_only` row: accepted and ignored.
pub const INET4_ONLY: OptSpec = opt("inet4_only")
    .short('4')
    .flag()
    .help("Accepted for compatibility with fence-agents and ignored: every address the name resolves to is tried; give an IPv4 address to use IPv4 only")
    .ignored();

/// The `inet6_only` row: accepted and ignored.
pub const INET6_ONLY: OptSpec = opt("inet6_only")
    .short('6')
    .flag()
    .help("Accepted for compatibility with fence-agents and ignored: every address the name resolves to is tried; give an IPv6 address to use IPv6 only")
    .ignored();

/// Rows of [`Feature::Ssh`]: the SSH settings, then fence-agents' ssh-client rows that a
/// device migrated from fence_virsh or fence_ESXi may carry (accepted and ignored).
pub static SSH_ROWS: &[OptSpec] = &[
    IDENTITY_FILE,
    SSH,
    KNOWN_HOSTS,
    HOST_KEY_FINGERPRINT,
    ACCEPT_NEW_HOST_KEY,
    COMMAND_PROMPT,
    SSH_OPTIONS,
    SSH_PATH,
    INET4_ONLY,
    INET6_ONLY,
];

/// The `plug` row.
pub const PLUG: OptSpec = opt("plug")
    .legacy("port")
    .short('n')
    .required()
    .optional_for(&[Action::List, Action::ListStatus, Action::Monitor])
    .value("[id]")
    .help("Physical plug number on device, UUID or identification of machine");

/// The `separator` row.
pub const SEPARATOR: OptSpec = opt("separator")
    .short('C')
    .default(",")
    .value("[char]")
    .help("Separator for CSV created by 'list' operation")
    .order(100);

/// The `plug_separator` row.
pub const PLUG_SEPARATOR: OptSpec = opt("plug_separator")
    .default(",")
    .value("[char]")
    .help("Separator for plug parameter when specifying more than 1 plug")
    .order(100);

/// Rows of [`Feature::Plugs`].
pub static PLUGS_ROWS: &[OptSpec] = &[PLUG, SEPARATOR, PLUG_SEPARATOR];

/// The `use_sudo` row.
pub const USE_SUDO: OptSpec = opt("use_sudo")
    .legacy("sudo")
    .flag()
    .help("Use sudo (without password) when calling 3rd party software")
    .order(205);

/// The `sudo_path` row: accepted and ignored (the remote `sudo -n` is found through PATH).
pub const SUDO_PATH: OptSpec = opt("sudo_path")
    .value("[path]")
    .help("Accepted for compatibility with fence-agents and ignored: sudo is run as `sudo -n`, found through the login's PATH")
    .order(300)
    .ignored();

/// Rows of [`Feature::Sudo`].
pub static SUDO_ROWS: &[OptSpec] = &[USE_SUDO, SUDO_PATH];

/// fence_ipmilan's `use_sudo`/`sudo` for an agent that starts no program: accepted and ignored.
pub const USE_SUDO_IGNORED: OptSpec = opt("use_sudo")
    .legacy("sudo")
    .flag()
    .help("Accepted for compatibility with fence_ipmilan and ignored: no program (ipmitool) is started, so there is nothing to run through sudo")
    .order(205)
    .ignored();

/// fence_ipmilan's `sudo_path` for an agent that starts no program: accepted and ignored.
pub const SUDO_PATH_IGNORED: OptSpec = opt("sudo_path")
    .value("[path]")
    .help("Accepted for compatibility with fence_ipmilan and ignored: no program is started through sudo")
    .order(300)
    .ignored();

/// `plug_separator` for an agent with one target per device: accepted and ignored.
pub const PLUG_SEPARATOR_IGNORED: OptSpec = opt("plug_separator")
    .value("[char]")
    .help("Accepted for compatibility with fence_ipmilan and ignored: a device fences one machine, its plug is never split")
    .order(100)
    .ignored();

/// The old (C) fence_ipmilan's `timeout`: accepted and ignored.
pub const TIMEOUT_IGNORED: OptSpec = opt("timeout")
    .value("[seconds]")
    .help("Accepted for compatibility with older fence_ipmilan and ignored: use login_timeout, power_timeout and shell_timeout")
    .order(200)
    .ignored();

/// Rows a device migrated from fence_ipmilan may carry that fence_bmc has no use for.
pub static IPMILAN_IGNORED_ROWS: &[OptSpec] = &[
    USE_SUDO_IGNORED,
    SUDO_PATH_IGNORED,
    PLUG_SEPARATOR_IGNORED,
    TIMEOUT_IGNORED,
];

/// fence_vmware_soap's `ssl` row: accepted and ignored.
pub const SSL_IGNORED: OptSpec = opt("ssl")
    .short('z')
    .flag()
    .help("Accepted for compatibility with fence_vmware_soap and ignored: the host is reached over SSH, not HTTPS")
    .ignored();

/// fence_vmware_soap's `ssl_secure` row: accepted and ignored.
pub const SSL_SECURE_IGNORED: OptSpec = opt("ssl_secure")
    .flag()
    .help("Accepted for compatibility with fence_vmware_soap and ignored: the host is reached over SSH (its host key is verified)")
    .ignored();

/// fence_vmware_soap's `ssl_insecure` row: accepted and ignored.
pub const SSL_INSECURE_IGNORED: OptSpec = opt("ssl_insecure")
    .flag()
    .help("Accepted for compatibility with fence_vmware_soap and ignored: the host is reached over SSH and its host key is always verified")
    .ignored();

/// fence_vmware_soap's `notls` row: accepted and ignored.
pub const NOTLS_IGNORED: OptSpec = opt("notls")
    .short('t')
    .flag()
    .help("Accepted for compatibility with fence_vmware_soap and ignored: no TLS is used (SSH)")
    .ignored();

/// fence_vmware_soap's `gnutlscli_path` row: accepted and ignored.
pub const GNUTLSCLI_PATH_IGNORED: OptSpec = opt("gnutlscli_path")
    .value("[path]")
    .help("Accepted for compatibility with fence_vmware_soap and ignored: no gnutls-cli is run")
    .order(300)
    .ignored();

/// Rows a device migrated from fence_vmware_soap may carry that an SSH agent has no use for.
pub static VMWARE_SOAP_IGNORED_ROWS: &[OptSpec] = &[
    SSL_IGNORED,
    SSL_SECURE_IGNORED,
    SSL_INSECURE_IGNORED,
    NOTLS_IGNORED,
    GNUTLSCLI_PATH_IGNORED,
];

/// The `method` row.
pub const METHOD: OptSpec = opt("method")
    .short('m')
    .select(&["onoff", "cycle"])
    .default("onoff")
    .value("[method]")
    .help("Method to fence");

/// Rows of [`Feature::Method`].
pub static METHOD_ROWS: &[OptSpec] = &[METHOD];

/// The `missing_as_off` row.
pub const MISSING_AS_OFF: OptSpec = opt("missing_as_off")
    .flag()
    .help("Missing port returns OFF instead of failure")
    .order(200);

/// Rows of [`Feature::MissingAsOff`].
pub static MISSING_AS_OFF_ROWS: &[OptSpec] = &[MISSING_AS_OFF];

/// The full, ordered option table of an agent: common rows, feature rows, the agent's own rows
/// (an own row replaces the shared row of the same name), with its default overrides applied.
/// Sorted by (order, name) as upstream's metadata.
///
/// Refused, naming the culprit: two own rows with one name, a short letter or a stdin name
/// (canonical or legacy) used by two rows, and a default override for a row that does not exist.
pub fn table(info: &AgentInfo) -> Result<Vec<OptSpec>, String> {
    let mut rows: Vec<OptSpec> = COMMON_ROWS.to_vec();
    for f in info.features {
        let group: &[OptSpec] = match f {
            Feature::Address => ADDRESS_ROWS,
            Feature::Login => LOGIN_ROWS,
            Feature::Password => PASSWORD_ROWS,
            Feature::Ssh => SSH_ROWS,
            Feature::Plugs => PLUGS_ROWS,
            Feature::Sudo => SUDO_ROWS,
            Feature::Method => METHOD_ROWS,
            Feature::MissingAsOff => MISSING_AS_OFF_ROWS,
        };
        rows.extend(group.iter().cloned());
    }
    let mut own_names = std::collections::BTreeSet::new();
    for own in info.options {
        if !own_names.insert(own.name) {
            return Err(format!(
                "{}: option '{}' is defined twice",
                info.name, own.name
            ));
        }
        rows.retain(|r| r.name != own.name);
        rows.push(own.clone());
    }
    for (name, default) in info.defaults {
        let mut found = false;
        for r in rows.iter_mut().filter(|r| r.name == *name) {
            r.default = Some(default);
            found = true;
        }
        if !found {
            return Err(format!(
                "{}: default given for unknown option '{name}'",
                info.name
            ));
        }
    }
    let mut names = BTreeMap::new();
    let mut shorts = BTreeMap::new();
    for r in &rows {
        for n in std::iter::once(r.name).chain(r.legacy) {
            if let Some(other) = names.insert(n, r.name) {
                return Err(format!(
                    "{}: stdin name '{n}' is used by options '{other}' and '{}'",
                    info.name, r.name
                ));
            }
        }
        if let Some(c) = r.short {
            if let Some(other) = shorts.insert(c, r.name) {
                return Err(format!(
                    "{}: short option -{c} is used by options '{other}' and '{}'",
                    info.name, r.name
                ));
            }
        }
    }
    rows.sort_by(|a, b| (a.order, a.name).cmp(&(b.order, b.name)));
    Ok(rows)
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
    pub fn given(&self, row: &OptSpec) -> Option<&str> {
        if self.is_secret(row.name) {
            return None;
        }
        self.values.get(row.name).map(String::as_str)
    }

    /// Whether the user gave this option (secret rows included).
    pub fn is_given(&self, row: &OptSpec) -> bool {
        self.values.contains_key(row.name)
    }

    /// A secret row's value, wrapped so that it cannot be printed.
    pub fn secret(&self, row: &OptSpec) -> Option<Secret> {
        if !self.is_secret(row.name) {
            return None;
        }
        self.values.get(row.name).map(|v| Secret::new(v.clone()))
    }

    fn is_secret(&self, name: &str) -> bool {
        name == "password"
            || self
                .table
                .iter()
                .any(|s| s.name == name && matches!(s.kind, Kind::Secret))
    }

    /// Value given by the user, else the table default. Never for secrets.
    pub fn get(&self, row: &OptSpec) -> Option<&str> {
        self.given(row)
            .or_else(|| self.spec(row.name).and_then(|s| s.default))
    }

    /// A flag: given `1`, else the default (`1` means on).
    pub fn flag(&self, row: &OptSpec) -> bool {
        if row.name == VERBOSE.name {
            return self.verbose > 0;
        }
        self.get(row) == Some("1")
    }

    /// Seconds as a duration (values were validated when parsed; 0 when absent).
    pub fn secs(&self, row: &OptSpec) -> Duration {
        self.get(row)
            .and_then(parse_secs)
            .map(Duration::from_secs_f64)
            .unwrap_or(Duration::ZERO)
    }

    /// Whole number (validated when parsed; `None` when absent).
    pub fn int(&self, row: &OptSpec) -> Option<i64> {
        self.get(row).and_then(|v| v.trim().parse::<i64>().ok())
    }

    /// The password, after `password_script` (which wins) was run.
    pub fn password(&self) -> Option<&Secret> {
        self.password.as_ref()
    }

    /// Sets a value as if the user had given it (`row` must be a row of the table;
    /// used for fence_ipmilan's `port_as_ip`, where the plug becomes the address).
    pub fn set(&mut self, row: &OptSpec, value: impl Into<String>) {
        self.values.insert(row.name, value.into());
    }

    /// Replaces the password (used after running `password_script`).
    pub fn set_password(&mut self, secret: Secret) {
        self.password = Some(secret);
    }

    /// Verbosity level (0 = quiet debug).
    pub fn verbose(&self) -> u8 {
        self.verbose
    }

    /// The action, parsed (default `reboot`); `None` for an empty or unknown word, a usage
    /// error reported with [`Self::action_word`].
    pub fn action(&self) -> Option<Action> {
        Action::parse(self.action_word())
    }

    /// The action as the caller wrote it (default `reboot`), for messages only.
    pub fn action_word(&self) -> &str {
        self.get(&ACTION).unwrap_or("reboot")
    }

    /// The ignored rows (accepted for compatibility) that were given, by canonical name.
    pub fn ignored_given(&self) -> Vec<&'static str> {
        self.table
            .iter()
            .filter(|s| s.ignored && self.values.contains_key(s.name))
            .map(|s| s.name)
            .collect()
    }

    /// The raw plug value (may hold several plugs joined by `plug_separator`).
    pub fn plug(&self) -> Option<&str> {
        self.given(&PLUG)
    }

    /// The plugs, split on `plug_separator`.
    pub fn plugs(&self) -> Vec<String> {
        let sep = self.get(&PLUG_SEPARATOR).unwrap_or(",");
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
        self.given(&IP)
    }

    /// `username`.
    pub fn username(&self) -> Option<&str> {
        self.given(&USERNAME)
    }

    /// `login_timeout` as a duration.
    pub fn login_timeout(&self) -> Duration {
        self.secs(&LOGIN_TIMEOUT)
    }

    /// `shell_timeout` as a duration.
    pub fn shell_timeout(&self) -> Duration {
        self.secs(&SHELL_TIMEOUT)
    }

    /// `power_timeout` as a duration.
    pub fn power_timeout(&self) -> Duration {
        self.secs(&POWER_TIMEOUT)
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
        let table = [COMMON_ROWS, ADDRESS_ROWS, PASSWORD_ROWS].concat();
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
        let kg = opt("hexadecimal_kg").secret().value("[key]").help("Kg");
        let table = [COMMON_ROWS, PASSWORD_ROWS, &[kg]].concat();
        let o = Options::new("fence_t", table, v);
        for row in [PASSWORD, HEXADECIMAL_KG] {
            assert_eq!(o.given(&row), None, "{}", row.name);
            assert_eq!(o.get(&row), None, "{}", row.name);
            assert!(o.is_given(&row), "{}", row.name);
        }
        assert_eq!(o.secret(&HEXADECIMAL_KG).unwrap().expose(), "abcd");
        assert_eq!(o.password().unwrap().expose(), "hunter2");
        assert!(o.secret(&PLUG).is_none());
    }

    fn info_with(
        options: &'static [OptSpec],
        defaults: &'static [(&'static str, &'static str)],
    ) -> AgentInfo {
        AgentInfo {
            name: "fence_t",
            shortdesc: "",
            longdesc: "",
            vendor_url: "",
            features: &[Feature::Address, Feature::Plugs],
            options,
            defaults,
            has_list: false,
            has_diag: false,
            needs_password: false,
        }
    }

    #[test]
    fn table_refuses_duplicates() {
        static TWICE: &[OptSpec] = &[opt("x"), opt("x")];
        let e = table(&info_with(TWICE, &[])).unwrap_err();
        assert_eq!(e, "fence_t: option 'x' is defined twice");
        static SHORT_A: &[OptSpec] = &[opt("extra").short('a')];
        let e = table(&info_with(SHORT_A, &[])).unwrap_err();
        assert!(e.contains("short option -a is used by options"), "{e}");
        assert!(e.contains("'ip'") && e.contains("'extra'"), "{e}");
        static LEGACY: &[OptSpec] = &[opt("extra").legacy("port")];
        let e = table(&info_with(LEGACY, &[])).unwrap_err();
        assert!(e.contains("stdin name 'port' is used by options"), "{e}");
        let e = table(&info_with(&[], &[("nosuch", "1")])).unwrap_err();
        assert_eq!(e, "fence_t: default given for unknown option 'nosuch'");
    }

    #[test]
    fn ignored_rows_say_so_and_are_reported_when_given() {
        let groups: [&[OptSpec]; 4] = [
            SSH_ROWS,
            SUDO_ROWS,
            IPMILAN_IGNORED_ROWS,
            VMWARE_SOAP_IGNORED_ROWS,
        ];
        let mut n = 0;
        for row in groups.concat().iter().filter(|r| r.ignored) {
            n += 1;
            assert!(row.help.contains("and ignored"), "{}", row.name);
            assert!(!row.required && row.default.is_none(), "{}", row.name);
            assert!(!matches!(row.kind, Kind::Secret), "{}", row.name);
        }
        assert_eq!(n, 15);
        let mut v = BTreeMap::new();
        v.insert("ssh_options", "-2".to_string());
        v.insert("identity_file", "/k".to_string());
        v.insert("cmd_prompt_is_not_a_row", "x".to_string());
        let o = Options::new("fence_t", [COMMON_ROWS, SSH_ROWS].concat(), v);
        assert_eq!(o.ignored_given(), ["ssh_options"]);
    }

    #[test]
    fn own_row_replaces_shared_row() {
        static OWN: &[OptSpec] = &[opt("ipport").short('u').int().default("22")];
        let t = table(&info_with(OWN, &[("power_wait", "2")])).unwrap();
        let port = t.iter().find(|r| r.name == "ipport").unwrap();
        assert_eq!(port.default, Some("22"));
        assert_eq!(t.iter().filter(|r| r.name == "ipport").count(), 1);
        let wait = t.iter().find(|r| r.name == "power_wait").unwrap();
        assert_eq!(wait.default, Some("2"));
    }
}
