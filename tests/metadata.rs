//! Every binary's `-o metadata` against its golden copy in metadata/ (UPDATE_GOLDEN=1 rewrites
//! them), validated with xmllint against Pacemaker's metadata.rng and pcs's ocf-1.0.rng, and
//! checked structurally.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use crate::agentcmd::{self, args, require};

/// Every fence agent binary of the package: the `fence_*` `[[bin]]` names of Cargo.toml, so a
/// new agent is covered by these tests without being listed here.
pub fn agents() -> Vec<String> {
    let manifest =
        fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let manifest: toml::Table = manifest.parse().expect("Cargo.toml parses");
    let names: Vec<String> = manifest
        .get("bin")
        .and_then(toml::Value::as_array)
        .expect("Cargo.toml has [[bin]] tables")
        .iter()
        .filter_map(|b| b.get("name")?.as_str())
        .filter(|n| n.starts_with("fence_"))
        .map(str::to_string)
        .collect();
    assert!(
        names.len() >= 4,
        "Cargo.toml lists fewer agents than expected: {names:?}"
    );
    names
}

/// The option spellings the tests derive from each agent's metadata
/// ([`agentcmd::spellings`]) are the letters its `-h` prints: `-o` is the action everywhere,
/// and every short letter of `-h` belongs to exactly one option of the table.
#[test]
fn option_spellings_from_metadata_match_help() {
    for name in agents() {
        let bin = agentcmd::bin(&name);
        let table = agentcmd::spellings(&bin);
        assert_eq!(
            table.get("action").map(|s| (s.short, s.long.as_str())),
            Some((Some('o'), "action")),
            "{name}"
        );
        let help = args(&bin, &["-h"]).stdout;
        for line in help.lines().map(str::trim_start) {
            let Some(c) = line
                .strip_prefix('-')
                .and_then(|r| r.chars().next())
                .filter(|c| *c != '-' && *c != 'h')
            else {
                continue;
            };
            let long = line
                .split("--")
                .nth(1)
                .and_then(|l| l.split(['=', ' ']).next())
                .unwrap_or_default();
            let owners: Vec<&String> = table
                .iter()
                .filter(|(_, s)| s.short == Some(c) && s.long == long)
                .map(|(n, _)| n)
                .collect();
            assert!(
                !owners.is_empty(),
                "{name}: -{c} (--{long}) of -h is not in the metadata table"
            );
        }
    }
}

/// Every agent's option table is accepted (no duplicate name, short letter or stdin name: the
/// library refuses those when it builds the table) and `-h` lists each short letter once.
#[test]
fn every_agent_table_is_accepted() {
    for name in agents() {
        let r = args(&agentcmd::bin(&name), &["-h"]);
        assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{name}");
        let mut seen = std::collections::BTreeSet::new();
        for line in r.stdout.lines() {
            let l = line.trim_start();
            if let Some(rest) = l.strip_prefix('-') {
                if let Some(c) = rest.chars().next().filter(|c| *c != '-') {
                    assert!(seen.insert(c), "{name}: -{c} listed twice in -h");
                }
            }
        }
        assert!(
            seen.contains(&'o') && seen.contains(&'h'),
            "{name}: -h lists {seen:?}"
        );
    }
}

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("metadata")
        .join(format!("{name}.xml"))
}

fn metadata_of(name: &str) -> String {
    let r = args(&agentcmd::bin(name), &["-o", "metadata"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{name}");
    r.stdout
}

#[test]
fn golden_files_match() {
    for name in agents() {
        let xml = metadata_of(&name);
        let path = golden(&name);
        if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
            fs::write(&path, &xml).unwrap();
            continue;
        }
        let want = fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{} missing: run with UPDATE_GOLDEN=1", path.display()));
        assert_eq!(
            xml,
            want,
            "{name}: metadata differs from {} (UPDATE_GOLDEN=1 rewrites)",
            path.display()
        );
    }
}

#[test]
fn validates_against_both_schemas() {
    if !require("xmllint") {
        return;
    }
    for schema in [
        "/usr/share/cluster/relaxng/metadata.rng",
        "/usr/share/pcs/data/ocf-1.0.rng",
    ] {
        assert!(
            PathBuf::from(schema).exists(),
            "{schema} is missing: install pacemaker-schemas and pcs"
        );
        for name in agents() {
            let dir = tempfile::tempdir().unwrap();
            let f = dir.path().join("m.xml");
            fs::write(&f, metadata_of(&name)).unwrap();
            let out = Command::new("xmllint")
                .args(["--noout", "--relaxng", schema])
                .arg(&f)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{name} vs {schema}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn c49_c50_structure() {
    for name in agents() {
        let xml = metadata_of(&name);
        assert!(xml.starts_with("<?xml version=\"1.0\" ?>\n"));
        assert!(xml.contains(&format!("<resource-agent name=\"{name}\"")));
        let on = xml
            .find("<action name=\"on\" automatic=\"0\"/>")
            .expect("on first");
        for a in [
            "off",
            "reboot",
            "status",
            "monitor",
            "metadata",
            "validate-all",
        ] {
            let at = xml
                .find(&format!("<action name=\"{a}\" />"))
                .unwrap_or_else(|| panic!("{name}: no {a}"));
            assert!(at > on);
        }
        // Deprecated/obsoletes pairs (Pacemaker 2.1 sends `port=`, 3.x `plug=`).
        for (legacy, canon) in [
            ("port", "plug"),
            ("ipaddr", "ip"),
            ("login", "username"),
            ("passwd", "password"),
        ] {
            if xml.contains(&format!("<parameter name=\"{canon}\"")) {
                let l = xml
                    .lines()
                    .find(|l| l.contains(&format!("<parameter name=\"{legacy}\"")))
                    .unwrap_or_else(|| panic!("{name}: no {legacy}"));
                assert!(l.ends_with(" deprecated=\"1\">"), "{name}: {l}");
                let c = xml
                    .lines()
                    .find(|l| l.contains(&format!("<parameter name=\"{canon}\"")))
                    .unwrap();
                assert!(
                    c.ends_with(&format!(" obsoletes=\"{legacy}\">")),
                    "{name}: {c}"
                );
            }
        }
        // Every parameter has getopt, content and shortdesc.
        let params = xml.matches("<parameter ").count();
        assert_eq!(params, xml.matches("<getopt mixed=").count());
        assert_eq!(params, xml.matches("<content type=").count());
        assert_eq!(params, xml.matches("<shortdesc lang=\"en\">").count());
    }
}

#[test]
fn manpage_renders() {
    for name in agents() {
        let r = args(&agentcmd::bin(&name), &["-o", "manpage"]);
        assert_eq!(r.code, 0);
        assert!(r.stdout.starts_with(".TH "));
    }
}
