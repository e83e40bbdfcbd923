//! Signing key pairs made with sigstore-rs, in every scheme cosign supports.

use std::fmt;

use anyhow::Context;
use sigstore::crypto::{SigStoreSigner, SigningScheme};

/// A private/public key pair able to sign cosign payloads.
pub struct KeyPair {
    signer: SigStoreSigner,
    scheme: SigningScheme,
    public_key_pem: String,
    public_key_der: Vec<u8>,
}

impl KeyPair {
    /// Generates a fresh key for `scheme`, e.g. `SigningScheme::ECDSA_P256_SHA256_ASN1` (cosign's
    /// default), `ECDSA_P384_SHA384_ASN1`, `RSA_PKCS1_SHA256(2048)` or `ED25519`.
    pub fn generate(scheme: SigningScheme) -> anyhow::Result<Self> {
        let signer = scheme
            .create_signer()
            .with_context(|| format!("generating a {scheme} key"))?;
        let keypair = signer.to_sigstore_keypair()?;
        Ok(Self {
            public_key_pem: keypair.public_key_to_pem()?,
            public_key_der: keypair.public_key_to_der()?,
            signer,
            scheme,
        })
    }

    /// An ECDSA P-256 key, what `cosign generate-key-pair` makes.
    pub fn ecdsa_p256() -> anyhow::Result<Self> {
        Self::generate(SigningScheme::ECDSA_P256_SHA256_ASN1)
    }

    /// The scheme the key signs with.
    pub fn scheme(&self) -> SigningScheme {
        self.scheme
    }

    /// The public key as a `-----BEGIN PUBLIC KEY-----` PEM (SubjectPublicKeyInfo).
    pub fn public_key_pem(&self) -> &str {
        &self.public_key_pem
    }

    /// The public key as SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_key_der
    }

    /// The private key as an unencrypted PKCS#8 PEM.
    pub fn private_key_pem(&self) -> anyhow::Result<String> {
        Ok(self.signer.to_sigstore_keypair()?.private_key_to_pem()?.to_string())
    }

    /// Signs `message` (raw signature bytes: ASN.1 DER for ECDSA).
    pub fn sign(&self, message: &[u8]) -> anyhow::Result<Vec<u8>> {
        Ok(self.signer.sign(message)?)
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("scheme", &self.scheme)
            .field("public_key_pem", &self.public_key_pem)
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// Wraps an existing PKCS#8 DER private key (e.g. one rcgen generated for a certificate).
    pub fn from_pkcs8_der(der: &[u8], scheme: SigningScheme) -> anyhow::Result<Self> {
        let keypair =
            sigstore::crypto::signing_key::SigStoreKeyPair::from_der(der).context("parsing a PKCS#8 private key")?;
        Ok(Self {
            public_key_pem: keypair.public_key_to_pem()?,
            public_key_der: keypair.public_key_to_der()?,
            signer: keypair.to_sigstore_signer(&scheme)?,
            scheme,
        })
    }
}
