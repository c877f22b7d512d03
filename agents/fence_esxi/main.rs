//! fence_esxi: fences VMs on free VMware ESXi (no vSphere API) over SSH with `vim-cmd`.
//!
//! The plug is a VM name (exact match; spaces, brackets and non-ASCII allowed) or its numeric
//! vmid. The VM is looked up in `vim-cmd vmsvc/getallvms`; every other command carries the
//! numeric vmid only, so no user text ever reaches the remote shell. Power state comes from
//! `vim-cmd vmsvc/power.getstate`: `Powered on` is ON, `Powered off` and `Suspended` are OFF,
//! anything else is an error.

use std::process::ExitCode;

use fencekit::device::vimcmd::{self, Vm, VmPower};
use fencekit::protocol::log;
use fencekit::transport::ssh::{self, LazySession, SshConfig};
use fencekit::{Agent, AgentInfo, Feature, FenceError, FenceResult, Options, Outlet, PowerState};

static INFO: AgentInfo = AgentInfo {
    name: "fence_esxi",
    shortdesc: "Fence agent for VMs on free VMware ESXi over SSH",
    longdesc: "fence_esxi is a Power Fencing agent for virtual machines on VMware ESXi hosts \
without vCenter or a vSphere API licence (free ESXi). It logs in to the host over SSH \
(keyboard-interactive or password login, or a key), finds the VM by its exact name or vmid in \
`vim-cmd vmsvc/getallvms`, and powers it off or on with `vim-cmd vmsvc/power.off` / `power.on`, \
confirming every change by reading the state back. The host's SSH key is verified against \
known_hosts or a pinned fingerprint. Enable SSH on the ESXi host first.",
    vendor_url: "https://www.vmware.com",
    features: &[
        Feature::Address,
        Feature::Login,
        Feature::Password,
        Feature::Ssh,
        Feature::Plugs,
        Feature::Sudo,
        Feature::Method,
    ],
    options: &[],
    defaults: &[("ipport", "22")],
    has_list: true,
    has_cycle: true,
    has_diag: false,
    needs_password: true,
};

/// One SSH session to an ESXi host, reopened after a transport error.
struct Esxi {
    conn: LazySession,
    sudo: bool,
    vms: Option<Vec<Vm>>,
}

impl Esxi {
    /// `sudo -n ` when use_sudo is set, else nothing: goes in front of every remote command.
    fn sudo_prefix(&self) -> &'static str {
        ssh::sudo_prefix(self.sudo)
    }

    /// Runs one command (through `sudo -n` when use_sudo is set).
    fn exec(&mut self, cmd: &str) -> FenceResult<String> {
        let full = format!("{}{cmd}", self.sudo_prefix());
        self.exec_line(&full, cmd)
    }

    /// Runs a shell line as it is (a script puts the sudo prefix before each command itself;
    /// `sudo -n for ...` would be a syntax error). `cmd` names it in errors.
    fn exec_line(&mut self, full: &str, cmd: &str) -> FenceResult<String> {
        self.exec_status(full, cmd).map(|(stdout, _)| stdout)
    }

    /// As [`Self::exec_line`], with whether the command exited with status 0.
    fn exec_status(&mut self, full: &str, cmd: &str) -> FenceResult<(String, bool)> {
        log::debug(&format!("Executing: {full}"));
        let out = self.conn.exec(full)?;
        let stdout = out.stdout_text();
        if stdout.trim().is_empty() && !out.success() {
            let err = out.stderr_text();
            let first = err.lines().next().unwrap_or("no output").trim();
            return Err(FenceError::Device(format!(
                "`{cmd}` failed with status {}: {first}",
                out.status
                    .map_or_else(|| "unknown".to_string(), |s| s.to_string())
            )));
        }
        Ok((stdout, out.success()))
    }

    fn inventory(&mut self) -> FenceResult<&[Vm]> {
        if self.vms.is_none() {
            let out = self.exec(&vimcmd::getallvms())?;
            let vms =
                vimcmd::parse_getallvms(&out).map_err(|e| FenceError::Device(e.to_string()))?;
            self.vms = Some(vms);
        }
        Ok(self.vms.as_deref().unwrap_or(&[]))
    }

    fn vmid(&mut self, plug: &str) -> FenceResult<u32> {
        let vms = self.inventory()?;
        Ok(vimcmd::find_vm(vms, plug)?.vmid)
    }

    fn state_of(&mut self, vmid: u32) -> FenceResult<PowerState> {
        let out = self.exec(&vimcmd::power_getstate(vmid))?;
        Ok(to_state(vimcmd::parse_power_state(&out)?))
    }
}

fn to_state(p: VmPower) -> PowerState {
    match p {
        VmPower::On => PowerState::On,
        VmPower::Off | VmPower::Suspended => PowerState::Off,
    }
}

/// A fault that only says the VM is already in the requested state: the read-back decides.
fn already_there(e: &vimcmd::ParseError) -> bool {
    matches!(e, vimcmd::ParseError::Fault(f) if f.name.ends_with("InvalidPowerState"))
}

impl Agent for Esxi {
    fn info() -> &'static AgentInfo {
        &INFO
    }

    fn connect(opts: &Options) -> FenceResult<Self> {
        let cfg = SshConfig::from_options(opts)?;
        Ok(Esxi {
            conn: LazySession::connected(cfg)?,
            sudo: opts.flag("use_sudo"),
            vms: None,
        })
    }

    fn power_status(&mut self, plug: &str) -> FenceResult<PowerState> {
        let vmid = self.vmid(plug)?;
        self.state_of(vmid)
    }

    fn set_power(&mut self, plug: &str, state: PowerState) -> FenceResult<()> {
        let vmid = self.vmid(plug)?;
        let cmd = match state {
            PowerState::On => vimcmd::power_on(vmid),
            PowerState::Off => vimcmd::power_off(vmid),
        };
        let out = self.exec(&cmd)?;
        match vimcmd::check_power_op(&out) {
            Err(e) if !already_there(&e) => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn cycle(&mut self, plug: &str) -> FenceResult<()> {
        let vmid = self.vmid(plug)?;
        // method=cycle has no read-back (the VM never shows "off"), so the acknowledgement
        // must be exact: vim-cmd's own `Reset VM:` line and exit status 0, nothing else.
        let cmd = vimcmd::power_reset(vmid);
        let (out, exited_0) = self.exec_status(&format!("{}{cmd}", self.sudo_prefix()), &cmd)?;
        vimcmd::check_reset(&out)?;
        if exited_0 {
            Ok(())
        } else {
            Err(FenceError::Device(format!(
                "`{cmd}` printed its acknowledgement but exited with an error"
            )))
        }
    }

    fn list(&mut self, with_status: bool) -> FenceResult<Vec<Outlet>> {
        let vms: Vec<Vm> = self.inventory()?.to_vec();
        let states = if with_status && !vms.is_empty() {
            // One round trip for every state: the vmids are numbers, safe in a shell loop.
            let ids: Vec<String> = vms.iter().map(|v| v.vmid.to_string()).collect();
            let script = format!(
                "for i in {}; do echo \"@@fencekit-vmid $i\"; {}vim-cmd vmsvc/power.getstate $i 2>&1; done",
                ids.join(" "),
                self.sudo_prefix()
            );
            let out = self.exec_line(&script, &script)?;
            split_states(&out)
        } else {
            Vec::new()
        };
        Ok(vms
            .into_iter()
            .map(|v| Outlet {
                state: states
                    .iter()
                    .find(|(id, _)| *id == v.vmid)
                    .and_then(|(_, s)| *s),
                id: v.name,
                alias: v.vmid.to_string(),
            })
            .collect())
    }

    fn monitor(&mut self, _opts: &Options) -> FenceResult<()> {
        // Cheap on any host size: login plus one light command, never a full inventory.
        let out = self.exec(&vimcmd::host_version())?;
        vimcmd::parse_host_version(&out)?;
        Ok(())
    }
}

/// Splits the output of the list-status loop into (vmid, state); unparseable → `None`.
fn split_states(out: &str) -> Vec<(u32, Option<PowerState>)> {
    let mut res = Vec::new();
    let mut current: Option<(u32, String)> = None;
    let flush = |cur: Option<(u32, String)>, res: &mut Vec<(u32, Option<PowerState>)>| {
        if let Some((id, text)) = cur {
            res.push((id, vimcmd::parse_power_state(&text).ok().map(to_state)));
        }
    };
    for line in out.lines() {
        if let Some(id) = line.strip_prefix("@@fencekit-vmid ") {
            flush(current.take(), &mut res);
            current = id.trim().parse::<u32>().ok().map(|id| (id, String::new()));
        } else if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    flush(current, &mut res);
    res
}

/// Entry point.
fn main() -> ExitCode {
    fencekit::protocol::run::run::<Esxi>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_status_sections() {
        let out = "@@fencekit-vmid 1\nRetrieved runtime info\nPowered on\n@@fencekit-vmid 12\nRetrieved runtime info\nSuspended\n@@fencekit-vmid 3\ngarbage\n";
        assert_eq!(
            split_states(out),
            vec![
                (1, Some(PowerState::On)),
                (12, Some(PowerState::Off)),
                (3, None)
            ]
        );
    }
}
