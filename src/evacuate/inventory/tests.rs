#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test code"
)]
use super::*;

/// Two hosts and an SSH user: a small valid inventory of 11 lines (what follows starts on
/// line 12).
const BASE: &str = r#"# test inventory
[ssh]
username = "root"
[[host]]
name = "esx1"
address = "192.0.2.11"
bmc_address = "198.51.100.11"
[[host]]
name = "esx2"
address = "192.0.2.12"
bmc_address = "198.51.100.12"
"#;

fn errors(text: &str) -> Vec<InventoryError> {
    match Inventory::parse(text) {
        Ok(_) => panic!("parsed, expected an error:\n{text}"),
        Err(e) => e,
    }
}

/// Asserts that parsing fails with an error at `line` on `key` whose message contains `what`,
/// and that its text names both.
#[track_caller]
fn assert_error(text: &str, line: usize, key: &str, what: &str) {
    let errs = errors(text);
    let found = errs
        .iter()
        .find(|e| e.line == line && e.key == key && e.message.contains(what));
    let Some(e) = found else {
        panic!("no error at line {line} on {key} containing {what:?}; got {errs:#?}");
    };
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("line {line}: {key}: ")),
        "{shown}"
    );
}

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

#[test]
fn base_parses_with_defaults() {
    let inv = Inventory::parse(BASE).unwrap();
    assert_eq!(inv.policy, Policy::default());
    assert_eq!(
        inv.policy.methods,
        [Method::QuickMigration, Method::Move, Method::Failover]
    );
    assert_eq!(inv.policy.scope, Scope::Running);
    assert_eq!(
        (
            inv.policy.max_parallel,
            inv.policy.detect_failures,
            inv.policy.detect_interval_s,
            inv.policy.brake_percent,
            inv.policy.post_fence_wait_s,
            inv.policy.vm_retry_limit
        ),
        (4, 3, 5, 50, 0, 2)
    );
    let h = inv.host("esx2").unwrap();
    assert_eq!(
        (h.line, h.reserve_mb, h.role, h.memory_mb),
        (8, 0, Role::Normal, None)
    );
    let ssh = inv.ssh_for(h);
    assert_eq!((ssh.port, ssh.username.as_str()), (22, "root"));
    assert_eq!((ssh.login_timeout_s, ssh.shell_timeout_s), (5, 3));
    let bmc = inv.bmc_for(h);
    assert_eq!(
        (bmc.address.as_str(), bmc.port, bmc.privlvl),
        ("198.51.100.12", 623, Privilege::Administrator)
    );
    assert!(!inv.holds_secret());
}

#[test]
fn example_inventory_parses() {
    let text = include_str!("../../../packaging/examples/evacuate.toml");
    let inv = Inventory::parse(text).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(inv.hosts.len(), 4);
    assert_eq!(inv.vms.len(), 8);
    assert_eq!(inv.constraints.len(), 3);
    assert_eq!(inv.policy.post_fence_wait_s, 10);
    let esx3 = inv.host("esx3").unwrap();
    assert_eq!((inv.ssh_for(esx3).port, esx3.role), (2222, Role::Spare));
    let esx4 = inv.host("esx4").unwrap();
    assert_eq!(esx4.role, Role::Maintenance);
    let bmc = inv.bmc_for(esx4);
    assert_eq!(bmc.username.as_deref(), Some("admin"));
    assert_eq!((bmc.port, bmc.cipher), (6230, Some(3)));
    assert_eq!(bmc.privlvl, Privilege::Administrator);
    assert_eq!(
        bmc.password_script.as_deref(),
        Some("/usr/local/sbin/bmc-password")
    );
    let ssh = inv.ssh_for(esx4);
    assert!(ssh.host_key_fingerprint.unwrap().starts_with("SHA256:"));
    assert_eq!(
        ssh.identity_file.as_deref(),
        Some(Path::new("/etc/fencekit/keys/esxi_ed25519"))
    );
    assert_eq!(inv.vm("app1").unwrap().depends_on, ["db1"]);
    assert!(inv.vm("licence-server").unwrap().hold);
    assert!(!inv.vm("lab-scratch").unwrap().managed);
    assert_eq!(inv.vm("build-runner").unwrap().restart, Restart::Never);
    let pin = &inv.constraints[2];
    assert_eq!((pin.kind, pin.hosts.len()), (ConstraintKind::Pin, 2));
    assert!(!inv.holds_secret());
}

#[test]
fn toml_syntax_error_names_its_line() {
    assert_error(&with("[policy\nscope = \"all\"\n"), 12, "policy", "");
    assert_error(&with("[policy]\nscope = all\n"), 13, "policy.scope", "");
}

#[test]
fn unknown_keys_are_errors_everywhere() {
    assert_error(
        &with("bogus = 1\n"),
        12,
        "host.bogus",
        "unknown field `bogus`",
    );
    assert_error(
        &format!("bogus = 1\n{BASE}"),
        1,
        "bogus",
        "unknown field `bogus`",
    );
    assert_error(
        &with("[policy]\nmode = \"all\"\n"),
        13,
        "policy.mode",
        "unknown field",
    );
    assert_error(
        &with("[bmc]\nlanplus = 1\n"),
        13,
        "bmc.lanplus",
        "unknown field",
    );
    assert_error(
        &with("datastores = [\"x\"]\n"),
        12,
        "host.datastores",
        "unknown field",
    );
    assert_error(
        &with("[host.ssh]\nuser = \"x\"\n"),
        13,
        "host.ssh.user",
        "unknown field",
    );
    assert_error(
        &with("ssh = { prot = 1 }\n"),
        12,
        "host.ssh.prot",
        "unknown field",
    );
    assert_error(
        &with("[[vm]]\nname = \"a\"\nvmx = \"x\"\n"),
        14,
        "vm.vmx",
        "unknown field",
    );
    assert_error(
        &with("[[constraint]]\nkind = \"ne\"\nvms = []\nstrict = true\n"),
        15,
        "constraint.strict",
        "unknown field",
    );
}

#[test]
fn type_and_value_errors_name_line_and_key() {
    assert_error(
        &with("[policy]\nmax_parallel = \"x\"\n"),
        13,
        "policy.max_parallel",
        "invalid type",
    );
    assert_error(
        &with("role = \"bogus\"\n"),
        12,
        "host.role",
        "unknown variant",
    );
    assert_error(&with("port = 70000\n"), 12, "host.port", "70000");
    assert_error(&with("[host.ssh]\nport = -1\n"), 13, "host.ssh.port", "");
    assert_error(
        &with("[policy]\nmethods = [\n  \"move\",\n  \"migration\",\n]\n"),
        15,
        "policy.methods",
        "unknown variant `migration`",
    );
    assert_error(
        &with("[[vm]]\nname = \"a\"\nrestart = \"sometimes\"\n"),
        14,
        "vm.restart",
        "unknown variant",
    );
    assert_error(
        &with("[[constraint]]\nkind = \"near\"\nvms = [\"a\"]\n"),
        13,
        "constraint.kind",
        "unknown variant",
    );
    assert_error(
        &with("[policy]\nscope = \"some\"\n"),
        13,
        "policy.scope",
        "",
    );
}

#[test]
fn missing_required_keys() {
    assert_error(
        "[ssh]\nusername = \"root\"\n[[host]]\naddress = \"192.0.2.1\"\nbmc_address = \"x\"\n",
        3,
        "host.name",
        "missing field `name`",
    );
    assert_error(
        &with("[[host]]\nname = \"esx3\"\naddress = \"192.0.2.13\"\n"),
        12,
        "host.bmc_address",
        "missing field",
    );
    assert_error(
        &with("[[vm]]\npriority = 3\n"),
        12,
        "vm.name",
        "missing field",
    );
    assert_error(
        &with("[[constraint]]\nvms = [\"a\"]\n"),
        12,
        "constraint.kind",
        "missing field",
    );
    let errs = errors("[ssh]\nusername = \"root\"\n");
    assert_eq!(errs[0].to_string(), "host: no [[host]] entries");
}

#[test]
fn duplicate_names() {
    let text = with("[[host]]\nname = \"esx1\"\naddress = \"a\"\nbmc_address = \"b\"\n");
    assert_error(
        &text,
        13,
        "host.name",
        "duplicate host \"esx1\" (first on line 5)",
    );
    let text = with("[[vm]]\nname = \"a\"\n[[vm]]\nname = \"a\"\n");
    assert_error(
        &text,
        15,
        "vm.name",
        "duplicate VM \"a\" (first on line 13)",
    );
    assert_error(
        &with("[[vm]]\nname = \" \"\n"),
        13,
        "vm.name",
        "must not be empty",
    );
    // A repeated key inside one table is a TOML error.
    assert_error(&with("name = \"x\"\n"), 12, "host.name", "duplicate key");
}

#[test]
fn dependencies_must_exist_and_not_cycle() {
    let vms = "[[vm]]\nname = \"a\"\ndepends_on = [\"b\"]\n\
               [[vm]]\nname = \"b\"\ndepends_on = [\"c\"]\n\
               [[vm]]\nname = \"c\"\ndepends_on = [\"a\"]\n";
    assert_error(
        &with(vms),
        12,
        "vm.depends_on",
        "dependency cycle: a -> b -> c -> a",
    );
    // The cycle is reported once, not once per member.
    let n = errors(&with(vms))
        .iter()
        .filter(|e| e.message.contains("cycle"))
        .count();
    assert_eq!(n, 1);
    assert_error(
        &with("[[vm]]\nname = \"a\"\ndepends_on = [\"a\"]\n"),
        12,
        "vm.depends_on",
        "dependency cycle: a -> a",
    );
    assert_error(
        &with("[[vm]]\nname = \"a\"\ndepends_on = [\"nope\"]\n"),
        14,
        "vm.depends_on",
        "unknown VM \"nope\"",
    );
    assert_error(
        &with("[[vm]]\nname = \"a\"\ndepends_on = [\"b\", \"b\"]\n[[vm]]\nname = \"b\"\n"),
        14,
        "vm.depends_on",
        "listed twice",
    );
    // A chain without a cycle is fine.
    let ok = "[[vm]]\nname = \"a\"\ndepends_on = [\"b\"]\n[[vm]]\nname = \"b\"\n";
    assert!(Inventory::parse(&with(ok)).is_ok());
}

const THREE_VMS: &str = "[[vm]]\nname = \"a\"\n[[vm]]\nname = \"b\"\n[[vm]]\nname = \"c\"\n";

#[test]
fn constraint_names_must_exist() {
    let c = "[[constraint]]\nkind = \"ne\"\nvms = [\"a\", \"zz\"]\n";
    assert_error(
        &with(&format!("{THREE_VMS}{c}")),
        20,
        "constraint.vms",
        "unknown VM \"zz\"",
    );
    let c = "[[constraint]]\nkind = \"pin\"\nvms = [\"a\"]\nhosts = [\"esx9\"]\n";
    assert_error(
        &with(&format!("{THREE_VMS}{c}")),
        21,
        "constraint.hosts",
        "unknown host \"esx9\"",
    );
    let c = "[[constraint]]\nkind = \"eq\"\nvms = [\"a\", \"a\"]\n";
    assert_error(
        &with(&format!("{THREE_VMS}{c}")),
        20,
        "constraint.vms",
        "listed twice",
    );
}

#[test]
fn constraint_shapes() {
    let c = "[[constraint]]\nkind = \"pin\"\nvms = [\"a\"]\n";
    assert_error(
        &with(&format!("{THREE_VMS}{c}")),
        19,
        "constraint.hosts",
        "a pin needs `hosts`",
    );
    let c = "[[constraint]]\nkind = \"ne\"\nvms = [\"a\", \"b\"]\nhosts = [\"esx1\"]\n";
    assert_error(
        &with(&format!("{THREE_VMS}{c}")),
        21,
        "constraint.hosts",
        "only a pin takes hosts",
    );
    let c = "[[constraint]]\nkind = \"eq\"\nvms = [\"a\"]\n";
    assert_error(
        &with(&format!("{THREE_VMS}{c}")),
        20,
        "constraint.vms",
        "needs at least 2 VMs",
    );
    let c = "[[constraint]]\nkind = \"pin\"\nvms = [\"a\"]\nhosts = []\n";
    assert_error(
        &with(&format!("{THREE_VMS}{c}")),
        21,
        "constraint.hosts",
        "at least one host",
    );
}

#[test]
fn ne_group_larger_than_the_hosts() {
    let c = "[[constraint]]\nkind = \"ne\"\nvms = [\"a\", \"b\", \"c\"]\n";
    assert_error(
        &with(&format!("{THREE_VMS}{c}")),
        20,
        "constraint.vms",
        "NE group of 3 VMs needs 3 hosts; the inventory has 2",
    );
}

#[test]
fn eq_and_ne_must_not_contradict() {
    // a = b and b = c (transitively a = c), but a != c.
    let c = "[[constraint]]\nkind = \"eq\"\nvms = [\"a\", \"b\"]\n\
             [[constraint]]\nkind = \"eq\"\nvms = [\"b\", \"c\"]\n\
             [[constraint]]\nkind = \"ne\"\nvms = [\"c\", \"a\"]\n";
    assert_error(
        &with(&format!("{THREE_VMS}{c}")),
        24,
        "constraint.vms",
        "NE keeps \"c\" and \"a\" apart but EQ keeps them together",
    );
}

#[test]
fn policy_checks() {
    assert_error(
        &with("[policy]\nmethods = [\"move\", \"failover\", \"move\"]\n"),
        13,
        "policy.methods",
        "move is listed twice",
    );
    assert_error(
        &with("[policy]\nmethods = []\n"),
        13,
        "policy.methods",
        "needs at least one",
    );
    assert_error(
        &with("[policy]\nbrake_percent = 101\n"),
        13,
        "policy.brake_percent",
        "not a percentage",
    );
    assert_error(
        &with("[policy]\nmax_parallel = 0\n"),
        13,
        "policy.max_parallel",
        "at least 1",
    );
    assert_error(
        &with("[policy]\ndetect_failures = 0\n"),
        13,
        "policy.detect_failures",
        "at least 1",
    );
    assert_error(
        &with("[policy]\ndetect_interval_s = 0\n"),
        13,
        "policy.detect_interval_s",
        "at least 1",
    );
    assert_error(
        &with("[policy]\nnotify_command = \"\"\n"),
        13,
        "policy.notify_command",
        "must not be empty",
    );
    let inv = Inventory::parse(&with(
        "[policy]\nmethods = [\"failover\", \"move\"]\nscope = \"all\"\nbrake_percent = 100\n",
    ))
    .unwrap();
    assert_eq!(inv.policy.methods, [Method::Failover, Method::Move]);
    assert_eq!(
        (inv.policy.scope, inv.policy.brake_percent),
        (Scope::All, 100)
    );
}

#[test]
fn host_checks() {
    assert_error(
        &with("memory_mb = 0\n"),
        12,
        "host.memory_mb",
        "greater than 0",
    );
    assert_error(&with("port = 0\n"), 12, "host.port", "1-65535");
    assert_error(
        &with("port = 2222\n[host.ssh]\nport = 2223\n"),
        14,
        "host.ssh.port",
        "given twice",
    );
    assert_error(
        &with("bmc_port = 6230\n[host.bmc]\nport = 6231\n"),
        14,
        "host.bmc.port",
        "given twice",
    );
    assert_error(
        &with("[[host]]\nname = \"esx3\"\naddress = \" \"\nbmc_address = \"x\"\n"),
        14,
        "host.address",
        "must not be empty",
    );
    // No SSH user anywhere: named at the host's header.
    let text = "[[host]]\nname = \"esx1\"\naddress = \"a\"\nbmc_address = \"b\"\n";
    assert_error(
        text,
        1,
        "host.ssh.username",
        "no SSH user name for host \"esx1\"",
    );
    // A per-host user is enough.
    let text = format!("{text}[host.ssh]\nusername = \"admin\"\n");
    assert!(Inventory::parse(&text).is_ok());
}

#[test]
fn ssh_and_bmc_checks() {
    assert_error(
        &with("[host.ssh]\npassword = \"pw\"\npassword_script = \"/bin/pw\"\n"),
        14,
        "host.ssh.password_script",
        "not both",
    );
    assert_error(
        &with("[bmc]\npassword = \"pw\"\npassword_script = \"/bin/pw\"\n"),
        14,
        "bmc.password_script",
        "not both",
    );
    assert_error(
        &with("[host.ssh]\nhost_key_fingerprint = \"MD5:aa\"\n"),
        13,
        "host.ssh.host_key_fingerprint",
        "SHA256",
    );
    assert_error(
        &with("[bmc]\ncipher = 4\n"),
        13,
        "bmc.cipher",
        "not supported",
    );
    assert_error(
        &with("[bmc]\ncipher = \"3\"\n"),
        13,
        "bmc.cipher",
        "invalid type",
    );
    assert_error(
        &with("[host.bmc]\nprivlvl = \"root\"\n"),
        13,
        "host.bmc.privlvl",
        "",
    );
    assert_error(
        &with("[host.bmc]\nlogin_timeout_s = 0\n"),
        13,
        "host.bmc.login_timeout_s",
        "at least 1",
    );
    assert_error(
        &with("[host.ssh]\nshell_timeout_s = 0\n"),
        13,
        "host.ssh.shell_timeout_s",
        "at least 1",
    );
}

#[test]
fn secrets_never_show() {
    // A secret of the wrong type: the error names line and key, not the value.
    let text = with("[host.ssh]\npassword = 271828\n");
    let errs = errors(&text);
    let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        ["line 13: host.ssh.password: invalid value (a secret: not shown); expected a string"]
    );
    let text = with("[bmc]\nhexadecimal_kg = [31415]\n");
    let shown = errors(&text)[0].to_string();
    assert!(shown.starts_with("line 13: bmc.hexadecimal_kg: ") && !shown.contains("31415"));
    // An invalid key: reported without its digits.
    let text = with("[bmc]\nhexadecimal_kg = \"0x12345zz\"\n");
    let shown = errors(&text)[0].to_string();
    assert!(
        shown.starts_with("line 13: bmc.hexadecimal_kg: "),
        "{shown}"
    );
    assert!(!shown.contains("12345"), "{shown}");
    // An unquoted password is a TOML error on its line, without the value.
    let text = BASE.replace(
        "username = \"root\"\n",
        "username = \"root\"\npassword = hunter2\n",
    );
    let shown = errors(&text)[0].to_string();
    assert!(shown.starts_with("line 4: ssh.password: "), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
    // Parsed secrets do not show in Debug.
    let text = with("[host.ssh]\npassword = \"hunter2\"\n[host.bmc]\nhexadecimal_kg = \"0a0b\"\n");
    let inv = Inventory::parse(&text).unwrap();
    assert!(inv.holds_secret());
    let dbg = format!(
        "{inv:?} {:?} {:?}",
        inv.ssh_for(&inv.hosts[1]),
        inv.bmc_for(&inv.hosts[1])
    );
    assert!(!dbg.contains("hunter2") && !dbg.contains("0a0b"), "{dbg}");
    assert_eq!(
        inv.ssh_for(&inv.hosts[1]).password.unwrap().expose(),
        "hunter2"
    );
}

#[test]
fn credentials_merge_as_a_group() {
    let text = r#"[ssh]
username = "root"
password = "default-pw"
port = 2200
[bmc]
username = "fence"
password = "bmc-pw"
cipher = 17
[[host]]
name = "esx1"
address = "192.0.2.11"
bmc_address = "198.51.100.11"
[[host]]
name = "esx2"
address = "192.0.2.12"
bmc_address = "198.51.100.12"
port = 22
[host.ssh]
identity_file = "/etc/fencekit/keys/esx2"
[host.bmc]
password_script = "/usr/local/sbin/pw esx2"
privlvl = "operator"
"#;
    let inv = Inventory::parse(text).unwrap();
    let (h1, h2) = (&inv.hosts[0], &inv.hosts[1]);
    let s1 = inv.ssh_for(h1);
    assert_eq!(s1.password.unwrap().expose(), "default-pw");
    assert_eq!((s1.port, s1.identity_file), (2200, None));
    let s2 = inv.ssh_for(h2);
    // Its own key replaces the default password; host.port wins over [ssh] port.
    assert_eq!((s2.password, s2.port), (None, 22));
    assert_eq!(
        s2.identity_file,
        Some(PathBuf::from("/etc/fencekit/keys/esx2"))
    );
    assert_eq!(s2.username, "root");
    let b2 = inv.bmc_for(h2);
    assert_eq!(b2.password, None);
    assert_eq!(
        b2.password_script.as_deref(),
        Some("/usr/local/sbin/pw esx2")
    );
    assert_eq!((b2.cipher, b2.privlvl), (Some(17), Privilege::Operator));
    assert_eq!(b2.username.as_deref(), Some("fence"));
    assert_eq!(inv.bmc_for(h1).password.unwrap().expose(), "bmc-pw");
}

#[test]
fn load_refuses_an_open_file_with_a_password() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evacuate.toml");
    let secret = with("[host.bmc]\npassword = \"hunter2\"\n");
    std::fs::write(&path, &secret).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = load(&path).unwrap_err();
    assert!(matches!(err, LoadError::Permissions { mode: 0o644, .. }));
    let shown = err.to_string();
    assert!(
        shown.contains("mode 0644") && !shown.contains("hunter2"),
        "{shown}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(load(&path).unwrap().holds_secret());
    // Without a secret the mode does not matter.
    std::fs::write(&path, BASE).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(load(&path).unwrap().hosts.len(), 2);
    // Errors carry the path and one line per problem.
    std::fs::write(
        &path,
        with("[policy]\nmax_parallel = 0\nbrake_percent = 200\n"),
    )
    .unwrap();
    let shown = load(&path).unwrap_err().to_string();
    let p = path.display();
    assert_eq!(
        shown,
        format!(
            "{p}: line 13: policy.max_parallel: must be at least 1\n\
             {p}: line 14: policy.brake_percent: 200 is not a percentage (0-100)"
        )
    );
    // Not UTF-8: the line of the first bad byte.
    std::fs::write(&path, b"[ssh]\nusername = \"r\xffot\"\n").unwrap();
    let shown = load(&path).unwrap_err().to_string();
    assert_eq!(shown, format!("{p}: line 2: (file): not UTF-8"));
    // Not a regular file, or missing.
    assert!(matches!(load(dir.path()), Err(LoadError::Io(_))));
    assert!(matches!(
        load(&dir.path().join("missing")),
        Err(LoadError::Io(_))
    ));
}

#[test]
fn key_location_helpers() {
    assert_eq!(header_name("[[host]]"), Some("host".to_string()));
    assert_eq!(
        header_name("  [host.ssh] # x"),
        Some("host.ssh".to_string())
    );
    assert_eq!(header_name("[\"a\", \"b\"],"), None);
    assert_eq!(
        keys_on_line("ssh = { port = 1, x = \"a=b\" }"),
        [
            (0, "ssh".to_string()),
            (8, "port".to_string()),
            (18, "x".to_string())
        ]
    );
    assert_eq!(keys_on_line("  # k = 1"), []);
}

#[test]
fn remaining_value_checks() {
    let cases: [(&str, usize, &str, &str); 8] = [
        (
            "[[vm]]\nname = \"a\"\nmemory_mb = 0\n",
            14,
            "vm.memory_mb",
            "greater than 0",
        ),
        ("bmc_port = 0\n", 12, "host.bmc_port", "1-65535"),
        (
            "[host.ssh]\nidentity_file = \" \"\n",
            13,
            "host.ssh.identity_file",
            "must not be empty",
        ),
        (
            "[host.ssh]\nusername = \"\"\n",
            13,
            "host.ssh.username",
            "must not be empty",
        ),
        (
            "[host.bmc]\npassword_script = \"\"\n",
            13,
            "host.bmc.password_script",
            "must not be empty",
        ),
        (
            "[[vm]]\nname = \"a\\tb\"\n",
            13,
            "vm.name",
            "control characters",
        ),
        (
            "[[host]]\nname = \"esx3\"\naddress = \"a\"\nbmc_address = \"\"\n",
            15,
            "host.bmc_address",
            "must not be empty",
        ),
        ("[bmc]\nport = 0\n", 13, "bmc.port", "1-65535"),
    ];
    for (extra, line, key, what) in cases {
        assert_error(&with(extra), line, key, what);
    }
}
