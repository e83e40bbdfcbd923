//! Public keys as PEM `PUBLIC KEY` blocks (SubjectPublicKeyInfo), built from what the KMSs
//! answer: DER (AWS), raw Ed25519 bytes (Vault), JWK parts (Azure).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// id-ecPublicKey.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// prime256v1, secp384r1, secp521r1.
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
/// rsaEncryption.
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// id-Ed25519.
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// An elliptic curve a JWK can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    /// The curve of a JWK `crv`.
    pub fn from_jwk(crv: &str) -> Option<Self> {
        match crv {
            "P-256" => Some(Self::P256),
            "P-384" => Some(Self::P384),
            "P-521" => Some(Self::P521),
            _ => None,
        }
    }

    fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }

    fn oid(self) -> &'static [u8] {
        match self {
            Self::P256 => OID_P256,
            Self::P384 => OID_P384,
            Self::P521 => OID_P521,
        }
    }
}

/// DER SubjectPublicKeyInfo → PEM.
pub fn der_to_pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    pem
}

/// An EC public key from its affine coordinates (big-endian, as in a JWK).
pub fn ec_pem(curve: Curve, x: &[u8], y: &[u8]) -> Result<String, String> {
    let len = curve.coordinate_len();
    if x.len() != len || y.len() != len {
        return Err(format!(
            "EC coordinates of {} and {} bytes, expected {len}",
            x.len(),
            y.len()
        ));
    }
    let mut point = vec![0x04];
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    let algorithm = seq(&[tlv(0x06, OID_EC_PUBLIC_KEY), tlv(0x06, curve.oid())].concat());
    Ok(der_to_pem(&seq(&[algorithm, bit_string(&point)].concat())))
}

/// An RSA public key from its modulus and exponent (big-endian, as in a JWK).
pub fn rsa_pem(n: &[u8], e: &[u8]) -> Result<String, String> {
    if n.is_empty() || e.is_empty() {
        return Err("RSA key without modulus or exponent".to_owned());
    }
    let key = seq(&[integer(n), integer(e)].concat());
    let algorithm = seq(&[tlv(0x06, OID_RSA), tlv(0x05, &[])].concat());
    Ok(der_to_pem(&seq(&[algorithm, bit_string(&key)].concat())))
}

/// An Ed25519 public key from its 32 raw bytes.
pub fn ed25519_pem(raw: &[u8]) -> Result<String, String> {
    if raw.len() != 32 {
        return Err(format!("Ed25519 key of {} bytes, expected 32", raw.len()));
    }
    let algorithm = seq(&tlv(0x06, OID_ED25519));
    Ok(der_to_pem(&seq(&[algorithm, bit_string(raw)].concat())))
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn seq(content: &[u8]) -> Vec<u8> {
    tlv(0x30, content)
}

fn bit_string(content: &[u8]) -> Vec<u8> {
    let mut body = vec![0];
    body.extend_from_slice(content);
    tlv(0x03, &body)
}

/// A positive INTEGER: leading zeros dropped, one added when the high bit is set.
fn integer(big_endian: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = big_endian.iter().copied().skip_while(|b| *b == 0).collect();
    let mut body = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        body.push(0);
    }
    body.extend(trimmed);
    tlv(0x02, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lengths_use_the_long_form() {
        assert_eq!(tlv(0x04, &[0; 5])[..2], [0x04, 5]);
        assert_eq!(tlv(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(tlv(0x04, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn integers_are_positive_and_minimal() {
        assert_eq!(integer(&[0, 0, 1]), [0x02, 1, 1]);
        assert_eq!(integer(&[0x80]), [0x02, 2, 0, 0x80]);
        assert_eq!(integer(&[1, 0, 1]), [0x02, 3, 1, 0, 1]);
    }

    #[test]
    fn wrong_sizes_are_refused() {
        assert!(ec_pem(Curve::P256, &[1; 31], &[1; 32]).is_err());
        assert!(ed25519_pem(&[1; 31]).is_err());
        assert!(rsa_pem(&[], &[1]).is_err());
    }
}
