//! Device grammars: pure parsers and command builders for what a device prints or is sent
//! (`vimcmd` for ESXi's vim-cmd, `virsh` for libvirt, `kvmconf` for kvmguests.conf maps).

pub mod kvmconf;
pub mod vimcmd;
pub mod virsh;
