//! fence_kvmguest: fences KVM guests listed in a PRIMECLUSTER `kvmguests.conf`-style map, over
//! SSH + `virsh` on the host that really runs the guest.
//!
//! Guests live-migrate, so the host in the map may be stale: every host of the map is asked in
//! parallel (`virsh dominfo`: state and managed-save image in one command), as is every host
//! named only in the `hosts` option (a spare host with no guest mapped to it can still receive
//! a migrated one), and a guest is OFF only when every host answered, none runs it (a crashed
//! domain still runs: qemu keeps its memory until destroyed) and none keeps a managed-save
//! image of it (a plain start would resume it from its saved memory). A host that cannot be
//! asked makes the status an error, never OFF. Off = `virsh destroy` wherever it runs and
//! `virsh managedsave-remove` wherever an image is kept, confirmed by asking every host again;
//! on = `virsh start --force-boot` (a fresh boot, never a resume) on the mapped host (or where
//! the guest is defined). Domain names reach the remote shell only single-quoted.
//!
//! A guest with a managed-save image reads as ON for `status`, `off` and `reboot` (it is not
//! safely off), but as OFF for `on`, so that `on` boots it fresh instead of answering "Already
//! ON" for a guest that does not run. Where the image cannot be discarded, the off fails and
//! the warning says why.
//!
//! A host that gets no SSH answer (refused, timed out, unreachable) is settled through its BMC
//! when `inventory` names it (`fencekit::device::hostfence`): its chassis reads off, or with
//! `host_fence=bmc` during off/reboot it is powered off and read back off; then its guests
//! count as off and the other hosts are asked again. Otherwise it stays an error.
//!
//! The orchestration across hosts (asking every host at once, confirming an absence with the
//! host's domain list, the verdict, acting where the guest is) is `fencekit::device::guests`,
//! unit-tested there; this file maps the options, the map and the hosts onto it.
//!
//! Round trips: the location a status read found is reused by the power command that follows
//! it (the engine always reads the status first), and the read-back decides anyway, so an
//! `off` is one `dominfo` round, one `destroy` round and one `dominfo` read-back round.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

use fencekit::device::fanout::Named;
use fencekit::device::guests::{self, Output, VirshHost};
use fencekit::device::hostfence::{self, HostFence, ReadBack};
use fencekit::device::kvmconf::{self, GuestEntry, HostAddr, KvmGuests};
use fencekit::device::virsh::{self, GuestLocation, Virsh, VirshError};
use fencekit::evacuate::backend::{BmcOps, IpmiBmcs};
use fencekit::evacuate::inventory;
use fencekit::protocol::action::Action;
use fencekit::protocol::agent::ListFn;
use fencekit::protocol::log;
use fencekit::protocol::options::{self, opt};
use fencekit::transport::ssh::{LazySession, RemoteShell, SshConfig, SshError};
use fencekit::{
    Agent, AgentInfo, Feature, FenceError, FenceResult, OptSpec, Options, Outlet, PowerState,
};

/// The `guests_conf` row.
const GUESTS_CONF: OptSpec = opt("guests_conf")
    .default(kvmconf::DEFAULT_PATH)
    .value("[path]")
    .help("Map of guests and their hosts (kvmguests.conf format: guest-name host-cfname guest-clustername guest-cfname guest_IP guest_user guest_passwd)");

/// The `hosts` row.
const HOSTS: OptSpec = opt("hosts")
    .value("[cfname=addr[:port],...]")
    .help("How to reach each host-cfname of the map by SSH (cfhost1=192.0.2.1:22,cfhost2=user@[2001:db8::2]); hosts not listed are reached by their cfname through name resolution");

/// The `libvirt_uri` row.
const LIBVIRT_URI: OptSpec = opt("libvirt_uri")
    .default(virsh::DEFAULT_URI)
    .value("[uri]")
    .help("libvirt URI used by virsh on the hosts");

/// The `relax_conf_permissions` row.
const RELAX_CONF_PERMISSIONS: OptSpec = opt("relax_conf_permissions")
    .flag()
    .help("Accept a guests_conf that others could read, change or replace (mode, owner, directories), with a warning");

/// The `inventory` row.
const INVENTORY: OptSpec = opt("inventory")
    .value("[path]")
    .help("Evacuation inventory (TOML) whose [[host]] entries (name = the host cfname) give the hosts' BMCs, for host_fence and for reading a silent host's chassis");

/// The `host_fence` row.
const HOST_FENCE: OptSpec = opt("host_fence")
    .select(hostfence::CHOICES)
    .default("none")
    .value("[none|bmc]")
    .help("bmc: a host that does not answer over SSH within login_timeout is powered off through its BMC (from inventory) and read back off before its guests count as off (off/reboot only)");

static OPTIONS: &[OptSpec] = &[
    GUESTS_CONF,
    HOSTS,
    opt("ipport").short('u').int().default("22").value("[port]").help("SSH port of the hosts (when the hosts option gives none)"),
    LIBVIRT_URI,
    RELAX_CONF_PERMISSIONS,
    INVENTORY,
    HOST_FENCE,
    options::PLUG.value("[cfname]").help("The guest's cfname as in guests_conf (its guest-name is accepted too)"),
    opt("ip").legacy("ipaddr").short('a').value("[ip]").help("fence_virsh's KVM host: accepted for compatibility and ignored; every host of guests_conf and hosts is asked (name this host in hosts)").ignored(),
];

static INFO: AgentInfo = AgentInfo::new(
    "fence_kvmguest",
    "Fence agent for KVM guests located through a kvmguests.conf map",
)
.longdesc(
    "fence_kvmguest is a Power Fencing agent for KVM guests described in a PRIMECLUSTER \
kvmguests.conf-style map. The plug is the guest's cfname (or its guest-name). Every KVM host of \
the map is asked over SSH with virsh, in parallel, because guests live-migrate and the map can \
be stale: the guest is destroyed on the host where it really runs, and it is reported off only \
when every host answered and none runs it. Host keys are verified (known_hosts or a pinned \
fingerprint).",
)
.vendor_url("https://libvirt.org")
.features(&[
    Feature::Login,
    Feature::Password,
    Feature::Ssh,
    Feature::Plugs,
    Feature::Sudo,
    Feature::MissingAsOff,
])
.options(OPTIONS)
.needs_password();

/// One KVM host of the map and its (lazily opened) SSH session; a configuration error of
/// this host is kept and reported when the host is asked. The virsh builder puts `sudo -n`
/// in the command itself (after `env LC_ALL=C`), so the shell adds no prefix.
struct Host {
    cfname: String,
    cfg: Result<SshConfig, FenceError>,
    shell: Option<RemoteShell>,
    /// Why the last attempt to open a session got no answer (refused, timed out,
    /// unreachable), if it did not: such a host may be settled through its BMC.
    silent: Option<String>,
    /// Its chassis was read off in this run: not asked again, its guests count as off.
    down: bool,
}

impl Host {
    /// The session, opened now if needed; a connection that gets no answer marks the host
    /// silent (any other failure, e.g. a refused login, does not).
    fn shell(&mut self) -> Result<&mut RemoteShell, FenceError> {
        if self.shell.is_none() {
            let cfg = self.cfg.clone()?;
            match LazySession::connected(cfg) {
                Ok(s) => {
                    self.silent = None;
                    self.shell = Some(RemoteShell::new(s, false).named(self.cfname.clone()));
                }
                Err(e @ (SshError::Connect(_) | SshError::Timeout(_))) => {
                    self.silent = Some(e.to_string());
                    return Err(e.into());
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.shell
            .as_mut()
            .ok_or_else(|| FenceError::Device("no session".into()))
    }
}

impl Named for Host {
    fn name(&self) -> &str {
        &self.cfname
    }
}

impl VirshHost for Host {
    /// Runs one command; a transport failure drops the session (reopened next time).
    fn run(&mut self, cmd: &str) -> Result<Output, VirshError> {
        match self.shell().and_then(|sh| sh.exec(cmd)) {
            Ok(out) => Ok(Output {
                exit: out.status,
                stdout: out.stdout,
                stderr: out.stderr,
            }),
            Err(e) => {
                if e.is_transport() {
                    self.shell = None;
                }
                Err(VirshError::Unreachable(e.to_string()))
            }
        }
    }
}

struct KvmGuest {
    conf: KvmGuests,
    hosts: Vec<Host>,
    virsh: Virsh,
    missing_as_off: bool,
    /// The action is `on`: a saved guest (managed-save image, not running) reads as OFF, so
    /// that it is booted fresh.
    boot_saved: bool,
    /// Where the last status read found each plug's guest, for the power command that
    /// follows it (taken once; the read-back decides in any case).
    found: HashMap<String, Option<GuestLocation>>,
    /// The hosts' BMCs (from `inventory`), by cfname.
    bmcs: Option<(IpmiBmcs, Vec<String>)>,
    host_fence: HostFence,
    /// The action powers things off (off, reboot): host_fence may power a host off.
    fencing: bool,
    /// Read-back of a host's power-off through its BMC.
    read_back: ReadBack,
}

fn load_conf(opts: &Options) -> Result<(KvmGuests, Vec<String>), Vec<String>> {
    let path = opts.get(&GUESTS_CONF).unwrap_or(kvmconf::DEFAULT_PATH);
    kvmconf::load(Path::new(path), opts.flag(&RELAX_CONF_PERMISSIONS)).map_err(|e| e.lines(path))
}

fn host_config(opts: &Options, cfname: &str, addrs: &[HostAddr]) -> FenceResult<SshConfig> {
    let mut o = opts.clone();
    match kvmconf::lookup_host(addrs, cfname) {
        Some(a) => {
            o.set(&options::IP, a.host.clone());
            if let Some(p) = a.port {
                o.set(&options::IPPORT, p.to_string());
            }
            if let Some(u) = &a.user {
                o.set(&options::USERNAME, u.clone());
            }
        }
        None => o.set(&options::IP, cfname.to_string()),
    }
    SshConfig::from_options(&o)
}

impl KvmGuest {
    fn entry(&self, plug: &str) -> FenceResult<GuestEntry> {
        self.conf.find(plug).cloned().ok_or_else(|| {
            FenceError::PlugNotFound(format!(
                "guest '{}' is not in the guests map",
                fencekit::protocol::error::excerpt(plug)
            ))
        })
    }

    /// Every known host whose chassis was not read off, `first` leading.
    fn host_names(&self, first: Option<&str>) -> Vec<String> {
        let mut names: Vec<String> = first
            .filter(|f| !self.hosts.iter().any(|h| h.down && h.cfname == *f))
            .map(str::to_string)
            .into_iter()
            .collect();
        for h in self.hosts.iter().filter(|h| !h.down) {
            if !names.contains(&h.cfname) {
                names.push(h.cfname.clone());
            }
        }
        names
    }

    /// Asks every host (mapped one first) where the guest runs. When the answer is an error
    /// and some hosts got no SSH answer, those are settled through their BMCs (read off, or
    /// with `host_fence=bmc` in off/reboot powered off and read back off) and the others
    /// asked again; a guest found nowhere else then counts as off.
    fn locate(&mut self, entry: &GuestEntry) -> FenceResult<Option<GuestLocation>> {
        let names = self.host_names(Some(&entry.host_cfname));
        let first = guests::locate(&mut self.hosts, &names, &self.virsh, &entry.guest_name);
        let r = match first {
            Err(e) if !matches!(e, FenceError::PlugNotFound(_)) => {
                let silent: Vec<(String, String)> = self
                    .hosts
                    .iter()
                    .filter(|h| names.contains(&h.cfname))
                    .filter_map(|h| Some((h.cfname.clone(), h.silent.clone()?)))
                    .collect();
                if silent.is_empty() {
                    Err(e)
                } else {
                    let unsettled = self.settle(&silent);
                    if unsettled.is_empty() {
                        let names = self.host_names(Some(&entry.host_cfname));
                        guests::locate(&mut self.hosts, &names, &self.virsh, &entry.guest_name)
                    } else {
                        Err(FenceError::Status(unsettled.join("; ")))
                    }
                }
            }
            other => other,
        };
        let some_down = self.hosts.iter().any(|h| h.down);
        match r {
            Ok(loc) => Ok(Some(loc)),
            Err(FenceError::PlugNotFound(_)) if self.missing_as_off || some_down => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Settles silent hosts through their BMCs; the reasons of those that could not be.
    fn settle(&mut self, silent: &[(String, String)]) -> Vec<String> {
        let bmcs = self.bmcs.as_ref();
        let bmc_of = |h: &str| -> Option<&dyn BmcOps> {
            bmcs.filter(|(_, names)| names.iter().any(|n| n == h))
                .map(|(b, _)| b as &dyn BmcOps)
        };
        let power_off = self.host_fence == HostFence::Bmc && self.fencing;
        let got = hostfence::settle_all(
            silent,
            &bmc_of,
            power_off,
            self.read_back,
            &std::thread::sleep,
        );
        let mut unsettled = Vec::new();
        for (host, r) in got {
            match r {
                Ok(off) => {
                    if off.powered_off {
                        log::error(&off.how);
                    } else {
                        log::warn(&off.how);
                    }
                    if let Some(h) = self.hosts.iter_mut().find(|h| h.cfname == host) {
                        h.down = true;
                        h.shell = None;
                    }
                }
                Err(why) => unsettled.push(why),
            }
        }
        unsettled
    }

    /// Runs a domain command on some hosts and checks each answer (see [`guests::act`]).
    fn act(
        &mut self,
        hosts: &[String],
        guest: &str,
        build: fn(&Virsh, &str) -> Result<String, VirshError>,
        parse: fn(&virsh::Reply<'_>) -> Result<virsh::ActionOutcome, VirshError>,
        what: Option<&str>,
    ) -> FenceResult<()> {
        if hosts.is_empty() {
            return Ok(());
        }
        let cmd = build(&self.virsh, guest)?;
        guests::act(&mut self.hosts, hosts, guest, &cmd, parse, what)
    }

    /// Where the guest is: the location the last status read found (once), else asked now.
    fn located(&mut self, plug: &str, entry: &GuestEntry) -> FenceResult<Option<GuestLocation>> {
        match self.found.remove(plug) {
            Some(loc) => Ok(loc),
            None => self.locate(entry),
        }
    }
}

impl KvmGuest {
    /// Discards the managed-save images of `guest` on `hosts`: a failure fails the off, and
    /// says why (the guest would resume from its saved memory).
    fn discard(&mut self, hosts: &[String], guest: &str) -> FenceResult<()> {
        self.act(
            hosts,
            guest,
            Virsh::managedsave_remove,
            virsh::parse_managedsave_remove,
            Some(&format!(
                "cannot discard the managed-save image of '{guest}' (a start would resume it \
from its saved memory), so it is not off"
            )),
        )
    }
}

impl Agent for KvmGuest {
    const LIST: Option<ListFn<Self>> = Some(Self::list);

    fn info() -> &'static AgentInfo {
        &INFO
    }

    fn connect(opts: &Options) -> FenceResult<Self> {
        let (conf, warnings) = load_conf(opts).map_err(|e| FenceError::Usage(e.join("; ")))?;
        for w in warnings {
            // kvmconf words it "warning: ..."; the log line already says WARNING.
            log::warn(w.strip_prefix("warning: ").unwrap_or(&w));
        }
        let addrs = match opts.get(&HOSTS) {
            Some(v) => kvmconf::parse_hosts(v).map_err(|e| FenceError::Usage(e.join("; ")))?,
            None => Vec::new(),
        };
        // Every host that may run a guest: the map's hosts and every host of the `hosts`
        // option (a guest may have migrated to a host that no map line names).
        let mut names: Vec<String> = conf.all_hosts().into_iter().map(str::to_string).collect();
        for a in &addrs {
            if !names.contains(&a.cfname) {
                names.push(a.cfname.clone());
            }
        }
        let hosts = names
            .iter()
            .map(|cf| Host {
                cfname: cf.clone(),
                cfg: host_config(opts, cf, &addrs),
                shell: None,
                silent: None,
                down: false,
            })
            .collect();
        let bmcs = match opts.get(&INVENTORY) {
            Some(path) => {
                let inv = inventory::load(Path::new(path))
                    .map_err(|e| FenceError::Usage(e.to_string().replace('\n', "; ")))?;
                let names = inv.hosts.iter().map(|h| h.name.clone()).collect();
                Some((IpmiBmcs::new(&inv), names))
            }
            None => None,
        };
        Ok(KvmGuest {
            bmcs,
            host_fence: HostFence::parse(opts.get(&HOST_FENCE)).map_err(FenceError::Usage)?,
            fencing: matches!(opts.action(), Some(Action::Off | Action::Reboot)),
            read_back: ReadBack::within(
                opts.power_timeout(),
                opts.secs(&options::STONITH_STATUS_SLEEP),
            ),
            boot_saved: opts.action() == Some(Action::On),
            found: HashMap::new(),
            conf,
            hosts,
            virsh: Virsh::new(
                opts.get(&LIBVIRT_URI).unwrap_or(virsh::DEFAULT_URI),
                opts.flag(&options::USE_SUDO),
            ),
            missing_as_off: opts.flag(&options::MISSING_AS_OFF),
        })
    }

    fn power_status(&mut self, plug: &str) -> FenceResult<PowerState> {
        let entry = self.entry(plug)?;
        let loc = self.locate(&entry)?;
        let power = match &loc {
            None => PowerState::Off,
            Some(GuestLocation::Saved { saved, .. }) => {
                log::debug(&format!(
                    "'{}' is not running but has a managed-save image on {} (a plain start \
would resume it from its saved memory)",
                    entry.guest_name,
                    saved.join(", ")
                ));
                if self.boot_saved {
                    PowerState::Off
                } else {
                    PowerState::On
                }
            }
            Some(l) => l.power(),
        };
        self.found.insert(plug.to_owned(), loc);
        Ok(power)
    }

    fn set_power(&mut self, plug: &str, state: PowerState) -> FenceResult<()> {
        let entry = self.entry(plug)?;
        let loc = self.located(plug, &entry)?;
        let guest = entry.guest_name.clone();
        match (state, loc) {
            (PowerState::Off, Some(GuestLocation::Running { hosts, saved })) => {
                // Destroy wherever it runs (a crashed domain too), and discard every image.
                let destroyed =
                    self.act(&hosts, &guest, Virsh::destroy, virsh::parse_destroy, None);
                let discarded = self.discard(&saved, &guest);
                destroyed.and(discarded)
            }
            (PowerState::Off, Some(GuestLocation::Saved { saved, .. })) => {
                self.discard(&saved, &guest)
            }
            (
                PowerState::On,
                Some(GuestLocation::Off { defined_on } | GuestLocation::Saved { defined_on, .. }),
            ) => {
                let target = if defined_on.contains(&entry.host_cfname) {
                    entry.host_cfname.clone()
                } else {
                    defined_on.first().cloned().unwrap_or_default()
                };
                self.act(&[target], &guest, Virsh::start, virsh::parse_start, None)
            }
            (PowerState::On, None) => Err(FenceError::PlugNotFound(format!(
                "guest '{}' is not defined on any host",
                entry.guest_name
            ))),
            _ => Ok(()),
        }
    }

    fn monitor(&mut self, _opts: &Options) -> FenceResult<()> {
        // Every host must answer: a host that cannot be asked makes status unusable.
        // A host that gets no SSH answer but whose BMC (from inventory) answers can still be
        // settled by a fence: a warning, not a failure.
        let names = self.host_names(None);
        let mut failed = guests::unanswered(&mut self.hosts, &names, &self.virsh);
        if let Some((bmcs, known)) = self.bmcs.as_ref() {
            for h in self.hosts.iter().filter(|h| names.contains(&h.cfname)) {
                let (Some(why), true) = (&h.silent, known.contains(&h.cfname)) else {
                    continue;
                };
                if let Ok(p) = bmcs.status(&h.cfname) {
                    log::warn(&format!(
                        "host {} does not answer over SSH ({why}); its BMC answers (chassis {})",
                        h.cfname,
                        p.word()
                    ));
                    let prefix = format!("{}: ", h.cfname);
                    failed.retain(|f| !f.starts_with(&prefix));
                }
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(FenceError::ConnectionLost(failed.join("; ")))
        }
    }

    fn validate(opts: &Options) -> Vec<String> {
        let mut problems = match load_conf(opts) {
            Ok((_, warnings)) => {
                // Relaxed permissions: the file passes, but validate-all says what it let
                // through (pcs shows it as a warning) rather than staying silent.
                for w in warnings {
                    log::warn(w.strip_prefix("warning: ").unwrap_or(&w));
                }
                Vec::new()
            }
            Err(lines) => lines,
        };
        if let Some(v) = opts.get(&HOSTS) {
            if let Err(errs) = kvmconf::parse_hosts(v) {
                problems.extend(errs);
            }
        }
        match HostFence::parse(opts.get(&HOST_FENCE)) {
            Ok(HostFence::Bmc) if opts.get(&INVENTORY).is_none() => problems.push(
                "host_fence=bmc needs inventory (the hosts' BMCs are read from it)".to_string(),
            ),
            Ok(_) => {}
            Err(e) => problems.push(e),
        }
        if let Some(path) = opts.get(&INVENTORY) {
            if let Err(e) = inventory::load(Path::new(path)) {
                problems.extend(e.to_string().lines().map(str::to_owned));
            }
        }
        problems
    }
}

/// What the device offers beyond on/off/status (the trait's `LIST`, `CYCLE`, `DIAG`).
impl KvmGuest {
    fn list(&mut self, with_status: bool) -> FenceResult<Vec<Outlet>> {
        let entries: Vec<GuestEntry> = self.conf.entries().to_vec();
        let mut states: Vec<Option<PowerState>> = vec![None; entries.len()];
        if with_status {
            let names = self.host_names(None);
            let wanted: Vec<&str> = entries.iter().map(|e| e.guest_name.as_str()).collect();
            states = guests::power_states(&mut self.hosts, &names, &self.virsh, &wanted);
        }
        Ok(entries
            .into_iter()
            .zip(states)
            .map(|(e, state)| Outlet {
                id: e.guest_cfname,
                alias: e.guest_name,
                state,
            })
            .collect())
    }
}

/// Entry point.
fn main() -> ExitCode {
    fencekit::protocol::run::run::<KvmGuest>()
}
