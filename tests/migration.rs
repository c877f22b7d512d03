//! Migration from fence-agents without `--force`: a device made for fence_ipmilan, fence_virsh,
//! fence_vmware_soap or josenk's fence_ESXi keeps its parameters when its agent becomes
//! fence_bmc, fence_kvmguest or fence_esxi.
//!
//! The parameter sets are read from the installed peers' own metadata (`fence_ipmilan -o
//! metadata`…, fence-agents from scripts/deps.sh), every parameter with a value of its type
//! (its default when it has one); fence_ESXi's set is its `device_opt` list with fencing.py's
//! SSH options. Each set is given to `validate-all` directly (the ignored options each leave
//! one debug line), and to `pcs stonith create … --agent-validation` against the real
//! Pacemaker, once with the canonical names and once with the deprecated ones. The man pages'
//! `pcs stonith create` examples go through the same pcs, as written (but for their files).
//!
//! Left out on purpose, and said so in the README's migration table: `action` (pcs refuses
//! it for every agent), `help`/`version` (not device settings), and fence_ipmilan's `target`
//! (IPMI bridging, which fence_bmc does not support and refuses rather than fencing the
//! BMC's own chassis).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::agentcmd::{self, require};
use crate::manpages;
use crate::pacemaker_fake::{cluster_available, ok};
use crate::util::pacemaker::{self, Cluster};

/// One parameter of a peer's metadata.
#[derive(Debug, Clone)]
struct Param {
    name: String,
    deprecated: bool,
    kind: String,
    default: Option<String>,
    choices: Vec<String>,
}

fn unescape(s: &str) -> String {
    s.replace("&apos;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// `attr="value"` of one XML line.
fn attr(line: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let at = line.find(&key)? + key.len();
    let rest = line.get(at..)?;
    Some(unescape(rest.get(..rest.find('"')?)?))
}

/// The parameters of fencing.py metadata (one element per line, as fencing.py prints it).
fn params_of(xml: &str) -> Vec<Param> {
    let mut out: Vec<Param> = Vec::new();
    for line in xml.lines().map(str::trim) {
        if line.starts_with("<parameter ") {
            out.push(Param {
                name: attr(line, "name").unwrap(),
                deprecated: attr(line, "deprecated").as_deref() == Some("1"),
                kind: String::new(),
                default: None,
                choices: Vec::new(),
            });
        } else if let Some(p) = out.last_mut() {
            if line.starts_with("<content ") {
                p.kind = attr(line, "type").unwrap();
                p.default = attr(line, "default");
            } else if line.starts_with("<option ") {
                p.choices.extend(attr(line, "value"));
            }
        }
    }
    out
}

fn peer_params(peer: &str) -> Vec<Param> {
    let out = std::process::Command::new(peer)
        .args(["-o", "metadata"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{peer} -o metadata");
    let p = params_of(&String::from_utf8_lossy(&out.stdout));
    assert!(p.len() > 20, "{peer}: {p:?}");
    p
}

/// Files the values point at (validate-all checks that an identity file exists; the
/// fence_kvmguest map must be there, root's, mode 0600).
struct Files {
    _dir: tempfile::TempDir,
    key: String,
    debug: String,
    map: String,
    inventory: String,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    fs::write(
        &key,
        "not a key: validate-all only checks that the file exists\n",
    )
    .unwrap();
    let map = dir.path().join("kvmguests.conf");
    fs::write(
        &map,
        "guest1 cfhost1 cluster1 cfguest1 192.0.2.11 root secret\n",
    )
    .unwrap();
    fs::set_permissions(&map, fs::Permissions::from_mode(0o600)).unwrap();
    // An evacuation inventory, for fence_esxi's inventory= example (validate-all reads it).
    let inventory = dir.path().join("evacuate.toml");
    fs::write(
        &inventory,
        "[ssh]\nusername = \"root\"\nidentity_file = \"/dev/null\"\n\
         [bmc]\nusername = \"admin\"\npassword = \"secret\"\n\
         [[host]]\nname = \"esxi1\"\naddress = \"192.0.2.1\"\nbmc_address = \"192.0.2.101\"\n\
         [[host]]\nname = \"esxi2\"\naddress = \"192.0.2.2\"\nbmc_address = \"192.0.2.102\"\n",
    )
    .unwrap();
    fs::set_permissions(&inventory, fs::Permissions::from_mode(0o600)).unwrap();
    let debug = dir.path().join("debug.log");
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    Files {
        key: s(&key),
        debug: s(&debug),
        map: s(&map),
        inventory: s(&inventory),
        _dir: dir,
    }
}

/// A value a migrated device could carry for `p`: its default, else one of its type.
fn value(p: &Param, f: &Files) -> String {
    match p.name.as_str() {
        "ip" | "ipaddr" => return "127.0.0.1".into(),
        "plug" | "port" => return "127.0.0.1".into(),
        "username" | "login" => return "admin".into(),
        "password" | "passwd" => return "secret".into(),
        "password_script" | "passwd_script" => return "/usr/local/sbin/fence-password".into(),
        "identity_file" => return f.key.clone(),
        "debug_file" | "debug" => return f.debug.clone(),
        "hexadecimal_kg" => return "0123456789abcdef0123456789abcdef01234567".into(),
        "cipher" => return "3".into(),
        // A Kg key is an IPMI 2.0 setting (fence_ipmilan ignores it without lanplus).
        "lanplus" => return "1".into(),
        "disable_timeout" => return "false".into(),
        "verbose_level" => return "1".into(),
        // Both would contradict each other; a device carries at most one of them set.
        "inet6_only" | "quiet" => return "0".into(),
        _ => {}
    }
    if let Some(d) = &p.default {
        return d.clone();
    }
    match p.kind.as_str() {
        "boolean" => "1".into(),
        "integer" | "second" => "5".into(),
        "select" => p.choices.first().cloned().unwrap(),
        _ => "x".into(),
    }
}

/// Not device settings (`action` is refused by pcs for every agent), or refused on purpose
/// (`target`: IPMI bridging).
const LEFT_OUT: [&str; 4] = ["action", "help", "version", "target"];

/// `(canonical set, deprecated set)` of name=value parameters for a peer, plus `extra`.
fn sets(params: &[Param], f: &Files, extra: &[(&str, String)]) -> [Set; 2] {
    let obsoleted: Vec<&str> = params
        .iter()
        .filter(|p| p.deprecated)
        .map(|p| p.name.as_str())
        .collect();
    let canonical_of_legacy = |legacy: &str| match legacy {
        "ipaddr" => "ip",
        "login" => "username",
        "passwd" => "password",
        "passwd_script" => "password_script",
        "port" => "plug",
        "debug" => "debug_file",
        "secure" => "ssh",
        "sudo" => "use_sudo",
        "cmd_prompt" => "command_prompt",
        other => panic!("unknown deprecated parameter {other}"),
    };
    let replaced: Vec<&str> = obsoleted.iter().map(|l| canonical_of_legacy(l)).collect();
    let mut canonical = Vec::new();
    let mut legacy = Vec::new();
    for p in params {
        if LEFT_OUT.contains(&p.name.as_str()) {
            continue;
        }
        let kv = (p.name.clone(), value(p, f));
        if p.deprecated {
            legacy.push(kv);
        } else {
            if !replaced.contains(&p.name.as_str()) {
                legacy.push(kv.clone());
            }
            canonical.push(kv);
        }
    }
    for (k, v) in extra {
        canonical.push(((*k).to_owned(), v.clone()));
        legacy.push(((*k).to_owned(), v.clone()));
    }
    [canonical, legacy]
}

/// name=value parameters of one device.
type Set = Vec<(String, String)>;

/// One migration: our agent, the peer, the peer's set with canonical and deprecated names.
type Case = (&'static str, &'static str, [Set; 2]);

/// The migration cases.
fn cases(f: &Files) -> Vec<Case> {
    let mut v = Vec::new();
    // fence_ipmilan: plug with port_as_ip is the BMC; the old C agent's `timeout` too.
    let ipmilan = peer_params("fence_ipmilan");
    v.push((
        "fence_bmc",
        "fence_ipmilan",
        sets(&ipmilan, f, &[("timeout", "20".into())]),
    ));
    // fence_virsh: fence_kvmguest also needs its map (the plug is a guest of it).
    let virsh = peer_params("fence_virsh");
    let mut s = sets(&virsh, f, &[("guests_conf", f.map.clone())]);
    for set in &mut s {
        for (k, val) in set.iter_mut() {
            if k == "plug" || k == "port" {
                *val = "cfguest1".into();
            }
        }
    }
    v.push(("fence_kvmguest", "fence_virsh", s));
    // fence_vmware_soap: the plug is a VM name.
    let soap = peer_params("fence_vmware_soap");
    let mut s = sets(&soap, f, &[]);
    for set in &mut s {
        for (k, val) in set.iter_mut() {
            if k == "plug" || k == "port" {
                *val = "web1".into();
            }
        }
    }
    v.push(("fence_esxi", "fence_vmware_soap", s));
    // josenk's fence_ESXi: device_opt ipaddr, login, passwd, cmd_prompt, secure, port, with
    // fencing.py's SSH options and its defaults (`:~]`, `-2`).
    let esxi = |ip: &str, login: &str, pass: &str, prompt: &str, secure: &str, plug: &str| {
        vec![
            (ip.to_owned(), "127.0.0.1".to_owned()),
            (login.to_owned(), "root".to_owned()),
            (pass.to_owned(), "secret".to_owned()),
            (prompt.to_owned(), ":~]".to_owned()),
            (secure.to_owned(), "1".to_owned()),
            (plug.to_owned(), "web1".to_owned()),
            ("ssh_options".to_owned(), "-2".to_owned()),
            ("identity_file".to_owned(), f.key.clone()),
            ("inet4_only".to_owned(), "1".to_owned()),
            ("ssh_path".to_owned(), "/usr/bin/ssh".to_owned()),
            ("login_timeout".to_owned(), "5".to_owned()),
            ("shell_timeout".to_owned(), "3".to_owned()),
            ("power_timeout".to_owned(), "20".to_owned()),
            ("power_wait".to_owned(), "0".to_owned()),
        ]
    };
    v.push((
        "fence_esxi",
        "fence_ESXi",
        [
            esxi(
                "ip",
                "username",
                "password",
                "command_prompt",
                "ssh",
                "plug",
            ),
            esxi("ipaddr", "login", "passwd", "cmd_prompt", "secure", "port"),
        ],
    ));
    v
}

/// Our agent's metadata parameter names.
fn our_params(agent: &str) -> Vec<String> {
    let r = agentcmd::args(&agentcmd::bin(agent), &["-o", "metadata"]);
    params_of(&r.stdout).into_iter().map(|p| p.name).collect()
}

/// Every parameter of each peer is in our agent's metadata (what pcs checks), and
/// `validate-all` accepts the whole set on stdin, logging one debug line per ignored option.
#[test]
fn peer_parameter_sets_validate() {
    if !require("fence_ipmilan") || !require("fence_virsh") || !require("fence_vmware_soap") {
        return;
    }
    let f = files();
    for (agent, peer, sets) in cases(&f) {
        let ours = our_params(agent);
        // The table of ignored rows: debug lines expected for those.
        let meta = agentcmd::args(&agentcmd::bin(agent), &["-o", "metadata"]).stdout;
        for set in &sets {
            for (k, _) in set {
                assert!(
                    ours.contains(k),
                    "{agent} lacks {peer}'s parameter {k}: pcs would need --force"
                );
            }
            let mut text: String = set
                .iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "verbose" | "verbose_level" | "debug" | "debug_file"
                    )
                })
                .map(|(k, v)| format!("{k}={v}\n"))
                .collect();
            text.push_str("action=validate-all\nverbose=1\n");
            let r = agentcmd::stdin(&agentcmd::bin(agent), &text);
            assert_eq!(
                r.code, 0,
                "{agent} with {peer}'s parameters:\n{text}\nstderr:\n{}",
                r.stderr
            );
            for (k, _) in set {
                let canonical = canonical_name(&meta, k);
                let ignored = is_ignored(&meta, &canonical);
                let line = format!(
                    "{canonical} is accepted for compatibility with fence-agents and ignored"
                );
                let n = r
                    .stderr
                    .lines()
                    .filter(|l| l.ends_with(&format!("DEBUG: {line}")))
                    .count();
                assert_eq!(
                    n,
                    usize::from(ignored),
                    "{agent}/{peer}: {k}: {n} debug lines:\n{}",
                    r.stderr
                );
            }
        }
    }
}

/// The canonical name of `name` in our metadata (`sudo` → `use_sudo`).
fn canonical_name(meta: &str, name: &str) -> String {
    meta.lines()
        .find_map(|l| {
            let o = attr(l, "obsoletes")?;
            (o == name).then(|| attr(l, "name")).flatten()
        })
        .unwrap_or_else(|| name.to_owned())
}

/// Whether our row `name` is an accepted-and-ignored one (its help says so).
fn is_ignored(meta: &str, name: &str) -> bool {
    let key = format!("<parameter name=\"{name}\"");
    let at = meta.find(&key).unwrap();
    let rest = meta.get(at..).unwrap();
    let end = rest.find("</parameter>").unwrap();
    let block = rest.get(..end).unwrap();
    block.contains("and ignored") && name != "disable_timeout"
}

/// `pcs stonith create … --agent-validation` takes each peer's whole parameter set, with the
/// canonical names and with the deprecated ones (created disabled: nothing is fenced).
#[test]
fn pcs_creates_migrated_devices_without_force() {
    if !require("fence_ipmilan") || !require("fence_virsh") || !require("fence_vmware_soap") {
        return;
    }
    if !cluster_available() {
        return;
    }
    let f = files();
    let cluster = Cluster::up(&pacemaker::agents_dir().unwrap()).unwrap();
    // The check is real: a parameter the metadata lacks needs --force.
    let out = cluster.pcs(&[
        "stonith",
        "create",
        "migrated-unknown",
        "fence_bmc",
        "ip=127.0.0.1",
        "no_such_parameter=1",
        "--agent-validation",
        "--disabled",
    ]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--force"),
        "{}",
        pacemaker::describe("pcs stonith create with an unknown parameter", &out)
    );
    let mut n = 0;
    for (agent, peer, sets) in cases(&f) {
        for (i, set) in sets.iter().enumerate() {
            n += 1;
            let id = format!("migrated-{n}");
            let mut args: Vec<String> =
                vec!["stonith".into(), "create".into(), id.clone(), agent.into()];
            args.extend(set.iter().map(|(k, v)| format!("{k}={v}")));
            args.push("--agent-validation".into());
            args.push("--disabled".into());
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = cluster.pcs(&refs);
            let what = format!(
                "{agent} with {peer}'s {} parameters: pcs {}",
                if i == 0 { "canonical" } else { "deprecated" },
                args.join(" ")
            );
            ok(&what, &out);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !stderr.contains("--force"),
                "{what}: pcs asks for --force: {stderr}"
            );
            let cfg = cluster.pcs(&["stonith", "config", &id]);
            ok("pcs stonith config", &cfg);
            let text = String::from_utf8_lossy(&cfg.stdout);
            for (k, _) in set.iter().filter(|(k, _)| !k.contains("pass")) {
                assert!(
                    text.contains(&format!("{k}=")),
                    "{what}: {k} not kept: {text}"
                );
            }
            cluster.delete_device(&id).unwrap();
        }
    }
    assert_eq!(n, 8);
    // Every `pcs stonith create` example of the man pages, as written but for the files it
    // names (a key, a map and an inventory of this test), is accepted too.
    let mut examples = 0;
    for agent in manpages::packaged() {
        for cmd in manpages::pcs_examples(&manpages::page_of(&agent)) {
            examples += 1;
            let cmd = cmd
                .replace("/root/.ssh/id_ed25519", &f.key)
                .replace("/etc/opt/FJSVcluster/etc/kvmguests.conf", &f.map)
                .replace("/etc/fencekit/evacuate.toml", &f.inventory);
            let mut words = manpages::shell_words(&cmd);
            let id = format!("example-{examples}");
            words[3] = id.clone();
            words.push("--disabled".into());
            let refs: Vec<&str> = words.iter().skip(1).map(String::as_str).collect();
            ok(
                &format!("man page example of {agent}: {cmd}"),
                &cluster.pcs(&refs),
            );
            cluster.delete_device(&id).unwrap();
        }
    }
    assert!(examples >= 5, "{examples} examples");
    cluster.shutdown().unwrap();
}
