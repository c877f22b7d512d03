//! Cryptography more than one transport uses: HMAC (SSH hashed known_hosts names, IPMI RAKP
//! and integrity codes), on RustCrypto crates. What only IPMI uses stays in `ipmi::crypto`.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// HMAC over the concatenated parts. HMAC takes keys of any length, so the error arm is
/// unreachable; it yields an empty code, which never verifies.
fn hmac<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    match <M as hmac::digest::KeyInit>::new_from_slice(key) {
        Ok(mut m) => {
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// HMAC-SHA1 over the concatenated parts.
pub(crate) fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    hmac::<Hmac<Sha1>>(key, parts)
}

/// HMAC-SHA256 over the concatenated parts.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    hmac::<Hmac<Sha256>>(key, parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .filter_map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
            .collect()
    }

    #[test]
    fn hmac_known_answer() {
        // RFC 2202 test case 2 / RFC 4231 test case 2.
        let k = b"Jefe";
        let d = b"what do ya want for nothing?";
        let h1 = hmac_sha1(k, &[&d[..10], &d[10..]]);
        assert_eq!(
            h1,
            [
                0xef, 0xfc, 0xdf, 0x6a, 0xe5, 0xeb, 0x2f, 0xa2, 0xd2, 0x74, 0x16, 0xd5, 0xf1, 0x84,
                0xdf, 0x9c, 0x25, 0x9a, 0x7c, 0x79
            ]
        );
        let h2 = hmac_sha256(k, &[d]);
        assert_eq!(h2.get(..4), Some(&[0x5b, 0xdc, 0xc1, 0x46][..]));
        assert_eq!(
            hmac_sha1(b"key", &[b"The quick brown fox jumps over the lazy dog"]),
            hex("de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9")
        );
    }
}
