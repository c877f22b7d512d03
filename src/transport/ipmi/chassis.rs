//! Chassis commands (Get Chassis Status, Chassis Control) and completion-code texts.

use super::IpmiError;
use crate::protocol::agent::PowerState;

/// Chassis netfn.
pub(crate) const NETFN_CHASSIS: u8 = 0x00;
/// Application netfn.
pub(crate) const NETFN_APP: u8 = 0x06;
/// Get Chassis Status.
pub(crate) const CMD_CHASSIS_STATUS: u8 = 0x01;
/// Chassis Control.
pub(crate) const CMD_CHASSIS_CONTROL: u8 = 0x02;

/// A Chassis Control operation (IPMI 2.0 table 28-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChassisOp {
    /// Power down (hard off, no OS shutdown): what fencing wants.
    PowerDown,
    /// Power up.
    PowerUp,
    /// Power cycle (off, then on after the BMC's interval). Fails on most BMCs when off.
    PowerCycle,
    /// Hard reset (no power change).
    HardReset,
    /// Pulse a diagnostic interrupt (NMI) to the host.
    DiagInterrupt,
    /// ACPI soft shutdown request (the OS decides; not a fence).
    SoftShutdown,
}

impl ChassisOp {
    /// Request data byte.
    pub fn code(self) -> u8 {
        match self {
            ChassisOp::PowerDown => 0,
            ChassisOp::PowerUp => 1,
            ChassisOp::PowerCycle => 2,
            ChassisOp::HardReset => 3,
            ChassisOp::DiagInterrupt => 4,
            ChassisOp::SoftShutdown => 5,
        }
    }

    /// Human name (as ipmitool words it).
    pub fn name(self) -> &'static str {
        match self {
            ChassisOp::PowerDown => "Down/Off",
            ChassisOp::PowerUp => "Up/On",
            ChassisOp::PowerCycle => "Cycle",
            ChassisOp::HardReset => "Reset",
            ChassisOp::DiagInterrupt => "Diag",
            ChassisOp::SoftShutdown => "Soft",
        }
    }
}

/// Parses Get Chassis Status response data (after the completion code). The three
/// mandatory bytes must be present; bit 0 of the first is "system power is on".
pub(crate) fn parse_status(data: &[u8]) -> Result<PowerState, IpmiError> {
    match data {
        [state, _last_event, _misc, ..] => Ok(if state & 0x01 != 0 {
            PowerState::On
        } else {
            PowerState::Off
        }),
        _ => Err(IpmiError::BadStatus(format!(
            "Get Chassis Status answered {} data byte(s), expected at least 3",
            data.len()
        ))),
    }
}

/// Text for a completion code (IPMI 2.0 table 5-2), generic codes only.
pub fn completion_text(cc: u8) -> &'static str {
    match cc {
        0x00 => "command completed normally",
        0xc0 => "node busy",
        0xc1 => "invalid command",
        0xc2 => "command invalid for given LUN",
        0xc3 => "timeout while processing command",
        0xc4 => "out of space",
        0xc5 => "reservation canceled or invalid reservation ID",
        0xc6 => "request data truncated",
        0xc7 => "request data length invalid",
        0xc8 => "request data field length limit exceeded",
        0xc9 => "parameter out of range",
        0xca => "cannot return number of requested data bytes",
        0xcb => "requested sensor, data, or record not present",
        0xcc => "invalid data field in request",
        0xcd => "command illegal for specified sensor or record type",
        0xce => "command response could not be provided",
        0xcf => "cannot execute duplicated request",
        0xd0 => "SDR repository in update mode",
        0xd1 => "device in firmware update mode",
        0xd2 => "BMC initialization in progress",
        0xd3 => "destination unavailable",
        0xd4 => "insufficient privilege level",
        0xd5 => "command not supported in present state",
        0xd6 => "command sub-function disabled or unavailable",
        0xff => "unspecified error",
        0x01..=0x7e => "OEM completion code",
        0x80..=0xbe => "command-specific completion code",
        _ => "reserved completion code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_parse() {
        assert!(matches!(parse_status(&[1, 0, 0]), Ok(PowerState::On)));
        assert!(matches!(
            parse_status(&[0x60, 0, 0, 0]),
            Ok(PowerState::Off)
        ));
        assert!(parse_status(&[1]).is_err());
        assert!(parse_status(&[]).is_err());
    }
}
