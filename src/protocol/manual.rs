//! The man page (`-o manpage`), generated from the option table, and the design decisions
//! that keep fencing safe.
//!
//! The page's PARAMETERS come from the agent's option rows (the same rows as the metadata and
//! `-h`); EXAMPLES, FILES, NOTES (host keys, secrets, SELinux on RHEL) and SEE ALSO come from
//! [`Extras`], one per packaged agent, keyed by the agent's own name. The `.TH` date is
//! [`RELEASE_DATE`], the date of the release in the package changelogs (a test keeps them
//! equal), so a rebuilt page is byte for byte the same.
//!
//!
//! # Unknown is never off
//! A fence agent's most dangerous answer is a false "off": the cluster then lets two nodes
//! write the same disk. Every parser in fencekit maps text it does not recognise to an error.
//! [`crate::Agent::power_status`] returns `Off` only for a device answer that means off
//! (`Powered off`, `shut off`, chassis power bit clear). fence_virsh maps garbled output to
//! off; we never do.
//!
//! # What success means
//! `off` succeeds only after every plug was read back as off within `power_timeout`.
//! `reboot` succeeds once the off phase was confirmed; a failing on phase is logged and the
//! result is still `Success: Rebooted` (fence-agents semantics: an unpowered node is safe).
//! `method=cycle` trusts the device's acknowledgement of a power cycle, as fence_ipmilan does;
//! a target already off is powered on instead of cycled (devices refuse to cycle it).
//!
//! # Time budget
//! Every network step is bounded (`login_timeout`, `shell_timeout`, `power_timeout`), and a
//! watchdog thread ends the process with `Failed: Connection timed out` (exit 1) once the whole
//! action exceeds the sum of its phase bounds. Unlike fencing.py we keep our timeouts when
//! `PCMK_service=pacemaker-fenced`: a clear failure beats a SIGKILL from the fencer.
//!
//! # Status OFF exits 2
//! Pacemaker's `status` host check treats 0 and 2 as "this device can fence that target": an
//! existing, powered-off target must exit 2, never 1.
//!
//! # Secrets
//! Passwords travel as [`crate::Secret`] (formatted as `[set]`), are never put on a child's
//! argv (there is no ipmitool or ssh child), and an unknown stdin key is logged by name only.
//!
//! # Host keys
//! SSH host keys are verified against known_hosts or a pinned SHA256 fingerprint; an unknown
//! key is refused unless `accept_new_host_key` is set, and a changed key is always refused.
//!
//! # Saved memory is not off (fence_esxi)
//! A suspended VM counts as ON: resumed, a fenced node would come back with its old memory and
//! believe it still holds its resources. `off`/`reboot` power it off, which discards the
//! suspend state, and read `Powered off` back; `on` never resumes one (it fails and says why).
//! VM notes are printed raw in `getallvms` and can be shaped like rows: a vmid found by name
//! that another row names otherwise is confirmed with the VM's own name (`get.config`) first.

use std::fmt::Write as _;

use crate::protocol::action::Action;
use crate::protocol::agent::AgentInfo;
use crate::protocol::metadata::{actions, describe, VERSION};
use crate::protocol::options::OptSpec;

/// The date of this release (the top entry of `packaging/deb/changelog` and of the RPM
/// `%changelog`), printed in every page's `.TH` line.
pub const RELEASE_DATE: &str = "2026-12-02";

/// One example: what it does, then the command lines (plain text, escaped when rendered).
pub type Example = (&'static str, &'static str);

/// The hand-written parts of an agent's page.
#[derive(Debug)]
pub struct Extras {
    /// EXAMPLES.
    pub examples: &'static [Example],
    /// FILES: path, what it is.
    pub files: &'static [(&'static str, &'static str)],
    /// Whether the agent logs in over SSH (host-key notes, `fenced_can_ssh`).
    pub ssh: bool,
    /// The SELinux paragraph for this agent (booleans it needs).
    pub selinux: &'static str,
    /// SEE ALSO entries besides the common ones, as `name(section)`.
    pub see_also: &'static [&'static str],
}

const KNOWN_HOSTS_FILES: [(&str, &str); 2] = [
    (
        "~/.ssh/known_hosts",
        "host keys of the devices, for the user the agent runs as (root under Pacemaker); \
         read first",
    ),
    (
        "/etc/ssh/ssh_known_hosts",
        "system-wide host keys, read when the user's file does not know the device",
    ),
];

const SSH_SELINUX: &str = "The agent connects to the device's SSH port from the fenced_t \
domain. Allow it on every node with setsebool -P fenced_can_ssh on. An ipport other than 22 may \
also need setsebool -P fenced_can_network_connect on.";

static ESXI: Extras = Extras {
    examples: &[
        (
            "Record the ESXi host's key once, on every cluster node (or pin it with \
             host_key_fingerprint):",
            "ssh-keyscan -t ed25519 esxi1.example.com >> /root/.ssh/known_hosts",
        ),
        (
            "Create a device that fences cluster node node1, which runs as the VM web1 \
             (pcs runs validate-all first):",
            "pcs stonith create fence-web1 fence_esxi ip=esxi1.example.com \\\n    \
             username=root identity_file=/root/.ssh/id_ed25519 \\\n    \
             pcmk_host_map=\"node1:web1\" --agent-validation",
        ),
        (
            "The same with a password read by a script (never stored in the CIB):",
            "pcs stonith create fence-web1 fence_esxi ip=esxi1.example.com \\\n    \
             username=root password_script=/usr/local/sbin/esxi1-password \\\n    \
             pcmk_host_map=\"node1:web1\" --agent-validation",
        ),
        (
            "One device for every ESXi host of the evacuation inventory (the VM is looked for \
             on all of them; a host that does not answer is powered off through its BMC and \
             read back off before its VMs count as off):",
            "pcs stonith create fence-esxi fence_esxi inventory=/etc/fencekit/evacuate.toml \\\n    \
             host_fence=bmc pcmk_host_map=\"node1:web1;node2:web2\" --agent-validation",
        ),
        (
            "Test the device through the cluster (this really powers web1 off and on):",
            "stonith_admin --reboot node1",
        ),
        (
            "Ask for the VM's state by hand, the options on standard input as Pacemaker \
             passes them (exit status 0 on, 2 off, 1 unknown):",
            "printf 'action=status\\nip=esxi1.example.com\\nusername=root\\n\
             identity_file=/root/.ssh/id_ed25519\\nplug=web1\\n' | fence_esxi",
        ),
        (
            "List the VMs of the host (name, then vmid):",
            "fence_esxi -a esxi1.example.com -l root -k /root/.ssh/id_ed25519 -o list",
        ),
    ],
    files: &[
        KNOWN_HOSTS_FILES[0],
        KNOWN_HOSTS_FILES[1],
        (
            "/usr/share/fencekit/metadata/fence_esxi.xml",
            "the agent's metadata, as printed by -o metadata",
        ),
    ],
    ssh: true,
    selinux: SSH_SELINUX,
    see_also: &["fence_bmc(8)", "vm-evacuate(8)", "ssh-keyscan(1)"],
};

static BMC: Extras = Extras {
    examples: &[
        (
            "Create a device for cluster node node1, whose BMC is 10.0.0.11 (the parameters \
             of fence_ipmilan; pcs runs validate-all first):",
            "pcs stonith create fence-node1 fence_bmc ip=10.0.0.11 username=admin \\\n    \
             password_script=/usr/local/sbin/bmc-password lanplus=1 \\\n    \
             pcmk_host_list=node1 --agent-validation",
        ),
        (
            "Test the device through the cluster (this really powers node1 off and on):",
            "stonith_admin --reboot node1",
        ),
        (
            "Ask for the chassis power state by hand, the options on standard input as \
             Pacemaker passes them (exit status 0 on, 2 off, 1 unknown):",
            "printf 'action=status\\nip=10.0.0.11\\nusername=admin\\n\
             password_script=/usr/local/sbin/bmc-password\\n' | fence_bmc",
        ),
    ],
    files: &[(
        "/usr/share/fencekit/metadata/fence_bmc.xml",
        "the agent's metadata, as printed by -o metadata",
    )],
    ssh: false,
    selinux: "The agent sends UDP datagrams to the BMC (port 623) from the fenced_t domain. \
If they are denied, allow it on every node with setsebool -P fenced_can_network_connect on.",
    see_also: &["fence_ipmilan(8)", "ipmitool(1)", "vm-evacuate(8)"],
};

static KVMGUEST: Extras = Extras {
    examples: &[
        (
            "Record every KVM host's key once, on every cluster node:",
            "ssh-keyscan -t ed25519 192.0.2.1 192.0.2.2 >> /root/.ssh/known_hosts",
        ),
        (
            "Create one device for every guest of the map; Pacemaker asks the agent which \
             guests it can fence (pcs runs validate-all first, which checks the map):",
            "pcs stonith create fence-kvm fence_kvmguest \\\n    \
             guests_conf=/etc/opt/FJSVcluster/etc/kvmguests.conf \\\n    \
             hosts=\"cfhost1=192.0.2.1,cfhost2=192.0.2.2\" username=root \\\n    \
             identity_file=/root/.ssh/id_ed25519 pcmk_host_check=dynamic-list \\\n    \
             --agent-validation",
        ),
        (
            "Test the device through the cluster (this really destroys and restarts the \
             guest whose cfname is guest1):",
            "stonith_admin --reboot guest1",
        ),
        (
            "Check the map by hand, the options on standard input as Pacemaker passes them \
             (each problem is printed with its line number):",
            "printf 'action=validate-all\\n\
             guests_conf=/etc/opt/FJSVcluster/etc/kvmguests.conf\\nusername=root\\n\
             identity_file=/root/.ssh/id_ed25519\\n' | fence_kvmguest",
        ),
        (
            "Ask every host for a guest's state (exit status 0 on, 2 off, 1 unknown):",
            "printf 'action=status\\nhosts=cfhost1=192.0.2.1,cfhost2=192.0.2.2\\n\
             username=root\\nidentity_file=/root/.ssh/id_ed25519\\nplug=guest1\\n' \
             | fence_kvmguest",
        ),
    ],
    files: &[
        (
            "/etc/opt/FJSVcluster/etc/kvmguests.conf",
            "the default guests_conf: the map of guests and their hosts; owned by root, mode \
             0600, the same on every node",
        ),
        KNOWN_HOSTS_FILES[0],
        KNOWN_HOSTS_FILES[1],
        (
            "/usr/share/fencekit/metadata/fence_kvmguest.xml",
            "the agent's metadata, as printed by -o metadata",
        ),
    ],
    ssh: true,
    selinux: SSH_SELINUX,
    see_also: &["fence_virsh(8)", "virsh(1)", "ssh-keyscan(1)"],
};

static SSHCMD: Extras = Extras {
    examples: &[
        (
            "Record the management host's key once, on every cluster node:",
            "ssh-keyscan -t ed25519 mgmt1.example.com >> /root/.ssh/known_hosts",
        ),
        (
            "Create a device for cluster node db1, powered by a command on mgmt1 (pcs runs \
             validate-all first):",
            "pcs stonith create fence-db1 fence_sshcmd ip=mgmt1.example.com \\\n    \
             username=fence identity_file=/root/.ssh/id_ed25519 \\\n    \
             off_command=\"/usr/local/sbin/power db1 off\" \\\n    \
             on_command=\"/usr/local/sbin/power db1 on\" \\\n    \
             status_command=\"/usr/local/sbin/power db1 status\" \\\n    \
             status_on_regex='^on$' status_off_regex='^off$' \\\n    \
             pcmk_host_list=db1 --agent-validation",
        ),
        (
            "Test the device through the cluster (this really powers db1 off and on):",
            "stonith_admin --reboot db1",
        ),
        (
            "Ask for the state by hand, the options on standard input as Pacemaker passes \
             them (exit status 0 on, 2 off, 1 unknown):",
            "printf 'action=status\\nip=mgmt1.example.com\\nusername=fence\\n\
             identity_file=/root/.ssh/id_ed25519\\n\
             on_command=power db1 on\\noff_command=power db1 off\\n\
             status_command=power db1 status\\nstatus_on_regex=^on$\\n\
             status_off_regex=^off$\\n' | fence_sshcmd",
        ),
    ],
    files: &[
        KNOWN_HOSTS_FILES[0],
        KNOWN_HOSTS_FILES[1],
        (
            "/usr/share/fencekit/metadata/fence_sshcmd.xml",
            "the agent's metadata, as printed by -o metadata",
        ),
    ],
    ssh: true,
    selinux: SSH_SELINUX,
    see_also: &["ssh-keyscan(1)"],
};

static GENERIC: Extras = Extras {
    examples: &[],
    files: &[],
    ssh: false,
    selinux: "",
    see_also: &[],
};

/// The hand-written parts of the page of the agent described by `info` (by its own name,
/// whatever the binary is called); an agent that is not packaged gets none.
pub fn extras(info: &AgentInfo) -> &'static Extras {
    match info.name {
        "fence_esxi" => &ESXI,
        "fence_bmc" => &BMC,
        "fence_kvmguest" => &KVMGUEST,
        "fence_sshcmd" => &SSHCMD,
        _ => &GENERIC,
    }
}

/// Text for roff: backslashes doubled, a leading `.` or `'` protected, `-` as `\-` (a
/// minus, so options can be searched and copied).
fn roff(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let l = line.replace('\\', "\\e").replace('-', "\\-");
        if l.starts_with('.') || l.starts_with('\'') {
            out.push_str("\\&");
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// A paragraph in fill mode: one input line, roff-escaped.
fn para(s: &mut String, text: &str) {
    s.push_str(".PP\n");
    s.push_str(&roff(
        &text.split_whitespace().collect::<Vec<_>>().join(" "),
    ));
}

fn example(s: &mut String, (what, lines): &Example) {
    para(s, what);
    s.push_str(".PP\n.RS 4\n.nf\n");
    s.push_str(&roff(lines));
    s.push_str(".fi\n.RE\n");
}

/// `-o manpage` output (roff, section 8) of the agent `name` (the binary's name).
pub fn manpage(name: &str, info: &AgentInfo, table: &[OptSpec]) -> String {
    let extra = extras(info);
    let mut s = String::new();
    let _ = writeln!(
        s,
        ".TH {} 8 \"{RELEASE_DATE}\" \"fencekit {VERSION}\" \"System Manager's Manual\"",
        name.to_uppercase()
    );
    // No hyphenation: option and boolean names are copied from the page.
    s.push_str(".nh\n");
    let _ = write!(
        s,
        ".SH NAME\n{} \\- {}",
        roff(name).trim_end(),
        roff(info.shortdesc)
    );
    let _ = write!(
        s,
        ".SH SYNOPSIS\n.B {}\n[\\fIOPTION\\fR]...\n.br\n.B {}\n< \\fIname=value lines\\fR\n",
        roff(name).trim_end(),
        roff(name).trim_end()
    );
    s.push_str(".SH DESCRIPTION\n");
    for p in info.longdesc.trim().split("\n\n") {
        para(&mut s, p);
    }
    para(
        &mut s,
        &format!(
            "{name} accepts options on the command line or, when run without arguments, as \
             name=value lines on standard input (this is how Pacemaker runs it). The stdin \
             names are the parameters of its metadata (-o metadata), which pcs and Pacemaker \
             read."
        ),
    );
    if !info.vendor_url.is_empty() {
        // Break points after each `/` (the page is not hyphenated).
        let url = roff(info.vendor_url).replace('/', "/\\:");
        let _ = write!(s, ".PP\nVendor URL: {url}");
    }
    s.push_str(".SH PARAMETERS\n");
    for spec in table {
        s.push_str(".TP\n.B ");
        let mut head = String::new();
        if let Some(c) = spec.short {
            let _ = write!(head, "-{c}, ");
        }
        let _ = write!(head, "--{}", spec.long());
        if !spec.is_flag() {
            let _ = write!(head, "={}", spec.value_name);
        }
        s.push_str(&roff(&head));
        s.push_str(&roff(&describe(spec)));
        let mut names = format!("stdin/metadata name: {}", spec.name);
        if let Some(l) = spec.legacy {
            let _ = write!(names, " (deprecated alias: {l})");
        }
        if spec.required {
            names.push_str("; required");
        }
        let _ = write!(s, ".br\n{}", roff(&names));
    }
    s.push_str(".SH ACTIONS\n.TP\n.B on\nPower on.\n");
    for a in actions(info) {
        let what = match a {
            Action::On => "Power on.",
            Action::Off => "Power off (hard) and confirm the target reads back as off.",
            Action::Reboot => "Power off, confirm off, then power on (default action).",
            Action::Status => {
                "Print Status: ON (exit 0) or Status: OFF (exit 2); exit 1 when unknown."
            }
            Action::List => "List plugs as id,alias lines.",
            Action::ListStatus => "List plugs with their power state.",
            Action::Monitor => "Check that the device answers.",
            Action::Metadata => "Print the XML metadata.",
            Action::Manpage => "Print this manual page.",
            Action::ValidateAll => "Check the options without contacting the device.",
            Action::Diag => "Send a diagnostic interrupt (NMI).",
        };
        let _ = write!(s, ".TP\n.B {}{}", roff(&a.to_string()), roff(what));
    }
    s.push_str(
        ".SH EXIT STATUS\n.TP\n.B 0\nSuccess (status: the target is on).\n.TP\n.B 1\n\
         Failure: the device did not answer, answered something unknown, or the target was \
         not read back as off. Never reported as off.\n.TP\n.B 2\nstatus: the target is off.\n",
    );
    if !extra.examples.is_empty() {
        s.push_str(".SH EXAMPLES\n");
        for e in extra.examples {
            example(&mut s, e);
        }
    }
    if !extra.files.is_empty() {
        s.push_str(".SH FILES\n");
        for (path, what) in extra.files {
            let _ = write!(s, ".TP\n.I {}{}", roff(path), roff(what));
        }
    }
    s.push_str(".SH NOTES\n");
    if extra.ssh {
        s.push_str(".SS Host keys\n");
        para(
            &mut s,
            "The device's SSH host key is verified on every connection: against \
             known_hosts (see FILES, or the known_hosts parameter) or a pinned \
             host_key_fingerprint (SHA256:..., as ssh-keygen -l prints it). An unknown key is \
             refused unless accept_new_host_key is set, and a changed key is always refused. \
             Pacemaker may run the agent on any node: record the key on every node (or pin \
             it in the device, which every node shares).",
        );
    }
    s.push_str(".SS Secrets\n");
    para(
        &mut s,
        "A password given as a parameter is stored in the CIB, readable by every cluster \
         administrator. Prefer password_script: a command, run by /bin/sh, that prints the \
         password on standard output (trailing newlines are dropped) and exits with status 0 \
         within login_timeout (at least 10 seconds are allowed). Keep it and what it reads owned by root and not readable by \
         others, on every node. The password is never put on a command line, in a log or in an \
         error message.",
    );
    s.push_str(".SS SELinux (RHEL and derivatives)\n");
    if !extra.selinux.is_empty() {
        para(&mut s, extra.selinux);
    }
    para(
        &mut s,
        "See which booleans are set with getsebool -a | grep fenced. A denial is logged in \
         the audit log: show the recent ones with ausearch -m AVC -ts recent, and an \
         explanation with the boolean or rule that would allow it with sealert -a \
         /var/log/audit/audit.log (setroubleshoot-server). A password_script must be a file \
         the fenced_t domain may run (for example in /usr/local/sbin; restorecon -v resets \
         its label).",
    );
    s.push_str(".SH SEE ALSO\n");
    let mut see: Vec<&str> = vec!["pcs(8)", "stonith_admin(8)", "pacemaker-fenced(7)"];
    see.extend(extra.see_also);
    if !extra.selinux.is_empty() {
        see.push("fenced_selinux(8)");
    }
    let refs: Vec<String> = see
        .iter()
        .map(|r| match r.split_once('(') {
            Some((page, sect)) => format!(".BR {} ({}", roff(page).trim_end(), sect),
            None => format!(".B {}", roff(r).trim_end()),
        })
        .collect();
    s.push_str(&refs.join(" ,\n"));
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roff_escapes() {
        assert_eq!(roff(".x\n'y\na\\b-c"), "\\&.x\n\\&'y\na\\eb\\-c\n");
    }

    #[test]
    fn every_packaged_agent_has_extras() {
        for name in ["fence_esxi", "fence_bmc", "fence_kvmguest", "fence_sshcmd"] {
            let info = AgentInfo::new(name, "x");
            let e = extras(&info);
            assert!(!e.examples.is_empty(), "{name}");
            assert!(!e.selinux.is_empty(), "{name}");
            assert!(
                e.examples
                    .iter()
                    .any(|(_, l)| l.contains("--agent-validation")),
                "{name}"
            );
            assert!(
                e.examples
                    .iter()
                    .any(|(_, l)| l.starts_with("stonith_admin --reboot ")),
                "{name}"
            );
            assert!(
                e.examples
                    .iter()
                    .any(|(_, l)| l.contains(&format!("| {name}"))),
                "{name}"
            );
        }
    }
}
