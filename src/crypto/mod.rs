//! Keys, certificates and signatures.
//!
//! The deep checks of keys and certificates written in the settings run once, in
//! `validate_settings`, when Kubewarden loads the policy: a key that cannot verify anything is
//! refused there with a clear message instead of failing every admission. The signatures are
//! verified by the host; [`signature`] re-checks keyless and certificate layers from their
//! digest, because stock hosts do not bind them (`crate::authority::binding`), and [`memo`]
//! remembers those outcomes for the instance's life.

pub mod memo;
pub mod rsa;
pub mod signature;

use der::asn1::{ObjectIdentifier, UintRef};
use der::{Decode, Encode};
use pkcs1::RsaPublicKey;
use spki::SubjectPublicKeyInfoRef;
use x509_cert::Certificate;

const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const MIN_RSA_BITS: usize = rsa::MIN_BITS;

/// Kinds of public keys cosign signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    EcdsaP384,
    Rsa { bits: usize },
    Ed25519,
}

/// The kind of a key [`check_public_key`] accepted when the settings were validated, for the
/// evaluation path: a P-256 or P-384 key as cosign writes it (an uncompressed point) is known by
/// the base64 of its DER header, whose algorithm and curve identifiers it holds, without
/// decoding the text or checking the point again (≈ 55,000 instructions a key, paid by every
/// evaluation in a fresh instance); for any other text the caller checks in full. Read in
/// the PEM text or in the JSON string holding it (`"`, and `\n` or `\r` escapes between the
/// `BEGIN` line and the base64): the header has no character JSON escapes, so if it is there
/// as written, the decoded text holds it too. `None` for any other text. Only for text
/// [`check_public_key`] accepted: it refuses the RFC 1421 header lines (`Name: value`) that PEM
/// readers skip, which could otherwise put a P-384 key's header before an RSA key.
pub fn header_kind(text: &str) -> Option<KeyKind> {
    /// `SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING { 04 …` in base64.
    const P256_HEADER: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE";
    /// The same with secp384r1.
    const P384_HEADER: &str = "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAE";
    let text = text.trim_start_matches(|c: char| c == '"' || c.is_ascii_whitespace());
    let mut body = text.strip_prefix("-----BEGIN PUBLIC KEY-----")?;
    loop {
        body = body.trim_start_matches(|c: char| c.is_ascii_whitespace());
        match body.strip_prefix("\\n").or_else(|| body.strip_prefix("\\r")) {
            Some(rest) => body = rest,
            None => break,
        }
    }
    if body.starts_with(P256_HEADER) {
        Some(KeyKind::EcdsaP256)
    } else if body.starts_with(P384_HEADER) {
        Some(KeyKind::EcdsaP384)
    } else {
        None
    }
}

/// Checks that `pem` holds exactly one usable public key (`-----BEGIN PUBLIC KEY-----`).
pub fn check_public_key(pem: &str) -> Result<KeyKind, String> {
    let blocks = pem::parse_many(pem).map_err(|e| format!("not a valid PEM document: {e}"))?;
    let block = match blocks.as_slice() {
        [block] => block,
        [] => return Err("no PEM block found: paste the content of cosign.pub".to_owned()),
        _ => return Err("several PEM blocks found: put one key per authority".to_owned()),
    };
    if block.tag() != "PUBLIC KEY" {
        return Err(format!(
            "PEM block is `{}`, expected `PUBLIC KEY` (never paste a private key; cosign.pub holds the public one)",
            block.tag()
        ));
    }
    // RFC 1421 header lines (`Name: value`, then a blank line) are skipped by PEM readers but
    // not by every reading of the text (`header_kind`); cosign writes none.
    if block.headers().iter().next().is_some() {
        return Err("the PEM block has header lines (`Name: value`): paste cosign.pub as cosign writes it".to_owned());
    }
    check_spki(block.contents())
}

fn check_spki(der: &[u8]) -> Result<KeyKind, String> {
    let spki = SubjectPublicKeyInfoRef::from_der(der).map_err(|e| format!("not a valid public key: {e}"))?;
    let key = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| "the public key bit string is malformed".to_owned())?;
    match spki.algorithm.oid {
        ID_EC_PUBLIC_KEY => {
            let curve = spki
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .ok_or_else(|| "ECDSA key without a named curve".to_owned())?;
            match curve {
                SECP256R1 => p256::PublicKey::from_sec1_bytes(key)
                    .map(|_| KeyKind::EcdsaP256)
                    .map_err(|_| "the P-256 point is not on the curve".to_owned()),
                SECP384R1 => p384::PublicKey::from_sec1_bytes(key)
                    .map(|_| KeyKind::EcdsaP384)
                    .map_err(|_| "the P-384 point is not on the curve".to_owned()),
                other => Err(format!("unsupported elliptic curve {other} (use P-256 or P-384)")),
            }
        }
        RSA_ENCRYPTION => {
            let rsa =
                RsaPublicKey::<UintRef<'_>>::from_der(key).map_err(|e| format!("not a valid RSA public key: {e}"))?;
            let bits = rsa.modulus.as_bytes().len() * 8
                - rsa.modulus.as_bytes().first().map_or(8, |b| b.leading_zeros() as usize);
            if bits < MIN_RSA_BITS {
                Err(format!("RSA key of {bits} bits is too weak (at least {MIN_RSA_BITS})"))
            } else {
                Ok(KeyKind::Rsa { bits })
            }
        }
        ED25519 if key.len() == 32 => Ok(KeyKind::Ed25519),
        ED25519 => Err("an Ed25519 key is 32 bytes long".to_owned()),
        other => Err(format!(
            "unsupported key algorithm {other} (cosign keys are ECDSA P-256/P-384, RSA or Ed25519)"
        )),
    }
}

/// The one PEM block of `text`, for texts a forger may have written (a layer's certificate
/// annotation, a Rekor entry's key): refused unless `text` is that block alone, ASCII whitespace
/// around it aside.
///
/// PEM readers disagree on what else a text may hold: `pem` takes the first block after any
/// preamble, while pem-rfc7468 (what x509-cert, and so sigstore-rs, reads a certificate with)
/// skips a preamble up to a line starting `-----BEGIN` and reads to the last `-----END`. Fed
/// `"x" + PEM(B) + PEM(A)`, sigstore-rs takes its signer's identity from A and checks the
/// Fulcio chain of B. With a single `-----BEGIN`, a single `-----END` and nothing outside them,
/// every reader that accepts the text reads the same block.
pub fn sole_pem_block(text: &[u8]) -> Result<pem::Pem, String> {
    let text = text.trim_ascii();
    let count = |marker: &[u8]| text.windows(marker.len()).filter(|w| *w == marker).count();
    match (count(b"-----BEGIN"), count(b"-----END")) {
        (1, 1) => {}
        (0, _) => return Err("holds no PEM block".to_owned()),
        (begins, ends) => {
            return Err(format!(
                "holds {begins} `-----BEGIN` and {ends} `-----END` markers, not one PEM block: PEM readers may each read another block from it"
            ));
        }
    }
    if !text.starts_with(b"-----BEGIN") || !text.ends_with(b"-----") {
        return Err("holds text around its PEM block: PEM readers may skip or refuse it differently".to_owned());
    }
    pem::parse(text).map_err(|e| format!("is not PEM: {e}"))
}

/// Checks a PEM certificate bundle; returns how many certificates it holds.
pub fn check_certificates(pem: &str, what: &str) -> Result<usize, String> {
    let blocks = pem::parse_many(pem).map_err(|e| format!("{what} is not a valid PEM document: {e}"))?;
    if blocks.is_empty() {
        return Err(format!("{what} holds no PEM certificate"));
    }
    for (i, block) in blocks.iter().enumerate() {
        if block.tag() != "CERTIFICATE" {
            return Err(format!(
                "{what}: PEM block {} is `{}`, expected `CERTIFICATE`",
                i + 1,
                block.tag()
            ));
        }
        let cert = Certificate::from_der(block.contents())
            .map_err(|e| format!("{what}: certificate {} cannot be parsed: {e}", i + 1))?;
        let spki = cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| format!("{what}: certificate {}: {e}", i + 1))?;
        check_spki(&spki).map_err(|e| format!("{what}: certificate {}: {e}", i + 1))?;
    }
    Ok(blocks.len())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const P256_PEM: &str = include_str!("../testdata/p256.pub");
    pub const P384_PEM: &str = include_str!("../testdata/p384.pub");
    /// A second P-256 key: for tests that need two keys a stock host verifies with the default
    /// `key.hashAlgorithm` (sha256; it verifies P-384 keys with sha384 only).
    pub const P256_SECOND_PEM: &str = include_str!("../testdata/p256-second.pub");
    pub const P521_PEM: &str = include_str!("../testdata/p521.pub");
    pub const RSA2048_PEM: &str = include_str!("../testdata/rsa2048.pub");
    pub const RSA1024_PEM: &str = include_str!("../testdata/rsa1024.pub");
    pub const ED25519_PEM: &str = include_str!("../testdata/ed25519.pub");
    pub const CERT_PEM: &str = include_str!("../testdata/cert.pem");

    #[test]
    fn a_sole_pem_block_is_the_block_every_reader_reads() {
        use der::DecodePem;
        use proptest::prelude::*;
        // What sigstore-rs reads a layer's certificate with (x509-cert: pem-rfc7468) and what
        // it and the `pem` crate read the chain with: whenever `sole_pem_block` accepts a text,
        // every reader that accepts it reads the same certificate.
        let first = include_str!("../testdata/cert.pem");
        let second = crate::authority::fulcio::tests::certificate(
            &crate::authority::fulcio::tests::CertSpec::email("b@example.com", "https://issuer"),
            &crate::crypto::signature::tests::p256_spki(&crate::crypto::signature::tests::p256_key(2)),
        )
        .0;
        let pieces = [
            "",
            " ",
            "\n",
            "\r\n",
            "x",
            "Certificate:\n",
            "-----BEGIN",
            "-----END CERTIFICATE-----\n",
            "-----BEGIN CERTIFICATE-----\n",
            first,
            &second,
            first,
            &second,
        ];
        let pieces: Vec<String> = pieces.iter().map(|p| (*p).to_owned()).collect();
        let texts = proptest::collection::vec(proptest::sample::select(pieces), 0..5).prop_map(|p| p.concat());
        proptest!(ProptestConfig::with_cases(2_000), |(text in texts)| {
            if let Ok(block) = sole_pem_block(text.as_bytes()) {
                if let Ok(cert) = x509_cert::Certificate::from_pem(text.as_bytes()) {
                    prop_assert_eq!(cert.to_der().unwrap(), block.contents().to_vec());
                }
                if let Ok(first_block) = pem::parse(text.as_bytes()) {
                    prop_assert_eq!(first_block.contents(), block.contents());
                }
                prop_assert_eq!(pem::parse_many(text.as_bytes()).map(|b| b.len()).ok(), Some(1));
            }
        });
        // And it accepts what cosign writes.
        for text in [first, second.as_str()] {
            let block = sole_pem_block(text.as_bytes()).expect("one block");
            let read = x509_cert::Certificate::from_pem(text.as_bytes()).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(read.to_der().unwrap(), block.contents());
        }
    }

    /// The evaluation path's reading of a key's kind is `check_public_key`'s on every key it
    /// accepts: the test keys, fresh P-256 and P-384 keys in PEM (with CRLF line ends and
    /// leading blanks), and their compressed points (read in full).
    #[test]
    fn the_kind_read_from_the_header_is_the_checked_kind() {
        use p256::elliptic_curve::sec1::ToSec1Point as _;
        use proptest::prelude::*;
        // What the evaluation path reads (`KeyAuthority::data_kind`): the header, else the check.
        let kind_read = |pem: &str| header_kind(pem).or_else(|| check_public_key(pem).ok());
        for pem in [
            P256_PEM,
            P384_PEM,
            RSA2048_PEM,
            ED25519_PEM,
            CERT_PEM,
            "",
            "-----BEGIN PUBLIC KEY-----\nMFkw",
        ] {
            assert_eq!(kind_read(pem), check_public_key(pem).ok(), "{pem}");
            // As `key.data` holds it: its JSON string.
            let json = serde_json::to_string(pem).unwrap();
            if let Some(kind) = header_kind(&json) {
                assert_eq!(Some(kind), check_public_key(pem).ok(), "{json}");
            }
        }
        assert_eq!(
            header_kind(&serde_json::to_string(P256_PEM).unwrap()),
            Some(KeyKind::EcdsaP256)
        );
        // Found by a review: a header line looking like a P-384 key's DER header over an RSA
        // key, which PEM readers skip: refused at load, and never read as P-384.
        let rsa_body = RSA2048_PEM
            .trim()
            .strip_prefix("-----BEGIN PUBLIC KEY-----")
            .unwrap()
            .trim_start();
        let disguised = format!("-----BEGIN PUBLIC KEY-----\nMHYwEAYHKoZIzj0CAQYFK4EEACIDYgAE: x\n\n{rsa_body}\n");
        assert!(
            check_public_key(&disguised).is_err_and(|e| e.contains("header lines")),
            "{disguised}"
        );

        let spki_pem = |oid_curve: ObjectIdentifier, point: &[u8]| {
            let spki = spki::SubjectPublicKeyInfoOwned {
                algorithm: spki::AlgorithmIdentifierOwned {
                    oid: ID_EC_PUBLIC_KEY,
                    parameters: Some(oid_curve.into()),
                },
                subject_public_key: der::asn1::BitString::from_bytes(point).unwrap(),
            };
            pem::encode(&pem::Pem::new("PUBLIC KEY", der::Encode::to_der(&spki).unwrap()))
        };
        proptest!(ProptestConfig::with_cases(64), |(seed in proptest::array::uniform32(1u8..), crlf: bool, blank: bool)| {
            let p256 = p256::SecretKey::from_slice(&seed).unwrap().public_key();
            let mut seed48 = [1u8; 48];
            seed48[16..].copy_from_slice(&seed);
            let p384 = p384::SecretKey::from_slice(&seed48).unwrap().public_key();
            for (pem, kind) in [
                (spki_pem(SECP256R1, p256.to_sec1_point(false).as_bytes()), KeyKind::EcdsaP256),
                (spki_pem(SECP256R1, p256.to_sec1_point(true).as_bytes()), KeyKind::EcdsaP256),
                (spki_pem(SECP384R1, p384.to_sec1_point(false).as_bytes()), KeyKind::EcdsaP384),
                (spki_pem(SECP384R1, p384.to_sec1_point(true).as_bytes()), KeyKind::EcdsaP384),
            ] {
                let pem = if crlf { pem.replace('\n', "\r\n") } else { pem };
                let pem = if blank { format!("\n  {pem}") } else { pem };
                prop_assert_eq!(check_public_key(&pem), Ok(kind));
                prop_assert_eq!(kind_read(&pem), Some(kind));
                let json = serde_json::to_string(&pem).unwrap();
                prop_assert!(header_kind(&json).is_none_or(|read| read == kind), "{}", json);
            }
        });
    }

    #[test]
    fn accepts_every_cosign_key_kind() {
        assert_eq!(check_public_key(P256_PEM), Ok(KeyKind::EcdsaP256));
        assert_eq!(check_public_key(P384_PEM), Ok(KeyKind::EcdsaP384));
        assert_eq!(check_public_key(RSA2048_PEM), Ok(KeyKind::Rsa { bits: 2048 }));
        assert_eq!(check_public_key(ED25519_PEM), Ok(KeyKind::Ed25519));
    }

    #[test]
    fn refuses_weak_or_unsupported_keys() {
        assert!(check_public_key(RSA1024_PEM).unwrap_err().contains("too weak"));
        assert!(
            check_public_key(P521_PEM)
                .unwrap_err()
                .contains("unsupported elliptic curve")
        );
    }

    #[test]
    fn accepts_a_certificate() {
        assert_eq!(check_certificates(CERT_PEM, "certificate.data"), Ok(1));
        assert_eq!(
            check_certificates(&format!("{CERT_PEM}{CERT_PEM}"), "certificate.chain"),
            Ok(2)
        );
    }

    #[test]
    fn refuses_truncated_article_placeholder() {
        let placeholder =
            "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE...\n-----END PUBLIC KEY-----\n";
        assert!(check_public_key(placeholder).is_err());
        assert!(check_public_key("...security team public key...").is_err());
    }

    #[test]
    fn refuses_a_point_off_the_curve() {
        let block = pem::parse(P256_PEM).unwrap();
        let mut der = block.contents().to_vec();
        let last = der.len() - 1;
        der[last] ^= 0x01;
        let tampered = pem::encode(&pem::Pem::new("PUBLIC KEY", der));
        assert_eq!(
            check_public_key(&tampered),
            Err("the P-256 point is not on the curve".to_owned())
        );
    }

    #[test]
    fn refuses_private_keys_and_several_blocks() {
        let private = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(
            check_public_key(private)
                .unwrap_err()
                .contains("never paste a private key")
        );
        let two = format!("{P256_PEM}{P256_PEM}");
        assert!(check_public_key(&two).unwrap_err().contains("several PEM blocks"));
    }

    #[test]
    fn refuses_garbage_certificates() {
        assert!(check_certificates("nope", "certificate.data").is_err());
        let not_cert = P256_PEM;
        assert!(
            check_certificates(not_cert, "certificate.data")
                .unwrap_err()
                .contains("expected `CERTIFICATE`")
        );
    }
}
