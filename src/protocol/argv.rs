//! Command-line mode: GNU-style options built from the option table with clap's builder API.
//!
//! Matches fencing.py (docs/protocol.md §1.2): short options with attached or separate values,
//! long options with `=` or a separate value, unique-prefix abbreviation (`--act=status`),
//! permutation, `--` ending options, left-over words warned about and ignored, repeated options
//! (last wins), `-v` stacking. Legacy names are stdin-only, as upstream.
//!
//! Divergence: clap's usage errors exit 1 (as upstream's `fail_usage`), never clap's default 2,
//! because 2 means "off" to a fence caller.

use std::collections::BTreeMap;
use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, Command};

use crate::protocol::options::{Kind, OptSpec};
use crate::protocol::stdin::flag_value;

/// Result of parsing argv. `Debug` shows option names, never values (one may be a password).
#[derive(Default, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Canonical name → raw value (flags hold `1`).
    pub values: BTreeMap<&'static str, String>,
    /// Warnings to log (left-over words).
    pub warnings: Vec<String>,
    /// Number of `-v` given.
    pub verbose_count: u8,
}

impl std::fmt::Debug for Parsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parsed")
            .field("options", &self.values.keys().collect::<Vec<_>>())
            .field("warnings", &self.warnings)
            .field("verbose_count", &self.verbose_count)
            .finish()
    }
}

const REST: &str = "__left_over";

fn command(table: &[OptSpec]) -> Command {
    let mut cmd = Command::new("fence_agent")
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .infer_long_args(true)
        .args_override_self(true)
        .dont_delimit_trailing_values(true);
    for spec in table {
        let mut arg = Arg::new(spec.name).long(spec.long());
        if let Some(c) = spec.short {
            arg = arg.short(c);
        }
        arg = match (spec.kind, spec.name) {
            (Kind::Flag, "verbose") => arg.action(ArgAction::Count),
            (Kind::Flag, _) => arg
                .action(ArgAction::Set)
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("1"),
            _ => arg
                .action(ArgAction::Set)
                .num_args(1)
                .allow_hyphen_values(true),
        };
        cmd = cmd.arg(arg);
    }
    cmd.arg(Arg::new(REST).num_args(0..).action(ArgAction::Append))
}

/// Parses argv (without argv\[0\]). Errors are upstream-worded usage messages.
pub fn parse(args: &[OsString], table: &[OptSpec]) -> Result<Parsed, String> {
    let matches = command(table)
        .try_get_matches_from(args)
        .map_err(|e| usage_message(&e))?;
    let mut out = Parsed::default();
    for spec in table {
        if spec.name == "verbose" {
            let n = matches.get_count("verbose");
            if n > 0 {
                out.verbose_count = n;
                out.values.insert("verbose", n.to_string());
            }
            continue;
        }
        let Ok(Some(v)) = matches.try_get_one::<String>(spec.name) else {
            continue;
        };
        if spec.is_flag() {
            match flag_value(v) {
                Some(b) => {
                    out.values
                        .insert(spec.name, if b { "1" } else { "0" }.into());
                }
                None => {
                    return Err(format!(
                        "Parse error: option --{} takes no value other than 0/1",
                        spec.long()
                    ))
                }
            }
        } else if !v.is_empty() || spec.name == "action" {
            // An empty `-o ''` is kept, to be refused as an unknown action, never to fall
            // back to the default `reboot`.
            out.values.insert(spec.name, v.clone());
        }
    }
    if let Ok(Some(rest)) = matches.try_get_many::<String>(REST) {
        let words: Vec<String> = rest.map(|w| format!("'{w}'")).collect();
        // With a secret on the command line a left-over word may be a piece of it (an
        // unquoted `-p two words`): then only their number is said.
        let secret_given = table
            .iter()
            .any(|s| matches!(s.kind, Kind::Secret) && out.values.contains_key(s.name));
        if secret_given && !words.is_empty() {
            out.warnings.push(format!(
                "Unused arguments on command line: {} word(s), not shown (a secret was given \
on the command line)",
                words.len()
            ));
        } else if !words.is_empty() {
            out.warnings.push(format!(
                "Unused arguments on command line: [{}]",
                words.join(", ")
            ));
        }
    }
    Ok(out)
}

fn usage_message(e: &clap::Error) -> String {
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.split_whitespace().next().unwrap_or("").to_string(),
        _ => String::new(),
    };
    match e.kind() {
        ErrorKind::UnknownArgument => format!("Parse error: option {arg} not recognized"),
        ErrorKind::InvalidValue | ErrorKind::NoEquals if !arg.is_empty() => {
            format!("Parse error: option {arg} requires argument")
        }
        _ => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            format!(
                "Parse error: {}",
                first.trim_start_matches("error: ").trim()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::options::{
        ADDRESS_ROWS as ADDRESS, COMMON_ROWS as COMMON, LOGIN_ROWS as LOGIN,
        PASSWORD_ROWS as PASSWORD, PLUGS_ROWS as PLUGS,
    };

    fn t() -> Vec<OptSpec> {
        [COMMON, ADDRESS, LOGIN, PASSWORD, PLUGS].concat()
    }

    fn p(args: &[&str]) -> Result<Parsed, String> {
        let a: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(&a, &t())
    }

    #[test]
    fn action_spellings() {
        for args in [
            &["-ostatus"][..],
            &["-o", "status"],
            &["--action=status"],
            &["--action", "status"],
            &["--act=status"],
        ] {
            assert_eq!(p(args).unwrap().values["action"], "status", "{args:?}");
        }
    }

    #[test]
    fn unknown_and_missing_value() {
        assert_eq!(
            p(&["--bogus"]).unwrap_err(),
            "Parse error: option --bogus not recognized"
        );
        let e = p(&["-o"]).unwrap_err();
        assert!(e.contains("-o") || e.contains("action"), "{e}");
    }

    #[test]
    fn left_over_words_are_not_shown_beside_a_secret() {
        let r = p(&["-o", "status", "-p", "two", "words"]).unwrap();
        assert_eq!(
            r.warnings,
            vec![
                "Unused arguments on command line: 1 word(s), not shown (a secret was given on \
the command line)"
            ]
        );
        let d = format!("{r:?}");
        assert!(!d.contains("two") && !d.contains("words"), "{d}");
    }

    #[test]
    fn left_over_words_warn() {
        let r = p(&["-o", "status", "--", "-o", "on"]).unwrap();
        assert_eq!(r.values["action"], "status");
        assert_eq!(
            r.warnings,
            vec!["Unused arguments on command line: ['-o', 'on']"]
        );
    }

    #[test]
    fn verbose_stacks_and_flags() {
        let r = p(&["-vv", "-q", "-n", "a,b"]).unwrap();
        assert_eq!(r.verbose_count, 2);
        assert_eq!(r.values["quiet"], "1");
        assert_eq!(r.values["plug"], "a,b");
    }

    #[test]
    fn last_wins_and_permutation() {
        let r = p(&["-o", "on", "--plug", "x", "-o", "off"]).unwrap();
        assert_eq!(r.values["action"], "off");
        let r = p(&["-a", "1.2.3.4", "-ostatus", "--username=u"]).unwrap();
        assert_eq!(r.values["ip"], "1.2.3.4");
        assert_eq!(r.values["username"], "u");
    }

    #[test]
    fn values_may_start_with_dash() {
        let r = p(&["-p", "-secret-"]).unwrap();
        assert_eq!(r.values["password"], "-secret-");
    }

    #[test]
    fn empty_action_is_kept_to_be_refused() {
        assert_eq!(p(&["-o", ""]).unwrap().values["action"], "");
        assert_eq!(p(&["--action="]).unwrap().values["action"], "");
        assert!(!p(&["-a", ""]).unwrap().values.contains_key("ip"));
    }

    #[test]
    fn double_dash_alone_is_no_options() {
        let r = p(&["--"]).unwrap();
        assert!(r.values.is_empty());
    }
}
