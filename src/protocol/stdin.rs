//! Stdin mode: `key=value` lines, as pacemaker-fenced sends them.
//!
//! Reproduces fencing.py's grammar (docs/protocol.md §1.3): each line is trimmed; blank and
//! `#` lines are skipped; the split is at the first `=`; one pair of surrounding double quotes is
//! stripped; keys are case-sensitive and not trimmed around `=`; a key matches an option by its
//! canonical name (with `-` or `_`) or its legacy name; the last line wins; `nodename` is
//! silently dropped unless the agent declares it.
//!
//! Deliberate divergences (README "Divergences"): an unknown key is warned about by its name
//! only, never with its value (a mistyped `pasword=` must not leak to the Pacemaker log); flag
//! values `0/false/no/off` mean false; an empty value counts as not given, except for `action`,
//! where it is kept and refused as an unknown action (it must never fall back to the default
//! `reboot`).
//!
//! Input that does not fit is refused, never cut: stdin over [`MAX_STDIN`] bytes or a line over
//! [`MAX_LINE`] bytes ends the run with an error. Cutting could turn `plug=node10` into
//! `plug=node1`, or drop an `action=` line so that the default `reboot` runs.

use std::collections::BTreeMap;
use std::io::Read;

use crate::protocol::error::printable;
use crate::protocol::options::{Kind, OptSpec};

/// Largest stdin accepted (Pacemaker sends a few hundred bytes); more is refused.
pub const MAX_STDIN: usize = 1 << 20;
/// Longest line accepted; a longer line is refused.
pub const MAX_LINE: usize = 64 * 1024;

/// Reads all of `input` (stdin), refusing more than [`MAX_STDIN`] bytes: a cut input could name
/// another target or lose its `action=` line. Invalid UTF-8 is replaced, never dropped.
pub fn read_all(input: impl Read) -> Result<String, String> {
    let mut buf = Vec::new();
    let cap = u64::try_from(MAX_STDIN).unwrap_or(u64::MAX);
    input
        .take(cap.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| format!("Unable to read stdin: {}", super::error::io_words(&e)))?;
    if buf.len() > MAX_STDIN {
        return Err(format!("stdin larger than {MAX_STDIN} bytes"));
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Result of parsing stdin: values keyed by canonical option name, and warnings to log.
/// `Debug` shows option names, never values (one may be a password).
#[derive(Default, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Canonical name → raw value (flags hold `1` or `0`).
    pub values: BTreeMap<&'static str, String>,
    /// Warnings for the log (never containing a value).
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for Parsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parsed")
            .field("options", &self.values.keys().collect::<Vec<_>>())
            .field("warnings", &self.warnings)
            .finish()
    }
}

/// Finds the row a stdin key names.
pub fn resolve<'t>(table: &'t [OptSpec], key: &str) -> Option<&'t OptSpec> {
    let normalised = key.replace('-', "_");
    table
        .iter()
        .find(|s| s.name == normalised)
        .or_else(|| table.iter().find(|s| s.legacy == Some(key)))
}

/// Interprets a flag word: `Some(true)`, `Some(false)` or `None` when it is not a flag word.
pub fn flag_value(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "on" | "true" => Some(true),
        "0" | "no" | "off" | "false" => Some(false),
        _ => None,
    }
}

/// Parses stdin text against an option table. A line over [`MAX_LINE`] bytes is an error
/// (the whole input is refused).
pub fn parse(text: &str, table: &[OptSpec]) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    for (n, raw) in text.lines().enumerate() {
        if raw.len() > MAX_LINE {
            return Err(format!("stdin line {} larger than {MAX_LINE} bytes", n + 1));
        }
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        let value = strip_quotes(value);
        let Some(spec) = resolve(table, key) else {
            if !line.contains('=') {
                // A bare word that is no option may be a value on its own line (a
                // password's second line): say where it is, not what it is.
                out.warnings.push(format!(
                    "Parse error: Ignoring line {} (no '=' and not an option name)",
                    n + 1
                ));
            } else if key != "nodename" {
                out.warnings.push(format!(
                    "Parse error: Ignoring unknown option '{}'",
                    printable(key, 64)
                ));
            }
            continue;
        };
        match spec.kind {
            Kind::Flag => match flag_value(value) {
                Some(b) => {
                    out.values
                        .insert(spec.name, if b { "1" } else { "0" }.to_string());
                }
                None => out.warnings.push(format!(
                    "Parse error: Ignoring option '{}' because it does not have value",
                    printable(key, 64)
                )),
            },
            // An empty action is kept, to be refused as an unknown action: dropping it would
            // leave an earlier `action=` line or the default `reboot` in force.
            _ if value.is_empty() && spec.name != "action" => {
                out.values.remove(spec.name);
            }
            _ => {
                out.values.insert(spec.name, value.to_string());
            }
        }
    }
    Ok(out)
}

fn strip_quotes(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::options::{
        ADDRESS_ROWS as ADDRESS, COMMON_ROWS as COMMON, LOGIN_ROWS as LOGIN,
        PASSWORD_ROWS as PASSWORD, PLUGS_ROWS as PLUGS,
    };

    fn table() -> Vec<OptSpec> {
        [COMMON, ADDRESS, LOGIN, PASSWORD, PLUGS].concat()
    }

    fn p(text: &str) -> Parsed {
        parse(text, &table()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn oversized_input_and_lines_are_refused_not_cut() {
        let mut text = "action=status\n".to_string();
        text.push_str(&"#".repeat(MAX_STDIN));
        text.push_str("\nplug=node10\n");
        assert_eq!(
            read_all(text.as_bytes()).unwrap_err(),
            format!("stdin larger than {MAX_STDIN} bytes")
        );
        let exact = "#".repeat(MAX_STDIN);
        assert_eq!(read_all(exact.as_bytes()).unwrap().len(), MAX_STDIN);
        let long = format!("action=status\nplug={}\n", "x".repeat(MAX_LINE));
        assert_eq!(
            parse(&long, &table()).unwrap_err(),
            format!("stdin line 2 larger than {MAX_LINE} bytes")
        );
    }

    #[test]
    fn empty_action_is_kept_to_be_refused() {
        let r = p("action=status\naction=\n");
        assert_eq!(r.values["action"], "");
        let r = p("action=\"\"\n");
        assert_eq!(r.values["action"], "");
    }

    #[test]
    fn first_equals_splits_and_quotes_strip() {
        let r = p("password=p=w\nusername=\"quoted user\"\nip='x'\n");
        assert_eq!(r.values["password"], "p=w");
        assert_eq!(r.values["username"], "quoted user");
        assert_eq!(r.values["ip"], "'x'");
        assert!(r.warnings.is_empty());
    }

    #[test]
    fn legacy_names_and_last_wins() {
        let r = p("port=a\nplug=b\nipaddr=1.2.3.4\nlogin=bob\npasswd=x\n");
        assert_eq!(r.values["plug"], "b");
        assert_eq!(r.values["ip"], "1.2.3.4");
        assert_eq!(r.values["username"], "bob");
        assert_eq!(r.values["password"], "x");
        let r = p("plug=b\nport=a\n");
        assert_eq!(r.values["plug"], "a");
    }

    #[test]
    fn dashes_and_underscores_both_work() {
        let r = p("password-script=/bin/x\npower_timeout=3\npower-wait=1\n");
        assert_eq!(r.values["password_script"], "/bin/x");
        assert_eq!(r.values["power_timeout"], "3");
        assert_eq!(r.values["power_wait"], "1");
    }

    #[test]
    fn comments_blank_and_whitespace() {
        let r = p("\n   # comment\n  action=status  \n\n");
        assert_eq!(r.values["action"], "status");
        assert!(r.warnings.is_empty());
    }

    #[test]
    fn spaces_around_equals_and_case_make_unknown_keys() {
        let r = p("action = status\nAction=off\n");
        assert!(!r.values.contains_key("action"));
        assert_eq!(r.warnings.len(), 2);
        assert!(r.warnings[0].contains("'action '"));
    }

    #[test]
    fn unknown_key_warning_never_carries_the_value() {
        let r = p("pasword=hunter2\n");
        assert_eq!(
            r.warnings,
            vec!["Parse error: Ignoring unknown option 'pasword'".to_string()]
        );
    }

    #[test]
    fn bare_words_and_debug_never_show_values() {
        // A password with a second line: that line has no '=' and names no option.
        let r = p("password=first\nhunter2 part\naction=off\n");
        assert_eq!(
            r.warnings,
            vec!["Parse error: Ignoring line 2 (no '=' and not an option name)".to_string()]
        );
        let d = format!("{r:?}");
        assert!(!d.contains("first") && !d.contains("hunter2"), "{d}");
        assert!(d.contains("password"), "{d}");
    }

    #[test]
    fn nodename_is_silent() {
        let r = p("nodename=node1\n");
        assert!(r.warnings.is_empty());
        assert!(r.values.is_empty());
    }

    #[test]
    fn flags() {
        let r = p("verbose=yes\nquiet=0\n");
        assert_eq!(r.values["verbose"], "1");
        assert_eq!(r.values["quiet"], "0");
        let r = p("verbose=\n");
        assert!(r.values.is_empty());
        assert!(r.warnings[0].contains("does not have value"));
    }

    #[test]
    fn empty_value_is_absent() {
        let r = p("ip=1.2.3.4\nip=\n");
        assert!(!r.values.contains_key("ip"));
    }

    #[test]
    fn no_panic_on_garbage() {
        let mut seed = 0x1234_5678_u64;
        for _ in 0..3000 {
            let mut s = String::new();
            for _ in 0..(seed % 200) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let c = char::from_u32((seed >> 33) as u32 % 0x3000).unwrap_or('=');
                s.push(if seed % 7 == 0 {
                    '='
                } else if seed % 11 == 0 {
                    '\n'
                } else {
                    c
                });
            }
            let _ = parse(&s, &table());
        }
    }
}
