//! Byte-level codec: a checked reader (never panics, never reads past the end), RMCP framing
//! and the IPMI LAN message format (addresses, netfn/LUN, sequence, checksums).
//!
//! Every decoder in `ipmi` reads untrusted datagrams through [`Cursor`]; a short or malformed
//! datagram is a `None`, and the caller ignores it (stray) or turns it into an error.

/// RMCP version 1.0, reserved, sequence 0xff (no RMCP ACK), class IPMI.
pub(crate) const RMCP_HEADER: [u8; 4] = [0x06, 0x00, 0xff, 0x07];
/// Software ID of the remote console (us).
pub(crate) const CONSOLE_ADDR: u8 = 0x81;
/// IPMB address of the BMC.
pub(crate) const BMC_ADDR: u8 = 0x20;

/// A checked forward reader over a byte slice (in the spirit of rustls' `Reader`).
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// Reads from the start of `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Cursor { rest: buf }
    }

    /// The next `n` bytes, or `None` when fewer are left.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    /// Exactly `N` bytes as an array.
    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let s = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Some(out)
    }

    /// One byte.
    pub(crate) fn u8(&mut self) -> Option<u8> {
        let [b] = self.array::<1>()?;
        Some(b)
    }

    /// A little-endian u16.
    pub(crate) fn u16le(&mut self) -> Option<u16> {
        self.array::<2>().map(u16::from_le_bytes)
    }

    /// A little-endian u32.
    pub(crate) fn u32le(&mut self) -> Option<u32> {
        self.array::<4>().map(u32::from_le_bytes)
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// Bytes left.
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }
}

/// IPMI two's-complement checksum: the byte that makes the sum of `bytes` plus it zero.
pub(crate) fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |acc, b| acc.wrapping_add(*b))
        .wrapping_neg()
}

/// A request as put on the wire (LAN format, console 0x81 → BMC 0x20, LUN 0).
pub(crate) fn encode_request(netfn: u8, cmd: u8, rq_seq: u8, data: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(7 + data.len());
    let head = [BMC_ADDR, netfn << 2];
    m.extend_from_slice(&head);
    m.push(checksum(&head));
    let start = m.len();
    m.extend_from_slice(&[CONSOLE_ADDR, (rq_seq & 0x3f) << 2, cmd]);
    m.extend_from_slice(data);
    let c = checksum(m.get(start..).unwrap_or_default());
    m.push(c);
    m
}

/// The rqSeqs (6 bits) used by the transmissions of one request, so that an answer to it, and
/// only to it, is taken: a late or duplicated reply to another request never matches.
#[derive(Debug, Default)]
pub(crate) struct SeqSet(std::cell::Cell<u64>);

impl SeqSet {
    /// Records a transmission with rqSeq `s`.
    pub(crate) fn mark(&self, s: u8) {
        self.0.set(self.0.get() | (1u64 << (s & 0x3f)));
    }

    /// Whether `r` answers the request `netfn`/`cmd` sent with one of the recorded rqSeqs.
    pub(crate) fn answers(&self, r: &Response, netfn: u8, cmd: u8) -> bool {
        r.netfn == netfn | 1 && r.cmd == cmd && self.0.get() & (1u64 << (r.rq_seq & 0x3f)) != 0
    }
}

/// A decoded IPMI response message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    /// Response netfn (request netfn + 1).
    pub netfn: u8,
    /// Command byte.
    pub cmd: u8,
    /// The 6-bit requester sequence echoed back.
    pub rq_seq: u8,
    /// Completion code.
    pub cc: u8,
    /// Data after the completion code.
    pub data: Vec<u8>,
}

/// Decodes a response message; `None` for anything that is not a well-formed response
/// from the BMC to us (bad checksums, wrong addresses, too short).
pub(crate) fn decode_response(msg: &[u8]) -> Option<Response> {
    if msg.len() < 8 {
        return None;
    }
    let mut c = Cursor::new(msg);
    let head = c.take(3)?;
    if checksum(head) != 0 {
        return None;
    }
    let (rq_addr, netfn_lun) = match head {
        [a, b, _] => (*a, *b),
        _ => return None,
    };
    let body = c.rest();
    if checksum(body) != 0 {
        return None;
    }
    let mut b = Cursor::new(body);
    let rs_addr = b.u8()?;
    let seq_lun = b.u8()?;
    let cmd = b.u8()?;
    let cc = b.u8()?;
    let rest = b.rest();
    let data = rest.get(..rest.len().checked_sub(1)?)?.to_vec();
    if rq_addr != CONSOLE_ADDR || rs_addr != BMC_ADDR || netfn_lun & 0x03 != 0 {
        return None;
    }
    Some(Response {
        netfn: netfn_lun >> 2,
        cmd,
        rq_seq: seq_lun >> 2,
        cc,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_is_checked() {
        let mut c = Cursor::new(&[1, 2, 3]);
        assert_eq!(c.u16le(), Some(0x0201));
        assert_eq!(c.u16le(), None);
        assert_eq!(c.remaining(), 1);
        assert_eq!(c.u8(), Some(3));
        assert_eq!(c.u8(), None);
        assert_eq!(c.take(0), Some(&[][..]));
    }

    #[test]
    fn request_matches_ipmitool_bytes() {
        // Get Channel Auth Capabilities as ipmitool sends it (rq_seq 0).
        let m = encode_request(0x06, 0x38, 0, &[0x8e, 0x04]);
        assert_eq!(
            m,
            vec![0x20, 0x18, 0xc8, 0x81, 0x00, 0x38, 0x8e, 0x04, 0xb5]
        );
    }

    #[test]
    fn response_roundtrip_and_rejects() {
        let mut r = vec![0x81, 0x1c];
        r.push(checksum(&r));
        let body = [0x20, 5 << 2, 0x38, 0x00, 0xaa];
        r.extend_from_slice(&body);
        r.push(checksum(&body));
        let d = decode_response(&r);
        assert_eq!(
            d,
            Some(Response {
                netfn: 7,
                cmd: 0x38,
                rq_seq: 5,
                cc: 0,
                data: vec![0xaa]
            })
        );
        let mut bad = r.clone();
        if let Some(b) = bad.last_mut() {
            *b ^= 1;
        }
        assert_eq!(decode_response(&bad), None);
        assert_eq!(decode_response(&r[..5]), None);
    }
}
