//! Design decisions that keep fencing safe (documentation only; no code).
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
