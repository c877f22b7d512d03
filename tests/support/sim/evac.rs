//! The evacuation simulator's Rust harness: N fake ESXi hosts ([`super::sshd::EsxiHost`]) that
//! share datastore directories with VMFS-like leased locks (`tests/support/sim/esxi/evacsim.py`), each
//! with its own simulated BMC ([`crate::ipmisim::Bmc`], OpenIPMI `ipmi_sim`) whose chassis
//! power-off stops that host's sshd and expires its locks, and power-on boots it again.
//!
//! [`Sim::start`] starts the hosts and BMCs in parallel, writes an inventory TOML for them
//! (mode 0600: it holds the BMC password) and a state directory; [`Sim::evacuate`] runs
//! `vm-evacuate SUBCOMMAND --config F --state-dir D ...`. The simulator's logs:
//! - every host's `calls.log` ([`Sim::calls`]): one JSON line per vim-cmd call;
//! - one `events.log` for the whole scenario ([`Sim::events`]): JSON lines with a
//!   CLOCK_MONOTONIC `t`, appended under a lock so file order is time order: `register`,
//!   `unregister`, `power_on`, `power_off`, `power_suspend`, `power_pending`,
//!   `power_on_failed` (`reason` `locked`), `lock_taken`, `lock_released`, `answer`,
//!   `autostart`, `host_down`, `host_up`, `host_isolated`, `bmc_power_off`, `bmc_power_on`,
//!   `bmc_power_read` (`power` on/off), `bmc_power_ignored`, `stall`.
//!
//! Host faults: [`Sim::crash`] (the host dies, its BMC still reads "on"), [`Sim::power_loss`]
//! (the host dies and its chassis reads "off"), [`Sim::isolate`] (no SSH answer, locks kept,
//! VMs running), [`Sim::stop_bmc`] (BMC unreachable), [`Sim::bmc_fault`] (`poweroff=ignore`
//! ...), [`Sim::detach_bmc`] (the BMC's power-off no longer reaches the host), and
//! [`Sim::stall_after`] (a vim-cmd call acts, then does not answer for a while).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::sshd::{Auth, EsxiHost};
use crate::ipmisim::Bmc;

/// One simulated host to start.
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// Inventory name.
    pub name: String,
    /// Datastores it sees.
    pub datastores: Vec<String>,
    /// Host memory in MB (reported by hostsummary; also written to the inventory when
    /// `memory_in_inventory`).
    pub memory_mb: u64,
    /// Write `memory_mb` into the inventory (else the engine reads hostsummary).
    pub memory_in_inventory: bool,
    /// `normal`, `spare` or `maintenance`.
    pub role: &'static str,
    /// `reserve_mb` in the inventory.
    pub reserve_mb: u64,
    /// Seconds added to every vim-cmd call.
    pub latency: f64,
    /// Ask the "moved or copied" question when a VM last run on another host is powered on.
    pub ask_moved: bool,
    /// Its VMs have autostart entries (PowerOn).
    pub autostart: bool,
}

impl HostSpec {
    /// A normal host with 16 GB that sees `datastores`.
    pub fn new(name: &str, datastores: &[&str]) -> Self {
        HostSpec {
            name: name.to_owned(),
            datastores: datastores.iter().map(|s| (*s).to_owned()).collect(),
            memory_mb: 16384,
            memory_in_inventory: true,
            role: "normal",
            reserve_mb: 0,
            latency: 0.0,
            ask_moved: false,
            autostart: false,
        }
    }
    /// Host memory (MB).
    pub fn memory(mut self, mb: u64) -> Self {
        self.memory_mb = mb;
        self
    }
    /// Role.
    pub fn role(mut self, r: &'static str) -> Self {
        self.role = r;
        self
    }
    /// Per-call latency (seconds).
    pub fn latency(mut self, s: f64) -> Self {
        self.latency = s;
        self
    }
    /// Ask the "moved or copied" question.
    pub fn ask_moved(mut self) -> Self {
        self.ask_moved = true;
        self
    }
    /// Autostart entries for its VMs.
    pub fn autostart(mut self) -> Self {
        self.autostart = true;
        self
    }
    /// `reserve_mb` in the inventory.
    pub fn reserve(mut self, mb: u64) -> Self {
        self.reserve_mb = mb;
        self
    }
    /// Leave `memory_mb` out of the inventory (read from hostsummary).
    pub fn memory_from_host(mut self) -> Self {
        self.memory_in_inventory = false;
        self
    }
}

/// One VM placed at start.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// Display name (also its directory and vmx name).
    pub name: String,
    /// Host it is registered on.
    pub host: String,
    /// Datastore of its files.
    pub datastore: String,
    /// Memory (MB, the vmx's memSize).
    pub memory: u64,
    /// `on`, `off` or `suspended`.
    pub power: &'static str,
}

impl VmSpec {
    /// A powered-on VM with 1 GB.
    pub fn new(name: &str, host: &str, datastore: &str) -> Self {
        VmSpec {
            name: name.to_owned(),
            host: host.to_owned(),
            datastore: datastore.to_owned(),
            memory: 1024,
            power: "on",
        }
    }
    /// Memory (MB).
    pub fn memory(mut self, mb: u64) -> Self {
        self.memory = mb;
        self
    }
    /// Power state at start.
    pub fn power(mut self, p: &'static str) -> Self {
        self.power = p;
        self
    }
}

/// A running host and its BMC.
pub struct SimHost {
    /// What was asked for.
    pub spec: HostSpec,
    /// The fake ESXi host.
    pub esxi: EsxiHost,
    /// Its BMC (`None` once stopped).
    pub bmc: Option<Bmc>,
    /// The BMC's UDP port (kept when the BMC is stopped).
    pub bmc_port: u16,
}

/// A whole scenario: hosts, BMCs, datastores, the inventory and a state directory.
pub struct Sim {
    /// Scenario directory (datastores, events.log, inventory, state dir).
    pub dir: PathBuf,
    /// The hosts, in the order given.
    pub hosts: Vec<SimHost>,
    /// The inventory file.
    pub config: PathBuf,
    /// `--state-dir`.
    pub state_dir: PathBuf,
}

fn evacsim() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/sim/esxi/evacsim.py")
}

fn evacsim_cmd() -> Command {
    let mut c = Command::new("/usr/bin/python3");
    c.arg(evacsim());
    c
}

/// The `vm-evacuate` binary (built with the tests), or `None` when this checkout has none yet.
pub fn binary() -> Option<PathBuf> {
    option_env!("CARGO_BIN_EXE_vm-evacuate").map(PathBuf::from)
}

/// Settings of the inventory that a scenario may change.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// `[policy]` keys and their TOML values (`("max_parallel", "4")`).
    pub policy: BTreeMap<String, String>,
    /// Raw TOML appended at the end (`[[vm]]`, `[[constraint]]` tables).
    pub extra: String,
}

impl Default for Inventory {
    fn default() -> Self {
        let mut policy = BTreeMap::new();
        for (k, v) in [
            ("max_parallel", "4"),
            ("detect_failures", "1"),
            ("detect_interval_s", "1"),
            ("brake_percent", "50"),
            ("post_fence_wait_s", "0"),
            ("vm_retry_limit", "1"),
        ] {
            policy.insert(k.to_owned(), v.to_owned());
        }
        Inventory {
            policy,
            extra: String::new(),
        }
    }
}

impl Inventory {
    /// Sets a `[policy]` key (value in TOML syntax).
    pub fn policy(mut self, k: &str, v: &str) -> Self {
        self.policy.insert(k.to_owned(), v.to_owned());
        self
    }
    /// Appends raw TOML.
    pub fn extra(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
    }
}

static SCN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Sim {
    /// Starts the hosts and their BMCs (in parallel), places the VMs, writes the inventory.
    /// `None` = the peers are unavailable (skipped, or a panic when simulators are required).
    pub fn start(hosts: &[HostSpec], vms: &[VmSpec], inv: &Inventory) -> Option<Sim> {
        for p in ["/usr/bin/python3", "/usr/bin/ipmi_sim", "/usr/bin/ipmitool"] {
            if !Path::new(p).exists() {
                super::skip_or_fail(&format!("{p} not installed"));
                return None;
            }
        }
        let n = SCN.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = PathBuf::from(format!("/tmp/fk-evac-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scenario dir");
        let started: Vec<Option<(EsxiHost, Bmc)>> = std::thread::scope(|s| {
            let hs: Vec<_> = hosts
                .iter()
                .map(|h| {
                    s.spawn(move || {
                        let esxi = EsxiHost::builder()
                            .auth(Auth::Pubkey)
                            .vms(&[])
                            .latency(h.latency)
                            .shutdown_delay(1.0)
                            .start()?;
                        let bmc = Bmc::start(&[])?;
                        Some((esxi, bmc))
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("host start thread"))
                .collect()
        });
        let mut sim_hosts = Vec::new();
        for (spec, st) in hosts.iter().zip(started) {
            let (esxi, bmc) = st?;
            let bmc_port = bmc.port;
            sim_hosts.push(SimHost {
                spec: spec.clone(),
                esxi,
                bmc: Some(bmc),
                bmc_port,
            });
        }
        let state_dir = dir.join("state");
        std::fs::create_dir_all(&state_dir).expect("state dir");
        let mut sim = Sim {
            config: dir.join("evacuate.toml"),
            dir,
            hosts: sim_hosts,
            state_dir,
        };
        sim.setup(vms);
        sim.write_inventory(inv);
        Some(sim)
    }

    fn setup(&mut self, vms: &[VmSpec]) {
        let esxi_root = self
            .hosts
            .first()
            .map(|h| h.esxi.hostdir())
            .and_then(|p| p.parent()?.parent().map(Path::to_path_buf))
            .expect("esxi root");
        let hosts: Vec<Value> = self
            .hosts
            .iter()
            .map(|h| {
                serde_json::json!({
                    "name": h.spec.name,
                    "hostdir": h.esxi.hostdir(),
                    "datastores": h.spec.datastores,
                    "memory_mb": h.spec.memory_mb,
                    "esxi_root": esxi_root,
                    "sim_name": h.esxi.name(),
                    "ip": h.esxi.ip(),
                    "port": h.esxi.port(),
                    "env": {
                        "ESXI_AUTH": "pubkey",
                        "ESXI_LATENCY": h.spec.latency.to_string(),
                        "ESXI_SHUTDOWN_DELAY": "1",
                        "ESXI_LAYOUT": "8",
                        "ESXI_FAULT_RC": "1",
                    },
                    "ask_moved": h.spec.ask_moved,
                    "question_wait_s": 30,
                    "autostart": h.spec.autostart,
                })
            })
            .collect();
        let vms: Vec<Value> = vms
            .iter()
            .map(|v| {
                serde_json::json!({"name": v.name, "host": v.host, "datastore": v.datastore,
                                   "memory": v.memory, "power": v.power})
            })
            .collect();
        let spec = serde_json::json!({"scn": self.dir, "hosts": hosts, "vms": vms});
        let path = self.dir.join("spec.json");
        std::fs::write(&path, spec.to_string()).expect("write spec");
        run_ok(evacsim_cmd().arg("setup").arg(&path));
        for h in &self.hosts {
            let bmc = h.bmc.as_ref().expect("bmc");
            let hook = bmc.dir.path().join("hook");
            std::fs::write(
                &hook,
                format!(
                    "#!/bin/sh\nexec /usr/bin/python3 {} bmc {} {} \"$@\"\n",
                    evacsim().display(),
                    self.dir.display(),
                    h.spec.name
                ),
            )
            .expect("write hook");
            std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))
                .expect("chmod hook");
        }
    }

    /// Rewrites the inventory (mode 0600).
    pub fn write_inventory(&self, inv: &Inventory) {
        let mut t = String::from("[policy]\n");
        for (k, v) in &inv.policy {
            let _ = writeln!(t, "{k} = {v}");
        }
        let key = self
            .hosts
            .first()
            .map(|h| h.esxi.key_path())
            .expect("a host");
        let _ = write!(
            t,
            "\n[ssh]\nusername = \"{}\"\nidentity_file = \"{}\"\nlogin_timeout_s = 3\n\
             shell_timeout_s = 40\n\n[bmc]\nusername = \"admin\"\npassword = \"pass\"\n\
             cipher = 3\nprivlvl = \"administrator\"\nlogin_timeout_s = 2\n",
            super::sshd::USER,
            key.display()
        );
        for h in &self.hosts {
            let _ = write!(
                t,
                "\n[[host]]\nname = \"{}\"\naddress = \"127.0.0.1\"\nport = {}\n\
                 bmc_address = \"127.0.0.1\"\nbmc_port = {}\nreserve_mb = {}\nrole = \"{}\"\n",
                h.spec.name,
                h.esxi.port(),
                h.bmc_port,
                h.spec.reserve_mb,
                h.spec.role
            );
            if h.spec.memory_in_inventory {
                let _ = writeln!(t, "memory_mb = {}", h.spec.memory_mb);
            }
            let _ = write!(
                t,
                "[host.ssh]\nhost_key_fingerprint = \"{}\"\n",
                h.esxi.fingerprint()
            );
        }
        t.push('\n');
        t.push_str(&inv.extra);
        let tmp = self.config.with_extension("tmp");
        std::fs::write(&tmp, t).expect("write inventory");
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .expect("chmod inventory");
        std::fs::rename(&tmp, &self.config).expect("rename inventory");
    }

    /// The host with this inventory name.
    pub fn host(&self, name: &str) -> &SimHost {
        self.hosts
            .iter()
            .find(|h| h.spec.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    fn host_mut(&mut self, name: &str) -> &mut SimHost {
        self.hosts
            .iter_mut()
            .find(|h| h.spec.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    /// A `vm-evacuate` command with `--config` and `--state-dir` after the subcommand's
    /// first word (`args[0]`).
    pub fn command(&self, args: &[&str]) -> Command {
        let bin = binary().expect("vm-evacuate is not built in this checkout");
        let mut c = Command::new(bin);
        let (first, rest) = args.split_first().expect("a subcommand");
        c.arg(first)
            .arg("--config")
            .arg(&self.config)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(rest)
            .stdin(Stdio::null())
            .env_remove("RUST_LOG");
        c
    }

    /// Runs `vm-evacuate` to completion (bounded by `limit`; killed and failed past it).
    pub fn evacuate_within(&self, args: &[&str], limit: Duration) -> Run {
        let t0 = Instant::now();
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vm-evacuate");
        let out_h = pipe_reader(child.stdout.take());
        let err_h = pipe_reader(child.stderr.take());
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait") {
                break st;
            }
            if t0.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                let out = out_h.join().unwrap_or_default();
                let err = err_h.join().unwrap_or_default();
                panic!(
                    "vm-evacuate {args:?} ran over {limit:?}\nstdout:\n{out}\nstderr:\n{err}\n\
                     events:\n{}",
                    self.events_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = out_h.join().unwrap_or_default();
        let stderr = err_h.join().unwrap_or_default();
        let run = Run {
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            code: status.code(),
            stdout,
            stderr,
            secs: t0.elapsed().as_secs_f64(),
        };
        eprintln!(
            "vm-evacuate {:?}: exit {:?} in {:.2}s\nstdout:\n{}\nstderr:\n{}",
            run.args, run.code, run.secs, run.stdout, run.stderr
        );
        run
    }

    /// [`Self::evacuate_within`] with a 120 s bound.
    pub fn evacuate(&self, args: &[&str]) -> Run {
        self.evacuate_within(args, Duration::from_secs(120))
    }

    /// Every vim-cmd call the host answered (calls.log).
    pub fn calls(&self, host: &str) -> Vec<Value> {
        self.host(host).esxi.calls()
    }

    /// The argv (`vim-cmd`, `vmsvc/...`, ...) of every call on `host`, joined with blanks.
    pub fn call_lines(&self, host: &str) -> Vec<String> {
        self.calls(host)
            .iter()
            .map(|c| {
                c["argv"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Calls on any host that change something (register, unregister, power.* but getstate,
    /// message answers, autostart updates).
    pub fn mutating_calls(&self) -> Vec<String> {
        let mut out = Vec::new();
        for h in &self.hosts {
            for l in self.call_lines(&h.spec.name) {
                if is_mutating(&l) {
                    out.push(format!("{}: {l}", h.spec.name));
                }
            }
        }
        out
    }

    /// The scenario's events (events.log).
    pub fn events(&self) -> Vec<Value> {
        self.events_text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// events.log as text.
    pub fn events_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("events.log")).unwrap_or_default()
    }

    /// Events of kind `ev` (any host).
    pub fn events_of(&self, ev: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["ev"] == ev)
            .collect()
    }

    /// Index in events.log of the first event matching `f`.
    pub fn first_event(&self, f: impl Fn(&Value) -> bool) -> Option<usize> {
        self.events().iter().position(f)
    }

    /// The host's VMs (state.json, pending changes applied).
    pub fn vms_on(&self, host: &str) -> Vec<Value> {
        let st = self.host(host).esxi.state();
        st["vms"].as_array().cloned().unwrap_or_default()
    }

    /// Power state of `vm` on `host`, `None` when not registered there.
    pub fn vm_power(&self, host: &str, vm: &str) -> Option<String> {
        self.host(host).esxi.vm_state(vm)
    }

    /// Hosts where `vm` is registered.
    pub fn registered_on(&self, vm: &str) -> Vec<String> {
        self.hosts
            .iter()
            .filter(|h| self.vm_power(&h.spec.name, vm).is_some())
            .map(|h| h.spec.name.clone())
            .collect()
    }

    /// Hosts where `vm` is powered on.
    pub fn running_on(&self, vm: &str) -> Vec<String> {
        self.hosts
            .iter()
            .filter(|h| self.vm_power(&h.spec.name, vm).as_deref() == Some("on"))
            .map(|h| h.spec.name.clone())
            .collect()
    }

    /// Owner of the lock on `vm`'s vmx (`[ds] vm/vm.vmx`), if any.
    pub fn lock_owner(&self, datastore: &str, vm: &str) -> Option<String> {
        std::fs::read_to_string(
            self.dir
                .join("ds")
                .join(datastore)
                .join(vm)
                .join(format!("{vm}.vmx.lck")),
        )
        .ok()
        .map(|s| s.trim().to_owned())
    }

    /// The host dies (a crash: no SSH, its leases expire), its BMC still reads "on".
    pub fn crash(&self, host: &str) {
        run_ok(
            evacsim_cmd()
                .arg("power")
                .arg(&self.dir)
                .arg(host)
                .arg("off"),
        );
    }

    /// Power loss: the host dies and its chassis reads "off".
    pub fn power_loss(&self, host: &str) {
        self.crash(host);
        self.host(host)
            .bmc
            .as_ref()
            .expect("bmc running")
            .set_power(false);
    }

    /// The host stops answering SSH but keeps running: its VMs stay on, its locks held.
    pub fn isolate(&self, host: &str) {
        run_ok(evacsim_cmd().arg("isolate").arg(&self.dir).arg(host));
    }

    /// Boots the host again (as its BMC's power-on does).
    pub fn boot(&self, host: &str) {
        run_ok(
            evacsim_cmd()
                .arg("power")
                .arg(&self.dir)
                .arg(host)
                .arg("on"),
        );
        if let Some(b) = &self.host(host).bmc {
            b.set_power(true);
        }
    }

    /// Stops the host's BMC (its UDP port closes).
    pub fn stop_bmc(&mut self, host: &str) {
        self.host_mut(host).bmc = None;
    }

    /// BMC fault switches (`poweroff=ignore`, `clear`, ...).
    pub fn bmc_fault(&self, host: &str, kv: &[&str]) {
        self.host(host).bmc.as_ref().expect("bmc").fault(kv);
    }

    /// The BMC's power changes no longer reach the host (it reads "off" while the host runs).
    pub fn detach_bmc(&self, host: &str) {
        let b = self.host(host).bmc.as_ref().expect("bmc");
        std::fs::remove_file(b.dir.path().join("hook")).expect("remove hook");
    }

    /// The BMC's chassis power as it would answer ("0"/"1").
    pub fn bmc_power(&self, host: &str) -> String {
        self.host(host).bmc.as_ref().expect("bmc").power_file()
    }

    /// The BMC's own event lines (tests/support/sim_ipmi/chassis.sh `events`).
    pub fn bmc_events(&self, host: &str) -> String {
        self.host(host)
            .bmc
            .as_ref()
            .map(Bmc::events)
            .unwrap_or_default()
    }

    /// Arms a fault on `host`: the next `times` calls matching `re` act, log a `stall` event,
    /// then wait `secs` before answering.
    pub fn stall_after(&self, host: &str, re: &str, secs: u32, times: u32) {
        let dir = self.host(host).esxi.hostdir().join("faults");
        let tmp = dir.join(".stall_after.tmp");
        std::fs::write(
            &tmp,
            format!("kind=stall_after\nvalue={secs}\nmatch={re}\ntimes={times}\n"),
        )
        .expect("write fault");
        run_ok(Command::new("chown").arg("fencetest:fencetest").arg(&tmp));
        std::fs::rename(&tmp, dir.join("stall_after")).expect("arm fault");
    }

    /// Removes every armed fault of `host`.
    pub fn clear_faults(&self, host: &str) {
        self.host(host).esxi.clear_faults();
    }

    /// Runs vim-cmd on `host` over real SSH (the client wrapper of the fake hosts).
    pub fn ssh_vim(&self, host: &str, args: &str) -> Output {
        self.ssh(host, &format!("vim-cmd {args}"))
    }

    /// Runs a command line on `host` over real SSH.
    pub fn ssh(&self, host: &str, cmdline: &str) -> Output {
        let h = &self.host(host).esxi;
        Command::new(h.ssh_wrapper())
            .args(["-o", "ConnectTimeout=3", "-o", "BatchMode=yes", "-p"])
            .arg(h.port().to_string())
            .arg(format!("{}@127.0.0.1", h.user()))
            .arg(cmdline)
            .stdin(Stdio::null())
            .output()
            .expect("run ssh")
    }

    /// Waits until an event matching `f` is logged (panics after `limit`).
    pub fn wait_event(&self, limit: Duration, f: impl Fn(&Value) -> bool) -> Value {
        let t0 = Instant::now();
        loop {
            if let Some(e) = self.events().into_iter().find(&f) {
                return e;
            }
            assert!(
                t0.elapsed() < limit,
                "event not seen within {limit:?}; events:\n{}",
                self.events_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Reads a JSON report/plan from stdout.
    pub fn json(run: &Run) -> Value {
        serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout of {:?} is not JSON ({e}):\n{}\nstderr:\n{}",
                run.args, run.stdout, run.stderr
            )
        })
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        // Hosts and BMCs stop through their own guards (dropped after this).
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("scenario kept for inspection: {}", self.dir.display());
        }
    }
}

/// One finished `vm-evacuate` run.
#[derive(Debug, Clone)]
pub struct Run {
    /// Its arguments (without --config/--state-dir).
    pub args: Vec<String>,
    /// Exit code (`None` = killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Wall time.
    pub secs: f64,
}

/// True when a call line (argv joined) changes something on the host.
pub fn is_mutating(line: &str) -> bool {
    let w: Vec<&str> = line.split_whitespace().collect();
    let Some(cmd) = w.get(1) else {
        return false;
    };
    match *cmd {
        "solo/registervm" | "vmsvc/unregister" => true,
        "vmsvc/message" => w.len() > 3,
        c if c.starts_with("vmsvc/power.") => c != "vmsvc/power.getstate",
        c if c.starts_with("hostsvc/autostartmanager/") => {
            c != "hostsvc/autostartmanager/get_autostartseq"
                && c != "hostsvc/autostartmanager/get_defaults"
        }
        c if c.starts_with("vmsvc/") => !matches!(
            c,
            "vmsvc/getallvms"
                | "vmsvc/get.summary"
                | "vmsvc/get.config"
                | "vmsvc/get.guest"
                | "vmsvc/get.runtime"
                | "vmsvc/message"
        ),
        _ => w.first() == Some(&"esxcli") && line.contains(" kill"),
    }
}

fn pipe_reader<R: std::io::Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut r) = r {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            s = String::from_utf8_lossy(&buf).into_owned();
        }
        s
    })
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("run simulator command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
