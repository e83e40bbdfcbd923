//! Signature verification from a SHA-256 digest alone.
//!
//! cosign signs `sha256(payload)`: with ECDSA it signs that digest (P-256, and P-384 keys as
//! cosign loads them, with SHA-256), with RSA it signs it in a PKCS#1 v1.5 (or PSS) encoding.
//! The digest of a signature layer *is* `sha256(payload)`, so the module can verify a layer's
//! signature from its manifest without downloading the payload.

use der::Decode;
use der::asn1::{ObjectIdentifier, UintRef};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use pkcs1::RsaPublicKey as Pkcs1PublicKey;
use spki::SubjectPublicKeyInfoRef;

use super::rsa::{RsaError, RsaPublicKey};
use super::{ED25519, ID_EC_PUBLIC_KEY, RSA_ENCRYPTION, SECP256R1, SECP384R1};

/// `id-RSASSA-PSS`: an RSA key restricted to PSS.
const RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");

/// Why a signature was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the public key cannot be read: {0}")]
    Key(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("the signature is not a DER-encoded ECDSA signature")]
    Encoding,
    #[error("the ECDSA signature does not verify")]
    Mismatch,
    #[error("{0}")]
    Rsa(#[from] RsaError),
}

/// Verifies `signature` over a message whose SHA-256 is `digest`, with the key `spki_der`
/// (a DER `SubjectPublicKeyInfo`). The outcome is remembered for the instance's life, keyed by
/// all three in full ([`super::memo`]): the same layer met again is not verified again.
pub fn verify_sha256_prehash(spki_der: &[u8], digest: &[u8; 32], signature: &[u8]) -> Result<(), SignatureError> {
    super::memo::VERIFIED.with_borrow_mut(|memo| {
        memo.get_or_verify(spki_der, digest, signature, || verify_now(spki_der, digest, signature))
    })
}

/// [`verify_sha256_prehash`] without the memo.
fn verify_now(spki_der: &[u8], digest: &[u8; 32], signature: &[u8]) -> Result<(), SignatureError> {
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der).map_err(|e| SignatureError::Key(e.to_string()))?;
    let key = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| SignatureError::Key("the public key bit string is malformed".to_owned()))?;
    match spki.algorithm.oid {
        ID_EC_PUBLIC_KEY => {
            let curve = spki
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .ok_or_else(|| SignatureError::Key("ECDSA key without a named curve".to_owned()))?;
            match curve {
                SECP256R1 => {
                    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(key)
                        .map_err(|_| SignatureError::Key("the P-256 point is not on the curve".to_owned()))?;
                    let signature =
                        p256::ecdsa::Signature::from_der(signature).map_err(|_| SignatureError::Encoding)?;
                    key.verify_prehash(digest, &signature)
                        .map_err(|_| SignatureError::Mismatch)
                }
                SECP384R1 => {
                    let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(key)
                        .map_err(|_| SignatureError::Key("the P-384 point is not on the curve".to_owned()))?;
                    let signature =
                        p384::ecdsa::Signature::from_der(signature).map_err(|_| SignatureError::Encoding)?;
                    key.verify_prehash(digest, &signature)
                        .map_err(|_| SignatureError::Mismatch)
                }
                other => Err(SignatureError::Unsupported(format!(
                    "ECDSA keys on curve {other} are not supported (P-256 or P-384)"
                ))),
            }
        }
        RSA_ENCRYPTION | RSASSA_PSS => {
            let rsa = Pkcs1PublicKey::<UintRef<'_>>::from_der(key).map_err(|e| SignatureError::Key(e.to_string()))?;
            let key = RsaPublicKey {
                modulus: rsa.modulus.as_bytes(),
                exponent: rsa.public_exponent.as_bytes(),
            };
            // cosign signs with PKCS#1 v1.5; PSS is accepted as well (never both checks
            // loosened: each one is a complete verification on its own).
            if spki.algorithm.oid == RSA_ENCRYPTION && key.verify_pkcs1v15(digest, signature).is_ok() {
                return Ok(());
            }
            key.verify_pss(digest, signature).map_err(SignatureError::from)
        }
        ED25519 => Err(SignatureError::Unsupported(
            "Ed25519 signatures cover the whole payload, which the module cannot read (only its digest)".to_owned(),
        )),
        other => Err(SignatureError::Unsupported(format!(
            "keys of algorithm {other} are not supported"
        ))),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use p256::elliptic_curve::pkcs8::EncodePublicKey;

    pub fn p256_key(seed: u8) -> p256::ecdsa::SigningKey {
        p256::ecdsa::SigningKey::from_slice(&[seed.max(1); 32]).expect("P-256 key")
    }

    pub fn p256_spki(key: &p256::ecdsa::SigningKey) -> Vec<u8> {
        key.verifying_key()
            .to_public_key_der()
            .expect("SPKI")
            .as_bytes()
            .to_vec()
    }

    pub fn p256_sign(key: &p256::ecdsa::SigningKey, digest: &[u8; 32]) -> Vec<u8> {
        let signature: p256::ecdsa::Signature = key.sign_prehash(digest).expect("sign");
        signature.to_der().as_bytes().to_vec()
    }

    const DIGEST: [u8; 32] = [3; 32];

    #[test]
    fn p256_signatures_verify_from_the_digest() {
        let key = p256_key(1);
        let spki = p256_spki(&key);
        let signature = p256_sign(&key, &DIGEST);
        assert_eq!(verify_sha256_prehash(&spki, &DIGEST, &signature), Ok(()));
        assert_eq!(
            verify_sha256_prehash(&spki, &[4; 32], &signature),
            Err(SignatureError::Mismatch)
        );
        let other = p256_spki(&p256_key(2));
        assert_eq!(
            verify_sha256_prehash(&other, &DIGEST, &signature),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_sha256_prehash(&spki, &DIGEST, b"not DER"),
            Err(SignatureError::Encoding)
        );
    }

    /// What a forger makes of a genuine triple that this instance verified (and remembers):
    /// the signature replayed over another digest, shown with another key, a byte of any part
    /// changed, the signature cut short or given a trailing byte. Each is refused, as a verifier
    /// without a memo refuses it.
    #[derive(Clone, Copy, Debug)]
    enum Forgery {
        Digest(usize),
        Key(usize),
        Signature(usize),
        Truncated(usize),
        Trailing(u8),
        OtherKey,
    }

    fn forgery() -> impl proptest::strategy::Strategy<Value = Forgery> {
        use proptest::prelude::*;
        prop_oneof![
            (0..32usize).prop_map(Forgery::Digest),
            (0..91usize).prop_map(Forgery::Key),
            (0..80usize).prop_map(Forgery::Signature),
            (1..8usize).prop_map(Forgery::Truncated),
            any::<u8>().prop_map(Forgery::Trailing),
            Just(Forgery::OtherKey),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        #[test]
        fn a_remembered_signature_vouches_for_nothing_else(forgery in forgery(), flip in 1u8..=255) {
            let key = p256_key(1);
            let (mut spki, mut digest) = (p256_spki(&key), DIGEST);
            let mut signature = p256_sign(&key, &DIGEST);
            proptest::prop_assert_eq!(verify_sha256_prehash(&spki, &digest, &signature), Ok(()));
            match forgery {
                Forgery::Digest(i) => digest[i] ^= flip,
                Forgery::Key(i) => {
                    let i = i % spki.len();
                    spki[i] ^= flip;
                }
                Forgery::Signature(i) => {
                    let i = i % signature.len();
                    signature[i] ^= flip;
                }
                Forgery::Truncated(n) => signature.truncate(signature.len() - n),
                Forgery::Trailing(byte) => signature.push(byte),
                Forgery::OtherKey => spki = p256_spki(&p256_key(2)),
            }
            let remembered = verify_sha256_prehash(&spki, &digest, &signature);
            proptest::prop_assert!(remembered.is_err(), "{:?} verified", forgery);
            proptest::prop_assert_eq!(remembered, verify_now(&spki, &digest, &signature));
            // The genuine triple is still remembered as verified.
            proptest::prop_assert_eq!(verify_sha256_prehash(&p256_spki(&key), &DIGEST, &p256_sign(&key, &DIGEST)), Ok(()));
        }
    }

    #[test]
    fn high_s_signatures_verify_as_go_makes_them() {
        // Go's crypto/ecdsa does not normalise s; cosign's signatures have a high s half the time.
        let key = p256_key(1);
        let spki = p256_spki(&key);
        let signature: p256::ecdsa::Signature = key.sign_prehash(&DIGEST).expect("sign");
        let (r, s) = signature.split_scalars();
        let high = p256::ecdsa::Signature::from_scalars(r, -*s).expect("signature");
        let high_der = high.to_der().as_bytes().to_vec();
        assert_ne!(high_der, signature.to_der().as_bytes());
        assert_eq!(verify_sha256_prehash(&spki, &DIGEST, &high_der), Ok(()));
    }

    #[test]
    fn p384_signatures_over_sha256_verify() {
        let key = p384::ecdsa::SigningKey::from_slice(&[5; 48]).expect("P-384 key");
        let spki = key.verifying_key().to_public_key_der().expect("SPKI");
        let signature: p384::ecdsa::Signature = key.sign_prehash(&DIGEST).expect("sign");
        let der = signature.to_der().as_bytes().to_vec();
        assert_eq!(verify_sha256_prehash(spki.as_bytes(), &DIGEST, &der), Ok(()));
        assert_eq!(
            verify_sha256_prehash(spki.as_bytes(), &[9; 32], &der),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn rsa_signatures_verify_from_the_digest() {
        let spki = super::super::rsa::tests::spki_der();
        let pkcs1 = super::super::rsa::tests::sign_pkcs1v15(&DIGEST);
        let pss = super::super::rsa::tests::sign_pss(&DIGEST);
        assert_eq!(verify_sha256_prehash(&spki, &DIGEST, &pkcs1), Ok(()));
        assert_eq!(verify_sha256_prehash(&spki, &DIGEST, &pss), Ok(()));
        assert!(verify_sha256_prehash(&spki, &[1; 32], &pkcs1).is_err());
        assert!(verify_sha256_prehash(&spki, &[1; 32], &pss).is_err());
    }
}
