//! Stdin mode: `key=value` lines, as pacemaker-fenced sends them.
//!
//! Reproduces fencing.py's grammar (fence-protocol.md §1.3): each line is trimmed; blank and
//! `#` lines are skipped; the split is at the first `=`; one pair of surrounding double quotes is
//! stripped; keys are case-sensitive and not trimmed around `=`; a key matches an option by its
//! canonical name (with `-` or `_`) or its legacy name; the last line wins; `nodename` is
//! silently dropped unless the agent declares it.
//!
//! Deliberate divergences (README "Divergences"): an unknown key is warned about by its name
//! only, never with its value (a mistyped `pasword=` must not leak to the Pacemaker log); flag
//! values `0/false/no/off` mean false; an empty value counts as not given.

use std::collections::BTreeMap;

use crate::protocol::options::{Kind, OptSpec};

/// Largest stdin we read (Pacemaker sends a few hundred bytes).
pub const MAX_STDIN: usize = 1 << 20;
/// Longest line we accept; longer lines are ignored with a warning.
pub const MAX_LINE: usize = 64 * 1024;

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

/// Parses stdin text against an option table.
pub fn parse(text: &str, table: &[OptSpec]) -> Parsed {
    let mut out = Parsed::default();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.len() > MAX_LINE {
            out.warnings
                .push(format!("Parse error: Ignoring overlong line {}", n + 1));
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
                    printable(key)
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
                    printable(key)
                )),
            },
            _ if value.is_empty() => {
                out.values.remove(spec.name);
            }
            _ => {
                out.values.insert(spec.name, value.to_string());
            }
        }
    }
    out
}

fn strip_quotes(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(v)
}

/// A key made safe for a log line: control characters replaced, length capped.
fn printable(key: &str) -> String {
    key.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
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
        parse(text, &table())
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
            let _ = p(&s);
        }
    }
}
