//! Host keys: OpenSSH known_hosts files (plain, hashed and `[host]:port` entries, comma
//! lists, `*`/`?` patterns, `!` negation, `@revoked`), read capped and recorded on first
//! contact when asked, and pinned SHA256 fingerprints.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use ssh2::{HostKeyType, MethodType};

use super::{base64, HostKeyPolicy, HostKeyStatus, SshConfig, SshError};
use crate::protocol::userfile;
use crate::transport::crypto::hmac_sha1;

/// One known_hosts line that names our host.
#[derive(Debug, Clone)]
pub(super) struct KhEntry {
    file: PathBuf,
    line: usize,
    revoked: bool,
    key_type: String,
    key_b64: String,
}

pub(super) fn known_hosts_files(policy: &HostKeyPolicy) -> Vec<PathBuf> {
    match &policy.known_hosts {
        Some(p) => vec![p.clone()],
        None => {
            let mut v = Vec::new();
            // Pacemaker runs agents without HOME: fall back to the user database.
            let home = std::env::var_os("HOME").map(PathBuf::from).or_else(|| {
                nix::unistd::User::from_uid(nix::unistd::getuid())
                    .ok()
                    .flatten()
                    .map(|u| u.dir)
            });
            if let Some(home) = home {
                v.push(home.join(".ssh").join("known_hosts"));
            }
            v.push(PathBuf::from("/etc/ssh/ssh_known_hosts"));
            v
        }
    }
}

/// Reads the known_hosts files through [`userfile::read_capped`]: a FIFO, a device
/// (`/dev/zero`) or a file over [`userfile::KNOWN_HOSTS_CAP`] is refused at once, never waited
/// on or read without end. A file that is missing or cannot be opened is skipped, as before.
pub(super) fn read_known_hosts(files: &[PathBuf], name: &str) -> Result<Vec<KhEntry>, SshError> {
    let mut out = Vec::new();
    for file in files {
        let text = match userfile::read_capped(file, userfile::KNOWN_HOSTS_CAP, "known_hosts") {
            Ok((bytes, _)) => String::from_utf8_lossy(&bytes).into_owned(),
            // `stat` does not open the file, so it cannot block on a FIFO.
            Err(e) => match std::fs::metadata(file) {
                Ok(m) if !m.is_file() || m.len() > userfile::KNOWN_HOSTS_CAP => {
                    return Err(SshError::Config(e))
                }
                _ => continue,
            },
        };
        for (i, line) in text.lines().enumerate() {
            if let Some(e) = parse_kh_line(line, name) {
                out.push(KhEntry {
                    file: file.clone(),
                    line: i.saturating_add(1),
                    ..e
                });
            }
        }
    }
    Ok(out)
}

/// Parses one known_hosts line; returns it if it names `name` (and is not a CA line).
fn parse_kh_line(line: &str, name: &str) -> Option<KhEntry> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_whitespace();
    let mut first = fields.next()?;
    let mut revoked = false;
    if let Some(marker) = first.strip_prefix('@') {
        match marker {
            "revoked" => revoked = true,
            _ => return None, // @cert-authority: certificates are not supported
        }
        first = fields.next()?;
    }
    let key_type = fields.next()?;
    let key_b64 = fields.next()?;
    if !host_patterns_match(first, name) {
        return None;
    }
    Some(KhEntry {
        file: PathBuf::new(),
        line: 0,
        revoked,
        key_type: key_type.to_owned(),
        key_b64: key_b64.to_owned(),
    })
}

/// OpenSSH host pattern-list matching: hashed `|1|salt|hash`, or comma-separated patterns
/// with `*`/`?` wildcards and `!` negation, case-insensitive.
fn host_patterns_match(patterns: &str, name: &str) -> bool {
    if let Some(rest) = patterns.strip_prefix("|1|") {
        let Some((salt, hash)) = rest.split_once('|') else {
            return false;
        };
        let (Some(salt), Some(hash)) = (base64::decode(salt), base64::decode(hash)) else {
            return false;
        };
        // An empty code (cannot happen: HMAC takes any key) never matches a stored hash.
        let code = hmac_sha1(&salt, &[name.as_bytes()]);
        return !code.is_empty() && code == hash;
    }
    let lname = name.to_ascii_lowercase();
    let mut matched = false;
    for pat in patterns.split(',') {
        let (neg, pat) = match pat.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pat),
        };
        if glob(&pat.to_ascii_lowercase(), &lname) {
            if neg {
                return false;
            }
            matched = true;
        }
    }
    matched
}

/// `*` and `?` wildcard match.
fn glob(pat: &str, s: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let t: Vec<char> = s.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match (p.get(pi), t.get(ti)) {
            (Some('*'), _) => {
                star = Some((pi, ti));
                pi += 1;
            }
            (Some(pc), Some(tc)) if *pc == '?' || pc == tc => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).unwrap_or_default().iter().all(|c| *c == '*')
}

/// Host-key algorithms to prefer: those of the keys known for this host first.
pub(super) fn host_key_preference(sess: &ssh2::Session, entries: &[KhEntry]) -> Option<String> {
    let supported = sess.supported_algs(MethodType::HostKey).ok()?;
    let mut known: Vec<&str> = Vec::new();
    for e in entries.iter().filter(|e| !e.revoked) {
        let algs: &[&str] = match e.key_type.as_str() {
            "ssh-rsa" => &["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
            "ssh-ed25519" => &["ssh-ed25519"],
            "ecdsa-sha2-nistp256" => &["ecdsa-sha2-nistp256"],
            "ecdsa-sha2-nistp384" => &["ecdsa-sha2-nistp384"],
            "ecdsa-sha2-nistp521" => &["ecdsa-sha2-nistp521"],
            "ssh-dss" => &["ssh-dss"],
            _ => &[],
        };
        for a in algs {
            if supported.contains(a) && !known.contains(a) {
                known.push(a);
            }
        }
    }
    if known.is_empty() {
        return None;
    }
    let mut all = known.clone();
    all.extend(supported.iter().filter(|a| !known.contains(a)));
    Some(all.join(","))
}

pub(super) fn key_type_name(t: HostKeyType) -> &'static str {
    match t {
        HostKeyType::Rsa => "ssh-rsa",
        HostKeyType::Dss => "ssh-dss",
        HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
        HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
        HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
        HostKeyType::Ed25519 => "ssh-ed25519",
        HostKeyType::Unknown => "unknown",
    }
}

pub(super) fn check_known_hosts(
    entries: &[KhEntry],
    files: &[PathBuf],
    name: &str,
    cfg: &SshConfig,
    key_type: &str,
    key_b64: &str,
    fingerprint: &str,
) -> Result<HostKeyStatus, SshError> {
    let same = |e: &KhEntry| e.key_b64.trim_end_matches('=') == key_b64.trim_end_matches('=');
    if let Some(e) = entries.iter().find(|e| e.revoked && same(e)) {
        return Err(SshError::HostKeyMismatch {
            host: name.to_owned(),
            key_type: key_type.to_owned(),
            fingerprint: fingerprint.to_owned(),
            expected: format!(
                "the key is marked @revoked in {}:{}",
                e.file.display(),
                e.line
            ),
        });
    }
    if let Some(e) = entries.iter().find(|e| !e.revoked && same(e)) {
        return Ok(HostKeyStatus::Known(e.file.clone()));
    }
    if let Some(e) = entries.iter().find(|e| !e.revoked) {
        let known_fp = fingerprint_of_base64_key(&e.key_b64).unwrap_or_default();
        return Err(SshError::HostKeyMismatch {
            host: name.to_owned(),
            key_type: key_type.to_owned(),
            fingerprint: fingerprint.to_owned(),
            expected: format!(
                "{}:{} has {} {}",
                e.file.display(),
                e.line,
                e.key_type,
                known_fp
            ),
        });
    }
    let target = files
        .first()
        .cloned()
        .unwrap_or_else(|| PathBuf::from("known_hosts"));
    if cfg.host_key.accept_new {
        append_known_host(&target, name, key_type, key_b64)?;
        return Ok(HostKeyStatus::Added(target));
    }
    let bare = cfg.host.trim_start_matches('[').trim_end_matches(']');
    let keyscan_args = if cfg.port == 22 {
        format!("-t {key_type} {bare}")
    } else {
        format!("-p {} -t {key_type} {bare}", cfg.port)
    };
    Err(SshError::HostKeyUnknown {
        host: name.to_owned(),
        key_type: key_type.to_owned(),
        fingerprint: fingerprint.to_owned(),
        file: target.display().to_string(),
        keyscan_args,
    })
}

fn append_known_host(
    file: &Path,
    name: &str,
    key_type: &str,
    key_b64: &str,
) -> Result<(), SshError> {
    let err = |e: std::io::Error| {
        SshError::Config(format!(
            "cannot record the host key in {}: {}",
            file.display(),
            crate::transport::net::io_words(&e)
        ))
    };
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(err)?;
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
    }
    let needs_nl = userfile::read_capped(file, userfile::KNOWN_HOSTS_CAP, "known_hosts")
        .map(|(b, _)| b.last().is_some_and(|c| *c != b'\n'))
        .unwrap_or(false);
    // Without blocking and only as a regular file (a FIFO or a device is refused).
    let mut f = userfile::open_append(file, "known_hosts")
        .map_err(|e| SshError::Config(format!("cannot record the host key: {e}")))?;
    let mut line = String::new();
    if needs_nl {
        line.push('\n');
    }
    let _ = writeln!(line, "{name} {key_type} {key_b64}");
    f.write_all(line.as_bytes()).map_err(err)
}

pub(super) fn parse_fingerprints(text: &str) -> Result<Vec<String>, SshError> {
    let mut out = Vec::new();
    for item in text.split(|c: char| c == ',' || c.is_whitespace()) {
        if item.is_empty() {
            continue;
        }
        let body = match item.split_once(':') {
            Some((alg, body)) if alg.eq_ignore_ascii_case("sha256") => body,
            Some((alg, _)) => {
                return Err(SshError::Config(format!(
                    "host_key_fingerprint: only SHA256 fingerprints are supported, got {alg}"
                )))
            }
            None => item,
        };
        let body = body.trim_end_matches('=');
        let ok = base64::decode(body).is_some_and(|b| b.len() == 32);
        if !ok {
            return Err(SshError::Config(format!(
                "host_key_fingerprint: '{item}' is not a SHA256 fingerprint (expected SHA256:<43 base64 characters>, as `ssh-keygen -lf` prints)"
            )));
        }
        out.push(body.to_owned());
    }
    if out.is_empty() {
        return Err(SshError::Config("host_key_fingerprint is empty".to_owned()));
    }
    Ok(out)
}

/// OpenSSH-style SHA256 fingerprint (`SHA256:<base64 without padding>`) of a raw public key
/// blob, given the key as it appears in a known_hosts or `.pub` line (base64).
fn fingerprint_of_base64_key(key_b64: &str) -> Option<String> {
    let blob = base64::decode(key_b64)?;
    Some(format!("SHA256:{}", base64::encode(&sha256(&blob), false)))
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn host_patterns() {
        assert!(host_patterns_match("[127.0.0.1]:2201", "[127.0.0.1]:2201"));
        assert!(!host_patterns_match("127.0.0.1", "[127.0.0.1]:2201"));
        assert!(host_patterns_match("esxi1,10.0.0.1", "10.0.0.1"));
        assert!(host_patterns_match("*.example.com", "h.EXAMPLE.com"));
        assert!(!host_patterns_match(
            "*.example.com,!bad.example.com",
            "bad.example.com"
        ));
        assert!(host_patterns_match("h?", "h1"));
        // Hashed: `ssh-keygen -H` of "[127.0.0.1]:2201" with a known salt.
        let salt = [7u8; 20];
        let hash = hmac_sha1(&salt, &[b"[127.0.0.1]:2201"]);
        let pat = format!(
            "|1|{}|{}",
            base64::encode(&salt, true),
            base64::encode(&hash, true)
        );
        assert!(host_patterns_match(&pat, "[127.0.0.1]:2201"));
        assert!(!host_patterns_match(&pat, "127.0.0.1"));
    }

    #[test]
    fn known_hosts_lines() {
        let e = parse_kh_line("[h]:22 ssh-ed25519 AAAA comment", "[h]:22");
        assert!(e.is_some_and(|e| e.key_type == "ssh-ed25519" && !e.revoked));
        assert!(parse_kh_line("@revoked h ssh-rsa AAAA", "h").is_some_and(|e| e.revoked));
        assert!(parse_kh_line("@cert-authority h ssh-rsa AAAA", "h").is_none());
        assert!(parse_kh_line("# h ssh-rsa AAAA", "h").is_none());
        assert!(parse_kh_line("h ssh-rsa", "h").is_none());
    }

    #[test]
    fn fingerprints_parse() {
        let fp = format!("SHA256:{}", base64::encode(&[1u8; 32], false));
        assert_eq!(parse_fingerprints(&fp).map(|v| v.len()), Ok(1));
        assert!(parse_fingerprints("MD5:aa:bb").is_err());
        assert!(parse_fingerprints("SHA256:short").is_err());
        assert!(parse_fingerprints("").is_err());
    }

    #[test]
    fn sha256_matches_test_vectors() {
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&sha256(&[b'a'; 1000])),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
        );
    }
}
