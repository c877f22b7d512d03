//! Property tests of the planner over random inventories and snapshots (built directly, so
//! they may hold what `Inventory::parse` would refuse, such as EQ and NE contradicting: the
//! planner must stay safe on those too).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::super::*;
use crate::evacuate::inventory::{
    Constraint, ConstraintKind, Host, Inventory, Restart, Role, Scope, VmSettings,
};
use crate::evacuate::snapshot::HostSnapshot;

const DATASTORES: [&str; 4] = ["ds0", "ds1", "ds2", "local"];

#[derive(Debug, Clone)]
struct Case {
    inv: Inventory,
    snaps: Snapshots,
    sit: Situation,
}

type HostGen = (u8, u8, u8, u8, u8);
type VmGen = (u8, u8, u8, u8);
type OtherGen = (u8, u8, u8, bool);
type ConstraintGen = (u8, Vec<u8>, u8);

fn build(
    hosts: Vec<HostGen>,
    failed_vms: Vec<VmGen>,
    others: Vec<OtherGen>,
    constraints: Vec<ConstraintGen>,
    deps: Vec<(u8, u8)>,
    scope_all: bool,
    planned: bool,
) -> Case {
    let mut inv = Inventory::default();
    let mut snaps = Snapshots::new();
    let mut down = Vec::new();
    let n_hosts = hosts.len();
    for (i, (mem, reserve, role, ds_mask, state)) in hosts.into_iter().enumerate() {
        let name = format!("h{i}");
        let memory = match mem {
            0 => None,
            m => Some(u64::from(m) * 3000),
        };
        inv.hosts.push(Host {
            name: name.clone(),
            address: format!("192.0.2.{i}"),
            port: None,
            bmc_address: format!("198.51.100.{i}"),
            bmc_port: None,
            memory_mb: if state % 3 == 0 { None } else { memory },
            reserve_mb: u64::from(reserve) * 500,
            role: match role {
                0 => Role::Maintenance,
                1 | 2 => Role::Spare,
                _ => Role::Normal,
            },
            ssh: Default::default(),
            bmc: Default::default(),
            line: 0,
        });
        if i > 0 && state == 9 {
            down.push(name.clone());
        }
        // Host 0 (the failed one) always has a snapshot.
        if i == 0 || state != 8 {
            let mut s = HostSnapshot::new(&name);
            s.memory_mb = memory;
            s.datastores = DATASTORES
                .iter()
                .enumerate()
                .filter(|(b, _)| ds_mask & (1 << b) != 0)
                .map(|(_, d)| d.to_string())
                .collect();
            snaps.insert(name, s);
        }
    }
    let vm_name = |k: usize| format!("f{k}");
    let n_failed = failed_vms.len();
    for (k, (ds, power, mem, flags)) in failed_vms.into_iter().enumerate() {
        let name = vm_name(k);
        let datastore = DATASTORES[usize::from(ds) % DATASTORES.len()].to_string();
        let rec = VmRecord {
            vmx: format!("[{datastore}] {name}/{name}.vmx"),
            name: name.clone(),
            vmid: u32::try_from(k).unwrap(),
            datastore,
            power: match power {
                0..=5 => VmPower::On,
                6 | 7 => VmPower::Off,
                _ => VmPower::Suspended,
            },
            memory_mb: (mem > 0).then(|| u64::from(mem) * 700),
        };
        if let Some(s) = snaps.get_mut("h0") {
            s.vms.push(rec);
        }
        if flags > 3 {
            let mut v = VmSettings::defaults(&name);
            v.priority = i32::from(flags % 5) - 2;
            v.hold = flags == 4;
            v.managed = flags != 5;
            v.restart = if flags == 6 {
                Restart::Never
            } else {
                Restart::Always
            };
            v.memory_mb = (flags % 4 == 0).then(|| u64::from(flags) * 300);
            inv.vms.push(v);
        }
    }
    let mut other_names = Vec::new();
    for (j, (host, ds, mem, running)) in others.into_iter().enumerate() {
        let h = format!(
            "h{}",
            1 + usize::from(host) % n_hosts.saturating_sub(1).max(1)
        );
        let name = format!("o{j}");
        let datastore = DATASTORES[usize::from(ds) % DATASTORES.len()].to_string();
        if let Some(s) = snaps.get_mut(&h) {
            s.vms.push(VmRecord {
                vmx: format!("[{datastore}] {name}/{name}.vmx"),
                name: name.clone(),
                vmid: u32::try_from(j).unwrap(),
                datastore,
                power: if running { VmPower::On } else { VmPower::Off },
                memory_mb: (mem > 0).then(|| u64::from(mem) * 700),
            });
        }
        other_names.push(name);
    }
    // Constraint references: failed VMs first, then the others.
    let any_name = |r: u8| {
        let all = n_failed + other_names.len();
        if all == 0 {
            return None;
        }
        let k = usize::from(r) % all;
        Some(if k < n_failed {
            vm_name(k)
        } else {
            other_names[k - n_failed].clone()
        })
    };
    for (kind, refs, host_mask) in constraints {
        let mut vms: Vec<String> = refs.iter().filter_map(|&r| any_name(r)).collect();
        vms.sort();
        vms.dedup();
        let kind = match kind {
            0 => ConstraintKind::Ne,
            1 => ConstraintKind::Eq,
            _ => ConstraintKind::Pin,
        };
        let hosts = if kind == ConstraintKind::Pin {
            (0..n_hosts)
                .filter(|b| host_mask & (1 << b) != 0)
                .map(|b| format!("h{b}"))
                .collect()
        } else {
            Vec::new()
        };
        inv.constraints.push(Constraint {
            kind,
            vms,
            hosts,
            line: 0,
        });
    }
    // Dependencies from a later failed VM to an earlier one (acyclic).
    for (a, b) in deps {
        if n_failed < 2 {
            break;
        }
        let (a, b) = (usize::from(a) % n_failed, usize::from(b) % n_failed);
        if a == b {
            continue;
        }
        let (later, earlier) = (vm_name(a.max(b)), vm_name(a.min(b)));
        if inv.vm(&later).is_none() {
            inv.vms.push(VmSettings::defaults(&later));
        }
        if let Some(v) = inv.vms.iter_mut().find(|v| v.name == later) {
            if !v.depends_on.contains(&earlier) {
                v.depends_on.push(earlier);
            }
        }
    }
    inv.policy.scope = if scope_all {
        Scope::All
    } else {
        Scope::Running
    };
    let sit = if planned {
        Situation::planned()
    } else {
        Situation::dead_host()
    }
    .with_down(down);
    Case { inv, snaps, sit }
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec((0u8..8, 0u8..4, 0u8..10, 0u8..16, 0u8..10), 2..7),
        prop::collection::vec((0u8..4, 0u8..10, 0u8..9, 0u8..12), 0..30),
        prop::collection::vec((0u8..6, 0u8..4, 0u8..9, any::<bool>()), 0..12),
        prop::collection::vec(
            (
                0u8..3,
                prop::collection::vec(any::<u8>(), 1..4),
                any::<u8>(),
            ),
            0..7,
        ),
        prop::collection::vec((any::<u8>(), any::<u8>()), 0..8),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(h, f, o, c, d, all, planned)| build(h, f, o, c, d, all, planned))
}

/// The memory the planner must use for a VM: inventory first, then the snapshot.
fn mem_of(inv: &Inventory, v: &VmRecord) -> Option<u64> {
    inv.vm(&v.name).and_then(|s| s.memory_mb).or(v.memory_mb)
}

/// Hosts that are alive (not the failed one, not down, in the inventory).
fn alive(case: &Case, h: &str) -> bool {
    h != "h0" && !case.sit.down.contains(h) && case.inv.host(h).is_some()
}

fn check(case: &Case) -> Result<(), TestCaseError> {
    let Case { inv, snaps, sit } = case;
    let p = plan(inv, snaps, "h0", sit);

    // Every VM of the failed host exactly once.
    let mut want: Vec<(String, String, u32)> = snaps["h0"]
        .vms
        .iter()
        .map(|v| (v.name.clone(), v.vmx.clone(), v.vmid))
        .collect();
    let mut got: Vec<(String, String, u32)> = p
        .vms
        .iter()
        .map(|v| (v.name.clone(), v.vmx.clone(), v.vmid))
        .collect();
    want.sort();
    got.sort();
    prop_assert_eq!(want, got);

    // Deterministic, whatever the snapshot's VM order.
    prop_assert_eq!(&p, &plan(inv, snaps, "h0", sit));
    let mut shuffled = snaps.clone();
    if let Some(s) = shuffled.get_mut("h0") {
        s.vms.reverse();
        let third = s.vms.len() / 3;
        s.vms.rotate_left(third);
    }
    prop_assert_eq!(&p, &plan(inv, &shuffled, "h0", sit));

    let allowed = sit.methods(&inv.policy.methods);
    let mut placed_mem: BTreeMap<String, u64> = BTreeMap::new();
    for v in &p.vms {
        match v.disposition {
            Disposition::Placed => {
                let t = v.target.as_deref().unwrap();
                let host = inv.host(t).unwrap();
                let snap = snaps.get(t).unwrap();
                prop_assert!(alive(case, t), "{t} is not a live target");
                prop_assert!(host.role != Role::Maintenance);
                prop_assert!(snap.sees(&v.datastore), "{t} does not see {}", v.datastore);
                prop_assert_eq!(&v.methods, &allowed);
                prop_assert!(v.reason.is_none());
                if inv.policy.scope == Scope::Running {
                    prop_assert_eq!(v.power, VmPower::On);
                }
                if v.start {
                    *placed_mem.entry(t.to_string()).or_default() += v.memory_mb.unwrap();
                }
                let s = inv.vm(&v.name);
                prop_assert!(!s.is_some_and(|s| s.hold || !s.managed));
                prop_assert!(!s.is_some_and(|s| s.restart == Restart::Never));
            }
            _ => {
                prop_assert!(v.target.is_none() && v.methods.is_empty());
                prop_assert!(v.reason.as_deref().is_some_and(|r| !r.is_empty()));
            }
        }
    }

    // Capacity: what runs there plus what is planned there fits memory - reserve.
    for (t, add) in &placed_mem {
        let host = inv.host(t).unwrap();
        let snap = &snaps[t];
        let memory = host.memory_mb.or(snap.memory_mb).unwrap();
        let cap = memory.saturating_sub(host.reserve_mb);
        let base: u64 = snap
            .vms
            .iter()
            .filter(|v| v.power == VmPower::On)
            .map(|v| mem_of(inv, v).unwrap())
            .sum();
        prop_assert!(base + add <= cap, "{t}: {base} + {add} > {cap}");
    }

    // Where every VM ends up running: live hosts' powered-on VMs, then the plan.
    let mut runs_on: Vec<(String, String)> = Vec::new();
    for (h, s) in snaps.iter().filter(|(h, _)| alive(case, h)) {
        for v in s.vms.iter().filter(|v| v.power == VmPower::On) {
            runs_on.push((v.name.clone(), h.clone()));
        }
    }
    let placed: Vec<(&str, &str)> = p
        .vms
        .iter()
        .filter(|v| v.disposition == Disposition::Placed)
        .map(|v| (v.name.as_str(), v.target.as_deref().unwrap()))
        .collect();
    for c in &inv.constraints {
        let members: BTreeSet<&str> = c.vms.iter().map(String::as_str).collect();
        let placed_members: Vec<(&str, &str)> = placed
            .iter()
            .copied()
            .filter(|(n, _)| members.contains(n))
            .collect();
        match c.kind {
            ConstraintKind::Ne => {
                // No placed member shares its host with another member (placed or running).
                for (i, (n, t)) in placed_members.iter().enumerate() {
                    for (m, u) in placed_members.iter().skip(i + 1) {
                        prop_assert!(t != u, "NE: {n} and {m} both on {t}");
                    }
                    for (m, u) in &runs_on {
                        prop_assert!(
                            !(members.contains(m.as_str()) && u == t),
                            "NE: {n} placed on {t} where {m} runs"
                        );
                    }
                }
            }
            ConstraintKind::Pin => {
                for (n, t) in &placed_members {
                    prop_assert!(c.hosts.iter().any(|h| h == t), "pin: {n} on {t}");
                }
            }
            ConstraintKind::Eq => {}
        }
    }
    // EQ, transitively: placed members of a class share one host, the one where a member
    // already runs if any.
    let mut uf = crate::evacuate::inventory::UnionFind::default();
    for c in inv
        .constraints
        .iter()
        .filter(|c| c.kind == ConstraintKind::Eq)
    {
        for w in c.vms.windows(2) {
            uf.union(&w[0], &w[1]);
        }
    }
    let in_eq: BTreeSet<&str> = inv
        .constraints
        .iter()
        .filter(|c| c.kind == ConstraintKind::Eq)
        .flat_map(|c| c.vms.iter().map(String::as_str))
        .collect();
    let mut class_host: BTreeMap<String, String> = BTreeMap::new();
    for (n, t) in &runs_on {
        if in_eq.contains(n.as_str()) {
            class_host.entry(uf.find(n)).or_insert_with(|| t.clone());
        }
    }
    for (n, t) in placed.iter().filter(|(n, _)| in_eq.contains(n)) {
        let root = uf.find(n);
        let want = class_host.entry(root).or_insert_with(|| t.to_string());
        prop_assert_eq!(want.as_str(), *t, "EQ: {} not with its class", n);
    }

    // Dependencies: a placed VM comes in a later tier than the placed VMs it depends on, and
    // never depends on one that should move but cannot.
    for v in p
        .vms
        .iter()
        .filter(|v| v.disposition == Disposition::Placed)
    {
        for dep in inv.vm(&v.name).map_or(&[][..], |s| s.depends_on.as_slice()) {
            for d in p.vms.iter().filter(|d| &d.name == dep) {
                match d.disposition {
                    Disposition::Placed => prop_assert!(d.tier < v.tier),
                    Disposition::Unplaced => {
                        return Err(TestCaseError::fail(format!(
                            "{} placed but its dependency {dep} is not",
                            v.name
                        )));
                    }
                    Disposition::Skipped => {}
                }
            }
        }
    }

    // JSON: one entry per VM with the contract's fields.
    let json: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
    prop_assert_eq!(json["host"].as_str(), Some("h0"));
    let arr = json["vms"].as_array().unwrap();
    prop_assert_eq!(arr.len(), p.vms.len());
    for (j, v) in arr.iter().zip(&p.vms) {
        let keys: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
        prop_assert_eq!(keys, ["method", "name", "reason", "source", "target"]);
        prop_assert_eq!(j["target"].as_str(), v.target.as_deref());
    }
    Ok(())
}

proptest! {
    // No regression files in the tree: a failure prints its minimal case.
    #![proptest_config(ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn planner_invariants(c in case()) {
        check(&c)?;
    }
}

/// The generator is not vacuous: over many cases, VMs are placed, left unplaced and skipped,
/// and constrained VMs are placed.
#[test]
fn generator_covers_the_interesting_cases() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = case();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for _ in 0..300 {
        let c = strategy.new_tree(&mut runner).unwrap().current();
        let p = plan(&c.inv, &c.snaps, "h0", &c.sit);
        for v in &p.vms {
            let k = match v.disposition {
                Disposition::Placed => "placed",
                Disposition::Unplaced => "unplaced",
                Disposition::Skipped => "skipped",
            };
            *count.entry(k).or_default() += 1;
            let constrained = c.inv.constraints.iter().any(|x| x.vms.contains(&v.name));
            if constrained && v.disposition == Disposition::Placed {
                *count.entry("constrained placed").or_default() += 1;
            }
            let in_ne = c
                .inv
                .constraints
                .iter()
                .any(|x| x.kind == ConstraintKind::Ne && x.vms.contains(&v.name));
            if in_ne && v.disposition == Disposition::Placed {
                *count.entry("ne placed").or_default() += 1;
            }
            if v.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("no host has"))
            {
                *count.entry("capacity").or_default() += 1;
            }
            if v.reason.as_deref().is_some_and(|r| r.starts_with("NE:")) {
                *count.entry("ne").or_default() += 1;
            }
            if v.disposition == Disposition::Placed && v.tier > 0 {
                *count.entry("tier>0").or_default() += 1;
            }
        }
    }
    let at_least = [
        ("placed", 100),
        ("unplaced", 100),
        ("skipped", 100),
        ("constrained placed", 50),
        ("ne placed", 20),
        ("capacity", 50),
        ("ne", 5),
        ("tier>0", 20),
    ];
    for (k, n) in at_least {
        assert!(count.get(k).copied().unwrap_or(0) >= n, "{k}: {count:?}");
    }
}
