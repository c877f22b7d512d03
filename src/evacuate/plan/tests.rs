#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test code"
)]
use super::*;
use crate::evacuate::inventory::Inventory;
use crate::evacuate::snapshot::HostSnapshot;

mod props;

/// Hosts `esx1`..`esxN` with SSH defaults, then `extra` (roles, VMs, constraints, policy).
/// `hosts` gives each host's memory (None: from its snapshot) and extra host keys.
fn inventory(hosts: &[(&str, Option<u64>, &str)], extra: &str) -> Inventory {
    let mut t = String::from("[ssh]\nusername = \"root\"\n");
    t.push_str(extra);
    for (i, (name, mem, keys)) in hosts.iter().enumerate() {
        t.push_str(&format!(
            "[[host]]\nname = \"{name}\"\naddress = \"192.0.2.{}\"\nbmc_address = \"198.51.100.{}\"\n",
            i + 1,
            i + 1
        ));
        if let Some(m) = mem {
            t.push_str(&format!("memory_mb = {m}\n"));
        }
        t.push_str(keys);
        t.push('\n');
    }
    Inventory::parse(&t).unwrap_or_else(|e| panic!("{e:#?}\n{t}"))
}

/// A VM record: `(name, datastore, power, memory)`.
fn vm(name: &str, ds: &str, power: VmPower, mem: Option<u64>) -> VmRecord {
    VmRecord {
        name: name.to_string(),
        vmid: u32::try_from(name.len()).unwrap(),
        vmx: format!("[{ds}] {name}/{name}.vmx"),
        datastore: ds.to_string(),
        power,
        memory_mb: mem,
    }
}

fn on(name: &str, mem: u64) -> VmRecord {
    vm(name, "shared", VmPower::On, Some(mem))
}

fn snap(host: &str, datastores: &[&str], vms: Vec<VmRecord>) -> (String, HostSnapshot) {
    let mut s = HostSnapshot::new(host);
    s.datastores = datastores.iter().map(|d| d.to_string()).collect();
    s.vms = vms;
    (host.to_string(), s)
}

fn snaps(list: Vec<(String, HostSnapshot)>) -> Snapshots {
    list.into_iter().collect()
}

fn get<'a>(p: &'a Plan, name: &str) -> &'a PlannedVm {
    p.vms.iter().find(|v| v.name == name).unwrap()
}

fn target(p: &Plan, name: &str) -> Option<String> {
    get(p, name).target.clone()
}

fn reason(p: &Plan, name: &str) -> String {
    get(p, name).reason.clone().unwrap_or_default()
}

const H3: [(&str, Option<u64>, &str); 3] = [
    ("esx1", Some(16384), ""),
    ("esx2", Some(16384), ""),
    ("esx3", Some(16384), ""),
];

#[test]
fn dead_host_failover_and_json_shape() {
    let inv = inventory(&H3, "");
    let s = snaps(vec![
        snap("esx1", &[], vec![on("web1", 2048), on("web2", 2048)]),
        snap("esx2", &["shared"], vec![on("db", 4096)]),
        snap("esx3", &["shared"], vec![]),
    ]);
    let p = plan(&inv, &s, "esx1", &Situation::dead_host());
    // The most memory left free after placement: esx3 (16384 free) twice, as esx2 already
    // runs db.
    assert_eq!(target(&p, "web1").as_deref(), Some("esx3"));
    assert_eq!(target(&p, "web2").as_deref(), Some("esx3"));
    assert_eq!(get(&p, "web1").methods, [Method::Failover]);
    assert_eq!(
        p.to_json(),
        r#"{"host":"esx1","vms":[{"name":"web1","source":"esx1","target":"esx3","method":"failover","reason":null},{"name":"web2","source":"esx1","target":"esx3","method":"failover","reason":null}]}"#
    );
    // A host without a snapshot gives an empty plan.
    assert!(plan(&inv, &s, "esx9", &Situation::dead_host())
        .vms
        .is_empty());
}

#[test]
fn capacity_and_priority_with_reason() {
    let extra = "[[vm]]\nname = \"big\"\npriority = 10\n[[vm]]\nname = \"low\"\npriority = -1\n";
    let hosts = [
        ("esx1", Some(65536), ""),
        ("esx2", Some(16384), "reserve_mb = 4096"),
    ];
    let inv = inventory(&hosts, extra);
    let s = snaps(vec![
        snap(
            "esx1",
            &[],
            vec![on("big", 8192), on("low", 8192), on("mid", 2048)],
        ),
        snap("esx2", &["shared"], vec![]),
    ]);
    let p = plan(&inv, &s, "esx1", &Situation::dead_host());
    // 12288 usable: big (priority 10) first, then mid (priority 0, 2048), then no room.
    assert_eq!(target(&p, "big").as_deref(), Some("esx2"));
    assert_eq!(target(&p, "mid").as_deref(), Some("esx2"));
    assert_eq!(get(&p, "low").disposition, Disposition::Unplaced);
    assert_eq!(
        reason(&p, "low"),
        "no host has 8192 MB free (largest free: 2048 MB on esx2)"
    );
    let json = p.to_json();
    assert!(json.contains(r#"{"name":"low","source":"esx1","target":null,"method":null,"reason":"no host has 8192 MB free (largest free: 2048 MB on esx2)"}"#), "{json}");
    // Placed VMs come first, unplaced after.
    let order: Vec<&str> = p.vms.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(order, ["big", "mid", "low"]);
}

#[test]
fn spare_hosts_preferred_maintenance_down_and_failed_never_targets() {
    let hosts = [
        ("esx1", Some(16384), ""),
        ("esx2", Some(65536), ""),
        ("esx3", Some(8192), "role = \"spare\""),
        ("esx4", Some(65536), "role = \"maintenance\""),
        ("esx5", Some(65536), ""),
    ];
    let inv = inventory(&hosts, "");
    let s = snaps(vec![
        snap(
            "esx1",
            &[],
            vec![on("a", 4096), on("b", 4096), on("c", 4096)],
        ),
        snap("esx2", &["shared"], vec![]),
        snap("esx3", &["shared"], vec![]),
        snap("esx4", &["shared"], vec![]),
        snap("esx5", &["shared"], vec![]),
    ]);
    let sit = Situation::dead_host().with_down(["esx5"]);
    let p = plan(&inv, &s, "esx1", &sit);
    // The spare takes what fits (a, b), the rest goes to a normal host.
    assert_eq!(target(&p, "a").as_deref(), Some("esx3"));
    assert_eq!(target(&p, "b").as_deref(), Some("esx3"));
    assert_eq!(target(&p, "c").as_deref(), Some("esx2"));
    // With esx2 down too, nothing but the full spare is left.
    let sit = Situation::dead_host().with_down(["esx5", "esx2"]);
    let p = plan(&inv, &s, "esx1", &sit);
    assert_eq!(
        reason(&p, "c"),
        "no host has 4096 MB free (largest free: 0 MB on esx3)"
    );
    // Nothing usable at all: each host with its reason.
    let sit = Situation::dead_host().with_down(["esx5", "esx2", "esx3"]);
    let p = plan(&inv, &s, "esx1", &sit);
    assert_eq!(
        reason(&p, "a"),
        "no usable target host (esx2: down; esx3: down; esx4: maintenance; esx5: down)"
    );
    assert_eq!(get(&p, "a").disposition, Disposition::Unplaced);
}

#[test]
fn no_usable_target_reason_lists_hosts() {
    // A VM on a datastore only a maintenance host sees is "local"; with an EQ group spanning
    // datastores the unit reason names the datastores.
    let hosts = [
        ("esx1", Some(16384), ""),
        ("esx2", Some(16384), ""),
        ("esx3", Some(16384), ""),
    ];
    let extra = "[[vm]]\nname = \"a\"\n[[vm]]\nname = \"b\"\n\
                 [[constraint]]\nkind = \"eq\"\nvms = [\"a\", \"b\"]\n";
    let inv = inventory(&hosts, extra);
    let s = snaps(vec![
        snap(
            "esx1",
            &[],
            vec![
                vm("a", "ds1", VmPower::On, Some(1024)),
                vm("b", "ds2", VmPower::On, Some(1024)),
            ],
        ),
        snap("esx2", &["ds1"], vec![]),
        snap("esx3", &["ds2"], vec![]),
    ]);
    let p = plan(&inv, &s, "esx1", &Situation::dead_host());
    assert_eq!(
        reason(&p, "a"),
        "EQ group a, b: no usable host sees ds1 and ds2"
    );
    assert_eq!(reason(&p, "b"), reason(&p, "a"));
}

#[test]
fn skipped_vms_and_their_reasons() {
    let extra = "[[vm]]\nname = \"held\"\nhold = true\n\
                 [[vm]]\nname = \"foreign\"\nmanaged = false\n\
                 [[vm]]\nname = \"scratch\"\nrestart = \"never\"\n";
    let inv = inventory(&H3, extra);
    let s = snaps(vec![
        snap(
            "esx1",
            &["local1"],
            vec![
                on("held", 1024),
                on("foreign", 1024),
                on("scratch", 1024),
                vm("stopped", "shared", VmPower::Off, Some(1024)),
                vm("asleep", "shared", VmPower::Suspended, Some(1024)),
                vm("local", "local1", VmPower::On, Some(1024)),
                on("twice", 1024),
                on("ok", 1024),
            ],
        ),
        snap("esx2", &["shared"], vec![on("twice", 1024)]),
        snap("esx3", &["shared"], vec![]),
    ]);
    let p = plan(&inv, &s, "esx1", &Situation::dead_host());
    let r = |n| reason(&p, n);
    assert_eq!(r("held"), "hold");
    assert_eq!(r("foreign"), "unmanaged (managed = false)");
    assert_eq!(r("scratch"), "restart = never");
    assert_eq!(r("stopped"), "powered off (scope = running)");
    assert_eq!(r("asleep"), "suspended (scope = running)");
    assert_eq!(
        r("local"),
        "local datastore local1 (no usable host sees it)"
    );
    assert_eq!(r("twice"), "already running on esx2");
    for n in [
        "held", "foreign", "scratch", "stopped", "asleep", "local", "twice",
    ] {
        assert_eq!(get(&p, n).disposition, Disposition::Skipped, "{n}");
        assert_eq!(get(&p, n).target, None);
    }
    assert_eq!(get(&p, "ok").disposition, Disposition::Placed);
    assert_eq!(p.vms.len(), 8);
    assert_eq!(p.vms[0].name, "ok");
}

#[test]
fn scope_all_moves_stopped_vms_without_memory() {
    let inv = inventory(&H3, "[policy]\nscope = \"all\"\n");
    let s = snaps(vec![
        snap(
            "esx1",
            &[],
            vec![
                vm("stopped", "shared", VmPower::Off, None),
                vm("asleep", "shared", VmPower::Suspended, Some(999_999)),
                on("run", 16384),
            ],
        ),
        snap("esx2", &["shared"], vec![]),
        snap("esx3", &["shared"], vec![on("x", 1024)]),
    ]);
    let p = plan(&inv, &s, "esx1", &Situation::dead_host());
    for n in ["stopped", "asleep", "run"] {
        assert_eq!(get(&p, n).disposition, Disposition::Placed, "{n}");
    }
    assert!(get(&p, "run").start && !get(&p, "stopped").start && !get(&p, "asleep").start);
    assert_eq!(target(&p, "run").as_deref(), Some("esx2"));
}

#[test]
fn ne_keeps_vms_apart_including_what_already_runs() {
    let extra = "[[vm]]\nname = \"db1\"\n[[vm]]\nname = \"db2\"\n[[vm]]\nname = \"db3\"\n\
                 [[constraint]]\nkind = \"ne\"\nvms = [\"db1\", \"db2\", \"db3\"]\n";
    let hosts = [
        ("esx1", Some(65536), ""),
        ("esx2", Some(65536), ""),
        ("esx3", Some(65536), ""),
        ("esx4", Some(8192), ""),
    ];
    let inv = inventory(&hosts, extra);
    let s = snaps(vec![
        snap("esx1", &[], vec![on("db1", 4096), on("db2", 4096)]),
        snap("esx2", &["shared"], vec![on("db3", 4096)]),
        snap("esx3", &["shared"], vec![]),
        snap("esx4", &["shared"], vec![]),
    ]);
    let p = plan(&inv, &s, "esx1", &Situation::dead_host());
    // esx2 has db3; db1 and db2 go to esx3 and esx4, one each.
    assert_eq!(target(&p, "db1").as_deref(), Some("esx3"));
    assert_eq!(target(&p, "db2").as_deref(), Some("esx4"));
    let s2 = snaps(vec![
        snap("esx1", &[], vec![on("db1", 4096), on("db2", 4096)]),
        snap("esx2", &["shared"], vec![on("db3", 4096)]),
        snap("esx3", &["shared"], vec![]),
    ]);
    let p = plan(&inv, &s2, "esx1", &Situation::dead_host());
    assert_eq!(target(&p, "db1").as_deref(), Some("esx3"));
    assert_eq!(
        reason(&p, "db2"),
        "NE: a VM it must be apart from is on every candidate host (esx2, esx3)"
    );
}

#[test]
fn eq_places_together_and_follows_a_running_partner() {
    let extra = "[[vm]]\nname = \"app\"\n[[vm]]\nname = \"cache\"\n[[vm]]\nname = \"side\"\n\
                 [[constraint]]\nkind = \"eq\"\nvms = [\"app\", \"cache\"]\n\
                 [[constraint]]\nkind = \"eq\"\nvms = [\"cache\", \"side\"]\n";
    let inv = inventory(&H3, extra);
    let s = snaps(vec![
        snap(
            "esx1",
            &[],
            vec![on("app", 4096), on("cache", 4096), on("filler", 1024)],
        ),
        snap("esx2", &["shared"], vec![]),
        snap("esx3", &["shared"], vec![on("side", 2048)]),
    ]);
    let p = plan(&inv, &s, "esx1", &Situation::dead_host());
    // side (EQ with cache, so with app too) runs on esx3: both follow it there.
    assert_eq!(target(&p, "app").as_deref(), Some("esx3"));
    assert_eq!(target(&p, "cache").as_deref(), Some("esx3"));
    assert_eq!(target(&p, "filler").as_deref(), Some("esx2"));
    // Too big together for the partner's host: both unplaced, with the group named.
    let s = snaps(vec![
        snap("esx1", &[], vec![on("app", 8192), on("cache", 8192)]),
        snap("esx2", &["shared"], vec![]),
        snap("esx3", &["shared"], vec![on("side", 2048)]),
    ]);
    let p = plan(&inv, &s, "esx1", &Situation::dead_host());
    assert_eq!(
        reason(&p, "app"),
        "EQ group app, cache: no host has 16384 MB free (largest free: 14336 MB on esx3)"
    );
    assert_eq!(get(&p, "cache").disposition, Disposition::Unplaced);
}

#[test]
fn pins_restrict_targets() {
    let extra = "[[vm]]\nname = \"lic\"\n[[vm]]\nname = \"lic2\"\n\
                 [[constraint]]\nkind = \"pin\"\nvms = [\"lic\"]\nhosts = [\"esx3\"]\n\
                 [[constraint]]\nkind = \"pin\"\nvms = [\"lic2\"]\nhosts = [\"esx4\"]\n";
    let hosts = [
        ("esx1", Some(16384), ""),
        ("esx2", Some(65536), "role = \"spare\""),
        ("esx3", Some(16384), ""),
        ("esx4", Some(16384), "role = \"maintenance\""),
    ];
    let inv = inventory(&hosts, extra);
    let s = snaps(vec![
        snap("esx1", &[], vec![on("lic", 1024), on("lic2", 1024)]),
        snap("esx2", &["shared"], vec![]),
        snap("esx3", &["shared"], vec![]),
        snap("esx4", &["shared"], vec![]),
    ]);
    let p = plan(&inv, &s, "esx1", &Situation::dead_host());
    assert_eq!(target(&p, "lic").as_deref(), Some("esx3"));
    assert_eq!(
        reason(&p, "lic2"),
        "pinned to esx4: none is usable and sees its datastore"
    );
}

#[test]
fn dependencies_make_tiers_and_block_dependents() {
    let extra = "[[vm]]\nname = \"db\"\npriority = 1\n\
                 [[vm]]\nname = \"app\"\npriority = 5\ndepends_on = [\"db\"]\n\
                 [[vm]]\nname = \"web\"\npriority = 9\ndepends_on = [\"app\"]\n\
                 [[vm]]\nname = \"other\"\npriority = 3\n";
    let hosts = [("esx1", Some(65536), ""), ("esx2", Some(16384), "")];
    let inv = inventory(&hosts, extra);
    let s = snaps(vec![
        snap(
            "esx1",
            &[],
            vec![
                on("web", 4096),
                on("app", 4096),
                on("db", 4096),
                on("other", 4096),
            ],
        ),
        snap("esx2", &["shared"], vec![]),
    ]);
    let p = plan(&inv, &s, "esx1", &Situation::dead_host());
    // db inherits web's priority 9 through app, so the chain gets the room before "other".
    assert_eq!(get(&p, "db").tier, 0);
    assert_eq!(get(&p, "app").tier, 1);
    assert_eq!(get(&p, "web").tier, 2);
    assert_eq!(get(&p, "other").tier, 0);
    let tiers: Vec<Vec<&str>> = p
        .tiers()
        .iter()
        .map(|t| t.iter().map(|v| v.name.as_str()).collect())
        .collect();
    assert_eq!(tiers, [vec!["db", "other"], vec!["app"], vec!["web"]]);
    // Room for two only: db and app (the chain's head) get it; web and other do not.
    let hosts = [("esx1", Some(65536), ""), ("esx2", Some(8192), "")];
    let inv = inventory(&hosts, extra);
    let p = plan(&inv, &s, "esx1", &Situation::dead_host());
    assert_eq!(target(&p, "db").as_deref(), Some("esx2"));
    assert_eq!(target(&p, "app").as_deref(), Some("esx2"));
    assert!(reason(&p, "web").starts_with("no host has 4096 MB free"));
    assert!(reason(&p, "other").starts_with("no host has 4096 MB free"));
    // db without memory: unplaced, and everything that depends on it with it; other moves.
    let s = snaps(vec![
        snap(
            "esx1",
            &[],
            vec![
                on("web", 2048),
                on("app", 2048),
                vm("db", "shared", VmPower::On, None),
                on("other", 2048),
            ],
        ),
        snap("esx2", &["shared"], vec![]),
    ]);
    let p = plan(&inv, &s, "esx1", &Situation::dead_host());
    assert_eq!(
        reason(&p, "db"),
        "memory unknown: give memory_mb in its [[vm]] entry"
    );
    assert_eq!(reason(&p, "app"), "depends on db, which cannot be placed");
    assert_eq!(reason(&p, "web"), "depends on app, which cannot be placed");
    assert_eq!(target(&p, "other").as_deref(), Some("esx2"));
}

#[test]
fn methods_follow_the_situation_and_policy_order() {
    let inv = inventory(
        &H3,
        "[policy]\nmethods = [\"move\", \"failover\", \"quick_migration\"]\n",
    );
    let s = snaps(vec![
        snap("esx1", &[], vec![on("a", 1024)]),
        snap("esx2", &["shared"], vec![]),
        snap("esx3", &["shared"], vec![]),
    ]);
    let p = plan(&inv, &s, "esx1", &Situation::planned());
    assert_eq!(get(&p, "a").methods, [Method::Move, Method::QuickMigration]);
    assert!(p.to_json().contains(r#""method":"move""#));
    let p = plan(&inv, &s, "esx1", &Situation::dead_host());
    assert_eq!(get(&p, "a").methods, [Method::Failover]);
    let inv = inventory(&H3, "[policy]\nmethods = [\"move\"]\n");
    let p = plan(&inv, &s, "esx1", &Situation::dead_host());
    assert_eq!(
        reason(&p, "a"),
        "policy.methods lacks failover, the only method for a dead host"
    );
    assert_eq!(get(&p, "a").disposition, Disposition::Unplaced);
    let inv = inventory(&H3, "[policy]\nmethods = [\"failover\"]\n");
    let p = plan(&inv, &s, "esx1", &Situation::planned());
    assert_eq!(
        reason(&p, "a"),
        "policy.methods has neither quick_migration nor move (a live host)"
    );
}

#[test]
fn memory_from_inventory_then_snapshot() {
    let extra = "[[vm]]\nname = \"a\"\nmemory_mb = 6000\n";
    let hosts = [("esx1", Some(16384), ""), ("esx2", None, "")];
    let inv = inventory(&hosts, extra);
    // esx2's memory comes from its snapshot; a's from the inventory (not the snapshot's 1).
    let mut s2 = snap("esx2", &["shared"], vec![on("b", 4000)]);
    s2.1.memory_mb = Some(10000);
    let s = snaps(vec![snap("esx1", &[], vec![on("a", 1)]), s2.clone()]);
    let p = plan(&inv, &s, "esx1", &Situation::dead_host());
    assert_eq!(target(&p, "a").as_deref(), Some("esx2"));
    assert_eq!(get(&p, "a").memory_mb, Some(6000));
    let s = snaps(vec![snap("esx1", &[], vec![on("a", 1), on("c", 1)]), s2]);
    let p = plan(&inv, &s, "esx1", &Situation::dead_host());
    assert_eq!(target(&p, "c").as_deref(), None);
    assert_eq!(
        reason(&p, "c"),
        "no host has 1 MB free (largest free: 0 MB on esx2)"
    );
    // Host memory unknown anywhere, or a running VM of unknown memory: not a target.
    let s = snaps(vec![
        snap("esx1", &[], vec![on("a", 1)]),
        snap("esx2", &["shared"], vec![]),
    ]);
    let p = plan(&inv, &s, "esx1", &Situation::dead_host());
    assert_eq!(
        reason(&p, "a"),
        "no usable target host (esx2: memory unknown)"
    );
    // esx2 has the most room but runs a VM of unknown memory: not a target; esx3 is.
    let hosts = [
        ("esx1", Some(16384), ""),
        ("esx2", Some(65536), ""),
        ("esx3", Some(8192), ""),
    ];
    let inv = inventory(&hosts, extra);
    let a_on_other = vm("a", "other", VmPower::On, Some(1));
    let mk = |u: Option<u64>| {
        snaps(vec![
            snap("esx1", &[], vec![a_on_other.clone()]),
            snap("esx2", &["other"], vec![vm("u", "shared", VmPower::On, u)]),
            snap("esx3", &["other"], vec![]),
        ])
    };
    let p = plan(&inv, &mk(Some(1024)), "esx1", &Situation::dead_host());
    assert_eq!(target(&p, "a").as_deref(), Some("esx2"));
    let p = plan(&inv, &mk(None), "esx1", &Situation::dead_host());
    assert_eq!(target(&p, "a").as_deref(), Some("esx3"));
    let inv = inventory(&hosts[..2], extra);
    let p = plan(&inv, &mk(None), "esx1", &Situation::dead_host());
    assert_eq!(
        reason(&p, "a"),
        "no usable target host (esx2: memory of its VM u unknown)"
    );
}

#[test]
fn datastore_visibility_decides_targets() {
    let inv = inventory(&H3, "");
    let s = snaps(vec![
        snap(
            "esx1",
            &[],
            vec![
                vm("a", "ds1", VmPower::On, Some(1024)),
                vm("b", "ds2", VmPower::On, Some(1024)),
            ],
        ),
        // esx2 sees ds1 through a VM it runs; esx3 lists ds2.
        snap("esx2", &[], vec![vm("x", "ds1", VmPower::Off, Some(1024))]),
        snap("esx3", &["ds2"], vec![]),
    ]);
    let p = plan(&inv, &s, "esx1", &Situation::dead_host());
    assert_eq!(target(&p, "a").as_deref(), Some("esx2"));
    assert_eq!(target(&p, "b").as_deref(), Some("esx3"));
}

#[test]
fn same_plan_whatever_the_snapshot_order() {
    let inv = inventory(&H3, "");
    let vms: Vec<VmRecord> = (0..20)
        .map(|i| on(&format!("vm{i:02}"), 512 + 97 * (i % 7)))
        .collect();
    let mut rev = vms.clone();
    rev.reverse();
    let mk = |v: Vec<VmRecord>| {
        snaps(vec![
            snap("esx1", &[], v),
            snap("esx2", &["shared"], vec![]),
            snap("esx3", &["shared"], vec![]),
        ])
    };
    let a = plan(&inv, &mk(vms), "esx1", &Situation::dead_host());
    let b = plan(&inv, &mk(rev), "esx1", &Situation::dead_host());
    assert_eq!(a, b);
    assert_eq!(a.to_json(), b.to_json());
}
