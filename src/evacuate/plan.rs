//! The planner: a pure, deterministic function from (inventory, snapshots, failed host,
//! situation) to a [`Plan`] that says, for every VM the failed host's snapshot shows, where it
//! goes and by which methods, or why it stays.
//!
//! Rules:
//! - **Skipped** (with their reason, in this order): `hold`; `managed = false`;
//!   `restart = never`; out of scope (with `scope = running`, a VM that was not powered on);
//!   already powered on on another live host (same vmx); on a datastore that no usable host
//!   sees while some host is usable ("local datastore").
//! - **Unplaced** (should move, cannot; with a reason): no method of `policy.methods` fits the
//!   situation (a dead host allows only `failover`; a live host `quick_migration` and `move`);
//!   memory unknown (a VM to be started needs `memory_mb`, from its `[[vm]]` entry or the
//!   snapshot); no target passes the filters below; depends on a VM that is unplaced.
//! - **Targets**: inventory hosts other than the failed one that are not down
//!   ([`Situation::down`]), not in maintenance, have a snapshot, and whose memory is known
//!   (inventory `memory_mb`, else the snapshot's) as is that of every VM running there. A
//!   target must see every datastore of what it receives, satisfy pins (the intersection of
//!   every pin naming the VM), NE (no VM of an NE group of the VM already runs there or was
//!   planned there) and EQ (the members of an EQ class are placed together, on the host where a
//!   member already runs if one does), and keep `used + needed <= memory_mb - reserve_mb`,
//!   where `used` is the memory of its powered-on VMs plus what was planned onto it. Only VMs
//!   to be started (powered on at the source) need memory.
//! - **Order**: units (an EQ class or a single VM) are placed powered-on first, then by
//!   effective priority (a VM's own, raised to that of any VM depending on it), then dependency
//!   depth, then memory (largest first), then name. Among the candidates, spare hosts first,
//!   then the most memory left free after placement, then the host name. Nothing is random.
//! - **Tiers**: a placed VM's tier is one more than the highest tier of the placed VMs it
//!   depends on (0 without); the executor runs tier by tier.
//!
//! The plan's JSON form (`plan --json`) is `{"host": H, "vms": [{"name", "source", "target",
//! "method", "reason"}]}` with `target`, `method` and `reason` null when they do not apply.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::inventory::{ConstraintKind, Inventory, Method, Restart, Role, Scope, UnionFind};
use super::snapshot::{Snapshots, VmPower, VmRecord};

/// The failed host's state, which decides the methods that apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceState {
    /// Dead and confirmed off: only `failover`.
    Dead,
    /// Alive (a planned evacuation): `quick_migration` and `move`.
    Live,
}

/// The situation a plan is made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Situation {
    /// State of the host being evacuated.
    pub source: SourceState,
    /// Other hosts known to be down or unreachable: never targets, and what their snapshots
    /// show is not counted as running.
    pub down: BTreeSet<String>,
}

impl Situation {
    /// Rescue of a dead host.
    pub fn dead_host() -> Self {
        Situation {
            source: SourceState::Dead,
            down: BTreeSet::new(),
        }
    }

    /// Evacuation of a live host (`run --planned`).
    pub fn planned() -> Self {
        Situation {
            source: SourceState::Live,
            down: BTreeSet::new(),
        }
    }

    /// The same situation with `hosts` also down.
    pub fn with_down<I, S>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.down.extend(hosts.into_iter().map(Into::into));
        self
    }

    /// The methods of `policy` (in its order) that this situation allows.
    pub fn methods(&self, policy: &[Method]) -> Vec<Method> {
        policy
            .iter()
            .copied()
            .filter(|m| match self.source {
                SourceState::Dead => *m == Method::Failover,
                SourceState::Live => matches!(m, Method::QuickMigration | Method::Move),
            })
            .collect()
    }
}

/// What the plan does with a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// Goes to `target`.
    Placed,
    /// Left alone on purpose (hold, unmanaged, never, out of scope, local datastore, …).
    Skipped,
    /// Should move but cannot (the result is an error).
    Unplaced,
}

/// One VM of the failed host in the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedVm {
    /// Display name.
    pub name: String,
    /// The failed host.
    pub source: String,
    /// Its vmid on the source.
    pub vmid: u32,
    /// Its vmx path.
    pub vmx: String,
    /// Its datastore.
    pub datastore: String,
    /// Power state at the source.
    pub power: VmPower,
    /// Powered on after the move (it was powered on at the source).
    pub start: bool,
    /// Memory, MB (inventory first, then snapshot).
    pub memory_mb: Option<u64>,
    /// Priority (its own, from the inventory).
    pub priority: i32,
    /// Placed, skipped or unplaced.
    pub disposition: Disposition,
    /// Target host when placed.
    pub target: Option<String>,
    /// Methods to try, in order, when placed.
    pub methods: Vec<Method>,
    /// Execution tier when placed (0 first).
    pub tier: u32,
    /// Why skipped or unplaced.
    pub reason: Option<String>,
}

/// A plan for one failed host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The host being evacuated.
    pub host: String,
    /// Every VM its snapshot shows, exactly once: placed VMs by tier, then unplaced, then
    /// skipped.
    pub vms: Vec<PlannedVm>,
}

impl Plan {
    /// The placed VMs grouped by tier, in execution order.
    pub fn tiers(&self) -> Vec<Vec<&PlannedVm>> {
        let mut out: BTreeMap<u32, Vec<&PlannedVm>> = BTreeMap::new();
        for v in &self.vms {
            if v.disposition == Disposition::Placed {
                out.entry(v.tier).or_default().push(v);
            }
        }
        out.into_values().collect()
    }

    /// The plan as `plan --json` prints it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[derive(Serialize)]
struct JsonVm<'a> {
    name: &'a str,
    source: &'a str,
    target: Option<&'a str>,
    method: Option<Method>,
    reason: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    host: &'a str,
    vms: Vec<JsonVm<'a>>,
}

impl Serialize for Plan {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        JsonPlan {
            host: &self.host,
            vms: self
                .vms
                .iter()
                .map(|v| JsonVm {
                    name: &v.name,
                    source: &v.source,
                    target: v.target.as_deref(),
                    method: match v.disposition {
                        Disposition::Placed => v.methods.first().copied(),
                        _ => None,
                    },
                    reason: v.reason.as_deref(),
                })
                .collect(),
        }
        .serialize(s)
    }
}

/// A possible target host.
struct Target<'a> {
    name: &'a str,
    spare: bool,
    /// `memory_mb - reserve_mb`.
    cap: u64,
    /// Memory of its powered-on VMs.
    used: u64,
    sees: BTreeSet<&'a str>,
    /// Why it cannot receive VMs.
    unusable: Option<String>,
}

/// Per-VM facts the placement needs.
struct Facts<'a> {
    rec: &'a VmRecord,
    eff_priority: i64,
    depth: u32,
    need: u64,
    ne: Vec<usize>,
    pins: Option<BTreeSet<&'a str>>,
    eq_root: Option<String>,
}

/// Plans the evacuation of `failed` (see the module documentation for the rules). A host
/// without a snapshot gives an empty plan: the caller must refuse to act on it.
pub fn plan(inv: &Inventory, snaps: &Snapshots, failed: &str, sit: &Situation) -> Plan {
    let mut out = Plan {
        host: failed.to_string(),
        vms: Vec::new(),
    };
    let Some(src) = snaps.get(failed) else {
        return out;
    };
    let settings: BTreeMap<&str, &super::inventory::VmSettings> =
        inv.vms.iter().map(|v| (v.name.as_str(), v)).collect();
    let mem_of =
        |name: &str, rec: Option<u64>| settings.get(name).and_then(|s| s.memory_mb).or(rec);
    let alive = |h: &str| h != failed && !sit.down.contains(h) && inv.host(h).is_some();

    // Targets, by name.
    let mut hosts: Vec<&super::inventory::Host> =
        inv.hosts.iter().filter(|h| h.name != failed).collect();
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    hosts.dedup_by(|a, b| a.name == b.name);
    let targets: Vec<Target<'_>> = hosts
        .iter()
        .map(|h| {
            let snap = snaps.get(&h.name);
            let mut t = Target {
                name: h.name.as_str(),
                spare: h.role == Role::Spare,
                cap: 0,
                used: 0,
                sees: snap.map(|s| s.visible_datastores()).unwrap_or_default(),
                unusable: None,
            };
            let memory = h.memory_mb.or(snap.and_then(|s| s.memory_mb));
            t.unusable = if sit.down.contains(&h.name) {
                Some("down".to_string())
            } else if h.role == Role::Maintenance {
                Some("maintenance".to_string())
            } else if snap.is_none() {
                Some("no snapshot".to_string())
            } else if memory.is_none() {
                Some("memory unknown".to_string())
            } else {
                None
            };
            if let Some(s) = snap {
                for v in s.vms.iter().filter(|v| v.power == VmPower::On) {
                    match mem_of(&v.name, v.memory_mb) {
                        Some(m) => t.used = t.used.saturating_add(m),
                        None => {
                            if t.unusable.is_none() {
                                t.unusable = Some(format!("memory of its VM {} unknown", v.name));
                            }
                        }
                    }
                }
            }
            t.cap = memory.unwrap_or(0).saturating_sub(h.reserve_mb);
            t
        })
        .collect();
    let index_of: BTreeMap<&str, usize> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name, i))
        .collect();
    let usable: Vec<usize> = (0..targets.len())
        .filter(|&i| targets.get(i).is_some_and(|t| t.unusable.is_none()))
        .collect();

    // Constraints by VM name.
    let mut uf = UnionFind::default();
    let mut in_eq: BTreeSet<&str> = BTreeSet::new();
    let mut ne_of: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut pins_of: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut ne_count = 0usize;
    for c in &inv.constraints {
        match c.kind {
            ConstraintKind::Eq => {
                if let Some((first, rest)) = c.vms.split_first() {
                    in_eq.insert(first);
                    for v in rest {
                        in_eq.insert(v);
                        uf.union(first, v);
                    }
                }
            }
            ConstraintKind::Ne => {
                for v in &c.vms {
                    let list = ne_of.entry(v.as_str()).or_default();
                    if !list.contains(&ne_count) {
                        list.push(ne_count);
                    }
                }
                ne_count += 1;
            }
            ConstraintKind::Pin => {
                let hs: BTreeSet<&str> = c.hosts.iter().map(String::as_str).collect();
                for v in &c.vms {
                    pins_of
                        .entry(v.as_str())
                        .and_modify(|p| *p = p.intersection(&hs).copied().collect())
                        .or_insert_with(|| hs.clone());
                }
            }
        }
    }

    // What already runs on the live hosts: for duplicates, NE and EQ anchors.
    let mut running_on: BTreeMap<&str, &str> = BTreeMap::new();
    let mut ne_base: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); ne_count];
    let mut eq_anchor: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for (h, s) in snaps.iter().filter(|(h, _)| alive(h)) {
        for v in s.vms.iter().filter(|v| v.power == VmPower::On) {
            running_on.entry(v.vmx.as_str()).or_insert(h.as_str());
            if let Some(&ti) = index_of.get(h.as_str()) {
                for &g in ne_of.get(v.name.as_str()).map_or(&[][..], |x| x.as_slice()) {
                    if let Some(set) = ne_base.get_mut(g) {
                        set.insert(ti);
                    }
                }
            }
            if in_eq.contains(v.name.as_str()) {
                eq_anchor
                    .entry(uf.find(&v.name))
                    .or_default()
                    .insert(h.as_str());
            }
        }
    }

    // Effective priority (raised to that of dependents) and dependency depth, both bounded
    // even if the inventory (built without `Inventory::parse`) has a cycle.
    let mut eff: BTreeMap<&str, i64> = inv
        .vms
        .iter()
        .map(|v| (v.name.as_str(), i64::from(v.priority)))
        .collect();
    let mut depth: BTreeMap<&str, u32> = BTreeMap::new();
    for _ in 0..=inv.vms.len() {
        let mut changed = false;
        for v in &inv.vms {
            let p = eff.get(v.name.as_str()).copied().unwrap_or(0);
            let mut d = 0u32;
            for dep in &v.depends_on {
                let e = eff.entry(dep.as_str()).or_insert(0);
                if *e < p {
                    *e = p;
                    changed = true;
                }
                d = d.max(
                    depth
                        .get(dep.as_str())
                        .copied()
                        .unwrap_or(0)
                        .saturating_add(1),
                );
            }
            let cur = depth.entry(v.name.as_str()).or_insert(0);
            if *cur < d && d <= u32::try_from(inv.vms.len()).unwrap_or(u32::MAX) {
                *cur = d;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }

    // The source's VMs, in a fixed order whatever the snapshot's order.
    let mut recs: Vec<&VmRecord> = src.vms.iter().collect();
    recs.sort_by(|a, b| {
        (a.name.as_str(), a.vmx.as_str(), a.vmid).cmp(&(b.name.as_str(), b.vmx.as_str(), b.vmid))
    });
    let methods = sit.methods(&inv.policy.methods);
    let usable_sees: BTreeSet<&str> = usable
        .iter()
        .filter_map(|&i| targets.get(i))
        .flat_map(|t| t.sees.iter().copied())
        .collect();

    let mut vms: Vec<PlannedVm> = Vec::with_capacity(recs.len());
    let mut facts: Vec<Facts<'_>> = Vec::with_capacity(recs.len());
    let mut pending: Vec<bool> = Vec::with_capacity(recs.len());
    for rec in &recs {
        let s = settings.get(rec.name.as_str());
        let start = rec.power == VmPower::On;
        let memory = mem_of(&rec.name, rec.memory_mb);
        let mut skip: Option<String> = None;
        let mut fail: Option<String> = None;
        if s.is_some_and(|s| s.hold) {
            skip = Some("hold".into());
        } else if s.is_some_and(|s| !s.managed) {
            skip = Some("unmanaged (managed = false)".into());
        } else if s.is_some_and(|s| s.restart == Restart::Never) {
            skip = Some("restart = never".into());
        } else if inv.policy.scope == Scope::Running && !start {
            let what = if rec.power == VmPower::Suspended {
                "suspended"
            } else {
                "powered off"
            };
            skip = Some(format!("{what} (scope = running)"));
        } else if let Some(h) = running_on.get(rec.vmx.as_str()) {
            skip = Some(format!("already running on {h}"));
        } else if rec.datastore.is_empty() {
            skip = Some("local datastore: its datastore is unknown".into());
        } else if !usable.is_empty() && !usable_sees.contains(rec.datastore.as_str()) {
            skip = Some(format!(
                "local datastore {} (no usable host sees it)",
                rec.datastore
            ));
        } else if methods.is_empty() {
            fail = Some(match sit.source {
                SourceState::Dead => {
                    "policy.methods lacks failover, the only method for a dead host".into()
                }
                SourceState::Live => {
                    "policy.methods has neither quick_migration nor move (a live host)".into()
                }
            });
        } else if start && memory.is_none() {
            fail = Some("memory unknown: give memory_mb in its [[vm]] entry".into());
        }
        let disposition = if skip.is_some() {
            Disposition::Skipped
        } else if fail.is_some() {
            Disposition::Unplaced
        } else {
            Disposition::Placed
        };
        pending.push(disposition == Disposition::Placed);
        vms.push(PlannedVm {
            name: rec.name.clone(),
            source: failed.to_string(),
            vmid: rec.vmid,
            vmx: rec.vmx.clone(),
            datastore: rec.datastore.clone(),
            power: rec.power,
            start,
            memory_mb: memory,
            priority: s.map_or(0, |s| s.priority),
            disposition,
            target: None,
            methods: Vec::new(),
            tier: 0,
            reason: skip.or(fail),
        });
        let name = rec.name.as_str();
        facts.push(Facts {
            rec,
            eff_priority: eff.get(name).copied().unwrap_or(0),
            depth: depth.get(name).copied().unwrap_or(0),
            need: if start { memory.unwrap_or(0) } else { 0 },
            ne: ne_of.get(name).cloned().unwrap_or_default(),
            pins: pins_of.get(name).cloned(),
            eq_root: in_eq.contains(name).then(|| uf.find(name)),
        });
    }

    // Source VMs by name, for dependencies.
    let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, f) in facts.iter().enumerate() {
        by_name.entry(f.rec.name.as_str()).or_default().push(i);
    }

    let ctx = Ctx {
        targets: &targets,
        usable: &usable,
        facts: &facts,
        ne_base: &ne_base,
        eq_anchor: &eq_anchor,
    };
    // Place; a VM whose dependency is unplaced becomes unplaced itself, and the rest is placed
    // again without it (each round removes at least one VM, so this ends).
    let mut blocked: BTreeMap<usize, String> = BTreeMap::new();
    let placed = loop {
        let placed = ctx.place(&pending, &blocked);
        let mut newly = Vec::new();
        for (i, p) in placed.iter().enumerate() {
            if p.is_err() || !pending.get(i).copied().unwrap_or(false) {
                continue;
            }
            let Some(s) = facts.get(i).and_then(|f| settings.get(f.rec.name.as_str())) else {
                continue;
            };
            for dep in &s.depends_on {
                let failed_dep = by_name.get(dep.as_str()).is_some_and(|ids| {
                    ids.iter().any(|&j| {
                        let pre_unplaced =
                            vms.get(j).map(|v| v.disposition) == Some(Disposition::Unplaced);
                        let now_unplaced = pending.get(j).copied().unwrap_or(false)
                            && placed.get(j).is_some_and(Result::is_err);
                        pre_unplaced || now_unplaced || blocked.contains_key(&j)
                    })
                });
                if failed_dep {
                    newly.push((i, format!("depends on {dep}, which cannot be placed")));
                    break;
                }
            }
        }
        if newly.is_empty() {
            break placed;
        }
        for (i, r) in newly {
            blocked.insert(i, r);
        }
    };

    for (i, v) in vms.iter_mut().enumerate() {
        if !pending.get(i).copied().unwrap_or(false) {
            continue;
        }
        if let Some(r) = blocked.get(&i) {
            v.disposition = Disposition::Unplaced;
            v.reason = Some(r.clone());
            continue;
        }
        match placed.get(i) {
            Some(Ok(t)) => {
                v.target = targets.get(*t).map(|t| t.name.to_string());
                v.methods.clone_from(&methods);
            }
            Some(Err(r)) => {
                v.disposition = Disposition::Unplaced;
                v.reason = Some(r.clone());
            }
            None => {}
        }
    }

    // Tiers over placed VMs.
    for _ in 0..=vms.len() {
        let mut changed = false;
        for i in 0..vms.len() {
            let Some(v) = vms.get(i) else { continue };
            if v.disposition != Disposition::Placed {
                continue;
            }
            let Some(s) = settings.get(v.name.as_str()) else {
                continue;
            };
            let mut tier = 0u32;
            for dep in &s.depends_on {
                for &j in by_name.get(dep.as_str()).map_or(&[][..], |x| x.as_slice()) {
                    if let Some(d) = vms.get(j).filter(|d| d.disposition == Disposition::Placed) {
                        tier = tier.max(d.tier.saturating_add(1));
                    }
                }
            }
            let cap = u32::try_from(vms.len()).unwrap_or(u32::MAX);
            if let Some(v) = vms.get_mut(i) {
                if v.tier < tier && tier <= cap {
                    v.tier = tier;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }

    // Placed by tier then effective priority, unplaced by effective priority, skipped; names
    // break ties. Keys are computed once (the priority lookups would dominate the sort).
    let mut keyed: Vec<(OutputKey, PlannedVm)> = vms
        .into_iter()
        .map(|v| {
            let e = Reverse(eff.get(v.name.as_str()).copied().unwrap_or(0));
            let k = match v.disposition {
                Disposition::Placed => (0u8, v.tier, e),
                Disposition::Unplaced => (1, 0, e),
                Disposition::Skipped => (2, 0, Reverse(0)),
            };
            (k, v)
        })
        .collect();
    keyed.sort_by(|(ka, a), (kb, b)| (ka, &a.name, &a.vmx).cmp(&(kb, &b.name, &b.vmx)));
    let vms: Vec<PlannedVm> = keyed.into_iter().map(|(_, v)| v).collect();
    out.vms = vms;
    out
}

/// Shared, read-only inputs of a placement round.
struct Ctx<'a, 'b> {
    targets: &'b [Target<'a>],
    usable: &'b [usize],
    facts: &'b [Facts<'a>],
    ne_base: &'b [BTreeSet<usize>],
    eq_anchor: &'b BTreeMap<String, BTreeSet<&'a str>>,
}

/// Output order of a VM: disposition rank, tier, effective priority.
type OutputKey = (u8, u32, Reverse<i64>);

/// A unit's sort key: powered-on first, effective priority, depth, memory, name.
type UnitKey<'a> = (bool, Reverse<i64>, u32, Reverse<u64>, &'a str, &'a str);

impl<'a> Ctx<'a, '_> {
    /// One placement round over the pending, unblocked VMs: for each VM index, the target
    /// index or the reason it has none (`Err("")` for VMs not in the round).
    fn place(
        &self,
        pending: &[bool],
        blocked: &BTreeMap<usize, String>,
    ) -> Vec<Result<usize, String>> {
        let mut result: Vec<Result<usize, String>> = vec![Err(String::new()); self.facts.len()];
        // Units: EQ classes, else single VMs.
        let mut eq_units: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        let mut units: Vec<Vec<usize>> = Vec::new();
        for (i, f) in self.facts.iter().enumerate() {
            if !pending.get(i).copied().unwrap_or(false) || blocked.contains_key(&i) {
                continue;
            }
            match &f.eq_root {
                Some(root) => eq_units.entry(root.as_str()).or_default().push(i),
                None => units.push(vec![i]),
            }
        }
        units.extend(eq_units.into_values());
        let key = |u: &Vec<usize>| -> UnitKey<'a> {
            let mut k: UnitKey<'a> = (true, Reverse(i64::MIN), u32::MAX, Reverse(0), "", "");
            let mut first = true;
            for f in u.iter().filter_map(|&i| self.facts.get(i)) {
                let start = f.rec.power == VmPower::On;
                k.0 &= !start;
                k.1 = k.1.min(Reverse(f.eff_priority));
                k.2 = k.2.min(f.depth);
                k.3 = Reverse(k.3 .0.saturating_add(f.need));
                if first || (f.rec.name.as_str(), f.rec.vmx.as_str()) < (k.4, k.5) {
                    k.4 = f.rec.name.as_str();
                    k.5 = f.rec.vmx.as_str();
                }
                first = false;
            }
            k
        };
        let mut keyed: Vec<(UnitKey<'a>, Vec<usize>)> =
            units.into_iter().map(|u| (key(&u), u)).collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));

        let mut used: Vec<u64> = self.targets.iter().map(|t| t.used).collect();
        let mut ne_hosts: Vec<BTreeSet<usize>> = self.ne_base.to_vec();
        for (_, unit) in keyed {
            match self.place_unit(&unit, &used, &ne_hosts) {
                Ok(t) => {
                    let need: u64 = unit
                        .iter()
                        .filter_map(|&i| self.facts.get(i))
                        .map(|f| f.need)
                        .fold(0, u64::saturating_add);
                    if let Some(u) = used.get_mut(t) {
                        *u = u.saturating_add(need);
                    }
                    for f in unit.iter().filter_map(|&i| self.facts.get(i)) {
                        for &g in &f.ne {
                            if let Some(s) = ne_hosts.get_mut(g) {
                                s.insert(t);
                            }
                        }
                    }
                    for &i in &unit {
                        if let Some(r) = result.get_mut(i) {
                            *r = Ok(t);
                        }
                    }
                }
                Err(reason) => {
                    for &i in &unit {
                        if let Some(r) = result.get_mut(i) {
                            *r = Err(reason.clone());
                        }
                    }
                }
            }
        }
        result
    }

    /// The target of one unit, or why there is none.
    fn place_unit(
        &self,
        unit: &[usize],
        used: &[u64],
        ne_hosts: &[BTreeSet<usize>],
    ) -> Result<usize, String> {
        let members: Vec<&Facts<'_>> = unit.iter().filter_map(|&i| self.facts.get(i)).collect();
        let prefix = if members.len() > 1 {
            let names: Vec<&str> = members.iter().map(|f| f.rec.name.as_str()).collect();
            format!("EQ group {}: ", names.join(", "))
        } else {
            String::new()
        };
        let fail = |r: String| Err(format!("{prefix}{r}"));
        // EQ and NE contradicting inside the unit (possible only without Inventory::parse).
        let mut seen_ne: BTreeSet<usize> = BTreeSet::new();
        for f in &members {
            for &g in &f.ne {
                if !seen_ne.insert(g) {
                    return fail("EQ and NE constraints contradict".into());
                }
            }
        }
        let need: u64 = members.iter().map(|f| f.need).fold(0, u64::saturating_add);
        if self.usable.is_empty() {
            let why: Vec<String> = self
                .targets
                .iter()
                .map(|t| format!("{}: {}", t.name, t.unusable.as_deref().unwrap_or("?")))
                .collect();
            return fail(if why.is_empty() {
                "no other host in the inventory".into()
            } else {
                format!("no usable target host ({})", why.join("; "))
            });
        }
        let datastores: BTreeSet<&str> = members.iter().map(|f| f.rec.datastore.as_str()).collect();
        let mut cands: Vec<usize> = self
            .usable
            .iter()
            .copied()
            .filter(|&i| {
                self.targets
                    .get(i)
                    .is_some_and(|t| datastores.iter().all(|d| t.sees.contains(d)))
            })
            .collect();
        if cands.is_empty() {
            let ds: Vec<&str> = datastores.into_iter().collect();
            return fail(format!("no usable host sees {}", ds.join(" and ")));
        }
        let mut pins: Option<BTreeSet<&str>> = None;
        for f in &members {
            if let Some(p) = &f.pins {
                pins = Some(match pins {
                    None => p.clone(),
                    Some(cur) => cur.intersection(p).copied().collect(),
                });
            }
        }
        if let Some(p) = &pins {
            cands.retain(|&i| self.targets.get(i).is_some_and(|t| p.contains(t.name)));
            if cands.is_empty() {
                let list: Vec<&str> = p.iter().copied().collect();
                return fail(if list.is_empty() {
                    "its pin constraints have no host in common".into()
                } else {
                    format!(
                        "pinned to {}: none is usable and sees its datastore",
                        list.join(", ")
                    )
                });
            }
        }
        let root = members.iter().find_map(|f| f.eq_root.as_deref());
        if let Some(anchor) = root.and_then(|r| self.eq_anchor.get(r)) {
            let list: Vec<&str> = anchor.iter().copied().collect();
            if anchor.len() > 1 {
                return fail(format!(
                    "EQ partners already run on several hosts ({})",
                    list.join(", ")
                ));
            }
            cands.retain(|&i| self.targets.get(i).is_some_and(|t| anchor.contains(t.name)));
            if cands.is_empty() {
                return fail(format!(
                    "EQ partners run on {}, which cannot take it",
                    list.join(", ")
                ));
            }
        }
        let before_ne: Vec<&str> = cands
            .iter()
            .filter_map(|&i| self.targets.get(i).map(|t| t.name))
            .collect();
        cands.retain(|&i| {
            members.iter().all(|f| {
                f.ne.iter()
                    .all(|&g| ne_hosts.get(g).map_or(true, |s| !s.contains(&i)))
            })
        });
        if cands.is_empty() {
            return fail(format!(
                "NE: a VM it must be apart from is on every candidate host ({})",
                before_ne.join(", ")
            ));
        }
        let free = |i: usize| {
            let cap = self.targets.get(i).map_or(0, |t| t.cap);
            cap.saturating_sub(used.get(i).copied().unwrap_or(u64::MAX))
        };
        let fits = |i: usize| {
            let cap = self.targets.get(i).map_or(0, |t| t.cap);
            used.get(i)
                .copied()
                .and_then(|u| u.checked_add(need))
                .is_some_and(|total| total <= cap)
        };
        let best = cands.iter().copied().filter(|&i| fits(i)).min_by_key(|&i| {
            let t = self.targets.get(i);
            (
                !t.is_some_and(|t| t.spare),
                Reverse(free(i).saturating_sub(need)),
                t.map_or("", |t| t.name),
            )
        });
        match best {
            Some(i) => Ok(i),
            None => {
                let largest = cands.iter().copied().min_by_key(|&i| {
                    (Reverse(free(i)), self.targets.get(i).map_or("", |t| t.name))
                });
                let (mb, on) = largest.map_or((0, ""), |i| {
                    (free(i), self.targets.get(i).map_or("", |t| t.name))
                });
                fail(format!(
                    "no host has {need} MB free (largest free: {mb} MB on {on})"
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests;
