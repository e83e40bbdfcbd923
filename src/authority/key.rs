//! `key`: signatures made with a cosign key pair (`cosign sign --key`).

use std::cell::OnceCell;
use std::collections::BTreeMap;

use kubewarden_policy_sdk::host_capabilities::SigstoreVerificationInputV2;
use serde::{Deserialize, Serialize};

use super::{Check, check_annotations};
use crate::crypto::{KeyKind, check_public_key, header_kind};
use crate::host::{
    CIP_KMS_PUBLIC_KEY, CIP_VERIFY_ATTESTATIONS_WITH_HASH, CIP_VERIFY_KEY_WITH_HASH, HostCalls, KUBEWARDEN_VERIFY_V2,
    SignatureFormat, Verified, verify_formats_json,
};
use crate::kms_uri::KmsUri;
use crate::reference::ImageReference;
use crate::settings::raw::{JsonString, JsonText, RawKey};

/// What `key.data` holds.
enum KeyData {
    /// A JSON value that is not a string.
    NotString,
    /// Nothing but white space.
    Blank,
    /// Text without `-----BEGIN`.
    NotPem,
    /// A PEM block, as the JSON string `serde_json` writes for it ([`key_data`]).
    Pem(Box<str>),
}

/// Reads `key.data`. A PEM key is kept as the JSON string `serde_json` writes for it, quotes
/// included: what every request of the authority carries. That is the text as written in the
/// settings when `serde_json` would write it so ([`as_serde_writes`]: a PEM key as tools write
/// it), else the key decoded and written again. Property test
/// `a_key_is_sent_as_serde_json_writes_it`.
fn key_data(data: JsonText<'_>) -> KeyData {
    const PEM: &str = "-----BEGIN";
    let Some(data) = JsonString::new(data) else {
        return KeyData::NotString;
    };
    let json = data.json();
    // `-----BEGIN` has no `\` nor any letter of a two-character escape: it is in the text as
    // written exactly when it is in the key decoded from it (which then is not blank). A key
    // pasted from a file begins with it: found without a substring search (whose set-up alone
    // cost ≈ 900 instructions a key in wasm).
    if as_serde_writes(json) && (json[1..].starts_with(PEM) || json.contains(PEM)) {
        return KeyData::Pem(json.into());
    }
    let pem = data.decode();
    if pem.trim().is_empty() {
        KeyData::Blank
    } else if pem.contains(PEM) {
        let mut json = String::with_capacity(pem.len() + 8);
        crate::answer::push_string(&mut json, &pem);
        KeyData::Pem(json.into())
    } else {
        KeyData::NotPem
    }
}

/// The key of `key.data` ([`KeySource::Pem`]), decoded: for the deep check and the requests
/// written by the SDK's types (attestations).
fn decode(json: &str) -> String {
    // Written by `serde_json` or checked by it: a JSON string.
    serde_json::from_str(json).unwrap_or_default()
}

/// Whether `json`, a JSON string (quotes included), is the text `serde_json` writes for the
/// string it decodes to: its only escapes are the two-character ones `serde_json` writes
/// (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`; a PEM key has `\n`, or `\r\n` when written by
/// the `pem` crate or on Windows), none a `\u` escape or `\/`. (Every other character of a JSON
/// string is one `serde_json` writes as it is.)
fn as_serde_writes(json: &str) -> bool {
    let inner = json.as_bytes().get(1..json.len().saturating_sub(1)).unwrap_or_default();
    let mut i = 0;
    loop {
        // A JSON string holds no `"` but its quotes: the stop is a `\` or the end.
        i = crate::json_text::quote_or_backslash(inner, i);
        match inner.get(i..i + 2) {
            None if i >= inner.len() => return true,
            Some([b'\\', b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't']) => i += 2,
            _ => return false,
        }
    }
}

/// `key.hashAlgorithm`: the hash the signatures were made over. policy-controller's names
/// (trimmed, any case), SHA-256 by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlgorithm {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlgorithm {
    /// `key.hashAlgorithm` as written; `None` (or blank, as policy-controller reads it) is sha256.
    fn parse(text: Option<&str>) -> Result<Self, (String, String)> {
        let text = text.map(str::trim).unwrap_or_default();
        match text.to_ascii_lowercase().as_str() {
            "" | "sha256" => Ok(Self::Sha256),
            "sha224" => Ok(Self::Sha224),
            "sha384" => Ok(Self::Sha384),
            "sha512" => Ok(Self::Sha512),
            _ => Err((
                "key.hashAlgorithm".into(),
                format!(
                    "hashAlgorithm {text} is unknown: write sha256 (the default; older cosign signs every key with it), sha384 (newer cosign with a P-384 key), sha512 or sha224"
                ),
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Sha224 => "sha224",
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }
}

/// The hash Kubewarden's `SigstorePubKeyVerify` verifies a key of `kind` with (sigstore-rs
/// picks it from the key: `CosignVerificationKey::try_from_pem`), and the key's name; `None`
/// for Ed25519, whose signatures are not over a separate hash.
fn stock_hash(kind: KeyKind) -> Option<(HashAlgorithm, &'static str)> {
    match kind {
        KeyKind::EcdsaP256 => Some((HashAlgorithm::Sha256, "P-256")),
        KeyKind::EcdsaP384 => Some((HashAlgorithm::Sha384, "P-384")),
        KeyKind::Rsa { .. } => Some((HashAlgorithm::Sha256, "RSA")),
        KeyKind::Ed25519 => None,
    }
}

/// Where the public key comes from.
#[derive(Debug)]
enum KeySource {
    /// `key.data`, as the JSON string `serde_json` writes for it ([`key_data`]).
    Pem(Box<str>),
    /// `key.kms` alone: the host resolves it through [`CIP_KMS_PUBLIC_KEY`].
    Kms(KmsUri),
}

/// What the module sends to [`CIP_KMS_PUBLIC_KEY`].
#[derive(Serialize)]
struct KmsRequest<'a> {
    uri: &'a str,
}

/// What [`CIP_KMS_PUBLIC_KEY`] answers.
#[derive(Deserialize)]
struct KmsAnswer {
    pem: String,
}

/// A public key, verified through Kubewarden's `SigstorePubKeyVerify`.
#[derive(Debug)]
pub struct KeyAuthority {
    source: KeySource,
    annotations: Option<BTreeMap<String, String>>,
    format: SignatureFormat,
    /// `key.hashAlgorithm`.
    hash: HashAlgorithm,
    /// For `key.data`: the key's kind, read on first use (`None`: unreadable, refused by
    /// `check_material` first).
    kind: OnceCell<Option<KeyKind>>,
    /// For `key.data`: what follows the image in every request of this authority
    /// ([`PubKeyRequest::suffix`]), serialised on first use and then copied, not re-encoded.
    request_suffix: OnceCell<String>,
}

/// The JSON text of a `SigstorePubKeyVerify` request, byte for byte what `serde_json` writes for
/// the SDK's `SigstoreVerificationInputV2::SigstorePubKeyVerify` (fields `type`, `image`,
/// `pub_keys`, `annotations`, in that order), built from a part that depends on the image and
/// a part that does not.
struct PubKeyRequest;

impl PubKeyRequest {
    const PREFIX: &'static str = r#"{"type":"SigstorePubKeyVerify","image":"#;

    /// `,"pub_keys":[…],"annotations":…}` around `pem_json`, the key as the JSON string
    /// `serde_json` writes for it.
    fn suffix(pem_json: &str, annotations: Option<&BTreeMap<String, String>>) -> Result<String, String> {
        let mut text = String::with_capacity(pem_json.len() + 48);
        text.push_str(r#","pub_keys":["#);
        text.push_str(pem_json);
        text.push_str(r#"],"annotations":"#);
        match annotations {
            Some(annotations) => text
                .push_str(&serde_json::to_string(annotations).map_err(|e| format!("cannot encode the request: {e}"))?),
            None => text.push_str("null"),
        }
        text.push('}');
        Ok(text)
    }

    /// The whole request for `image`.
    /// (Strings pushed together into one allocation: no UTF-8 check of the whole text, ≈ 400
    /// bytes with its key.)
    fn text(image: &str, suffix: &str) -> String {
        let mut text = String::with_capacity(Self::PREFIX.len() + image.len() + 2 + suffix.len());
        text.push_str(Self::PREFIX);
        crate::answer::push_string(&mut text, image);
        text.push_str(suffix);
        text
    }
}

impl KeyAuthority {
    /// Parses the `key` block.
    pub fn parse(
        raw: RawKey<'_>,
        annotations: Option<BTreeMap<String, String>>,
        format: SignatureFormat,
    ) -> Result<Self, (String, String)> {
        if raw.secret_ref.is_some() {
            return Err((
                "key.secretRef".into(),
                "key.secretRef is not supported: a Kubewarden policy cannot read Secrets; paste the public key PEM into key.data".into(),
            ));
        }
        let hash = HashAlgorithm::parse(raw.hash_algorithm.as_deref())?;
        let source = match (raw.data.map(key_data), raw.kms) {
            (Some(_), Some(_)) => {
                return Err((
                    "key".into(),
                    "give key.data or key.kms, not both: only one key can be meant (policy-controller refuses both as well); remove data to resolve kms, or remove kms (`cip kms resolve` keeps the URI in an annotation)".into(),
                ));
            }
            (Some(KeyData::Pem(json)), None) => KeySource::Pem(json),
            (Some(KeyData::NotString), None) => {
                return Err((
                    "key.data".into(),
                    "key.data is not a string: paste the PEM public key (cosign.pub) as one string, BEGIN/END lines included".into(),
                ));
            }
            (Some(KeyData::NotPem), None) => {
                return Err((
                    "key.data".into(),
                    "key.data is not PEM: paste the content of cosign.pub, BEGIN/END lines included".into(),
                ));
            }
            (None, Some(kms)) if kms.trim().is_empty() => {
                return Err((
                    "key.kms".into(),
                    "key.kms is empty: give a KMS URI (awskms://, gcpkms://, azurekms://, hashivault://) or remove it"
                        .into(),
                ));
            }
            (None, Some(kms)) => {
                KeySource::Kms(KmsUri::parse(&kms).map_err(|e| ("key.kms".to_owned(), e.to_string()))?)
            }
            _ => {
                return Err((
                    "key.data".into(),
                    "key.data is required: paste the PEM public key (cosign.pub), or name the key with key.kms".into(),
                ));
            }
        };
        Ok(Self {
            source,
            annotations,
            format,
            hash,
            kind: OnceCell::new(),
            request_suffix: OnceCell::new(),
        })
    }

    /// The PEM to verify with: `key.data`, or the host's answer for `key.kms`.
    #[cfg(test)]
    fn public_key(&self, host: &mut dyn HostCalls) -> Result<String, String> {
        self.public_key_and_kind(host).map(|(pem, _)| pem)
    }

    /// [`KeyAuthority::public_key`] and its kind (`None` for a `key.data` `check_material`
    /// refuses).
    fn public_key_and_kind(&self, host: &mut dyn HostCalls) -> Result<(String, Option<KeyKind>), String> {
        let uri = match &self.source {
            KeySource::Pem(json) => return Ok((decode(json), self.data_kind(json))),
            KeySource::Kms(uri) => uri.to_string(),
        };
        let payload =
            serde_json::to_vec(&KmsRequest { uri: &uri }).map_err(|e| format!("cannot encode the request: {e}"))?;
        // Hint first: warnings are cut at 256 characters. cip's reasons name the URI.
        let answer = host.call(CIP_KMS_PUBLIC_KEY, &payload).map_err(|e| {
            format!(
                "key.kms needs host capability {CIP_KMS_PUBLIC_KEY} (on Kubewarden run `cip kms resolve` to fill key.data): {e}"
            )
        })?;
        let answer: KmsAnswer = serde_json::from_slice(&answer)
            .map_err(|e| format!("unreadable answer from host capability {CIP_KMS_PUBLIC_KEY}: {e}"))?;
        let kind = check_public_key(&answer.pem).map_err(|e| format!("the public key of {uri} is not usable: {e}"))?;
        Ok((answer.pem, Some(kind)))
    }

    /// The kind of `key.data` (`json`, its JSON string), read once: from its DER header when it
    /// shows one ([`header_kind`]), else by the full check.
    fn data_kind(&self, json: &str) -> Option<KeyKind> {
        *self
            .kind
            .get_or_init(|| header_kind(json).or_else(|| check_public_key(&decode(json)).ok()))
    }

    /// The key's kind when Kubewarden's `SigstorePubKeyVerify` would verify it with another
    /// hash than `key.hashAlgorithm`: the key's name and that hash.
    fn hash_mismatch(&self, kind: Option<KeyKind>) -> Option<(&'static str, HashAlgorithm)> {
        kind.and_then(stock_hash)
            .filter(|(stock, _)| *stock != self.hash)
            .map(|(stock, name)| (name, stock))
    }

    /// What to do when the host cannot verify with `key.hashAlgorithm`: run under `cip` (on a
    /// stock host, `older_cip` false), or upgrade it (a `cip` whose list of operations lacks
    /// [`CIP_VERIFY_KEY_WITH_HASH`]); or sign with the host's hash.
    fn hash_hint(&self, key: &str, stock: HashAlgorithm, older_cip: bool) -> String {
        let (hash, stock) = (self.hash.name(), stock.name());
        let (lacks, fix) = if older_cip {
            (", which this cip is too old to serve", "upgrade cip")
        } else {
            (" (cip only)", "run under cip")
        };
        format!(
            "key.hashAlgorithm {hash} with a {key} key needs host capability {CIP_VERIFY_KEY_WITH_HASH}{lacks}: Kubewarden's SigstorePubKeyVerify verifies {key} keys with {stock} only; {fix}, or sign with {stock} and set key.hashAlgorithm: {stock}"
        )
    }
}

impl KeyAuthority {
    /// Why an older `cip` (whose list of operations lacks
    /// [`CIP_VERIFY_ATTESTATIONS_WITH_HASH`]: it verifies attestations with `stock` only) is not
    /// asked for attestations with `key.hashAlgorithm`, and what to do.
    fn attestation_hash_hint(&self, key: &str, stock: HashAlgorithm) -> String {
        let (hash, stock) = (self.hash.name(), stock.name());
        format!(
            "attestations with key.hashAlgorithm {hash} and a {key} key need host capability {CIP_VERIFY_ATTESTATIONS_WITH_HASH}, which this cip is too old to serve (it verifies attestations of {key} keys with {stock} only): upgrade cip, or sign them with {stock} and set key.hashAlgorithm: {stock}"
        )
    }

    /// The `SigstorePubKeyVerify` request for `image` as JSON text.
    #[cfg(test)]
    fn request(&self, image: &ImageReference, host: &mut dyn HostCalls) -> Result<String, String> {
        self.request_and_kind(image, host).map(|(request, _)| request)
    }

    /// The `SigstorePubKeyVerify` request for `image` as JSON text, and the key's kind.
    fn request_and_kind(
        &self,
        image: &ImageReference,
        host: &mut dyn HostCalls,
    ) -> Result<(String, Option<KeyKind>), String> {
        let target = image.verification_target();
        let annotations = self.annotations.as_ref();
        match &self.source {
            KeySource::Pem(json) => {
                let suffix = match self.request_suffix.get() {
                    Some(suffix) => suffix,
                    None => {
                        let suffix = PubKeyRequest::suffix(json, annotations)?;
                        self.request_suffix.get_or_init(|| suffix)
                    }
                };
                Ok((PubKeyRequest::text(&target, suffix), self.data_kind(json)))
            }
            // The key can change between calls (rotation in the KMS): encoded each time.
            KeySource::Kms(_) => {
                let (pem, kind) = self.public_key_and_kind(host)?;
                let mut json = String::new();
                crate::answer::push_string(&mut json, &pem);
                Ok((
                    PubKeyRequest::text(&target, &PubKeyRequest::suffix(&json, annotations)?),
                    kind,
                ))
            }
        }
    }

    /// `request` verified by [`CIP_VERIFY_KEY_WITH_HASH`] with `key.hashAlgorithm`, the
    /// signatures read where `signatureFormat` says. A host that does not list it among its
    /// operations (a stock Kubewarden host, an older `cip`) is not asked: refused with why and
    /// what to do (it would verify with `stock`).
    fn verify_with_hash(
        &self,
        host: &mut dyn HostCalls,
        request: &str,
        key: &str,
        stock: HashAlgorithm,
    ) -> Result<Verified, String> {
        let offered = host.operations();
        if !offered.key_with_hash {
            return Err(self.hash_hint(key, stock, !offered.lists_none()));
        }
        let format = match self.format {
            SignatureFormat::Both => "any",
            SignatureFormat::Legacy => "legacy",
            SignatureFormat::Bundle => "bundle",
        };
        let mut payload = String::with_capacity(request.len() + 64);
        payload.push_str(r#"{"signature_format":""#);
        payload.push_str(format);
        payload.push_str(r#"","hash_algorithm":""#);
        payload.push_str(self.hash.name());
        payload.push_str(r#"","request":"#);
        payload.push_str(request);
        payload.push('}');
        // The payload goes to the capability as it is, its answer read as a verification's.
        verify_formats_json(host, CIP_VERIFY_KEY_WITH_HASH, "v2", &payload, SignatureFormat::Legacy)
    }
}

impl Check for KeyAuthority {
    fn verify(&self, image: &ImageReference, host: &mut dyn HostCalls) -> Result<Option<String>, String> {
        let (request, kind) = self.request_and_kind(image, host)?;
        let verified = match self.hash_mismatch(kind) {
            None => verify_formats_json(host, KUBEWARDEN_VERIFY_V2, "v2", &request, self.format),
            Some((key, stock)) => self.verify_with_hash(host, &request, key, stock),
        };
        verified.map(|verified| Some(verified.digest)).map_err(|mut e| {
            // Most failures are a rotated-out key before the current one, and the message
            // is then dropped: no formatting machinery for it (docs/benchmarks.md).
            e.insert_str(0, "no signature verified by the key: ");
            e
        })
    }

    fn attestation_requests(
        &self,
        image: &ImageReference,
        host: &mut dyn HostCalls,
    ) -> Result<Vec<(String, super::attestations::SignerRequest)>, String> {
        let (pem, kind) = self.public_key_and_kind(host)?;
        let request = SigstoreVerificationInputV2::SigstorePubKeyVerify {
            image: image.verification_target().into_owned(),
            pub_keys: vec![pem],
            annotations: None,
        };
        // `verify_attestations` verifies with the hash sigstore-rs picks from the key; another
        // one is not asked of a `cip` that does not list `verify_attestations_with_hash` (an
        // older one). A stock host, which lists nothing, verifies no attestation: its refusal
        // names the capability and says to run under `cip` (`attestations::verify`).
        let signer = match self.hash_mismatch(kind) {
            None => super::attestations::SignerRequest::V2Verify(request),
            Some((key, stock)) => {
                let offered = host.operations();
                if !offered.attestations_with_hash && !offered.lists_none() {
                    return Err(self.attestation_hash_hint(key, stock));
                }
                super::attestations::SignerRequest::KeyWithHash {
                    request,
                    hash_algorithm: self.hash.name(),
                }
            }
        };
        Ok(vec![("the key".to_owned(), signer)])
    }

    fn check_material(&self) -> Result<(), (String, String)> {
        check_annotations(&self.annotations)?;
        match &self.source {
            KeySource::Pem(json) => match check_public_key(&decode(json)) {
                // sigstore's PKCS#1 v1.5 verifier, policy-controller's for RSA keys, refuses
                // SHA-224 (a `key.kms` RSA key is refused by cip's verification the same way).
                Ok(KeyKind::Rsa { .. }) if self.hash == HashAlgorithm::Sha224 => Err((
                    "key.hashAlgorithm".into(),
                    "hashAlgorithm sha224 with an RSA key verifies nothing (sigstore's PKCS#1 v1.5 verifier, which policy-controller uses, refuses it): write sha256, sha384 or sha512".into(),
                )),
                Ok(_) => Ok(()),
                Err(e) => Err(("key.data".into(), e)),
            },
            // Only the host can reach the KMS; the URI's syntax was checked by `parse`.
            KeySource::Kms(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sdk_request(image: &str, pem: &str, annotations: Option<BTreeMap<String, String>>) -> String {
        serde_json::to_string(&SigstoreVerificationInputV2::SigstorePubKeyVerify {
            image: image.to_owned(),
            pub_keys: vec![pem.to_owned()],
            annotations,
        })
        .unwrap()
    }

    /// `{"data": <json>}` read as the settings are.
    fn raw_key(json: &str) -> RawKey<'static> {
        serde_json::from_str(format!(r#"{{"data":{json}}}"#).leak()).unwrap()
    }

    /// `s` as a JSON string, each character written as it is or, where `escape` says, as a
    /// `\u` escape (a surrogate pair beyond the first plane) or `\/`: the spellings of one key.
    fn spelled(s: &str, escape: &[bool]) -> String {
        let canonical = serde_json::to_string(&s.to_string()).unwrap();
        let inner: Vec<char> = serde_json::from_str::<String>(&canonical).unwrap().chars().collect();
        let mut out = String::from("\"");
        for (i, c) in inner.iter().enumerate() {
            if escape.get(i).copied().unwrap_or(false) {
                if *c == '/' {
                    out.push_str("\\/");
                } else {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04X}"));
                    }
                }
            } else {
                // The character as `serde_json` writes it.
                let one = serde_json::to_string(&c.to_string()).unwrap();
                out.push_str(&one[1..one.len() - 1]);
            }
        }
        out.push('"');
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// However `key.data` is spelled in the settings, the key read is the key written: a PEM
        /// key goes to the host as the JSON string `serde_json` writes for it (what the SDK's
        /// request carries), and decodes to the key; anything else is refused as before.
        #[test]
        fn a_key_is_sent_as_serde_json_writes_it(
            key in "\\PC{0,40}|[ \n\t\"\\\\/\u{0}-\u{1f}é😀]{0,12}|-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n\r\t\"\\\\\u{1}\u{8}\u{c}é]{0,80}\n-----END PUBLIC KEY-----\n",
            escape in proptest::collection::vec(proptest::bool::weighted(0.2), 0..160),
        ) {
            let json = spelled(&key, &escape);
            prop_assert_eq!(serde_json::from_str::<String>(&json).unwrap(), key.clone());
            let parsed = KeyAuthority::parse(raw_key(&json), None, SignatureFormat::Legacy);
            let expected_field = |(field, _): (String, String)| field;
            if key.trim().is_empty() {
                prop_assert_eq!(parsed.map_err(expected_field).err(), Some("key.data".to_owned()));
            } else if !key.contains("-----BEGIN") {
                let message = parsed.err().map(|(_, m)| m).unwrap_or_default();
                prop_assert!(message.starts_with("key.data is not PEM"), "{}", message);
            } else {
                let authority = parsed.unwrap();
                let image = ImageReference::parse("r.io/app:v1").unwrap();
                let mut host = crate::host::mock::MockHost::failing();
                prop_assert_eq!(authority.request(&image, &mut host).unwrap(), sdk_request("r.io/app:v1", &key, None));
                prop_assert_eq!(authority.public_key(&mut host).unwrap(), key);
            }
        }

        /// The request built from parts is the request the SDK's type serialises to, byte for
        /// byte: hosts (and cip's answer cache, keyed by payload) see no difference.
        #[test]
        fn requests_are_what_the_sdk_writes(
            image in "\\PC{0,40}|[\"\\\\\u{0}-\u{1f}]{0,8}",
            pem in "\\PC{0,60}|-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]{0,80}\n-----END PUBLIC KEY-----\n",
            annotations in proptest::option::of(proptest::collection::btree_map("\\PC{0,8}", "[\\PC\"\\\\\n]{0,8}", 0..4)),
        ) {
            let suffix = PubKeyRequest::suffix(&serde_json::to_string(&pem).unwrap(), annotations.as_ref()).unwrap();
            prop_assert_eq!(PubKeyRequest::text(&image, &suffix), sdk_request(&image, &pem, annotations));
        }
    }

    fn pem_of(der: &[u8]) -> String {
        pem::encode(&pem::Pem::new("PUBLIC KEY", der))
    }

    fn p384_pem() -> String {
        use p384::pkcs8::EncodePublicKey;
        let key = p384::ecdsa::SigningKey::from_slice(&[5; 48]).unwrap();
        pem_of(key.verifying_key().to_public_key_der().unwrap().as_bytes())
    }

    fn p256_pem() -> String {
        use p256::pkcs8::EncodePublicKey;
        let key = p256::ecdsa::SigningKey::from_slice(&[5; 32]).unwrap();
        pem_of(key.verifying_key().to_public_key_der().unwrap().as_bytes())
    }

    fn with_hash(pem: &str, hash: Option<&str>) -> Result<KeyAuthority, (String, String)> {
        let mut raw = raw_key(&serde_json::to_string(pem).unwrap());
        raw.hash_algorithm = hash.map(str::to_owned);
        KeyAuthority::parse(raw, None, SignatureFormat::Legacy)
    }

    /// policy-controller's names are accepted (trimmed, any case); others are refused naming
    /// the field and what to write.
    #[test]
    fn hash_algorithms_are_policy_controllers() {
        for (text, hash) in [
            (None, HashAlgorithm::Sha256),
            (Some(""), HashAlgorithm::Sha256),
            (Some("sha224"), HashAlgorithm::Sha224),
            (Some("sha256"), HashAlgorithm::Sha256),
            (Some(" SHA384 "), HashAlgorithm::Sha384),
            (Some("sha512"), HashAlgorithm::Sha512),
        ] {
            assert_eq!(with_hash(&p384_pem(), text).unwrap().hash, hash, "{text:?}");
        }
        let (field, message) = with_hash(&p384_pem(), Some("sha1")).unwrap_err();
        assert_eq!(field, "key.hashAlgorithm");
        assert!(
            message.starts_with("hashAlgorithm sha1 is unknown: write sha256"),
            "{message}"
        );
    }

    /// Found by a review: sigstore's PKCS#1 v1.5 verifier (policy-controller's for RSA keys)
    /// refuses SHA-224, so an RSA `key.data` with `hashAlgorithm: sha224` is refused at load.
    #[test]
    fn an_rsa_key_with_sha224_is_refused_at_load() {
        use crate::crypto::tests::RSA2048_PEM;
        let (field, message) = with_hash(RSA2048_PEM, Some("sha224"))
            .unwrap()
            .check_material()
            .unwrap_err();
        assert_eq!(field, "key.hashAlgorithm");
        assert!(message.contains("write sha256, sha384 or sha512"), "{message}");
        for hash in [None, Some("sha384"), Some("sha512")] {
            assert_eq!(
                with_hash(RSA2048_PEM, hash).unwrap().check_material(),
                Ok(()),
                "{hash:?}"
            );
        }
        // An ECDSA key takes SHA-224 (sigstore's ECDSA verifier does).
        assert_eq!(with_hash(&p384_pem(), Some("sha224")).unwrap().check_material(), Ok(()));
    }

    /// The capability each key and hash is verified through: Kubewarden's when sigstore-rs
    /// hashes the key as `hashAlgorithm` says, ours (carrying the hash) otherwise.
    #[test]
    fn a_hash_the_stock_host_would_not_use_goes_to_our_capability() {
        let image = ImageReference::parse("r.io/app:v1").unwrap();
        for (pem, hash, ours) in [
            (p256_pem(), None, false),
            (p256_pem(), Some("sha384"), true),
            (p384_pem(), None, true),
            (p384_pem(), Some("sha256"), true),
            (p384_pem(), Some("sha384"), false),
            (p384_pem(), Some("sha512"), true),
        ] {
            let authority = with_hash(&pem, hash).unwrap();
            let mut host = crate::host::mock::MockHost::cip(|_, _| {
                crate::host::mock::trusted(&format!("sha256:{}", "1".repeat(64)))
            });
            authority.verify(&image, &mut host).unwrap();
            let (capability, payload) = &host.calls[0];
            if ours {
                assert_eq!(*capability, CIP_VERIFY_KEY_WITH_HASH, "{hash:?}");
                assert_eq!(payload["hash_algorithm"], hash.unwrap_or("sha256"));
                assert_eq!(payload["signature_format"], "legacy");
                assert_eq!(payload["request"]["pub_keys"][0], pem.as_str());
            } else {
                assert_eq!(*capability, KUBEWARDEN_VERIFY_V2, "{hash:?}");
            }
        }
    }

    /// A stock host cannot verify a P-384 key with sha256: refused, saying why and what to do.
    #[test]
    fn a_stock_host_refuses_a_hash_it_cannot_verify_with() {
        let image = ImageReference::parse("r.io/app:v1").unwrap();
        let authority = with_hash(&p384_pem(), None).unwrap();
        let mut host = crate::host::mock::MockHost::new(|_, _| Err("unknown binding: cluster-image-policy".to_owned()));
        let message = authority.verify(&image, &mut host).unwrap_err();
        assert!(
            message.contains("key.hashAlgorithm sha256 with a P-384 key needs host capability cluster-image-policy/oci/v1/verify_key_with_hash (cip only): Kubewarden's SigstorePubKeyVerify verifies P-384 keys with sha384 only; run under cip"),
            "{message}"
        );
        // Only the list of operations was asked (and refused).
        assert!(host.calls.is_empty(), "{:?}", host.calls);
    }

    /// Found by a review: a `cip` older than `verify_key_with_hash` (it lists bundles, not
    /// that operation) is not asked it, and the authority is refused with the hint to upgrade,
    /// not the host's unknown-operation error.
    #[test]
    fn an_older_cip_is_not_asked_for_a_hash_and_says_to_upgrade() {
        let image = ImageReference::parse("r.io/app:v1").unwrap();
        let authority = with_hash(&p384_pem(), None).unwrap();
        let mut host = crate::host::mock::MockHost::new(|capability, _| {
            if capability == CIP_VERIFY_KEY_WITH_HASH {
                Err("unknown operation: v1/verify_key_with_hash".to_owned())
            } else {
                crate::host::mock::trusted(&format!("sha256:{}", "1".repeat(64)))
            }
        })
        .listing(r#"{"operations":["host/v1/operations","kms/v1/public_key","oci/v1/verify_keyless_regexp","oci/v1/verify_legacy_then_bundle","oci/v1/verify_with_format"]}"#);
        let message = authority.verify(&image, &mut host).unwrap_err();
        assert_eq!(
            message,
            "no signature verified by the key: key.hashAlgorithm sha256 with a P-384 key needs host capability cluster-image-policy/oci/v1/verify_key_with_hash, which this cip is too old to serve: Kubewarden's SigstorePubKeyVerify verifies P-384 keys with sha384 only; upgrade cip, or sign with sha384 and set key.hashAlgorithm: sha384"
        );
        assert!(host.calls.is_empty(), "{:?}", host.calls);
        assert_eq!(host.unrecorded, [crate::host::CIP_HOST_OPERATIONS]);
    }

    #[test]
    fn a_key_authority_sends_the_sdk_request() {
        let pem = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        let annotations = BTreeMap::from([("env".to_owned(), "prod".to_owned())]);
        let authority = KeyAuthority::parse(
            raw_key(&serde_json::to_string(pem).unwrap()),
            Some(annotations.clone()),
            SignatureFormat::Legacy,
        )
        .unwrap();
        let image = ImageReference::parse("r.io/app:v1").unwrap();
        let mut host = crate::host::mock::MockHost::failing();
        for _ in 0..2 {
            assert_eq!(
                authority.request(&image, &mut host).unwrap(),
                sdk_request("r.io/app:v1", pem, Some(annotations.clone()))
            );
        }
    }
}
