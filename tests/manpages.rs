//! The man pages and `-h` of every binary: each page renders without a groff or man warning,
//! carries the release date of the package changelogs, the sections an admin needs (EXAMPLES
//! with real `pcs stonith create … --agent-validation` lines whose parameters the agent's
//! metadata has, a `stonith_admin --reboot` test and stdin use; FILES; host keys, secrets and
//! SELinux notes; SEE ALSO), each agent's own plug text, and `-h` never runs an option into
//! its text. The static pages of packaging/man (vm-evacuate.8, ocf_fencekit_vm-evacuate.7)
//! are checked the same way, and vm-evacuate.8 against `vm-evacuate --help`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::agentcmd::{self, args, require};
use crate::metadata::agents;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The agents that are packaged (fence_fake is a test agent).
pub fn packaged() -> Vec<String> {
    agents().into_iter().filter(|a| a != "fence_fake").collect()
}

pub fn page_of(agent: &str) -> String {
    let r = args(&agentcmd::bin(agent), &["-o", "manpage"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{agent}");
    r.stdout
}

/// groff's and man's warnings for the page in `file` (empty when clean).
fn warnings(file: &Path) -> String {
    let g = Command::new("groff")
        .args(["-man", "-ww", "-z"])
        .arg(file)
        .output()
        .unwrap();
    let m = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(file)
        .env("MANWIDTH", "80")
        .env("MAN_KEEP_FORMATTING", "0")
        .output()
        .unwrap();
    let mut w = String::from_utf8_lossy(&g.stderr).into_owned();
    if !g.status.success() {
        w.push_str(&format!("groff exit {:?}\n", g.status.code()));
    }
    w.push_str(&String::from_utf8_lossy(&m.stderr));
    if !m.status.success() {
        w.push_str(&format!("man exit {:?}\n", m.status.code()));
    }
    w
}

/// The page as a reader sees it: roff escapes for `-` and `\` undone.
fn plain(roff: &str) -> String {
    roff.replace("\\-", "-").replace("\\e", "\\")
}

/// `2026-12-02` from the top entry of packaging/deb/changelog (` -- who  Wed, 02 Dec 2026 …`).
fn deb_changelog_date() -> String {
    let text = fs::read_to_string(root().join("packaging/deb/changelog")).unwrap();
    let line = text.lines().find(|l| l.starts_with(" -- ")).unwrap();
    let date = line.split("  ").nth(1).unwrap();
    let f: Vec<&str> = date.split_whitespace().collect();
    format!("{}-{}-{}", f[3], month(f[2]), f[1])
}

/// `2026-12-02` from the top `%changelog` entry of the RPM spec (`* Wed Dec 02 2026 …`).
fn rpm_changelog_date() -> String {
    let text = fs::read_to_string(root().join("packaging/rpm/fencekit.spec")).unwrap();
    let at = text.find("\n%changelog\n").unwrap();
    let line = text[at..].lines().find(|l| l.starts_with("* ")).unwrap();
    let f: Vec<&str> = line.split_whitespace().collect();
    format!("{}-{}-{}", f[4], month(f[2]), f[3])
}

fn month(m: &str) -> &'static str {
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let nums = [
        "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12",
    ];
    nums[months.iter().position(|x| *x == m).unwrap()]
}

fn static_pages() -> Vec<PathBuf> {
    vec![
        root().join("packaging/man/vm-evacuate.8"),
        root().join("packaging/man/ocf_fencekit_vm-evacuate.7"),
    ]
}

#[test]
fn every_page_renders_without_warnings() {
    if !require("groff") || !require("man") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for agent in agents() {
        let f = dir.path().join(format!("{agent}.8"));
        fs::write(&f, page_of(&agent)).unwrap();
        assert_eq!(warnings(&f), "", "{agent}");
    }
    for f in static_pages() {
        assert_eq!(warnings(&f), "", "{}", f.display());
    }
}

/// The `.TH` date is the release date of both changelogs (deterministic, never "now"), and
/// the version is the crate's.
#[test]
fn th_line_has_the_release_date_and_version() {
    let date = deb_changelog_date();
    assert_eq!(date, rpm_changelog_date(), "the two changelogs disagree");
    let version = env!("CARGO_PKG_VERSION");
    for agent in agents() {
        let page = page_of(&agent);
        let th = page.lines().next().unwrap();
        assert_eq!(
            th,
            format!(
                ".TH {} 8 \"{date}\" \"fencekit {version}\" \"System Manager's Manual\"",
                agent.to_uppercase()
            )
        );
    }
    for f in static_pages() {
        let text = fs::read_to_string(&f).unwrap();
        let th = text.lines().find(|l| l.starts_with(".TH ")).unwrap();
        assert!(
            th.contains(&format!("\"{date}\" \"fencekit {version}\"")),
            "{}: {th}",
            f.display()
        );
    }
}

/// Every packaged agent's page has the sections an admin needs.
#[test]
fn agent_pages_have_examples_files_notes() {
    for agent in packaged() {
        let page = page_of(&agent);
        let text = plain(&page);
        for section in [
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH DESCRIPTION",
            ".SH PARAMETERS",
            ".SH ACTIONS",
            ".SH EXIT STATUS",
            ".SH EXAMPLES",
            ".SH FILES",
            ".SH NOTES",
            ".SS Secrets",
            ".SS SELinux (RHEL and derivatives)",
            ".SH SEE ALSO",
        ] {
            assert!(page.contains(section), "{agent}: no {section}");
        }
        let needles = [
            "pcs stonith create ".to_string(),
            format!(" {agent} "),
            "--agent-validation".to_string(),
            "stonith_admin --reboot ".to_string(),
            format!("' | {agent}"),
            "password_script".to_string(),
            "ausearch -m AVC -ts recent".to_string(),
            "sealert -a /var/log/audit/audit.log".to_string(),
            format!("/usr/share/fencekit/metadata/{agent}.xml"),
            ".BR pcs (8)".to_string(),
            ".BR stonith_admin (8)".to_string(),
        ];
        for needle in &needles {
            assert!(text.contains(needle.as_str()), "{agent}: no {needle:?}");
        }
        let ssh = agent != "fence_bmc";
        assert_eq!(page.contains(".SS Host keys"), ssh, "{agent}");
        if ssh {
            assert!(text.contains("setsebool -P fenced_can_ssh on"), "{agent}");
            assert!(text.contains("/etc/ssh/ssh_known_hosts"), "{agent}");
            assert!(text.contains("record the key on every node"), "{agent}");
        } else {
            assert!(
                text.contains("setsebool -P fenced_can_network_connect on"),
                "{agent}"
            );
            assert!(text.contains(".BR fence_ipmilan (8)"), "{agent}");
        }
        // Every option of the table is in PARAMETERS.
        let meta = args(&agentcmd::bin(&agent), &["-o", "metadata"]).stdout;
        for name in metadata_params(&meta) {
            assert!(
                text.contains(&format!("stdin/metadata name: {name}"))
                    || text.contains(&format!("(deprecated alias: {name})")),
                "{agent}: {name} is not in PARAMETERS"
            );
        }
    }
}

fn metadata_params(xml: &str) -> Vec<String> {
    xml.lines()
        .filter_map(|l| l.trim().strip_prefix("<parameter name=\""))
        .filter_map(|l| l.split('"').next())
        .map(str::to_string)
        .collect()
}

/// The words of a shell command line: whitespace splits outside quotes, quotes are removed.
pub fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if any {
                    words.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (_, c) => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(cur);
    }
    words
}

/// The `pcs stonith create` commands of a page, continuation lines joined.
pub fn pcs_examples(page: &str) -> Vec<String> {
    let text = plain(page);
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if !l.starts_with("pcs stonith create ") {
            continue;
        }
        let mut cmd = String::new();
        let mut cur = l.to_string();
        while let Some(head) = cur.strip_suffix('\\') {
            cmd.push_str(head);
            cur = lines.next().unwrap().to_string();
        }
        cmd.push_str(&cur);
        out.push(cmd);
    }
    out
}

/// Each example's parameters are parameters of the agent's metadata (or Pacemaker's own
/// `pcmk_*`), so `pcs --agent-validation` accepts the example as it is written.
#[test]
fn pcs_examples_use_only_metadata_parameters() {
    for agent in packaged() {
        let page = page_of(&agent);
        let meta = args(&agentcmd::bin(&agent), &["-o", "metadata"]).stdout;
        let params = metadata_params(&meta);
        let cmds = pcs_examples(&page);
        assert!(!cmds.is_empty(), "{agent}: no pcs example");
        for cmd in cmds {
            let words = shell_words(&cmd);
            assert_eq!(&words[..3], ["pcs", "stonith", "create"], "{cmd}");
            assert_eq!(words[4], agent, "{cmd}");
            assert_eq!(words.last().unwrap(), "--agent-validation", "{cmd}");
            for w in &words[5..words.len() - 1] {
                let (k, v) = w
                    .split_once('=')
                    .unwrap_or_else(|| panic!("{agent}: {w:?} in {cmd}"));
                assert!(!v.is_empty(), "{agent}: {w}");
                assert!(
                    k.starts_with("pcmk_") || params.iter().any(|p| p == k),
                    "{agent}: example parameter {k} is not in the metadata: {cmd}"
                );
            }
        }
    }
}

fn plug_text(agent: &str) -> String {
    let meta = args(&agentcmd::bin(agent), &["-o", "metadata"]).stdout;
    let at = meta.find("<parameter name=\"plug\"").unwrap();
    let rest = &meta[at..];
    let s = rest.find("<shortdesc lang=\"en\">").unwrap() + "<shortdesc lang=\"en\">".len();
    let e = rest.find("</shortdesc>").unwrap();
    rest[s..e].to_string()
}

/// Each agent says what its plug is, in the metadata and the man page.
#[test]
fn each_agent_has_its_own_plug_text() {
    let want = [
        ("fence_esxi", "The VM&apos;s exact name", "vmid"),
        ("fence_kvmguest", "The guest&apos;s cfname", "guest-name"),
        (
            "fence_bmc",
            "IP address or hostname of fencing device (together with --port-as-ip)",
            "port-as-ip",
        ),
    ];
    for (agent, start, also) in want {
        let t = plug_text(agent);
        assert!(t.starts_with(start) && t.contains(also), "{agent}: {t}");
        let page = plain(&page_of(agent));
        let unescaped = t.replace("&apos;", "'");
        assert!(
            page.contains(&unescaped),
            "{agent}: man page lacks {unescaped}"
        );
    }
    for agent in packaged() {
        let meta = args(&agentcmd::bin(&agent), &["-o", "metadata"]).stdout;
        assert!(!meta.contains("Physical plug number"), "{agent}");
    }
}

/// `-h` of every binary: the text of an option starts at least two spaces after the option,
/// or on the next line.
#[test]
fn help_never_runs_an_option_into_its_text() {
    for agent in agents() {
        let r = args(&agentcmd::bin(&agent), &["-h"]);
        assert_eq!(r.code, 0, "{agent}");
        let mut options = 0;
        for line in r.stdout.lines() {
            let t = line.trim_start();
            if !t.starts_with('-') {
                continue;
            }
            options += 1;
            // `-a, --ip=[ip]` or `--delay=[seconds]`: the option is the first word, or the
            // first two when the first is a short letter.
            let mut words = t.splitn(3, ' ');
            let first = words.next().unwrap();
            let opt_end = if first.ends_with(',') {
                let second = words.next().unwrap();
                line.find(second).unwrap() + second.len()
            } else {
                line.find(first).unwrap() + first.len()
            };
            let after = &line[opt_end..];
            assert!(
                after.is_empty() || after.starts_with("  "),
                "{agent}: option runs into its text: {line:?}"
            );
            assert!(
                first.starts_with("--") || first.len() == 3,
                "{agent}: {line:?}"
            );
        }
        let meta = args(&agentcmd::bin(&agent), &["-o", "metadata"]).stdout;
        let rows = meta
            .lines()
            .filter(|l| l.contains("<parameter name=") && !l.contains("deprecated=\"1\""))
            .count();
        assert_eq!(options, rows, "{agent}: every row once in -h");
    }
}

/// vm-evacuate.8 describes every command and option of `vm-evacuate --help`, and its exit
/// statuses.
#[test]
fn vm_evacuate_page_covers_the_cli() {
    let help = args(&agentcmd::bin("vm-evacuate"), &["--help"]);
    assert_eq!(help.code, 0);
    let page = plain(&fs::read_to_string(root().join("packaging/man/vm-evacuate.8")).unwrap());
    let mut in_commands = false;
    let mut commands = 0;
    for line in help.stdout.lines() {
        if line.starts_with("Commands:") {
            in_commands = true;
            continue;
        }
        if line.is_empty() {
            in_commands = false;
        }
        if in_commands {
            let word = line.split_whitespace().next().unwrap();
            if word.starts_with('[') {
                continue;
            }
            commands += 1;
            assert!(
                page.contains(&format!(".B {word}\n"))
                    || page.contains(&format!(".BI \"{word} "))
                    || page.contains(&format!(".BR \"{word} \"")),
                "vm-evacuate.8 lacks the command {word}"
            );
        }
        for flag in ["--json", "--planned", "--once", "--config", "--state-dir"] {
            if line.contains(flag) {
                assert!(page.contains(flag), "vm-evacuate.8 lacks {flag}");
            }
        }
    }
    assert_eq!(commands, 7, "{}", help.stdout);
    for needle in [
        ".SH EXIT STATUS",
        ".B 0\n",
        ".B 1\n",
        ".B 2\n",
        "/etc/fencekit/evacuate.toml",
        "/var/lib/fencekit/evacuate",
        ".SH EXAMPLES",
        ".SH FILES",
        ".SH SEE ALSO",
        "ausearch -m AVC -ts recent",
    ] {
        assert!(page.contains(needle), "vm-evacuate.8 lacks {needle:?}");
    }
    let ocf = plain(
        &fs::read_to_string(root().join("packaging/man/ocf_fencekit_vm-evacuate.7")).unwrap(),
    );
    for needle in [
        ".B config\n",
        ".B state_dir\n",
        ".B dry_run\n",
        ".B start\n",
        ".B stop\n",
        ".B monitor\n",
        ".B meta-data\n",
        ".B validate-all\n",
        "default \\fI/etc/fencekit/evacuate.toml",
        "/usr/lib/ocf/resource.d/fencekit/vm-evacuate",
        "pcs resource create evacuate ocf:fencekit:vm-evacuate",
    ] {
        assert!(
            ocf.contains(needle),
            "ocf_fencekit_vm-evacuate.7 lacks {needle:?}"
        );
    }
}

/// fence_bmc's metadata, man page and the README say the same about the cipher suites it
/// negotiates (17, 3, 16, 2 in that order; 0, 1, 15 only on request).
#[test]
fn bmc_cipher_suites_agree() {
    let meta = args(&agentcmd::bin("fence_bmc"), &["-o", "metadata"]).stdout;
    let page = plain(&page_of("fence_bmc"));
    let readme = fs::read_to_string(root().join("README.md")).unwrap();
    let readme = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(meta.contains("of 17, 3, 16 and 2 in that order. Suites 0, 1 and 15"));
    assert!(meta.contains("(17, 3, 16 or 2, in that order; 0, 1 and 15,"));
    assert!(page.contains("of 17, 3, 16 and 2 in that order. Suites 0, 1 and 15"));
    assert!(page.contains("(17, 3, 16 or 2, in that order; 0, 1 and 15,"));
    assert!(readme.contains(
        "`cipher` unset negotiates 17, 3, 16 or 2, strongest first; 0, 1 and 15 only when given"
    ));
    assert!(readme.contains("suites 17, 3, 16, 2 negotiated, strongest common first; 0, 1 and 15"));
    for text in [&meta, &page, &readme] {
        assert!(!text.contains("17, then 3") && !text.contains("(17 or 3;"));
    }
}
