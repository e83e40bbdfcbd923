//! The signed certificate timestamp (SCT) Fulcio embeds in every certificate it issues
//! (RFC 6962 §3.3, extension `1.3.6.1.4.1.11129.2.4.2`): proof that the certificate was logged
//! to a certificate transparency log of the trust root. sigstore-rs 0.15 parses the trust root's
//! `ctlogs` but never checks an SCT.
//!
//! The SCT signs the *precertificate*: the leaf's TBSCertificate without the SCT list extension,
//! bound to the issuer by the SHA-256 of the issuing CA's SubjectPublicKeyInfo.

use sha2::{Digest as _, Sha256};
use sigstore::crypto::{CosignVerificationKey, Signature};
use x509_cert::der::asn1::OctetString;
use x509_cert::der::{Decode as _, Encode as _};

use super::rekor::show_time;
use crate::trust::TrustRoot;

/// `1.3.6.1.4.1.11129.2.4.2`: embedded SCT list.
const SCT_LIST_OID: x509_cert::der::asn1::ObjectIdentifier =
    x509_cert::der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");

/// One parsed SCT (RFC 6962 §3.2, v1).
struct Sct<'a> {
    log_id: &'a [u8],
    timestamp_ms: u64,
    extensions: &'a [u8],
    signature: &'a [u8],
}

/// Checks that `leaf` (issued by `issuer`, both parsed) carries an SCT that verifies under a CT
/// log key of the trust root valid at the SCT's time.
pub fn verify_embedded(
    leaf: &x509_cert::Certificate,
    issuer: &x509_cert::Certificate,
    trust: &TrustRoot,
) -> Result<(), String> {
    let extensions = leaf.tbs_certificate.extensions.as_deref().unwrap_or_default();
    let Some(extension) = extensions.iter().find(|e| e.extn_id == SCT_LIST_OID) else {
        return Err("signing certificate has no embedded SCT (certificate transparency proof)".to_string());
    };
    if trust.ct_logs().is_empty() {
        return Err("the trust root lacks CT log keys (ctlogs), needed to check the certificate's SCT".to_string());
    }
    let list = OctetString::from_der(extension.extn_value.as_bytes())
        .map_err(|e| format!("signing certificate's SCT list is malformed: {e}"))?;
    let scts = parse_list(list.as_bytes()).ok_or("signing certificate's SCT list is malformed")?;
    let mut tbs = leaf.tbs_certificate.clone();
    tbs.extensions = tbs
        .extensions
        .map(|all| all.into_iter().filter(|e| e.extn_id != SCT_LIST_OID).collect());
    let precert_tbs = tbs
        .to_der()
        .map_err(|e| format!("cannot rebuild the precertificate: {e}"))?;
    let issuer_key = issuer
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| format!("cannot encode the issuer key: {e}"))?;
    let issuer_key_hash = Sha256::digest(&issuer_key);
    let mut reasons = Vec::new();
    for sct in &scts {
        match verify_one(sct, &precert_tbs, &issuer_key_hash, trust) {
            Ok(()) => return Ok(()),
            Err(reason) => reasons.push(reason),
        }
    }
    Err(reasons.join("; "))
}

fn verify_one(sct: &Sct<'_>, precert_tbs: &[u8], issuer_key_hash: &[u8], trust: &TrustRoot) -> Result<(), String> {
    let log_id = hex::encode(sct.log_id);
    let Some(log) = trust.ct_logs().get(&log_id) else {
        return Err(format!(
            "certificate's SCT is from CT log {log_id}, which is not in the trust root"
        ));
    };
    let seconds = i64::try_from(sct.timestamp_ms / 1000).unwrap_or(i64::MAX);
    if !log
        .valid_for
        .contains_millis(i64::try_from(sct.timestamp_ms).unwrap_or(i64::MAX))
    {
        return Err(format!(
            "certificate's SCT was issued at {}, outside the validity of CT log key {log_id} ({})",
            show_time(seconds),
            log.valid_for
        ));
    }
    let tbs_len = u32::try_from(precert_tbs.len()).map_err(|_| "precertificate too large".to_string())?;
    let ext_len = u16::try_from(sct.extensions.len()).map_err(|_| "SCT extensions too large".to_string())?;
    let mut signed = Vec::with_capacity(precert_tbs.len() + 64);
    signed.push(0); // v1
    signed.push(0); // certificate_timestamp
    signed.extend_from_slice(&sct.timestamp_ms.to_be_bytes());
    signed.extend_from_slice(&1u16.to_be_bytes()); // precert_entry
    signed.extend_from_slice(issuer_key_hash);
    signed.extend_from_slice(&tbs_len.to_be_bytes()[1..]);
    signed.extend_from_slice(precert_tbs);
    signed.extend_from_slice(&ext_len.to_be_bytes());
    signed.extend_from_slice(sct.extensions);
    let key =
        CosignVerificationKey::try_from_der(&log.der).map_err(|e| format!("CT log key {log_id} is unusable: {e}"))?;
    key.verify_signature(Signature::Raw(sct.signature), &signed)
        .map_err(|_| format!("certificate's SCT does not verify under CT log key {log_id}"))
}

/// `SignedCertificateTimestampList`: u16 length, then u16-prefixed SCTs.
fn parse_list(data: &[u8]) -> Option<Vec<Sct<'_>>> {
    let mut reader = Reader(data);
    let mut list = Reader(reader.vec16()?);
    if !reader.0.is_empty() {
        return None;
    }
    let mut scts = Vec::new();
    while !list.0.is_empty() {
        let mut sct = Reader(list.vec16()?);
        if sct.take(1)? != [0] {
            continue; // only v1 SCTs exist
        }
        let log_id = sct.take(32)?;
        let timestamp_ms = u64::from_be_bytes(sct.take(8)?.try_into().ok()?);
        let extensions = sct.vec16()?;
        let _hash_and_signature_algorithms = sct.take(2)?;
        let signature = sct.vec16()?;
        scts.push(Sct {
            log_id,
            timestamp_ms,
            extensions,
            signature,
        });
    }
    (!scts.is_empty()).then_some(scts)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn vec16(&mut self) -> Option<&'a [u8]> {
        let len = u16::from_be_bytes(self.take(2)?.try_into().ok()?);
        self.take(usize::from(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_lists_are_malformed_not_panics() {
        assert!(parse_list(&[]).is_none());
        assert!(parse_list(&[0, 5, 0, 3, 0]).is_none());
        assert!(parse_list(&[0, 2, 0, 0]).is_none());
        let mut one = vec![0u8];
        one.extend_from_slice(&[7; 32]);
        one.extend_from_slice(&42u64.to_be_bytes());
        one.extend_from_slice(&[0, 0, 4, 3, 0, 1, 9]);
        let mut list = (u16::try_from(one.len()).expect("small")).to_be_bytes().to_vec();
        list.extend_from_slice(&one);
        let mut data = (u16::try_from(list.len()).expect("small")).to_be_bytes().to_vec();
        data.extend_from_slice(&list);
        let parsed = parse_list(&data).expect("well formed");
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].timestamp_ms, 42);
        assert_eq!(parsed[0].signature, [9]);
    }
}
