//! RSA signature verification over a SHA-256 digest, the way cosign signs with RSA keys:
//! RSASSA-PKCS1-v1_5 and RSASSA-PSS (MGF1-SHA-256, any salt length), RFC 8017 §8.2.2 and §8.1.2.
//!
//! Only the public operation `s^e mod n` and the comparison of the encoded message are needed,
//! so this is a few dozen lines on `crypto-bigint` (already in the module for the elliptic
//! curves) instead of the `rsa` crate. Every input is public: variable-time arithmetic is fine.
//! The PKCS#1 v1.5 check rebuilds the whole expected encoding and compares it byte for byte,
//! which leaves no parsing to get wrong.

use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, Odd};
use sha2::{Digest, Sha256};

/// DER of `DigestInfo { sha256, NULL }` without the digest (RFC 8017 §9.2, note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20,
];
const HASH_LEN: usize = 32;
/// Smallest modulus accepted (what `validate_settings` demands of configured keys).
pub const MIN_BITS: usize = 2048;
/// Largest modulus accepted: bounds the work a crafted certificate can ask for.
pub const MAX_BITS: usize = 8192;

/// Why an RSA signature was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RsaError {
    #[error("RSA key of {0} bits is outside the accepted {MIN_BITS}–{MAX_BITS} bits")]
    KeySize(usize),
    #[error("the RSA public exponent is unusable")]
    Exponent,
    #[error("the RSA signature is {got} bytes long, the key needs {want}")]
    SignatureLength { got: usize, want: usize },
    #[error("the RSA signature does not verify")]
    Mismatch,
}

/// An RSA public key: big-endian modulus and public exponent.
pub struct RsaPublicKey<'a> {
    pub modulus: &'a [u8],
    pub exponent: &'a [u8],
}

impl RsaPublicKey<'_> {
    /// Size of the modulus in bits.
    pub fn bits(&self) -> usize {
        let n = trim(self.modulus);
        n.first().map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize)
    }

    /// `s^e mod n` as `k` big-endian bytes (RSAVP1 + I2OSP), after the size checks.
    fn public_operation(&self, signature: &[u8]) -> Result<Vec<u8>, RsaError> {
        let bits = self.bits();
        if !(MIN_BITS..=MAX_BITS).contains(&bits) {
            return Err(RsaError::KeySize(bits));
        }
        let n_bytes = trim(self.modulus);
        let k = n_bytes.len();
        if signature.len() != k {
            return Err(RsaError::SignatureLength {
                got: signature.len(),
                want: k,
            });
        }
        let e_bytes = trim(self.exponent);
        // e is odd and > 1 (RFC 8017 §3.1); more than 64 bits is never seen and only costs time.
        if e_bytes.is_empty() || e_bytes.len() > 8 || e_bytes.last().is_none_or(|b| b & 1 == 0) || e_bytes == [1] {
            return Err(RsaError::Exponent);
        }
        let n = BoxedUint::from_be_slice_vartime(n_bytes);
        let s = BoxedUint::from_be_slice(signature, n.bits_precision()).map_err(|_| RsaError::Mismatch)?;
        if s >= n {
            return Err(RsaError::Mismatch);
        }
        let n = Odd::new(n).into_option().ok_or(RsaError::KeySize(bits))?;
        let e = BoxedUint::from_be_slice_vartime(e_bytes);
        let params = BoxedMontyParams::new_vartime(n);
        let m = BoxedMontyForm::new(s, &params)
            .pow_bounded_exp(&e, e.bit_width_vartime())
            .retrieve();
        let bytes = m.to_be_bytes();
        // `bytes` has the limb-rounded precision; m < n, so everything before the last k bytes is 0.
        let (high, em) = bytes.split_at(bytes.len() - k);
        if high.iter().any(|b| *b != 0) {
            return Err(RsaError::Mismatch);
        }
        Ok(em.to_vec())
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over a message whose SHA-256 is `digest`.
    pub fn verify_pkcs1v15(&self, digest: &[u8; HASH_LEN], signature: &[u8]) -> Result<(), RsaError> {
        let em = self.public_operation(signature)?;
        let k = em.len();
        let t_len = SHA256_DIGEST_INFO.len() + HASH_LEN;
        // k >= 2048 / 8 always leaves room for the at least 8 bytes of 0xff padding.
        let mut expected = Vec::with_capacity(k);
        expected.extend_from_slice(&[0x00, 0x01]);
        expected.resize(k - t_len - 1, 0xff);
        expected.push(0x00);
        expected.extend_from_slice(&SHA256_DIGEST_INFO);
        expected.extend_from_slice(digest);
        if em == expected {
            Ok(())
        } else {
            Err(RsaError::Mismatch)
        }
    }

    /// RSASSA-PSS with SHA-256, MGF1-SHA-256 and any salt length, over a message whose SHA-256
    /// is `digest` (EMSA-PSS-VERIFY, RFC 8017 §9.1.2).
    pub fn verify_pss(&self, digest: &[u8; HASH_LEN], signature: &[u8]) -> Result<(), RsaError> {
        let em = self.public_operation(signature)?;
        let em_bits = self.bits() - 1;
        let em_len = em_bits.div_ceil(8);
        // I2OSP(m, emLen): when emBits is a multiple of 8 the k-byte form has one more, zero, byte.
        let em = match em.len() - em_len {
            0 => &em[..],
            1 if em[0] == 0 => &em[1..],
            _ => return Err(RsaError::Mismatch),
        };
        if em_len < HASH_LEN + 2 || em[em_len - 1] != 0xbc {
            return Err(RsaError::Mismatch);
        }
        let (masked_db, rest) = em.split_at(em_len - HASH_LEN - 1);
        let h = &rest[..HASH_LEN];
        let unused_bits = 8 * em_len - em_bits;
        let top_mask = 0xffu8 >> unused_bits;
        if masked_db[0] & !top_mask != 0 {
            return Err(RsaError::Mismatch);
        }
        let mut db = mgf1_sha256(h, masked_db.len());
        for (d, m) in db.iter_mut().zip(masked_db) {
            *d ^= m;
        }
        db[0] &= top_mask;
        // DB = PS (zeros) || 0x01 || salt.
        let one = db.iter().position(|b| *b != 0).ok_or(RsaError::Mismatch)?;
        if db[one] != 0x01 {
            return Err(RsaError::Mismatch);
        }
        let salt = &db[one + 1..];
        let mut hasher = Sha256::new();
        hasher.update([0u8; 8]);
        hasher.update(digest);
        hasher.update(salt);
        if hasher.finalize().as_slice() == h {
            Ok(())
        } else {
            Err(RsaError::Mismatch)
        }
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    &bytes[zeros..]
}

/// MGF1 with SHA-256 (RFC 8017 §B.2.1).
fn mgf1_sha256(seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + HASH_LEN);
    let mut counter: u32 = 0;
    while out.len() < len {
        let mut hasher = Sha256::new();
        hasher.update(seed);
        hasher.update(counter.to_be_bytes());
        out.extend_from_slice(&hasher.finalize());
        counter += 1;
    }
    out.truncate(len);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ::rsa::pkcs8::EncodePublicKey;
    use ::rsa::rand_core::OsRng;
    use ::rsa::traits::PublicKeyParts;
    use ::rsa::{Pkcs1v15Sign, Pss, RsaPrivateKey};
    use std::sync::OnceLock;

    /// One 2048-bit key for all tests (generating one takes a moment).
    pub fn key() -> &'static RsaPrivateKey {
        static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
        KEY.get_or_init(|| RsaPrivateKey::new(&mut OsRng, 2048).expect("RSA key generation"))
    }

    /// SubjectPublicKeyInfo DER of [`key`].
    pub fn spki_der() -> Vec<u8> {
        key()
            .to_public_key()
            .to_public_key_der()
            .expect("SPKI")
            .as_bytes()
            .to_vec()
    }

    pub fn sign_pkcs1v15(digest: &[u8; 32]) -> Vec<u8> {
        key()
            .sign(Pkcs1v15Sign::new::<::rsa::sha2::Sha256>(), digest)
            .expect("sign")
    }

    pub fn sign_pss(digest: &[u8; 32]) -> Vec<u8> {
        key()
            .sign_with_rng(&mut OsRng, Pss::new::<::rsa::sha2::Sha256>(), digest)
            .expect("sign")
    }

    fn with_public<R>(f: impl FnOnce(RsaPublicKey<'_>) -> R) -> R {
        let public = key().to_public_key();
        let n = public.n().to_bytes_be();
        let e = public.e().to_bytes_be();
        f(RsaPublicKey {
            modulus: &n,
            exponent: &e,
        })
    }

    const DIGEST: [u8; 32] = [7; 32];

    #[test]
    fn verifies_what_the_rsa_crate_signs() {
        let pkcs1 = sign_pkcs1v15(&DIGEST);
        let pss = sign_pss(&DIGEST);
        with_public(|k| {
            assert_eq!(k.bits(), 2048);
            assert_eq!(k.verify_pkcs1v15(&DIGEST, &pkcs1), Ok(()));
            assert_eq!(k.verify_pss(&DIGEST, &pss), Ok(()));
            // Each scheme refuses the other's signature.
            assert_eq!(k.verify_pkcs1v15(&DIGEST, &pss), Err(RsaError::Mismatch));
            assert_eq!(k.verify_pss(&DIGEST, &pkcs1), Err(RsaError::Mismatch));
        });
    }

    #[test]
    fn refuses_other_digests_and_altered_signatures() {
        let pkcs1 = sign_pkcs1v15(&DIGEST);
        let pss = sign_pss(&DIGEST);
        let other = [8u8; 32];
        with_public(|k| {
            assert_eq!(k.verify_pkcs1v15(&other, &pkcs1), Err(RsaError::Mismatch));
            assert_eq!(k.verify_pss(&other, &pss), Err(RsaError::Mismatch));
            for i in [0, 100, 255] {
                let mut bad = pkcs1.clone();
                bad[i] ^= 1;
                assert!(k.verify_pkcs1v15(&DIGEST, &bad).is_err());
                let mut bad = pss.clone();
                bad[i] ^= 1;
                assert!(k.verify_pss(&DIGEST, &bad).is_err());
            }
            assert_eq!(
                k.verify_pkcs1v15(&DIGEST, &pkcs1[1..]),
                Err(RsaError::SignatureLength { got: 255, want: 256 })
            );
            // s >= n is refused, not reduced.
            let n = k.modulus.to_vec();
            assert_eq!(k.verify_pkcs1v15(&DIGEST, trim(&n)), Err(RsaError::Mismatch));
        });
    }

    #[test]
    fn refuses_small_keys_and_silly_exponents() {
        let small = RsaPrivateKey::new(&mut OsRng, 1024).expect("key");
        let public = small.to_public_key();
        let n = public.n().to_bytes_be();
        let e = public.e().to_bytes_be();
        let k = RsaPublicKey {
            modulus: &n,
            exponent: &e,
        };
        let signature = small
            .sign(Pkcs1v15Sign::new::<::rsa::sha2::Sha256>(), &DIGEST)
            .expect("sign");
        assert_eq!(k.verify_pkcs1v15(&DIGEST, &signature), Err(RsaError::KeySize(1024)));
        with_public(|k| {
            let sig = sign_pkcs1v15(&DIGEST);
            for e in [&[1u8][..], &[2u8][..], &[][..], &[1u8, 0, 0, 0, 0, 0, 0, 0, 1][..]] {
                let k = RsaPublicKey {
                    modulus: k.modulus,
                    exponent: e,
                };
                assert_eq!(k.verify_pkcs1v15(&DIGEST, &sig), Err(RsaError::Exponent));
            }
        });
    }
}
