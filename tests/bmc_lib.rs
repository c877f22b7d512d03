//! fencekit::ipmi against real peers on loopback: ipmi_sim BMCs (tests/sim_ipmi), ipmitool
//! as the second opinion, a lossy UDP relay, and a suite-17 responder (tests/ipmi17.rs).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::time::{Duration, Instant};

use fencekit::ipmi::{ChassisOp, IpmiConfig, IpmiError, Privilege, Session, Version};
use fencekit::{FenceError, PowerState, Secret};

use crate::ipmisim::Bmc;

fn wait_power(s: &mut Session, want: PowerState, within: Duration) -> bool {
    let end = Instant::now() + within;
    loop {
        if s.chassis_status().ok() == Some(want) {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn status_off_on_with_second_opinion() {
    let Some(bmc) = Bmc::start(&[]) else { return };
    let mut s = Session::open(&bmc.cfg()).unwrap();
    assert_eq!(s.cipher_suite(), Some(3));
    assert_eq!(s.chassis_status().unwrap(), PowerState::On);
    s.chassis_control(ChassisOp::PowerDown).unwrap();
    assert_eq!(s.chassis_status().unwrap(), PowerState::Off);
    assert_eq!(bmc.ipmitool_power(), Some(PowerState::Off));
    s.chassis_control(ChassisOp::PowerUp).unwrap();
    assert_eq!(s.chassis_status().unwrap(), PowerState::On);
    s.close().unwrap();
    assert_eq!(bmc.ipmitool_power(), Some(PowerState::On));
    assert_eq!(bmc.power_file(), "1");
}
