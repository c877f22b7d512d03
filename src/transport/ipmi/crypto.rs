//! Cipher suites and the RMCP+ / IPMI 1.5 cryptography, on RustCrypto crates.
//!
//! Supported RMCP+ algorithms: authentication RAKP-none / RAKP-HMAC-SHA1 / RAKP-HMAC-SHA256,
//! integrity none / HMAC-SHA1-96 / HMAC-SHA256-128, confidentiality none / AES-CBC-128; so the
//! standard suites 0, 1, 2, 3, 15, 16 and 17. IPMI 1.5 uses the MD5 auth code.

use aes::Aes128;
use cbc::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use md5::{Digest, Md5};

use crate::transport::crypto::{hmac_sha1, hmac_sha256};

/// RMCP+ authentication (RAKP) algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthAlg {
    /// RAKP-none (no authentication at all).
    None,
    /// RAKP-HMAC-SHA1.
    HmacSha1,
    /// RAKP-HMAC-SHA256.
    HmacSha256,
}

/// RMCP+ integrity algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntegAlg {
    /// No integrity check.
    None,
    /// HMAC-SHA1-96.
    HmacSha1_96,
    /// HMAC-SHA256-128.
    HmacSha256_128,
}

/// RMCP+ confidentiality algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConfAlg {
    /// Clear text.
    None,
    /// AES-CBC-128.
    AesCbc128,
}

/// A cipher suite we implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Suite {
    /// Suite number (IPMI 2.0 table 22-20).
    pub id: u8,
    /// Authentication algorithm.
    pub auth: AuthAlg,
    /// Integrity algorithm.
    pub integ: IntegAlg,
    /// Confidentiality algorithm.
    pub conf: ConfAlg,
}

/// Suites we pick automatically, strongest first. Only suites with an integrity algorithm:
/// without one (0, 1, 15) any datagram carrying the session ID (sent in clear) would be taken
/// as the BMC's answer, e.g. a forged "power is off"; and the suite list that drives the
/// choice is itself unauthenticated, so offering them would invite a downgrade. They are
/// used only when asked for with `cipher`.
pub(crate) const PREFERENCE: [u8; 4] = [17, 3, 16, 2];

impl Suite {
    /// The suite with this number, if implemented.
    pub(crate) fn by_id(id: u8) -> Option<Suite> {
        use AuthAlg as A;
        use ConfAlg as C;
        use IntegAlg as I;
        let (auth, integ, conf) = match id {
            0 => (A::None, I::None, C::None),
            1 => (A::HmacSha1, I::None, C::None),
            2 => (A::HmacSha1, I::HmacSha1_96, C::None),
            3 => (A::HmacSha1, I::HmacSha1_96, C::AesCbc128),
            15 => (A::HmacSha256, I::None, C::None),
            16 => (A::HmacSha256, I::HmacSha256_128, C::None),
            17 => (A::HmacSha256, I::HmacSha256_128, C::AesCbc128),
            _ => return None,
        };
        Some(Suite {
            id,
            auth,
            integ,
            conf,
        })
    }

    /// The suite made of these wire algorithm numbers, if we implement it.
    pub(crate) fn by_algs(auth: u8, integ: u8, conf: u8) -> Option<Suite> {
        [0u8, 1, 2, 3, 15, 16, 17]
            .iter()
            .filter_map(|id| Suite::by_id(*id))
            .find(|s| s.auth.wire() == auth && s.integ.wire() == integ && s.conf.wire() == conf)
    }
}

impl AuthAlg {
    /// Wire number.
    pub(crate) fn wire(self) -> u8 {
        match self {
            AuthAlg::None => 0x00,
            AuthAlg::HmacSha1 => 0x01,
            AuthAlg::HmacSha256 => 0x03,
        }
    }

    /// HMAC of the concatenated parts with `key` (empty for RAKP-none).
    pub(crate) fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        match self {
            AuthAlg::None => Vec::new(),
            AuthAlg::HmacSha1 => hmac_sha1(key, parts),
            AuthAlg::HmacSha256 => hmac_sha256(key, parts),
        }
    }

    /// Length of the RAKP 2 / RAKP 3 key exchange auth code.
    pub(crate) fn code_len(self) -> usize {
        match self {
            AuthAlg::None => 0,
            AuthAlg::HmacSha1 => 20,
            AuthAlg::HmacSha256 => 32,
        }
    }

    /// Length of the RAKP 4 integrity check value (HMAC truncated).
    pub(crate) fn icv_len(self) -> usize {
        match self {
            AuthAlg::None => 0,
            AuthAlg::HmacSha1 => 12,
            AuthAlg::HmacSha256 => 16,
        }
    }
}

impl IntegAlg {
    /// Wire number.
    pub(crate) fn wire(self) -> u8 {
        match self {
            IntegAlg::None => 0x00,
            IntegAlg::HmacSha1_96 => 0x01,
            IntegAlg::HmacSha256_128 => 0x04,
        }
    }

    /// Length of the auth code trailer.
    pub(crate) fn len(self) -> usize {
        match self {
            IntegAlg::None => 0,
            IntegAlg::HmacSha1_96 => 12,
            IntegAlg::HmacSha256_128 => 16,
        }
    }

    /// The (truncated) auth code of `data` keyed with K1.
    pub(crate) fn mac(self, k1: &[u8], data: &[u8]) -> Vec<u8> {
        let mut full = match self {
            IntegAlg::None => return Vec::new(),
            IntegAlg::HmacSha1_96 => hmac_sha1(k1, &[data]),
            IntegAlg::HmacSha256_128 => hmac_sha256(k1, &[data]),
        };
        full.truncate(self.len());
        full
    }
}

impl ConfAlg {
    /// Wire number.
    pub(crate) fn wire(self) -> u8 {
        match self {
            ConfAlg::None => 0x00,
            ConfAlg::AesCbc128 => 0x01,
        }
    }
}

/// Constant-time equality; false when lengths differ.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Fills `buf` from the OS random source.
pub(crate) fn random(buf: &mut [u8]) -> Result<(), String> {
    getrandom::getrandom(buf).map_err(|e| format!("random source: {e}"))
}

/// AES-CBC-128 encryption of an RMCP+ payload: `IV | E(payload | 1,2,..,n | n)`.
pub(crate) fn aes_encrypt(k2: &[u8], payload: &[u8]) -> Result<Vec<u8>, String> {
    let key = k2.get(..16).ok_or("short K2")?;
    let mut iv = [0u8; 16];
    random(&mut iv)?;
    let pad = (16 - (payload.len() + 1) % 16) % 16;
    let mut buf = payload.to_vec();
    buf.extend((1..=pad).map(|i| i as u8));
    buf.push(pad as u8);
    let len = buf.len();
    let enc = cbc::Encryptor::<Aes128>::new_from_slices(key, &iv).map_err(|e| e.to_string())?;
    enc.encrypt_padded_mut::<NoPadding>(&mut buf, len)
        .map_err(|e| e.to_string())?;
    let mut out = iv.to_vec();
    out.extend_from_slice(&buf);
    Ok(out)
}

/// Inverse of [`aes_encrypt`]; `None` for any malformed input (length, padding).
pub(crate) fn aes_decrypt(k2: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    let key = k2.get(..16)?;
    let iv = data.get(..16)?;
    let ct = data.get(16..)?;
    if ct.is_empty() || ct.len() % 16 != 0 {
        return None;
    }
    let mut buf = ct.to_vec();
    let dec = cbc::Decryptor::<Aes128>::new_from_slices(key, iv).ok()?;
    let plain = dec.decrypt_padded_mut::<NoPadding>(&mut buf).ok()?;
    let (&pad, body) = plain.split_last()?;
    let keep = body.len().checked_sub(usize::from(pad))?;
    let (msg, padding) = body.split_at(keep);
    // Pad bytes are 1, 2, 3...; tolerate BMCs that use other values.
    let _ = padding;
    Some(msg.to_vec())
}

/// IPMI 1.5 MD5 auth code: `MD5(pw | session id | data | seq | pw)`, pw zero-padded to 16.
pub(crate) fn md5_authcode(
    password: &[u8; 16],
    session_id: u32,
    data: &[u8],
    seq: u32,
) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(password);
    h.update(session_id.to_le_bytes());
    h.update(data);
    h.update(seq.to_le_bytes());
    h.update(password);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_roundtrip_all_lengths() {
        let k2 = [7u8; 20];
        for n in 0..40 {
            let p: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let c = aes_encrypt(&k2, &p).unwrap_or_default();
            assert_eq!(c.len() % 16, 0);
            assert_eq!(aes_decrypt(&k2, &c), Some(p));
        }
        assert_eq!(aes_decrypt(&k2, &[0u8; 17]), None);
        assert_eq!(aes_decrypt(&k2, &[0u8; 16]), None);
    }

    #[test]
    fn suites() {
        assert_eq!(Suite::by_algs(3, 4, 1).map(|s| s.id), Some(17));
        assert_eq!(Suite::by_algs(1, 1, 1).map(|s| s.id), Some(3));
        assert_eq!(Suite::by_algs(2, 2, 1), None);
        assert!(Suite::by_id(4).is_none());
    }
}
