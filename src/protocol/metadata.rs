//! Metadata XML, the man page and `-h`, all generated from the option table.
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

fn describe(spec: &OptSpec) -> String {
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

/// `-h` output.
pub fn help(name: &str, info: &AgentInfo, table: &[OptSpec]) -> String {
    let mut s = format!("Usage:\n\t{name} [options]\nOptions:\n");
    for spec in table {
        let left = usage_line(spec);
        let _ = writeln!(s, "{left:<40}{}", describe(spec));
        if let Some(legacy) = spec.legacy {
            let _ = writeln!(s, "{:<40}(stdin name also accepted: {legacy})", "");
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

fn roff(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let l = line.replace('\\', "\\\\");
        if l.starts_with('.') || l.starts_with('\'') {
            out.push_str("\\&");
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// `-o manpage` output (roff, section 8).
pub fn manpage(name: &str, info: &AgentInfo, table: &[OptSpec]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        ".TH {} 8 \"\" \"fencekit {VERSION}\" \"System Manager's Manual\"",
        name.to_uppercase()
    );
    let _ = write!(
        s,
        ".SH NAME\n{} \\- {}\n",
        name,
        roff(info.shortdesc).trim_end()
    );
    s.push_str(".SH SYNOPSIS\n.B ");
    let _ = writeln!(s, "{name}\n[\\fIOPTION\\fR]...");
    s.push_str(".SH DESCRIPTION\n");
    s.push_str(&roff(info.longdesc.trim()));
    let _ = writeln!(
        s,
        ".P\n{name} accepts options on the command line or, when run without arguments, as \
         name=value lines on standard input (this is how Pacemaker runs it).\n.P\nVendor URL: {}",
        roff(info.vendor_url).trim_end()
    );
    s.push_str(".SH PARAMETERS\n");
    for spec in table {
        s.push_str(".TP\n.B ");
        let mut head = String::new();
        if let Some(c) = spec.short {
            let _ = write!(head, "-{c}, ");
        }
        let _ = write!(head, "--{}", spec.long().replace('-', "\\-"));
        if !spec.is_flag() {
            let _ = write!(head, "={}", spec.value_name);
        }
        s.push_str(&head);
        s.push('\n');
        s.push_str(&roff(&describe(spec)));
        let mut names = format!("stdin/metadata name: {}", spec.name);
        if let Some(l) = spec.legacy {
            let _ = write!(names, " (deprecated alias: {l})");
        }
        if spec.required {
            names.push_str("; required");
        }
        let _ = write!(s, ".br\n{}", roff(&names));
    }
    s.push_str(".SH ACTIONS\n.TP\n.B on\nPower on.\n");
    for a in actions(info) {
        let what = match a {
            Action::On => "Power on.",
            Action::Off => "Power off (hard) and confirm the target reads back as off.",
            Action::Reboot => "Power off, confirm off, then power on (default action).",
            Action::Status => {
                "Print Status: ON (exit 0) or Status: OFF (exit 2); exit 1 when unknown."
            }
            Action::List => "List plugs as id,alias lines.",
            Action::ListStatus => "List plugs with their power state.",
            Action::Monitor => "Check that the device answers.",
            Action::Metadata => "Print the XML metadata.",
            Action::Manpage => "Print this manual page.",
            Action::ValidateAll => "Check the options without contacting the device.",
            Action::Diag => "Send a diagnostic interrupt (NMI).",
        };
        let _ = writeln!(s, ".TP\n.B {a}\n{what}");
    }
    s.push_str(".SH EXIT STATUS\n0 success; 1 failure; 2 status reported OFF.\n");
    s
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
