//! Benchmark of the evacuation planner (run by `bench/plan.sh`, in release mode): a failed
//! host with 1,000 VMs planned over 32 other hosts, with priorities, dependency chains, NE,
//! EQ and pin constraints, spare and maintenance hosts, and targets already part full: about
//! a fifth of the VMs do not fit, so reasons and dependency blocking are exercised too.
//! Prints the median planning time (target: under 50 ms) and the median inventory parse time.
//!
//! Usage: `plan_bench [RUNS]` (default 31).
#![allow(clippy::print_stdout, reason = "a benchmark prints its numbers")]

use std::hint::black_box;
use std::time::{Duration, Instant};

use fencekit::evacuate::inventory::Inventory;
use fencekit::evacuate::plan::{plan, Disposition, Situation};
use fencekit::evacuate::snapshot::{HostSnapshot, Snapshots, VmPower, VmRecord};

const VMS: usize = 1000;
const TARGETS: usize = 32;

/// A small deterministic generator (no randomness between runs).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }
}

fn inventory_text(rng: &mut Lcg) -> String {
    let mut t = String::from(
        "[policy]\nscope = \"running\"\n[ssh]\nusername = \"root\"\n\
         identity_file = \"/etc/fencekit/keys/esxi\"\n[bmc]\nusername = \"fence\"\n\
         password_script = \"/usr/local/sbin/bmc-password\"\n",
    );
    for h in 0..=TARGETS {
        let role = match h {
            1..=3 => "spare",
            4 => "maintenance",
            _ => "normal",
        };
        t.push_str(&format!(
            "[[host]]\nname = \"esx{h:02}\"\naddress = \"192.0.2.{}\"\nbmc_address = \
             \"198.51.100.{}\"\nmemory_mb = 262144\nreserve_mb = 8192\nrole = \"{role}\"\n",
            h + 1,
            h + 1
        ));
    }
    for v in 0..VMS {
        let prio = rng.next(5);
        t.push_str(&format!("[[vm]]\nname = \"vm{v:04}\"\npriority = {prio}\n"));
        // Every tenth VM depends on the one before it (chains of two or more).
        if v % 10 == 9 {
            t.push_str(&format!("depends_on = [\"vm{:04}\"]\n", v - 1));
        }
        if v % 97 == 0 {
            t.push_str("hold = true\n");
        }
    }
    // 60 NE pairs, 40 EQ pairs, 20 pins over disjoint VMs.
    for k in 0..60 {
        let (a, b) = (k * 2, k * 2 + 1);
        t.push_str(&format!(
            "[[constraint]]\nkind = \"ne\"\nvms = [\"vm{a:04}\", \"vm{b:04}\"]\n"
        ));
    }
    for k in 0..40 {
        let (a, b) = (200 + k * 2, 200 + k * 2 + 1);
        t.push_str(&format!(
            "[[constraint]]\nkind = \"eq\"\nvms = [\"vm{a:04}\", \"vm{b:04}\"]\n"
        ));
    }
    for k in 0..20 {
        let v = 400 + k;
        let (h1, h2) = (5 + k % 20, 6 + k % 20);
        t.push_str(&format!(
            "[[constraint]]\nkind = \"pin\"\nvms = [\"vm{v:04}\"]\nhosts = [\"esx{h1:02}\", \
             \"esx{h2:02}\"]\n"
        ));
    }
    t
}

fn snapshots(rng: &mut Lcg) -> Snapshots {
    let mut snaps = Snapshots::new();
    let mut failed = HostSnapshot::new("esx00");
    for v in 0..VMS {
        let name = format!("vm{v:04}");
        let ds = format!("ds{}", v % 4);
        failed.vms.push(VmRecord {
            vmx: format!("[{ds}] {name}/{name}.vmx"),
            name,
            vmid: u32::try_from(v + 1).unwrap_or(u32::MAX),
            datastore: ds,
            power: if v % 13 == 0 {
                VmPower::Off
            } else {
                VmPower::On
            },
            memory_mb: Some(1024 * (1 + rng.next(10))),
        });
    }
    snaps.insert(failed.host.clone(), failed);
    for h in 1..=TARGETS {
        let mut s = HostSnapshot::new(format!("esx{h:02}"));
        // Each host sees three of the four shared datastores.
        s.datastores = (0..4)
            .filter(|d| d != &(h % 4))
            .map(|d| format!("ds{d}"))
            .collect();
        for k in 0..30 {
            let name = format!("local-{h:02}-{k:02}");
            s.vms.push(VmRecord {
                vmx: format!("[ds{}] {name}/{name}.vmx", (h + 1) % 4),
                name,
                vmid: k + 1,
                datastore: format!("ds{}", (h + 1) % 4),
                power: VmPower::On,
                memory_mb: Some(2048 + 1024 * rng.next(4)),
            });
        }
        snaps.insert(s.host.clone(), s);
    }
    snaps
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(31);
    let mut rng = Lcg(42);
    let text = inventory_text(&mut rng);
    let snaps = snapshots(&mut rng);

    let mut parse_times = Vec::with_capacity(runs);
    let mut inv = None;
    for _ in 0..runs {
        let t0 = Instant::now();
        let parsed = Inventory::parse(black_box(&text));
        parse_times.push(t0.elapsed());
        inv = Some(parsed);
    }
    let inv = match inv {
        Some(Ok(inv)) => inv,
        Some(Err(e)) => {
            for x in e {
                println!("inventory error: {x}");
            }
            return;
        }
        None => return,
    };

    let sit = Situation::dead_host();
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let t0 = Instant::now();
        let p = plan(black_box(&inv), black_box(&snaps), "esx00", &sit);
        times.push(t0.elapsed());
        last = Some(p);
    }
    let Some(p) = last else { return };
    let count = |d: Disposition| p.vms.iter().filter(|v| v.disposition == d).count();
    let (min, max) = (
        times.iter().min().copied().unwrap_or_default(),
        times.iter().max().copied().unwrap_or_default(),
    );
    let med = median(times);
    println!(
        "plan: {} VMs over {TARGETS} hosts ({} NE, {} EQ, {} pin constraints): median {} \
         (min {}, max {}) over {runs} runs",
        p.vms.len(),
        60,
        40,
        20,
        ms(med),
        ms(min),
        ms(max)
    );
    println!(
        "  placed {}, unplaced {}, skipped {}; {} tiers",
        count(Disposition::Placed),
        count(Disposition::Unplaced),
        count(Disposition::Skipped),
        p.tiers().len()
    );
    println!(
        "inventory parse ({} bytes, {} hosts, {} VMs): median {}",
        text.len(),
        inv.hosts.len(),
        inv.vms.len(),
        ms(median(parse_times))
    );
    let verdict = if med < Duration::from_millis(50) {
        "met"
    } else {
        "NOT met"
    };
    println!("target (plan < 50 ms): {verdict}");
}
