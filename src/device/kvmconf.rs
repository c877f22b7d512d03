//! `kvmguests.conf`: the map of KVM guests to their hosts (PRIMECLUSTER format).
//!
//! One guest per line, fields separated by spaces:
//!
//! ```text
//! guest-name host-cfname guest-clustername guest-cfname guest_IP guest_user guest_passwd
//! ```
//!
//! Rules enforced by [`parse`] (every problem is reported with its 1-based line number, and
//! **all** problems are collected, so `validate-all` can print them in one go):
//!
//! - blank lines and comment lines (first non-blank character `#`) are ignored;
//! - fields are separated by one or more spaces or tabs; exactly 7 fields per line;
//! - names (`guest-name`, `host-cfname`, `guest-clustername`, `guest-cfname`, `guest_user`)
//!   use only `[A-Za-z0-9_.-]` and are at most [`MAX_FIELD`] bytes long;
//! - `guest_IP` is an IPv4 or IPv6 address, never IPv6 link-local (`fe80::/10`);
//! - `guest_passwd` is opaque (PRIMECLUSTER stores it encrypted): printable ASCII without
//!   spaces. It is kept as a [`Secret`] and never appears in an error message. Because a
//!   mis-ordered line can put the password in any column, an error about a line's own field
//!   never quotes that field's value (at most the one character a name column refuses);
//!   only names that passed every check of a sound line are quoted (duplicates, ambiguity);
//! - `guest-name` and `guest-cfname` are each unique, and a `guest-cfname` may not equal the
//!   `guest-name` of *another* line (the plug would be ambiguous);
//! - a carriage return (CRLF file) or any other control / non-ASCII character is an error.
//!
//! Every duplicate and ambiguity check is a hash lookup: a map of 100,000 lines is checked in
//! linear time.
//!
//! [`load`] reads at most [`MAX_CONF_BYTES`] (through `protocol::userfile`: a regular file,
//! opened without blocking) and refuses a map that someone other than root or the running user
//! could read, change or replace: a file that group or others may read or write
//! (`mode & 0o077`), a file owned by another user, or a file under a directory (any directory
//! of its path, before and after resolving symbolic links) that is owned by another user or is
//! writable by group or others. A directory others may write is accepted only when it is
//! sticky (like `/tmp`) and the entry in it belongs to root or the running user: then only
//! they can rename or remove that entry. `relax_conf_permissions` turns these refusals into
//! warnings.
//!
//! [`parse_hosts`] parses the agent's `hosts` option (`cfhost1=127.0.0.1:2222,cfhost2=[::1]`),
//! which maps host-cfnames to SSH addresses because the map itself carries none.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::device::virsh;
use crate::protocol::error::FenceError;
use crate::protocol::secret::Secret;

/// Longest accepted field, in bytes.
pub const MAX_FIELD: usize = 255;

/// Largest map read (16 MiB: a line is at most about 100 bytes, so over 150,000 guests).
pub const MAX_CONF_BYTES: u64 = 16 << 20;

/// PRIMECLUSTER's default location of the map.
pub const DEFAULT_PATH: &str = "/etc/opt/FJSVcluster/etc/kvmguests.conf";

/// Names of the seven columns, in file order.
pub const FIELD_NAMES: [&str; 7] = [
    "guest-name",
    "host-cfname",
    "guest-clustername",
    "guest-cfname",
    "guest_IP",
    "guest_user",
    "guest_passwd",
];

/// One guest line of the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestEntry {
    /// 1-based line number in the file.
    pub line: usize,
    /// libvirt domain name.
    pub guest_name: String,
    /// CF name of the host the guest is mapped to (may be stale after a migration).
    pub host_cfname: String,
    /// Name of the guest cluster.
    pub guest_clustername: String,
    /// CF node name of the guest (what Pacemaker calls the node).
    pub guest_cfname: String,
    /// Guest address (IPv4 or IPv6, never link-local).
    pub guest_ip: IpAddr,
    /// Guest login user.
    pub guest_user: String,
    /// Guest password (encrypted in PRIMECLUSTER; opaque here).
    pub guest_passwd: Secret,
}

/// What is wrong with one line (or the file as a whole, line 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfErrorKind {
    /// Not exactly seven fields.
    FieldCount {
        /// Fields found.
        found: usize,
    },
    /// `guest_IP` is not an IP address. Its text is not quoted: on a mis-ordered line it may
    /// be the password.
    BadIp,
    /// `guest_IP` is IPv6 link-local.
    LinkLocal(String),
    /// `guest-name` already used on `first_line`.
    DuplicateGuestName {
        /// The duplicated name.
        name: String,
        /// Line of the first occurrence.
        first_line: usize,
    },
    /// `guest-cfname` already used on `first_line`.
    DuplicateGuestCfname {
        /// The duplicated name.
        name: String,
        /// Line of the first occurrence.
        first_line: usize,
    },
    /// `guest-cfname` equals the `guest-name` of another line.
    Ambiguous {
        /// The ambiguous name.
        name: String,
        /// The other line.
        other_line: usize,
    },
    /// A field holds a character outside its allowed set (the character is shown, except
    /// for `guest_passwd`).
    BadChar {
        /// Column name.
        field: &'static str,
        /// The offending character, `None` for the password column.
        ch: Option<char>,
    },
    /// `guest-name` is all digits or shaped like a UUID: virsh would read it as a domain ID
    /// or UUID and could act on another domain. Not quoted (an encrypted password swapped into
    /// this column is hex and can look like a UUID).
    NameLikeId,
    /// A field is longer than [`MAX_FIELD`] bytes.
    TooLong {
        /// Column name.
        field: &'static str,
    },
    /// A carriage return (file saved with CRLF line endings).
    CarriageReturn,
    /// The line is not valid UTF-8.
    NotUtf8,
    /// The file holds no guest line at all.
    Empty,
}

/// One problem found in the map, with its line number (0 = the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfError {
    /// 1-based line number, 0 for whole-file problems.
    pub line: usize,
    /// The problem.
    pub kind: ConfErrorKind,
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: ", self.line)?;
        }
        match &self.kind {
            ConfErrorKind::FieldCount { found } => {
                write!(
                    f,
                    "expected 7 fields ({}), found {found}",
                    FIELD_NAMES.join(" ")
                )
            }
            ConfErrorKind::BadIp => f.write_str(
                "guest_IP (column 5) is not an IPv4 or IPv6 address (value not shown: on a \
mis-ordered line it could be the password)",
            ),
            ConfErrorKind::LinkLocal(s) => {
                write!(
                    f,
                    "guest_IP '{s}' is IPv6 link-local (fe80::/10), not allowed"
                )
            }
            ConfErrorKind::DuplicateGuestName { name, first_line } => {
                write!(
                    f,
                    "duplicate guest-name '{name}' (first on line {first_line})"
                )
            }
            ConfErrorKind::DuplicateGuestCfname { name, first_line } => {
                write!(
                    f,
                    "duplicate guest-cfname '{name}' (first on line {first_line})"
                )
            }
            ConfErrorKind::Ambiguous { name, other_line } => write!(
                f,
                "guest-cfname '{name}' is the guest-name of line {other_line} (ambiguous plug)"
            ),
            ConfErrorKind::BadChar { field, ch: Some(c) } => {
                write!(f, "invalid character '{}' in {field}", c.escape_default())
            }
            ConfErrorKind::BadChar { field, ch: None } => {
                write!(
                    f,
                    "invalid character in {field} (printable ASCII without spaces only)"
                )
            }
            ConfErrorKind::NameLikeId => f.write_str(
                "guest-name (column 1) is all digits or shaped like a UUID: virsh reads it as a \
domain ID or UUID (it could select another domain): rename the guest",
            ),
            ConfErrorKind::TooLong { field } => {
                write!(f, "{field} is longer than {MAX_FIELD} bytes")
            }
            ConfErrorKind::CarriageReturn => {
                write!(
                    f,
                    "carriage return found (CRLF line endings are not allowed)"
                )
            }
            ConfErrorKind::NotUtf8 => write!(f, "invalid character (not UTF-8)"),
            ConfErrorKind::Empty => write!(f, "no guest entries"),
        }
    }
}

impl std::error::Error for ConfError {}

/// Errors of [`load`]: the file could not be read, is too open, or does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// Reading the file failed (message includes the path).
    Io(String),
    /// Someone other than root or the running user could read, change or replace the file
    /// (one message per problem), and the check was not relaxed.
    Permissions(Vec<String>),
    /// The content has problems (all of them).
    Parse(Vec<ConfError>),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io(s) => f.write_str(s),
            LoadError::Permissions(problems) => f.write_str(&problems.join("; ")),
            LoadError::Parse(errs) => {
                let mut first = true;
                for e in errs {
                    if !first {
                        f.write_str("; ")?;
                    }
                    first = false;
                    write!(f, "{e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for LoadError {}

impl LoadError {
    /// One line per problem, for `validate-all` (each prefixed by the path).
    pub fn lines(&self, path: &str) -> Vec<String> {
        match self {
            LoadError::Parse(errs) => errs.iter().map(|e| format!("{path}: {e}")).collect(),
            LoadError::Permissions(problems) => problems.clone(),
            LoadError::Io(_) => vec![self.to_string()],
        }
    }
}

impl From<LoadError> for FenceError {
    fn from(e: LoadError) -> Self {
        FenceError::Usage(format!("kvmguests.conf: {e}"))
    }
}

/// The parsed map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvmGuests {
    entries: Vec<GuestEntry>,
}

impl KvmGuests {
    /// All entries, in file order.
    pub fn entries(&self) -> &[GuestEntry] {
        &self.entries
    }

    /// The entry for a plug: by `guest-cfname` first, then by `guest-name`.
    pub fn find(&self, plug: &str) -> Option<&GuestEntry> {
        self.entries
            .iter()
            .find(|e| e.guest_cfname == plug)
            .or_else(|| self.entries.iter().find(|e| e.guest_name == plug))
    }

    /// Distinct host-cfnames in file order.
    pub fn all_hosts(&self) -> Vec<&str> {
        let mut seen: HashSet<&str> = HashSet::new();
        self.entries
            .iter()
            .map(|e| e.host_cfname.as_str())
            .filter(|h| seen.insert(h))
            .collect()
    }

    /// Distinct host-cfnames to search for `entry`: its mapped host first, then every other
    /// host of the map in file order.
    pub fn hosts<'a>(&'a self, entry: &'a GuestEntry) -> Vec<&'a str> {
        let first = entry.host_cfname.as_str();
        std::iter::once(first)
            .chain(self.all_hosts().into_iter().filter(|h| *h != first))
            .collect()
    }
}

fn name_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-'
}

fn check_name(field: &'static str, s: &str, line: usize, errs: &mut Vec<ConfError>) -> bool {
    if s.len() > MAX_FIELD {
        errs.push(ConfError {
            line,
            kind: ConfErrorKind::TooLong { field },
        });
        return false;
    }
    if let Some(c) = s.chars().find(|c| !name_char_ok(*c)) {
        errs.push(ConfError {
            line,
            kind: ConfErrorKind::BadChar { field, ch: Some(c) },
        });
        return false;
    }
    true
}

fn check_passwd(s: &str, line: usize, errs: &mut Vec<ConfError>) -> bool {
    if s.len() > MAX_FIELD {
        errs.push(ConfError {
            line,
            kind: ConfErrorKind::TooLong {
                field: "guest_passwd",
            },
        });
        return false;
    }
    if s.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
        errs.push(ConfError {
            line,
            kind: ConfErrorKind::BadChar {
                field: "guest_passwd",
                ch: None,
            },
        });
        return false;
    }
    true
}

fn check_ip(s: &str, line: usize, errs: &mut Vec<ConfError>) -> Option<IpAddr> {
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) if (v6.segments().first().copied().unwrap_or(0) & 0xffc0) == 0xfe80 => {
            // A valid link-local address: safe to quote (it parsed as an address).
            errs.push(ConfError {
                line,
                kind: ConfErrorKind::LinkLocal(v6.to_string()),
            });
            None
        }
        Ok(ip) => Some(ip),
        Err(_) => {
            errs.push(ConfError {
                line,
                kind: ConfErrorKind::BadIp,
            });
            None
        }
    }
}

/// Parses one line's fields; pushes problems into `errs`.
fn parse_line(text: &str, line: usize, errs: &mut Vec<ConfError>) -> Option<GuestEntry> {
    if text.contains('\r') {
        errs.push(ConfError {
            line,
            kind: ConfErrorKind::CarriageReturn,
        });
        return None;
    }
    let fields: Vec<&str> = text.split([' ', '\t']).filter(|f| !f.is_empty()).collect();
    let [gname, host, cluster, cfname, ip, user, passwd] = fields.as_slice() else {
        errs.push(ConfError {
            line,
            kind: ConfErrorKind::FieldCount {
                found: fields.len(),
            },
        });
        return None;
    };
    let before = errs.len();
    if check_name("guest-name", gname, line, errs) && virsh::looks_like_id_or_uuid(gname) {
        errs.push(ConfError {
            line,
            kind: ConfErrorKind::NameLikeId,
        });
    }
    check_name("host-cfname", host, line, errs);
    check_name("guest-clustername", cluster, line, errs);
    check_name("guest-cfname", cfname, line, errs);
    let ip = check_ip(ip, line, errs);
    check_name("guest_user", user, line, errs);
    check_passwd(passwd, line, errs);
    let ip = ip?;
    if errs.len() != before {
        return None;
    }
    Some(GuestEntry {
        line,
        guest_name: (*gname).to_owned(),
        host_cfname: (*host).to_owned(),
        guest_clustername: (*cluster).to_owned(),
        guest_cfname: (*cfname).to_owned(),
        guest_ip: ip,
        guest_user: (*user).to_owned(),
        guest_passwd: Secret::new(*passwd),
    })
}

/// Parses the map from text. Returns every problem found (in line order) on failure.
pub fn parse(text: &str) -> Result<KvmGuests, Vec<ConfError>> {
    parse_bytes(text.as_bytes())
}

/// Parses the map from raw bytes (lines that are not UTF-8 are errors, not panics).
pub fn parse_bytes(bytes: &[u8]) -> Result<KvmGuests, Vec<ConfError>> {
    let mut errs: Vec<ConfError> = Vec::new();
    let mut entries: Vec<GuestEntry> = Vec::new();
    // Line of the first entry with each guest-name / guest-cfname (hash lookups: linear).
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut by_cfname: HashMap<String, usize> = HashMap::new();
    for (idx, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = idx.saturating_add(1);
        let Ok(text) = std::str::from_utf8(raw) else {
            errs.push(ConfError {
                line,
                kind: ConfErrorKind::NotUtf8,
            });
            continue;
        };
        let trimmed = text.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if trimmed.trim_end_matches([' ', '\t']).is_empty() {
            continue;
        }
        let Some(entry) = parse_line(text, line, &mut errs) else {
            continue;
        };
        if let Some(&first_line) = by_name.get(&entry.guest_name) {
            errs.push(ConfError {
                line,
                kind: ConfErrorKind::DuplicateGuestName {
                    name: entry.guest_name.clone(),
                    first_line,
                },
            });
            continue;
        }
        if let Some(&first_line) = by_cfname.get(&entry.guest_cfname) {
            errs.push(ConfError {
                line,
                kind: ConfErrorKind::DuplicateGuestCfname {
                    name: entry.guest_cfname.clone(),
                    first_line,
                },
            });
            continue;
        }
        by_name.insert(entry.guest_name.clone(), line);
        by_cfname.insert(entry.guest_cfname.clone(), line);
        entries.push(entry);
    }
    // Cross-line ambiguity: a cfname that is another line's guest-name (or vice versa).
    for e in &entries {
        if let Some(&other_line) = by_name.get(&e.guest_cfname) {
            if other_line != e.line {
                errs.push(ConfError {
                    line: e.line,
                    kind: ConfErrorKind::Ambiguous {
                        name: e.guest_cfname.clone(),
                        other_line,
                    },
                });
            }
        }
    }
    if entries.is_empty() && errs.is_empty() {
        errs.push(ConfError {
            line: 0,
            kind: ConfErrorKind::Empty,
        });
    }
    if errs.is_empty() {
        Ok(KvmGuests { entries })
    } else {
        errs.sort_by_key(|e| e.line);
        Err(errs)
    }
}

/// Problems of the map file itself: its permission bits (`mode & 0o077`: a password file
/// only root or its owner may read) and its owner (root or `euid`).
pub fn file_problems(path: &str, uid: u32, mode: u32, euid: u32) -> Vec<String> {
    let mode = mode & 0o7777;
    let mut out = Vec::new();
    if mode & 0o077 != 0 {
        out.push(format!(
            "{path}: mode {mode:04o} is accessible by group or others (must be 0600 or stricter)"
        ));
    }
    if uid != 0 && uid != euid {
        out.push(format!(
            "{path}: owned by uid {uid}, not by root or the running user (uid {euid})"
        ));
    }
    out
}

/// The problem of one directory on the map's path, if any: `dir` (owner `uid`, bits `mode`)
/// holds the entry `child`, owned by `child_uid`. A directory owned by someone else, or
/// writable by group or others, lets them replace the entry, unless it is sticky and the
/// entry belongs to root or `euid` (then only those, and the directory's owner, may rename
/// or remove it).
pub fn dir_problem(
    dir: &str,
    uid: u32,
    mode: u32,
    child_uid: Option<u32>,
    euid: u32,
) -> Option<String> {
    let mine = |u: u32| u == 0 || u == euid;
    if !mine(uid) {
        return Some(format!(
            "directory {dir}: owned by uid {uid}, not by root or the running user (uid {euid}): \
its owner could replace the map"
        ));
    }
    let mode = mode & 0o7777;
    if mode & 0o022 != 0 && !(mode & 0o1000 != 0 && child_uid.is_some_and(mine)) {
        return Some(format!(
            "directory {dir}: mode {mode:04o} is writable by group or others: the map could \
be replaced"
        ));
    }
    None
}

/// Checks every directory of `path` (its ancestors as written, and those of its resolved
/// form): see [`dir_problem`]. `seen` skips pairs already checked.
fn path_problems(
    path: &Path,
    euid: u32,
    seen: &mut HashSet<(PathBuf, PathBuf)>,
    out: &mut Vec<String>,
) {
    let chain: Vec<&Path> = path.ancestors().collect();
    for pair in chain.windows(2) {
        let [child, dir] = pair else {
            continue;
        };
        if dir.as_os_str().is_empty() || !seen.insert((dir.to_path_buf(), child.to_path_buf())) {
            continue;
        }
        let shown = dir.display().to_string();
        match std::fs::metadata(dir) {
            Ok(m) => {
                // The entry itself (a symbolic link is judged by its own owner).
                let child_uid = std::fs::symlink_metadata(child).ok().map(|c| c.uid());
                if let Some(p) = dir_problem(&shown, m.uid(), m.mode(), child_uid, euid) {
                    out.push(p);
                }
            }
            Err(e) => out.push(format!(
                "directory {shown}: cannot check: {}",
                crate::protocol::error::io_words(&e)
            )),
        }
    }
}

/// Reads (at most [`MAX_CONF_BYTES`], a regular file opened without blocking), checks who
/// could read, change or replace it (see the module documentation) and parses the map.
/// Returns the map and the warnings of a relaxed check.
pub fn load(path: &Path, relax_permissions: bool) -> Result<(KvmGuests, Vec<String>), LoadError> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display().to_string();
    let (bytes, meta) = crate::protocol::userfile::read_capped(path, MAX_CONF_BYTES, "guests_conf")
        .map_err(LoadError::Io)?;
    let euid = nix::unistd::geteuid().as_raw();
    let mut problems = file_problems(&shown, meta.uid(), meta.permissions().mode(), euid);
    let mut seen = HashSet::new();
    match std::path::absolute(path) {
        Ok(abs) => path_problems(&abs, euid, &mut seen, &mut problems),
        Err(e) => problems.push(format!(
            "{shown}: cannot resolve: {}",
            crate::protocol::error::io_words(&e)
        )),
    }
    match std::fs::canonicalize(path) {
        Ok(real) => path_problems(&real, euid, &mut seen, &mut problems),
        Err(e) => problems.push(format!(
            "{shown}: cannot resolve: {}",
            crate::protocol::error::io_words(&e)
        )),
    }
    let mut warnings = Vec::new();
    if !problems.is_empty() {
        if relax_permissions {
            warnings.extend(problems.into_iter().map(|p| format!("warning: {p}")));
        } else {
            return Err(LoadError::Permissions(problems));
        }
    }
    let map = parse_bytes(&bytes).map_err(LoadError::Parse)?;
    Ok((map, warnings))
}

/// One entry of the `hosts` option: where to reach a host-cfname by SSH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddr {
    /// Host CF name (as in the map's `host-cfname` column).
    pub cfname: String,
    /// Optional login user (`cfhost1=admin@10.0.0.1`).
    pub user: Option<String>,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port, when given.
    pub port: Option<u16>,
}

impl HostAddr {
    /// `host:port` for connecting (IPv6 bracketed), using `default_port` when none was given.
    pub fn socket_string(&self, default_port: u16) -> String {
        let port = self.port.unwrap_or(default_port);
        if self.host.contains(':') {
            format!("[{}]:{port}", self.host)
        } else {
            format!("{}:{port}", self.host)
        }
    }
}

fn host_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_'
}

fn parse_port(s: &str, shown: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(format!("hosts: bad port in '{shown}'")),
    }
}

fn parse_host_item(item: &str) -> Result<HostAddr, String> {
    // Quoted in errors: shortened, control characters blanked (a `\n` or ESC in the option
    // must not forge a log line).
    let shown = crate::protocol::error::excerpt(item);
    let Some((cfname, addr)) = item.split_once('=') else {
        return Err(format!("hosts: '{shown}' is not cfname=address[:port]"));
    };
    let cfname = cfname.trim();
    let addr = addr.trim();
    if cfname.is_empty() || !cfname.chars().all(name_char_ok) || cfname.len() > MAX_FIELD {
        return Err(format!("hosts: bad host cfname in '{shown}'"));
    }
    let (user, hostport) = match addr.rsplit_once('@') {
        Some((u, rest)) => {
            if u.is_empty() || !u.chars().all(name_char_ok) {
                return Err(format!("hosts: bad user in '{shown}'"));
            }
            (Some(u.to_owned()), rest)
        }
        None => (None, addr),
    };
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Err(format!("hosts: missing ']' in '{shown}'"));
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("hosts: bad IPv6 address in '{shown}'"));
        }
        let port = match after {
            "" => None,
            p => match p.strip_prefix(':') {
                Some(p) => Some(parse_port(p, &shown)?),
                None => return Err(format!("hosts: junk after ']' in '{shown}'")),
            },
        };
        (v6.to_owned(), port)
    } else if hostport.matches(':').count() > 1 {
        return Err(format!(
            "hosts: IPv6 address must be in brackets ([addr]:port) in '{shown}'"
        ));
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h.to_owned(), Some(parse_port(p, &shown)?)),
            None => (hostport.to_owned(), None),
        }
    };
    if host.is_empty() {
        return Err(format!("hosts: empty address in '{shown}'"));
    }
    if !host.contains(':') && !host.chars().all(host_char_ok) {
        return Err(format!("hosts: bad address in '{shown}'"));
    }
    Ok(HostAddr {
        cfname: cfname.to_owned(),
        user,
        host,
        port,
    })
}

/// Parses the `hosts` option: comma-separated `cfname=[user@]address[:port]` items
/// (`[v6addr]:port` for IPv6). Returns every problem on failure; duplicates are errors.
pub fn parse_hosts(value: &str) -> Result<Vec<HostAddr>, Vec<String>> {
    let mut out: Vec<HostAddr> = Vec::new();
    let mut errs = Vec::new();
    for item in value.split(',').map(str::trim) {
        if item.is_empty() {
            continue;
        }
        match parse_host_item(item) {
            Ok(h) => {
                if out.iter().any(|o| o.cfname == h.cfname) {
                    errs.push(format!("hosts: duplicate host cfname '{}'", h.cfname));
                } else {
                    out.push(h);
                }
            }
            Err(e) => errs.push(e),
        }
    }
    if out.is_empty() && errs.is_empty() {
        errs.push("hosts: empty".to_owned());
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// Looks a host-cfname up in a parsed `hosts` list.
pub fn lookup_host<'a>(hosts: &'a [HostAddr], cfname: &str) -> Option<&'a HostAddr> {
    hosts.iter().find(|h| h.cfname == cfname)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "# map\n\
        guest11 cfhost1 cluster1 cfguest11 10.20.30.50 user1 D0860AB04E1B8FA3\n\
        \n\
        guest12 cfhost2 cluster1 cfguest12 2001:db8::12 user1 s3cr3t+/=\n";

    #[test]
    fn parses_good_file() {
        let m = parse(GOOD).unwrap();
        assert_eq!(m.entries().len(), 2);
        let e = m.find("cfguest12").unwrap();
        assert_eq!(e.line, 4);
        assert_eq!(e.guest_name, "guest12");
        assert_eq!(e.guest_passwd.expose(), "s3cr3t+/=");
        assert_eq!(m.find("guest11").unwrap().guest_cfname, "cfguest11");
        assert!(m.find("nosuch").is_none());
        assert_eq!(m.hosts(e), vec!["cfhost2", "cfhost1"]);
        assert_eq!(m.all_hosts(), vec!["cfhost1", "cfhost2"]);
    }

    #[test]
    fn debug_redacts_password() {
        let m = parse(GOOD).unwrap();
        let s = format!("{m:?}");
        assert!(!s.contains("D0860AB04E1B8FA3"), "{s}");
        assert!(s.contains("[set]"));
    }

    #[test]
    fn collects_all_errors_with_lines() {
        let text = "g1 h1 c1 cf1 10.0.0.1 u p\n\
            g2 h1 c1 cf2 10.0.0.2 u\n\
            g3 h1 c1 cf3 fe80::1 u p\n\
            g4 h1 c1 cf4 999.1.1.1 u p\n\
            g1 h2 c1 cf5 10.0.0.5 u p\n\
            g6 h2 c1 cf1 10.0.0.6 u p\n\
            g7 h$ c1 cf7 10.0.0.7 u p\n\
            g8 h2 c1 cf8 10.0.0.8 u pa\u{7f}ss\n\
            g9 h2 c1 cf9 10.0.0.9 u p\r\n";
        let errs = parse(text).unwrap_err();
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6, 7, 8, 9]);
        assert!(matches!(
            errs[0].kind,
            ConfErrorKind::FieldCount { found: 6 }
        ));
        assert!(matches!(errs[1].kind, ConfErrorKind::LinkLocal(_)));
        assert!(matches!(errs[2].kind, ConfErrorKind::BadIp));
        assert!(matches!(
            errs[3].kind,
            ConfErrorKind::DuplicateGuestName { first_line: 1, .. }
        ));
        assert!(matches!(
            errs[4].kind,
            ConfErrorKind::DuplicateGuestCfname { first_line: 1, .. }
        ));
        assert!(matches!(
            errs[5].kind,
            ConfErrorKind::BadChar {
                field: "host-cfname",
                ch: Some('$')
            }
        ));
        assert!(matches!(
            errs[6].kind,
            ConfErrorKind::BadChar {
                field: "guest_passwd",
                ch: None
            }
        ));
        assert!(matches!(errs[7].kind, ConfErrorKind::CarriageReturn));
        assert_eq!(errs[0].to_string().get(..8), Some("line 2: "));
    }

    #[test]
    fn guest_names_virsh_would_read_as_id_or_uuid() {
        for bad in [
            "12",
            "0",
            "0b1cbc9e-94d6-4f0f-a1f0-0123456789ab",
            "0b1cbc9e94d64f0fa1f00123456789ab",
        ] {
            let errs = parse(&format!("{bad} h c cf 10.0.0.1 u p\n")).unwrap_err();
            assert!(
                matches!(&errs[0].kind, ConfErrorKind::NameLikeId),
                "{bad}: {errs:?}"
            );
            let text = errs[0].to_string();
            assert!(text.contains("domain ID or UUID"), "{text}");
            assert!(!text.contains(bad), "{text}");
        }
        // Digits among letters, or a hex string of another length: ordinary names.
        for ok in [
            "guest12",
            "12a",
            "deadbeef",
            "0b1cbc9e-94d6-4f0f-a1f0-0123456789",
        ] {
            assert!(
                parse(&format!("{ok} h c cf 10.0.0.1 u p\n")).is_ok(),
                "{ok}"
            );
        }
    }

    #[test]
    fn link_local_range_is_fe80_slash_10() {
        assert!(parse("g h c cf febf::1 u p\n").is_err());
        assert!(parse("g h c cf fec0::1 u p\n").is_ok());
        assert!(parse("g h c cf fe80::1%eth0 u p\n").is_err());
        assert!(parse("g h c cf ::1 u p\n").is_ok());
    }

    #[test]
    fn ambiguous_cross_line_names() {
        let errs = parse("a h c b 10.0.0.1 u p\nb h c d 10.0.0.2 u p\n").unwrap_err();
        assert!(matches!(
            errs[0].kind,
            ConfErrorKind::Ambiguous { other_line: 2, .. }
        ));
        // Same name in both columns of one line is fine.
        assert!(parse("a h c a 10.0.0.1 u p\n").is_ok());
    }

    #[test]
    fn empty_and_comments_only() {
        assert!(matches!(
            parse("# nothing\n\n   \n").unwrap_err()[0].kind,
            ConfErrorKind::Empty
        ));
        assert!(parse("  # indented comment\ng h c cf 1.2.3.4 u p").is_ok());
    }

    #[test]
    fn password_never_in_messages() {
        let errs = parse("g h c cf 1.2.3.4 u sécret\n").unwrap_err();
        let s: String = errs.iter().map(ToString::to_string).collect();
        assert!(!s.contains("sécret") && !s.contains('é'), "{s}");
    }

    #[test]
    fn not_utf8_is_error() {
        let errs = parse_bytes(b"g h c cf 1.2.3.4 u \xff\n").unwrap_err();
        assert!(matches!(errs[0].kind, ConfErrorKind::NotUtf8));
    }

    #[test]
    fn mode_and_owner_check() {
        assert!(file_problems("f", 0, 0o100600, 0).is_empty());
        assert!(file_problems("f", 0, 0o400, 1000).is_empty());
        assert!(file_problems("f", 1000, 0o600, 1000).is_empty());
        assert_eq!(file_problems("f", 0, 0o644, 0).len(), 1);
        assert_eq!(file_problems("f", 0, 0o602, 0).len(), 1);
        let p = file_problems("f", 0, 0o640, 0);
        assert!(p[0].contains("0640"), "{p:?}");
        let p = file_problems("f", 1001, 0o600, 1000);
        assert!(p[0].contains("owned by uid 1001"), "{p:?}");
        assert_eq!(file_problems("f", 1001, 0o666, 0).len(), 2);
    }

    #[test]
    fn directory_check() {
        // Private directories of root or the running user.
        assert_eq!(dir_problem("/etc", 0, 0o40755, Some(0), 1000), None);
        assert_eq!(dir_problem("/home/u", 1000, 0o700, Some(1000), 1000), None);
        // Someone else's directory: its owner could swap the map.
        let p = dir_problem("/home/x", 1001, 0o755, Some(0), 0).unwrap();
        assert!(p.contains("owned by uid 1001"), "{p}");
        // Group or other writable: refused...
        for mode in [0o775, 0o757, 0o777] {
            let p = dir_problem("/srv", 0, mode, Some(0), 0).unwrap();
            assert!(p.contains("writable by group or others"), "{p}");
        }
        // ...unless sticky and the entry is ours (as /tmp/dir owned by root).
        assert_eq!(dir_problem("/tmp", 0, 0o41777, Some(0), 0), None);
        assert_eq!(dir_problem("/tmp", 0, 0o1777, Some(1000), 1000), None);
        assert!(dir_problem("/tmp", 0, 0o1777, Some(1001), 1000).is_some());
        assert!(dir_problem("/tmp", 0, 0o1777, None, 0).is_some());
    }

    #[test]
    fn misordered_line_never_quotes_the_password() {
        let pw = "Sekr1t-Pw9";
        let hexpw = "0b1cbc9e94d64f0fa1f00123456789ab";
        for line in [
            // password and guest_IP swapped
            format!("guest13 cfhost1 cluster1 cfguest13 {pw} user1 10.0.0.13\n"),
            // password in guest_IP, guest_user missing
            format!("guest13 cfhost1 cluster1 cfguest13 {pw} 10.0.0.13\n"),
            // an encrypted (hex) password swapped into guest-name: looks like a UUID
            format!("{hexpw} cfhost1 cluster1 cfguest13 10.0.0.13 user1 guest13\n"),
            format!("guest13 cfhost1 cluster1 cfguest13 {hexpw} user1 10.0.0.13\n"),
            format!("guest13 {pw} cluster1 cfguest13 10.0.0.13 user1 10.0.0.13 x\n"),
        ] {
            let errs = parse(&line).unwrap_err();
            let text: String = errs.iter().map(|e| format!("{e}\n")).collect();
            assert!(!errs.is_empty());
            assert!(!text.contains(pw) && !text.contains(hexpw), "{text}");
        }
    }

    #[test]
    fn a_hundred_thousand_lines_are_checked_in_linear_time() {
        let n = 100_000;
        let mut text = String::with_capacity(n * 64);
        for i in 0..n {
            let host = i % 8;
            text.push_str(&format!(
                "guest{i} cfhost{host} cluster1 cfguest{i} 10.{}.{}.{} user1 pw{i}\n",
                (i >> 16) & 255,
                (i >> 8) & 255,
                i & 255
            ));
        }
        let started = std::time::Instant::now();
        let map = parse(&text).unwrap();
        let took = started.elapsed();
        assert_eq!(map.entries().len(), n);
        assert_eq!(map.all_hosts().len(), 8);
        assert_eq!(map.find("cfguest99999").unwrap().line, 100_000);
        assert_eq!(map.find("guest50000").unwrap().guest_cfname, "cfguest50000");
        // A duplicate and an ambiguity at the very end are still found, with their lines.
        text.push_str("guest7 cfhost1 c cfnew 10.0.0.1 u p\n");
        text.push_str("guestnew cfhost1 c guest8 10.0.0.1 u p\n");
        let errs = parse(&text).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(matches!(
            errs[0].kind,
            ConfErrorKind::DuplicateGuestName { first_line: 8, .. }
        ));
        assert_eq!(errs[0].line, n + 1);
        assert!(matches!(
            errs[1].kind,
            ConfErrorKind::Ambiguous { other_line: 9, .. }
        ));
        eprintln!("parsed {n} lines in {took:?}");
    }

    #[test]
    fn hosts_option() {
        let h =
            parse_hosts("cfhost1=127.0.0.1:2222, cfhost2=[::1]:22,cfhost3=kvm3.example,cfhost4=root@10.0.0.4:2200,cfhost5=[2001:db8::5]")
                .unwrap();
        assert_eq!(h.len(), 5);
        assert_eq!(h[0].socket_string(22), "127.0.0.1:2222");
        assert_eq!(h[1].host, "::1");
        assert_eq!(h[1].socket_string(2), "[::1]:22");
        assert_eq!(h[2].port, None);
        assert_eq!(h[2].socket_string(2201), "kvm3.example:2201");
        assert_eq!(h[3].user.as_deref(), Some("root"));
        assert_eq!(h[4].socket_string(22), "[2001:db8::5]:22");
        assert_eq!(lookup_host(&h, "cfhost3").unwrap().host, "kvm3.example");
        for bad in [
            "cfhost1",
            "cfhost1=",
            "=1.2.3.4",
            "c=1.2.3.4:0",
            "c=1.2.3.4:70000",
            "c=1.2.3.4:x",
            "c=::1:22",
            "c=[::1",
            "c=[zz]:22",
            "c=[::1]x",
            "c=a b",
            "c$=1.2.3.4",
            "c=1.2.3.4,c=1.2.3.5",
            "",
            " , ",
        ] {
            assert!(parse_hosts(bad).is_err(), "{bad}");
        }
        let errs = parse_hosts("a=1.2.3.4:x,b=[::1").unwrap_err();
        assert_eq!(errs.len(), 2);
        // Quoted items are excerpts: no newline or ESC reaches a log line.
        let errs = parse_hosts("c=bad\u{1b}[2J\nSuccess: Powered OFF").unwrap_err();
        assert!(
            errs.iter()
                .all(|e| !e.contains('\u{1b}') && !e.contains('\n')),
            "{errs:?}"
        );
    }

    #[test]
    fn fuzz_no_panic() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"ab09 \t\n\r#.:-_=,[]@%\xff\xfe\x00fe80::1.2.3.4";
        let base = GOOD.as_bytes();
        for i in 0..5000 {
            let mut buf: Vec<u8> = if i % 2 == 0 {
                base.to_vec()
            } else {
                Vec::new()
            };
            let n = (next() % 64) as usize;
            for _ in 0..n {
                let b = alphabet[(next() % alphabet.len() as u64) as usize];
                if buf.is_empty() || next() % 3 == 0 {
                    buf.push(b);
                } else {
                    let pos = (next() % buf.len() as u64) as usize;
                    buf[pos] = b;
                }
            }
            let _ = parse_bytes(&buf);
            let _ = parse_hosts(&String::from_utf8_lossy(&buf));
        }
    }
}
