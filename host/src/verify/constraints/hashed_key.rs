//! A public key verifying with the hash a `key` authority's `hashAlgorithm` names.
//!
//! sigstore-rs picks the hash from the key (`CosignVerificationKey::try_from_pem`: SHA-256 for
//! P-256 and RSA, SHA-384 for P-384), which is what Kubewarden's `SigstorePubKeyVerify` uses.
//! policy-controller verifies with the hash `hashAlgorithm` names instead (SHA-256 by default),
//! and cosign ≤ 2.4 signed with SHA-256 whatever the curve. This constraint verifies exactly
//! with the named hash: ECDSA (P-256, P-384) over the digest, RSA in PKCS#1 v1.5 (what
//! policy-controller's verifier for an RSA key checks).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::pkcs8::DecodePublicKey as _;
use rsa::pkcs8::DecodePublicKey as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use sigstore::cosign::signature_layers::SignatureLayer;
use sigstore::cosign::verification_constraint::VerificationConstraint;

/// A `hashAlgorithm` policy-controller accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlgorithm {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlgorithm {
    /// Every hash a `key.hashAlgorithm` may name.
    pub const ALL: [Self; 4] = [Self::Sha224, Self::Sha256, Self::Sha384, Self::Sha512];

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha224 => sha2::Sha224::digest(data).to_vec(),
            Self::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Self::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Self::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    fn pkcs1v15(self) -> rsa::Pkcs1v15Sign {
        match self {
            Self::Sha224 => rsa::Pkcs1v15Sign::new::<sha2::Sha224>(),
            Self::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
            Self::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
            Self::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
        }
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sha224 => "sha224",
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        })
    }
}

/// Why a key cannot verify with a chosen hash.
#[derive(Debug, thiserror::Error)]
pub enum HashedKeyError {
    #[error("not a PEM public key: {0}")]
    Pem(String),
    #[error("keys of this kind are not supported with hashAlgorithm (ECDSA P-256 or P-384, or RSA)")]
    Unsupported,
    #[error(
        "an RSA key verifies with sha256, sha384 or sha512, not sha224 (sigstore's PKCS#1 v1.5 verifier, which policy-controller uses, refuses it)"
    )]
    RsaSha224,
}

enum Key {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
}

/// Verifies a layer's signature over its signed bytes, hashed with `hash`.
pub struct HashedKeyVerifier {
    key: Key,
    hash: HashAlgorithm,
}

impl fmt::Debug for HashedKeyVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.key {
            Key::P256(_) => "P-256",
            Key::P384(_) => "P-384",
            Key::Rsa(_) => "RSA",
        };
        write!(f, "HashedKeyVerifier({kind}, {})", self.hash)
    }
}

impl HashedKeyVerifier {
    /// The key of `pem` (one `PUBLIC KEY` block), verifying with `hash`.
    pub fn new(pem: &[u8], hash: HashAlgorithm) -> Result<Self, HashedKeyError> {
        let block = pem::parse(pem).map_err(|e| HashedKeyError::Pem(e.to_string()))?;
        Self::from_spki_der(block.contents(), hash)
    }

    /// The key of `der` (a DER `SubjectPublicKeyInfo`), verifying with `hash`.
    pub fn from_spki_der(der: &[u8], hash: HashAlgorithm) -> Result<Self, HashedKeyError> {
        let key = if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            Key::P256(key)
        } else if let Ok(key) = p384::ecdsa::VerifyingKey::from_public_key_der(der) {
            Key::P384(key)
        } else if let Ok(key) = rsa::RsaPublicKey::from_public_key_der(der) {
            if hash == HashAlgorithm::Sha224 {
                return Err(HashedKeyError::RsaSha224);
            }
            Key::Rsa(key)
        } else {
            return Err(HashedKeyError::Unsupported);
        };
        Ok(Self { key, hash })
    }

    /// Whether `signature` (DER for ECDSA) verifies over `message` hashed with the chosen hash.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let digest = self.hash.digest(message);
        match &self.key {
            Key::P256(key) => p256::ecdsa::Signature::from_der(signature)
                .is_ok_and(|signature| key.verify_prehash(&digest, &signature).is_ok()),
            Key::P384(key) => p384::ecdsa::Signature::from_der(signature)
                .is_ok_and(|signature| key.verify_prehash(&digest, &signature).is_ok()),
            Key::Rsa(key) => key.verify(self.hash.pkcs1v15(), &digest, signature).is_ok(),
        }
    }
}

impl VerificationConstraint for HashedKeyVerifier {
    fn verify(&self, layer: &SignatureLayer) -> sigstore::errors::Result<bool> {
        let Some(signature) = layer.signature.as_deref() else {
            return Ok(false);
        };
        let Ok(signature) = BASE64.decode(signature) else {
            return Ok(false);
        };
        Ok(self.verifies(&layer.raw_data, &signature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p384::ecdsa::signature::hazmat::PrehashSigner as _;
    use p384::pkcs8::EncodePublicKey as _;

    fn p384_pem(key: &p384::ecdsa::SigningKey) -> String {
        let der = key.verifying_key().to_public_key_der().unwrap();
        pem::encode(&pem::Pem::new("PUBLIC KEY", der.as_bytes()))
    }

    /// A P-384 signature verifies with exactly the hash it was made with.
    #[test]
    fn a_p384_key_verifies_with_the_named_hash_only() {
        let key = p384::ecdsa::SigningKey::from_slice(&[7; 48]).unwrap();
        let pem = p384_pem(&key);
        let message = b"cosign payload";
        for made in [
            HashAlgorithm::Sha224,
            HashAlgorithm::Sha256,
            HashAlgorithm::Sha384,
            HashAlgorithm::Sha512,
        ] {
            let signature: p384::ecdsa::Signature = key.sign_prehash(&made.digest(message)).unwrap();
            let der = signature.to_der().as_bytes().to_vec();
            for named in [
                HashAlgorithm::Sha224,
                HashAlgorithm::Sha256,
                HashAlgorithm::Sha384,
                HashAlgorithm::Sha512,
            ] {
                let verifier = HashedKeyVerifier::new(pem.as_bytes(), named).unwrap();
                assert_eq!(
                    verifier.verifies(message, &der),
                    made == named,
                    "made {made}, named {named}"
                );
            }
        }
    }

    /// An RSA PKCS#1 v1.5 signature verifies with exactly the hash it was made with, its
    /// `DigestInfo` included (a bare digest, signed without it, is refused under every hash).
    #[test]
    fn an_rsa_key_verifies_with_the_named_hash_only() {
        use rsa::pkcs8::EncodePublicKey as _;
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let der = key.to_public_key().to_public_key_der().unwrap();
        let message = b"cosign payload";
        let hashes = [HashAlgorithm::Sha256, HashAlgorithm::Sha384, HashAlgorithm::Sha512];
        for made in hashes {
            let signature = key.sign(made.pkcs1v15(), &made.digest(message)).unwrap();
            let bare = key
                .sign(rsa::Pkcs1v15Sign::new_unprefixed(), &made.digest(message))
                .unwrap();
            for named in hashes {
                let verifier = HashedKeyVerifier::from_spki_der(der.as_bytes(), named).unwrap();
                assert_eq!(
                    verifier.verifies(message, &signature),
                    made == named,
                    "made {made}, named {named}"
                );
                assert!(!verifier.verifies(message, &bare), "bare {made}, named {named}");
            }
        }
    }

    /// Found by a review: sigstore's PKCS#1 v1.5 verifier (policy-controller's for RSA keys)
    /// refuses SHA-224, so an RSA key with `hashAlgorithm: sha224` verifies nothing there.
    #[test]
    fn an_rsa_key_is_refused_with_sha224() {
        let rsa = include_bytes!("../../../../src/testdata/rsa2048.pub");
        assert!(matches!(
            HashedKeyVerifier::new(rsa, HashAlgorithm::Sha224),
            Err(HashedKeyError::RsaSha224)
        ));
        for hash in [HashAlgorithm::Sha256, HashAlgorithm::Sha384, HashAlgorithm::Sha512] {
            assert!(HashedKeyVerifier::new(rsa, hash).is_ok(), "{hash}");
        }
    }
}
