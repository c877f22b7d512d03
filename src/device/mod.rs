//! Device grammars: pure parsers and command builders for what a device prints or is sent
//! (`vimcmd` for ESXi's vim-cmd, `virsh` for libvirt, `kvmconf` for kvmguests.conf maps), and
//! the orchestration across hosts built on them, generic over how one host is asked (`fanout`:
//! every host at once; `guests`: where a KVM guest runs and acting on it there; `hostfence`: a
//! host that did not answer, settled through its BMC).

pub mod fanout;
pub mod guests;
pub mod hostfence;
pub mod kvmconf;
pub mod vimcmd;
pub mod virsh;
