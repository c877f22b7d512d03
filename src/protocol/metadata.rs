//! Metadata XML and `-h`, generated from the option table (the man page is `manual.rs`).
//!
//! The XML follows fencing.py's shape byte for byte where it matters (docs/protocol.md §3.1):
//! element order `longdesc`, `vendor-url`, `parameters`, `actions`; one `<parameter>` per row,
//! sorted by (order, name), and for a row with a legacy name two entries: the legacy name with
//! `deprecated="1"` and the canonical name with `obsoletes="<legacy>"`; `<actions>` starting with
//! `on automatic="0"`. Text is escaped with quick-xml.

use std::fmt::Write as _;

use quick_xml::escape::escape;

use crate::protocol::action::Action;
use crate::protocol::agent::AgentInfo;
use crate::protocol::options::{Kind, OptSpec};

/// The fencekit version printed by `-V`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

struct Entry<'a> {
    name: &'a str,
    spec: &'a OptSpec,
    relation: Option<(&'static str, &'a str)>,
}

fn entries(table: &[OptSpec]) -> Vec<Entry<'_>> {
    let mut v = Vec::new();
    for spec in table {
        match spec.legacy {
            Some(legacy) => {
                v.push(Entry {
                    name: legacy,
                    spec,
                    relation: Some(("deprecated", "1")),
                });
                v.push(Entry {
                    name: spec.name,
                    spec,
                    relation: Some(("obsoletes", legacy)),
                });
            }
            None => v.push(Entry {
                name: spec.name,
                spec,
                relation: None,
            }),
        }
    }
    v.sort_by(|a, b| (a.spec.order, a.name).cmp(&(b.spec.order, b.name)));
    v
}

/// The actions an agent offers, in metadata order (after `on`).
pub fn actions(info: &AgentInfo) -> Vec<Action> {
    let mut a = vec![Action::Off, Action::Reboot, Action::Status];
    if info.has_list {
        a.extend([Action::List, Action::ListStatus]);
    }
    a.extend([
        Action::Monitor,
        Action::Metadata,
        Action::Manpage,
        Action::ValidateAll,
    ]);
    if info.has_diag {
        a.push(Action::Diag);
    }
    a
}

fn content_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Flag => "boolean",
        Kind::Str | Kind::Secret => "string",
        Kind::Int => "integer",
        Kind::Second => "second",
        Kind::Select(_) => "select",
    }
}

/// `-o metadata` output.
pub fn xml(name: &str, info: &AgentInfo, table: &[OptSpec]) -> String {
    let mut s = String::new();
    s.push_str("<?xml version=\"1.0\" ?>\n");
    let _ = writeln!(
        s,
        "<resource-agent name=\"{}\" shortdesc=\"{}\" >",
        escape(name),
        escape(info.shortdesc)
    );
    let _ = writeln!(s, "<longdesc>{}</longdesc>", escape(info.longdesc.trim()));
    let _ = writeln!(s, "<vendor-url>{}</vendor-url>", escape(info.vendor_url));
    s.push_str("<parameters>\n");
    for e in entries(table) {
        let required = if e.spec.required { "1" } else { "0" };
        let _ = write!(
            s,
            "\t<parameter name=\"{}\" unique=\"0\" required=\"{required}\"",
            escape(e.name)
        );
        if let Some((attr, val)) = e.relation {
            let _ = write!(s, " {attr}=\"{}\"", escape(val));
        }
        s.push_str(">\n");
        let _ = writeln!(
            s,
            "\t\t<getopt mixed=\"{}\" />",
            escape(e.spec.getopt_mixed())
        );
        let _ = write!(s, "\t\t<content type=\"{}\"", content_type(e.spec.kind));
        if let Some(d) = e.spec.default {
            let _ = write!(s, " default=\"{}\"", escape(d));
        }
        match e.spec.kind {
            Kind::Select(choices) => {
                s.push_str(" >\n");
                for c in choices {
                    let _ = writeln!(s, "\t\t\t<option value=\"{}\" />", escape(*c));
                }
                s.push_str("\t\t</content>\n");
            }
            _ => s.push_str("  />\n"),
        }
        let _ = writeln!(
            s,
            "\t\t<shortdesc lang=\"en\">{}</shortdesc>",
            escape(e.spec.help)
        );
        s.push_str("\t</parameter>\n");
    }
    s.push_str("</parameters>\n<actions>\n\t<action name=\"on\" automatic=\"0\"/>\n");
    for a in actions(info) {
        let _ = writeln!(s, "\t<action name=\"{a}\" />");
    }
    s.push_str("</actions>\n</resource-agent>\n");
    s
}

fn usage_line(spec: &OptSpec) -> String {
    let mut left = String::from("   ");
    match spec.short {
        Some(c) => {
            let _ = write!(left, "-{c}, ");
        }
        None => left.push_str("    "),
    }
    let _ = write!(left, "--{}", spec.long());
    if !spec.is_flag() {
        let _ = write!(left, "={}", spec.value_name);
    }
    left
}

/// An option's description in `-h` and the man page: its help, its choices, its default.
pub(crate) fn describe(spec: &OptSpec) -> String {
    let mut d = spec.help.to_string();
    if let Kind::Select(choices) = spec.kind {
        let _ = write!(d, " (one of: {})", choices.join(", "));
    }
    if let Some(def) = spec.default {
        if !spec.is_flag() {
            let _ = write!(d, " (Default Value: {def})");
        }
    }
    d
}

/// Column of the descriptions in `-h`.
const HELP_COLUMN: usize = 40;

/// `-h` output. An option whose usage text would reach the description column (less two
/// spaces) gets a line of its own, its description on the next line: an option never runs
/// into its text.
pub fn help(name: &str, info: &AgentInfo, table: &[OptSpec]) -> String {
    let mut s = format!("Usage:\n\t{name} [options]\nOptions:\n");
    for spec in table {
        let left = usage_line(spec);
        if left.chars().count() + 2 > HELP_COLUMN {
            let _ = writeln!(s, "{left}");
            let _ = writeln!(s, "{:<HELP_COLUMN$}{}", "", describe(spec));
        } else {
            let _ = writeln!(s, "{left:<HELP_COLUMN$}{}", describe(spec));
        }
        if let Some(legacy) = spec.legacy {
            let _ = writeln!(
                s,
                "{:<HELP_COLUMN$}(stdin name also accepted: {legacy})",
                ""
            );
        }
    }
    let _ =
        writeln!(
        s,
        "\nActions: on, {}\nAll options can also be given on stdin as name=value lines when no \
         argument is given on the command line.",
        actions(info).iter().map(|a| a.word()).collect::<Vec<_>>().join(", ")
    );
    s
}

/// `-o manpage` output (roff, section 8): see [`crate::protocol::manual`].
pub fn manpage(name: &str, info: &AgentInfo, table: &[OptSpec]) -> String {
    crate::protocol::manual::manpage(name, info, table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::agent::Feature;
    use crate::protocol::options::table;

    static INFO: AgentInfo = AgentInfo {
        name: "fence_t",
        shortdesc: "Fence agent for <tests>",
        longdesc: "Long 'text'.",
        vendor_url: "",
        features: &[
            Feature::Address,
            Feature::Login,
            Feature::Password,
            Feature::Plugs,
        ],
        options: &[],
        defaults: &[("ipport", "22")],
        has_list: true,
        has_diag: false,
        needs_password: true,
    };

    #[test]
    fn deprecated_pairs_and_order() {
        let x = xml("fence_t", &INFO, &table(&INFO).unwrap());
        assert!(x.starts_with("<?xml version=\"1.0\" ?>\n<resource-agent name=\"fence_t\" shortdesc=\"Fence agent for &lt;tests&gt;\" >"));
        let ip = x
            .find("<parameter name=\"ip\" unique=\"0\" required=\"1\" obsoletes=\"ipaddr\">")
            .unwrap();
        let ipaddr = x
            .find("<parameter name=\"ipaddr\" unique=\"0\" required=\"1\" deprecated=\"1\">")
            .unwrap();
        assert!(ip < ipaddr);
        assert!(
            x.contains("<parameter name=\"port\" unique=\"0\" required=\"1\" deprecated=\"1\">")
        );
        assert!(x.contains("<content type=\"integer\" default=\"22\"  />"));
        assert!(x.contains("<longdesc>Long &apos;text&apos;.</longdesc>"));
        let on = x.find("<action name=\"on\" automatic=\"0\"/>").unwrap();
        assert!(on < x.find("<action name=\"list-status\" />").unwrap());
    }

    #[test]
    fn help_never_runs_an_option_into_its_text() {
        static LONG: &[OptSpec] = &[
            crate::protocol::options::opt("host_key_fingerprint")
                .value("[SHA256:...]")
                .help("Pin"),
            crate::protocol::options::opt("exactly_thirty_one_chars_x")
                .value("[v]")
                .help("Edge"),
        ];
        let info = AgentInfo {
            options: LONG,
            ..INFO.clone()
        };
        let h = help("fence_t", &info, &table(&info).unwrap());
        assert!(
            h.contains("       --host-key-fingerprint=[SHA256:...]\n                                        Pin\n"),
            "{h}"
        );
        for line in h.lines().filter(|l| l.trim_start().starts_with('-')) {
            let (opt, rest) = line.trim_start().split_once(' ').unwrap_or((line, ""));
            let opt = if opt.ends_with(',') {
                rest.trim_start().split(' ').next().unwrap_or("")
            } else {
                opt
            };
            let at = line.find(opt).unwrap() + opt.len();
            let after = line.get(at..).unwrap();
            assert!(
                after.is_empty() || after.starts_with("  "),
                "option runs into its text: {line:?}"
            );
        }
    }

    #[test]
    fn manpage_and_help_cover_every_option() {
        let t = table(&INFO).unwrap();
        let m = manpage("fence_t", &INFO, &t);
        let h = help("fence_t", &INFO, &t);
        for spec in &t {
            assert!(
                m.contains(&spec.long().replace('-', "\\-")),
                "{}",
                spec.name
            );
            assert!(h.contains(&format!("--{}", spec.long())), "{}", spec.name);
        }
    }
}
