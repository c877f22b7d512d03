mod kvm_lib;
mod kvmsim;
