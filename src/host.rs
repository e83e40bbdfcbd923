//! Calls from the module to its host (Kubewarden's policy-evaluator, or `cip`).
//!
//! Everything that touches a registry goes through [`HostCalls`]; tests substitute a mock, the
//! module uses [`WapcHost`]. [`Memo`] makes sure one evaluation asks the host once per distinct
//! question, however many containers, policies and authorities ask it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

use kubewarden_policy_sdk::host_capabilities::verification::VerificationResponse;
use serde::Serialize;

use crate::reference::check_digest_owned;

/// Binding, namespace and operation of one host capability.
#[derive(Clone, Copy, Debug, Eq)]
pub struct Capability {
    pub binding: &'static str,
    pub namespace: &'static str,
    pub operation: &'static str,
}

/// Equal names, as the derive compares them; the same constant's names are usually the same
/// string in the module, found equal without comparing their bytes (the per-evaluation memo
/// looks its capability up on every host call: three `memcmp`s each before).
impl PartialEq for Capability {
    fn eq(&self, other: &Self) -> bool {
        let same = |a: &str, b: &str| std::ptr::eq(a, b) || crate::ascii::same(a.as_bytes(), b.as_bytes());
        same(self.operation, other.operation)
            && same(self.namespace, other.namespace)
            && same(self.binding, other.binding)
    }
}

/// As the derive hashes: consistent with [`PartialEq`], which compares the same names.
impl std::hash::Hash for Capability {
    fn hash<S: std::hash::Hasher>(&self, state: &mut S) {
        self.binding.hash(state);
        self.namespace.hash(state);
        self.operation.hash(state);
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.binding, self.namespace, self.operation)
    }
}

/// Kubewarden's sigstore verification (`kubewarden`/`oci`/`v2/verify`).
pub const KUBEWARDEN_VERIFY_V2: Capability = Capability {
    binding: "kubewarden",
    namespace: "oci",
    operation: "v2/verify",
};

/// Kubewarden's manifest look-up (`kubewarden`/`oci`/`v1/oci_manifest`): the module reads the
/// signature manifest through it to check that keyless layers are bound (`authority::binding`),
/// and the image index of a multi-platform image for `fetchConfigFile` (`policy::config_file`).
pub const KUBEWARDEN_OCI_MANIFEST: Capability = Capability {
    binding: "kubewarden",
    namespace: "oci",
    operation: "v1/oci_manifest",
};

/// Kubewarden's digest look-up (`kubewarden`/`oci`/`v1/manifest_digest`, answering
/// `{"digest": …}`): what a tag names, when only static authorities passed and
/// `fetchConfigFile` must read the image (`policy::config_file`), so that the image is read, and
/// then pinned, at one digest.
pub const KUBEWARDEN_MANIFEST_DIGEST: Capability = Capability {
    binding: "kubewarden",
    namespace: "oci",
    operation: "v1/manifest_digest",
};

/// Kubewarden's image config look-up (`kubewarden`/`oci`/`v1/oci_manifest_config`): the image
/// manifest, its digest and its config; at an index, the host picks its own platform's manifest.
/// Read for `spec.policy.fetchConfigFile` (`policy::config_file`), with
/// [`KUBEWARDEN_OCI_MANIFEST`] for the manifests of a multi-platform image.
pub const KUBEWARDEN_OCI_MANIFEST_CONFIG: Capability = Capability {
    binding: "kubewarden",
    namespace: "oci",
    operation: "v1/oci_manifest_config",
};

/// Our keyless verification with regular expressions, implemented by `cip` only.
pub const CIP_VERIFY_KEYLESS_REGEXP: Capability = Capability {
    binding: "cluster-image-policy",
    namespace: "oci",
    operation: "v1/verify_keyless_regexp",
};

/// Our attestation verification (cosign's `.att` DSSE envelopes), implemented by `cip` only.
pub const CIP_VERIFY_ATTESTATIONS: Capability = Capability {
    binding: "cluster-image-policy",
    namespace: "oci",
    operation: "v1/verify_attestations",
};

/// The public key behind a `key.kms` URI, implemented by `cip` only (`docs/kms.md`).
pub const CIP_KMS_PUBLIC_KEY: Capability = Capability {
    binding: "cluster-image-policy",
    namespace: "kms",
    operation: "v1/public_key",
};

/// Our verification reading a chosen signature storage (cosign v3 bundles), implemented by `cip`
/// only.
pub const CIP_VERIFY_WITH_FORMAT: Capability = Capability {
    binding: "cluster-image-policy",
    namespace: "oci",
    operation: "v1/verify_with_format",
};

/// Our verification of both signature storages in one call, for an authority without
/// `signatureFormat`: the legacy `.sig` tag, then cosign v3 bundles when the tag verified
/// nothing, answered with which one verified or each one's reason (the two calls
/// [`KUBEWARDEN_VERIFY_V2`] and [`CIP_VERIFY_WITH_FORMAT`] in one). `cip` only; asked once the
/// host is known to serve it, so that a rotated-out key costs one call an image, not two.
pub const CIP_VERIFY_LEGACY_THEN_BUNDLE: Capability = Capability {
    binding: "cluster-image-policy",
    namespace: "oci",
    operation: "v1/verify_legacy_then_bundle",
};

/// Our verification of a `SigstorePubKeyVerify` with a chosen hash (`key.hashAlgorithm`),
/// implemented by `cip` only; asked only from a host that lists it ([`HostOperations`]).
pub const CIP_VERIFY_KEY_WITH_HASH: Capability = Capability {
    binding: "cluster-image-policy",
    namespace: "oci",
    operation: "v1/verify_key_with_hash",
};

/// Our verification of attestations of a `key` with a chosen hash (`key.hashAlgorithm`): the
/// payload of [`CIP_VERIFY_ATTESTATIONS`] and a `hash_algorithm`, implemented by `cip` only;
/// asked only from a host that lists it ([`HostOperations`]).
pub const CIP_VERIFY_ATTESTATIONS_WITH_HASH: Capability = Capability {
    binding: "cluster-image-policy",
    namespace: "oci",
    operation: "v1/verify_attestations_with_hash",
};

/// The list of our operations a host serves, implemented by `cip` only: asked once per
/// evaluation, and only when an authority without `signatureFormat` failed on the legacy tag or
/// a key needs [`CIP_VERIFY_KEY_WITH_HASH`] or [`CIP_VERIFY_ATTESTATIONS_WITH_HASH`], so that a
/// stock host is not asked for bundles by every failing authority (docs/wire-protocol.md).
pub const CIP_HOST_OPERATIONS: Capability = Capability {
    binding: "cluster-image-policy",
    namespace: "host",
    operation: "v1/operations",
};

/// Where an authority's signatures are read (`signatureFormat`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SignatureFormat {
    /// No `signatureFormat`: the legacy `.sig` tag, then cosign v3 bundles (cip only).
    #[default]
    Both,
    /// `legacy`: the `.sig` tag only.
    Legacy,
    /// `bundle`: sigstore bundles attached as OCI referrers only (cip only).
    Bundle,
}

/// How a host reads cosign v3 bundles, from the list of our operations it serves
/// ([`CIP_HOST_OPERATIONS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BundleReading {
    /// Not at all: a stock Kubewarden host.
    No,
    /// One storage a call ([`CIP_VERIFY_WITH_FORMAT`]).
    ByFormat,
    /// Also both storages in one call ([`CIP_VERIFY_LEGACY_THEN_BUNDLE`]).
    InOneCall,
}

/// Those of our operations a host serves that the module asks only once it knows the host
/// serves them, read from the answer of [`CIP_HOST_OPERATIONS`] (all `false`: a stock host).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostOperations {
    /// [`CIP_VERIFY_WITH_FORMAT`].
    pub with_format: bool,
    /// [`CIP_VERIFY_LEGACY_THEN_BUNDLE`].
    pub legacy_then_bundle: bool,
    /// [`CIP_VERIFY_KEY_WITH_HASH`].
    pub key_with_hash: bool,
    /// [`CIP_VERIFY_ATTESTATIONS_WITH_HASH`].
    pub attestations_with_hash: bool,
}

impl HostOperations {
    /// How the host reads cosign v3 bundles. The one-call operation counts only beside
    /// [`CIP_VERIFY_WITH_FORMAT`] (the first failing key of an evaluation still asks for
    /// bundles alone).
    pub fn bundle_reading(self) -> BundleReading {
        match (self.with_format, self.legacy_then_bundle) {
            (false, _) => BundleReading::No,
            (true, false) => BundleReading::ByFormat,
            (true, true) => BundleReading::InOneCall,
        }
    }

    /// Whether the host lists none of them: a stock host, or one that could not answer.
    pub fn lists_none(self) -> bool {
        self == Self::default()
    }
}

/// A digest the host verified; `bundle` when a sigstore bundle verified it (the host bound it to
/// the image itself: there is no `.sig` layer for the module to check).
pub struct Verified {
    pub digest: String,
    pub bundle: bool,
}

/// Said, for an authority without `signatureFormat`, when the host does not read bundles.
pub const NO_BUNDLES_HINT: &str =
    "cosign v3 bundles are read by cip only: this host lacks cluster-image-policy/oci/v1/verify_with_format";

/// What to do on a stock host, said when a bundle could not be verified.
pub const BUNDLE_HINT: &str = "cosign v3 bundles (OCI referrers) need the host capability cluster-image-policy/oci/v1/verify_with_format, which only cip implements; for stock Kubewarden sign with cosign's legacy format (cosign sign --new-bundle-format=false --use-signing-config=false)";

/// Verifies `request` (the payload of `capability`, `kind` naming it in a
/// [`CIP_VERIFY_WITH_FORMAT`] request: `v2` or `keyless_regexp`) where `format` says.
pub fn verify_formats(
    host: &mut dyn HostCalls,
    capability: Capability,
    kind: &str,
    request: &impl Serialize,
    format: SignatureFormat,
) -> Result<Verified, String> {
    let request = serde_json::to_string(request).map_err(|e| format!("cannot encode the request: {e}"))?;
    verify_formats_json(host, capability, kind, &request, format)
}

/// [`verify_formats`] with the request already serialised (`request` is one JSON value, as
/// written by `serde_json`): the legacy call sends it as is, the bundle call wraps the same
/// text.
pub fn verify_formats_json(
    host: &mut dyn HostCalls,
    capability: Capability,
    kind: &str,
    request: &str,
    format: SignatureFormat,
) -> Result<Verified, String> {
    let bundle = |host: &mut dyn HostCalls| {
        verify_payload(host, CIP_VERIFY_WITH_FORMAT, &with_format("bundle", kind, request))
            .map(|digest| Verified { digest, bundle: true })
    };
    let legacy = |host: &mut dyn HostCalls| verify_payload(host, capability, request.as_bytes());
    match format {
        SignatureFormat::Legacy => legacy(host).map(|digest| Verified { digest, bundle: false }),
        SignatureFormat::Bundle => bundle(host).map_err(|e| format!("{e} (signatureFormat: bundle: {BUNDLE_HINT})")),
        // A host known to serve both storages in one call is asked once; otherwise the legacy
        // tag first, and bundles only from a host found to read them (asked after the first
        // failure: a stock host is never asked for bundles, and an evaluation where every first
        // authority verifies asks nothing more).
        SignatureFormat::Both if host.known_bundle_reading() == Some(BundleReading::InOneCall) => {
            legacy_then_bundle(host, kind, request)
        }
        SignatureFormat::Both => match legacy(host) {
            Ok(digest) => Ok(Verified { digest, bundle: false }),
            Err(legacy) => match host.bundle_reading() {
                BundleReading::No => Err([&legacy, " (", NO_BUNDLES_HINT, ")"].concat()),
                BundleReading::ByFormat | BundleReading::InOneCall => {
                    bundle(host).map_err(|e| both_failed(&legacy, &e))
                }
            },
        },
    }
}

/// The reason of an authority without `signatureFormat` that neither storage verified, the
/// same whether one call or two found it. Joined without the formatting machinery: a
/// rotated-out key fails here on every evaluation, and the message is usually dropped (another
/// authority passes).
fn both_failed(legacy: &str, bundle: &str) -> String {
    [legacy, " (cosign v3 bundles, read by cip only: ", bundle, ")"].concat()
}

/// The answer of [`CIP_VERIFY_LEGACY_THEN_BUNDLE`] (`cip`'s `LegacyThenBundle`):
/// `{"legacy":"<digest>"}`, `{"bundle":"<digest>"}` or `{"unverified":["<legacy reason>","<bundle reason>"]}`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum LegacyThenBundle<'a> {
    Legacy(String),
    Bundle(String),
    Unverified(#[serde(borrow)] Cow<'a, str>, #[serde(borrow)] Cow<'a, str>),
}

/// [`CIP_VERIFY_LEGACY_THEN_BUNDLE`] of `request` (of kind `kind`). A `Legacy` answer leaves the
/// module's own check of the `.sig` layers to do (`bundle: false`), as after the legacy call.
fn legacy_then_bundle(host: &mut dyn HostCalls, kind: &str, request: &str) -> Result<Verified, String> {
    let capability = CIP_VERIFY_LEGACY_THEN_BUNDLE;
    let mut payload = Vec::with_capacity(request.len() + kind.len() + 6);
    push_request_of_kind(&mut payload, kind, request);
    let answer = host.call(capability, &payload)?;
    let answer: LegacyThenBundle<'_> = serde_json::from_slice(&answer)
        .map_err(|e| format!("unreadable answer from host capability {capability}: {e}"))?;
    let (digest, bundle) = match answer {
        LegacyThenBundle::Legacy(digest) => (digest, false),
        LegacyThenBundle::Bundle(digest) => (digest, true),
        LegacyThenBundle::Unverified(legacy, bundle) => return Err(both_failed(&legacy, &bundle)),
    };
    Ok(Verified {
        digest: usable_digest(capability, digest)?,
        bundle,
    })
}

/// The payload of [`CIP_VERIFY_WITH_FORMAT`]: `{"signature_format":…,"request":{kind:…}}`
/// around a request already serialised, byte for byte what `serde_json` writes for it.
fn with_format(signature_format: &str, kind: &str, request: &str) -> Vec<u8> {
    let mut payload = Vec::with_capacity(request.len() + kind.len() + signature_format.len() + 40);
    payload.extend_from_slice(b"{\"signature_format\":");
    // Strings serialise infallibly.
    let _ = serde_json::to_writer(&mut payload, signature_format);
    payload.extend_from_slice(b",\"request\":");
    push_request_of_kind(&mut payload, kind, request);
    payload.push(b'}');
    payload
}

/// Appends `{kind: request}` (`request` already serialised) to `payload`, as `serde_json`
/// writes it.
fn push_request_of_kind(payload: &mut Vec<u8>, kind: &str, request: &str) {
    payload.push(b'{');
    // Strings serialise infallibly.
    let _ = serde_json::to_writer(&mut *payload, kind);
    payload.push(b':');
    payload.extend_from_slice(request.as_bytes());
    payload.push(b'}');
}

/// The host side of the module.
pub trait HostCalls {
    /// Performs one host call; `Err` carries the host's reason.
    fn call(&mut self, capability: Capability, payload: &[u8]) -> Result<Vec<u8>, String>;

    /// Which of our operations the host serves: asked through [`CIP_HOST_OPERATIONS`]
    /// ([`Memo`] asks once per evaluation).
    fn operations(&mut self) -> HostOperations {
        ask_operations(self)
    }

    /// [`HostCalls::operations`] when it is known without a call (asked earlier in this
    /// evaluation, or by a warm instance); `None` when it would have to be asked.
    fn known_operations(&self) -> Option<HostOperations> {
        None
    }

    /// How the host reads cosign v3 bundles ([`HostCalls::operations`]).
    fn bundle_reading(&mut self) -> BundleReading {
        self.operations().bundle_reading()
    }

    /// [`HostCalls::bundle_reading`] when it is known without a call
    /// ([`HostCalls::known_operations`]).
    fn known_bundle_reading(&self) -> Option<BundleReading> {
        self.known_operations().map(HostOperations::bundle_reading)
    }
}

impl<H: HostCalls + ?Sized> HostCalls for &mut H {
    fn call(&mut self, capability: Capability, payload: &[u8]) -> Result<Vec<u8>, String> {
        (**self).call(capability, payload)
    }

    fn operations(&mut self) -> HostOperations {
        (**self).operations()
    }

    fn known_operations(&self) -> Option<HostOperations> {
        (**self).known_operations()
    }
}

/// The answer of [`CIP_HOST_OPERATIONS`]: `{"operations": ["oci/v1/verify_with_format", …]}`,
/// each operation of the `cluster-image-policy` binding as `<namespace>/<operation>` (borrowed
/// from the answer; a name with an escape decoded, so that one entry the module does not know
/// never makes it read the whole list as none).
#[derive(serde::Deserialize)]
struct Operations<'a> {
    #[serde(borrow)]
    operations: Vec<Cow<'a, str>>,
}

/// Asks `host` which of the operations of [`HostOperations`] it serves. A failed call (a stock
/// host: unknown binding) or an unreadable answer means none; an operation the answer does not
/// list is not served: a fact the host states, never read from an error's text.
fn ask_operations(host: &mut (impl HostCalls + ?Sized)) -> HostOperations {
    let mut offered = HostOperations::default();
    let Ok(answer) = host.call(CIP_HOST_OPERATIONS, b"{}") else {
        return offered;
    };
    let Ok(list) = serde_json::from_slice::<Operations<'_>>(&answer) else {
        return offered;
    };
    // Each listed name once, against the four names of the `oci` namespace.
    for listed in &list.operations {
        let Some(operation) = listed
            .strip_prefix(CIP_VERIFY_WITH_FORMAT.namespace)
            .and_then(|rest| rest.strip_prefix('/'))
        else {
            continue;
        };
        let flag = if operation == CIP_VERIFY_WITH_FORMAT.operation {
            &mut offered.with_format
        } else if operation == CIP_VERIFY_LEGACY_THEN_BUNDLE.operation {
            &mut offered.legacy_then_bundle
        } else if operation == CIP_VERIFY_KEY_WITH_HASH.operation {
            &mut offered.key_with_hash
        } else if operation == CIP_VERIFY_ATTESTATIONS_WITH_HASH.operation {
            &mut offered.attestations_with_hash
        } else {
            continue;
        };
        *flag = true;
    }
    offered
}

/// The real host, reached through waPC.
pub struct WapcHost;

thread_local! {
    /// Which of our operations this instance's host was found to serve: a host that lists any
    /// is kept for the instance's life (its host never changes); one that lists none is asked
    /// again by the next evaluation.
    static OPERATIONS: std::cell::Cell<Option<HostOperations>> = const { std::cell::Cell::new(None) };
}

impl HostCalls for WapcHost {
    fn operations(&mut self) -> HostOperations {
        OPERATIONS.get().unwrap_or_else(|| {
            let offered = ask_operations(self);
            if !offered.lists_none() {
                OPERATIONS.set(Some(offered));
            }
            offered
        })
    }

    fn known_operations(&self) -> Option<HostOperations> {
        OPERATIONS.get()
    }

    /// One waPC host call, made through waPC's imports as `wapc_guest::host_call` makes it, but
    /// reading a failing call's reason as the host's bytes: `wapc_guest`'s error keeps them
    /// private behind `Display` (`Host error: <reason>`, then stripped of its prefix), which
    /// cost ≈ 3,000 instructions a failing call, 7 % of a warm evaluation under the article's
    /// key rotation on `cip` (20 failing calls; docs/benchmarks.md, eighteenth pass). The
    /// reason is the same text: the host's bytes, invalid UTF-8 replaced as `Display` did.
    fn call(&mut self, capability: Capability, payload: &[u8]) -> Result<Vec<u8>, String> {
        let Capability {
            binding,
            namespace,
            operation,
        } = capability;
        // SAFETY: each pointer and length is those of a live slice, which the host only reads
        // (waPC's `__host_call`).
        let succeeded = unsafe {
            wapc::__host_call(
                binding.as_ptr(),
                binding.len(),
                namespace.as_ptr(),
                namespace.len(),
                operation.as_ptr(),
                operation.len(),
                payload.as_ptr(),
                payload.len(),
            )
        } == 1;
        // SAFETY: the host writes exactly the length it gives of its answer (or of its reason)
        // at the pointer it is handed, here a buffer with that capacity, which then holds as many
        // initialised bytes (waPC's protocol; wapc_guest::host_call relies on the same).
        let bytes = unsafe {
            let len = if succeeded {
                wapc::__host_response_len()
            } else {
                wapc::__host_error_len()
            };
            let mut buf = Vec::with_capacity(len);
            if succeeded {
                wapc::__host_response(buf.as_mut_ptr());
            } else {
                wapc::__host_error(buf.as_mut_ptr());
            }
            buf.set_len(len);
            buf
        };
        if succeeded {
            Ok(bytes)
        } else {
            Err(String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
        }
    }
}

/// waPC's host-call imports, declared as `wapc_guest` declares them (the module imports each
/// once).
mod wapc {
    #[link(wasm_import_module = "wapc")]
    unsafe extern "C" {
        pub(super) fn __host_call(
            bd_ptr: *const u8,
            bd_len: usize,
            ns_ptr: *const u8,
            ns_len: usize,
            op_ptr: *const u8,
            op_len: usize,
            ptr: *const u8,
            len: usize,
        ) -> usize;
        pub(super) fn __host_response(ptr: *mut u8);
        pub(super) fn __host_response_len() -> usize;
        pub(super) fn __host_error_len() -> usize;
        pub(super) fn __host_error(ptr: *mut u8);
    }
}

/// An answer of the host: its bytes, or its reason for failing.
type Answer = Result<Vec<u8>, String>;

/// The answers to one capability, by payload.
type Answers = HashMap<Box<[u8]>, Answer, foldhash::fast::RandomState>;

/// Remembers every answer of the host for the length of one evaluation.
pub struct Memo<H> {
    inner: H,
    /// One map per capability asked (an evaluation asks a handful), keyed by payload.
    answers: Vec<(Capability, Answers)>,
    /// Which of our operations the host serves, once asked.
    operations: Option<HostOperations>,
}

impl<H: HostCalls> Memo<H> {
    /// Wraps a host.
    pub fn new(inner: H) -> Self {
        Self {
            inner,
            answers: Vec::new(),
            operations: None,
        }
    }

    /// The wrapped host.
    #[cfg(test)]
    pub fn inner(&self) -> &H {
        &self.inner
    }
}

impl<H: HostCalls> HostCalls for Memo<H> {
    fn operations(&mut self) -> HostOperations {
        *self.operations.get_or_insert_with(|| self.inner.operations())
    }

    fn known_operations(&self) -> Option<HostOperations> {
        self.operations.or_else(|| self.inner.known_operations())
    }

    fn call(&mut self, capability: Capability, payload: &[u8]) -> Result<Vec<u8>, String> {
        let slot = match self.answers.iter().position(|(asked, _)| *asked == capability) {
            Some(slot) => slot,
            None => {
                // Room for the questions of a typical Pod (three per image) without rehashing.
                let map = Answers::with_capacity_and_hasher(32, foldhash::fast::RandomState::default());
                self.answers.push((capability, map));
                self.answers.len() - 1
            }
        };
        // One hash of the payload (hundreds of bytes: the request with its key) for both the
        // look-up and the insertion; the key is copied once, as an insertion copies it anyway,
        // and questions are seldom asked twice.
        match self.answers[slot].1.entry(payload.into()) {
            Entry::Occupied(known) => known.get().clone(),
            Entry::Vacant(slot) => slot.insert(self.inner.call(capability, payload)).clone(),
        }
    }
}

/// Asks the host to verify signatures and returns the digest it verified.
///
/// Kubewarden answers a failed verification with a host error; an answer of
/// `is_trusted: false`, or one without a well-formed digest, is a failure as well.
pub fn verify(host: &mut dyn HostCalls, capability: Capability, request: &impl Serialize) -> Result<String, String> {
    let payload = serde_json::to_vec(request).map_err(|e| format!("cannot encode the request: {e}"))?;
    verify_payload(host, capability, &payload)
}

/// [`verify`] with the request already serialised.
fn verify_payload(host: &mut dyn HostCalls, capability: Capability, payload: &[u8]) -> Result<String, String> {
    let answer = host.call(capability, payload)?;
    trusted_digest(capability, &answer)
}

/// The digest a verification answer of `capability` (`{"is_trusted", "digest"}`) says is
/// trusted; the reason when it is unreadable, not trusted or its digest unusable.
fn trusted_digest(capability: Capability, answer: &[u8]) -> Result<String, String> {
    match compact_trusted_digest(answer) {
        Some(digest) => Ok(digest.to_owned()),
        None => trusted_digest_by_derive(capability, answer),
    }
}

/// [`trusted_digest`] of any answer, read by serde's derive.
fn trusted_digest_by_derive(capability: Capability, answer: &[u8]) -> Result<String, String> {
    let response: VerificationResponse = serde_json::from_slice(answer)
        .map_err(|e| format!("unreadable answer from host capability {capability}: {e}"))?;
    if !response.is_trusted {
        return Err("the host reported the signatures as not trusted".to_owned());
    }
    usable_digest(capability, response.digest)
}

/// The digest of a trusting answer written as Kubewarden's hosts and `cip` write it, serde_json's
/// compact form of the SDK's `VerificationResponse` (`{"is_trusted":true,"digest":"…"}`) with a
/// usable digest ([`crate::reference::is_usable_digest`]: hex digits, nothing to unescape),
/// read without serde's derive: ≈ 2,250 instructions less an answer in wasm, one answer a
/// covered image (docs/benchmarks.md, twenty-second pass). `None` for any other text, which the
/// derive reads ([`trusted_digest_by_derive`], which refuses it or reads it the same way:
/// property test `the_compact_answer_reads_as_the_derive_reads`).
fn compact_trusted_digest(answer: &[u8]) -> Option<&str> {
    let digest = answer
        .strip_prefix(br#"{"is_trusted":true,"digest":""#)?
        .strip_suffix(br#""}"#)?;
    let digest = std::str::from_utf8(digest).ok()?;
    crate::reference::is_usable_digest(digest).then_some(digest)
}

/// `digest`, as `capability` answered it, when it is a usable digest.
fn usable_digest(capability: Capability, digest: String) -> Result<String, String> {
    check_digest_owned(digest).map_err(|e| format!("host capability {capability} answered an unusable digest: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every stock capability the module calls is in `metadata.yml`'s `hostCapabilities`: a
    /// PolicyServer gating `namespacedPoliciesCapabilities` grants what is listed there, and a
    /// call left out fails (the binding check and `fetchConfigFile` would deny). The calls are
    /// read from this file's `Capability` constants of the `kubewarden` binding.
    #[test]
    fn metadata_lists_every_stock_capability_the_module_calls() {
        let metadata = include_str!("../metadata.yml");
        let listed: Vec<&str> = metadata
            .lines()
            .skip_while(|line| *line != "hostCapabilities:")
            .skip(1)
            .map_while(|line| line.strip_prefix("  - "))
            .collect();
        let source = include_str!("host.rs");
        let called: Vec<String> = source
            .split("binding: \"kubewarden\",")
            .skip(1)
            .map(|rest| {
                let field = |name: &str| {
                    let start = rest.find(&format!("{name}: \"")).expect(name) + name.len() + 3;
                    rest[start..].split('"').next().expect("quoted").to_owned()
                };
                format!("{}/{}", field("namespace"), field("operation"))
            })
            .collect();
        assert!(called.len() >= 4, "{called:?}");
        for call in &called {
            assert!(
                listed.contains(&call.as_str()),
                "metadata.yml hostCapabilities lacks {call}: {listed:?}"
            );
        }
    }

    /// Capabilities are equal by their names, not by where the names are: a copy of each name
    /// elsewhere in memory is the same capability, with the same hash; one name changed, another.
    #[test]
    fn capabilities_are_equal_by_their_names() {
        let hash = |c: &Capability| std::hash::BuildHasher::hash_one(&foldhash::fast::FixedState::with_seed(7), c);
        let copy = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
        for known in [
            KUBEWARDEN_VERIFY_V2,
            KUBEWARDEN_OCI_MANIFEST,
            CIP_VERIFY_WITH_FORMAT,
            CIP_HOST_OPERATIONS,
        ] {
            let copied = Capability {
                binding: copy(known.binding),
                namespace: copy(known.namespace),
                operation: copy(known.operation),
            };
            assert!(!std::ptr::eq(copied.operation, known.operation));
            assert_eq!(copied, known);
            assert_eq!(hash(&copied), hash(&known));
            for other in [
                Capability {
                    binding: "kubewardeN",
                    ..known
                },
                Capability {
                    namespace: copy(&known.namespace[1..]),
                    ..known
                },
                Capability {
                    operation: copy(&format!("{}/", known.operation)),
                    ..known
                },
            ] {
                assert_ne!(other, known);
                assert_ne!(known, other);
            }
        }
    }

    /// Verification answers: the compact trusting form around generated digests (usable ones,
    /// and any text: escapes, quotes, control characters, other scripts), the same with a few
    /// bytes replaced, inserted or removed anywhere, and other spellings serde reads (spaces,
    /// other order, `false`, an extra field).
    fn verification_answers() -> impl Strategy<Value = Vec<u8>> {
        let digest = prop_oneof![
            "[0-9a-f]{64}".prop_map(|hex| format!("sha256:{hex}")),
            "sha256:[0-9a-fA-F]{62,66}",
            "\\PC{0,12}",
            "[ -~]{0,12}",
            any::<String>(),
        ];
        let written = (digest, 0..6usize).prop_map(|(digest, how)| {
            let digest = serde_json::to_string(&digest).unwrap();
            match how {
                0 | 1 => format!(r#"{{"is_trusted":true,"digest":{digest}}}"#),
                2 => format!(r#"{{ "is_trusted": true, "digest": {digest} }}"#),
                3 => format!(r#"{{"digest":{digest},"is_trusted":true}}"#),
                4 => format!(r#"{{"is_trusted":false,"digest":{digest}}}"#),
                _ => format!(r#"{{"is_trusted":true,"digest":{digest},"extra":1}}"#),
            }
            .into_bytes()
        });
        let edits = proptest::collection::vec((any::<prop::sample::Index>(), 0..3u8, any::<u8>()), 0..3);
        (written, edits).prop_map(|(mut answer, edits)| {
            crate::json_text::generate::edit_bytes(&mut answer, edits);
            answer
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8192))]

        /// Every verification answer reads as the derive reads it: the same digest, or the
        /// same reason (the compact form is only a shorter way to the same result).
        #[test]
        fn the_compact_answer_reads_as_the_derive_reads(answer in verification_answers()) {
            prop_assert_eq!(
                trusted_digest(KUBEWARDEN_VERIFY_V2, &answer),
                trusted_digest_by_derive(KUBEWARDEN_VERIFY_V2, &answer),
                "{:?}", String::from_utf8_lossy(&answer)
            );
        }
    }

    /// The answers Kubewarden's hosts write take the compact way, and only trusting ones with a
    /// usable digest written without escapes; the others read as the derive reads them.
    #[test]
    fn the_answers_hosts_write_take_the_compact_way() {
        let hex = "ab".repeat(32);
        let digest = format!("sha256:{hex}");
        let written = |trusted| {
            serde_json::to_vec(&VerificationResponse {
                is_trusted: trusted,
                digest: digest.clone(),
            })
            .unwrap()
        };
        assert_eq!(compact_trusted_digest(&written(true)), Some(digest.as_str()));
        assert_eq!(compact_trusted_digest(&written(false)), None);
        assert_eq!(trusted_digest(KUBEWARDEN_VERIFY_V2, &written(true)), Ok(digest.clone()));
        for other in [
            format!(r"sha256:{}\u0062", &hex[..63]),
            format!(r"sha256\u003a{hex}"),
            format!(r"sha256:{hex}\t"),
            format!("sha256:{hex}\t"),
            format!("SHA256:{hex}"),
            format!("sha256:{}", &hex[1..]),
        ] {
            let answer = format!(r#"{{"is_trusted":true,"digest":"{other}"}}"#);
            assert_eq!(compact_trusted_digest(answer.as_bytes()), None, "{answer}");
            assert_eq!(
                trusted_digest(KUBEWARDEN_VERIFY_V2, answer.as_bytes()),
                trusted_digest_by_derive(KUBEWARDEN_VERIFY_V2, answer.as_bytes())
            );
        }
        // The first escape decodes to a usable digest: the derive's way finds it.
        let escaped = format!(r#"{{"is_trusted":true,"digest":"sha256:{}\u0062"}}"#, &hex[..63]);
        assert_eq!(trusted_digest(KUBEWARDEN_VERIFY_V2, escaped.as_bytes()), Ok(digest));
    }

    proptest! {
        /// The bundle request around a serialised request is what `serde_json` writes for
        /// `{"signature_format": …, "request": {kind: request}}`.
        #[test]
        fn bundle_requests_are_what_serde_writes(
            kind in "v2|keyless_regexp|\\PC{0,8}",
            image in "\\PC{0,20}",
        ) {
            let request = serde_json::to_string(&serde_json::json!({"type": "T", "image": image})).unwrap();
            let raw = serde_json::value::RawValue::from_string(request.clone()).unwrap();
            #[derive(Serialize)]
            struct WithFormat<'a> {
                signature_format: &'static str,
                request: std::collections::BTreeMap<&'a str, &'a serde_json::value::RawValue>,
            }
            let expected = serde_json::to_vec(&WithFormat {
                signature_format: "bundle",
                request: std::collections::BTreeMap::from([(kind.as_str(), &*raw)]),
            })
            .unwrap();
            prop_assert_eq!(with_format("bundle", &kind, &request), expected);
        }
    }

    /// A host answering [`CIP_HOST_OPERATIONS`] with `answer`.
    struct Answering(Result<&'static str, &'static str>);

    impl HostCalls for Answering {
        fn call(&mut self, capability: Capability, _: &[u8]) -> Result<Vec<u8>, String> {
            assert_eq!(capability, CIP_HOST_OPERATIONS);
            self.0.map(|text| text.as_bytes().to_vec()).map_err(str::to_owned)
        }
    }

    /// Only an answer listing `oci/v1/verify_with_format` itself says the host reads bundles:
    /// not a failed call (whatever its reason), an unreadable answer, nor a near name; both
    /// storages are asked in one call only from a host listing that operation too.
    #[test]
    fn a_host_reads_bundles_only_when_it_lists_the_operation() {
        let reading = |answer| Answering(answer).bundle_reading();
        assert_eq!(
            reading(Ok(
                r#"{"operations":["kms/v1/public_key","oci/v1/verify_with_format"]}"#
            )),
            BundleReading::ByFormat
        );
        assert_eq!(
            reading(Ok(
                r#"{"operations":["oci/v1/verify_legacy_then_bundle","oci/v1/verify_with_format"]}"#
            )),
            BundleReading::InOneCall
        );
        for answer in [
            Err("unknown binding: cluster-image-policy"),
            Err(r#"{"operations":["oci/v1/verify_with_format"]}"#),
            Ok(""),
            Ok("[]"),
            Ok(r#"{"operations":[]}"#),
            Ok(r#"{"operations":"oci/v1/verify_with_format"}"#),
            Ok(r#"{"operations":["oci/v1/verify_with_formats","oci/v1/verify_with_forma"]}"#),
            Ok(r#"{"operations":["kms/v1/verify_with_format","ocix/v1/verify_with_format"]}"#),
            Ok(r#"{"operations":["v1/verify_with_format","cluster-image-policy/oci/v1/verify_with_format"]}"#),
            // The one-call operation alone: the first failing key could not ask for bundles.
            Ok(r#"{"operations":["oci/v1/verify_legacy_then_bundle"]}"#),
        ] {
            assert_eq!(reading(answer), BundleReading::No, "{answer:?}");
        }
        assert_eq!(
            reading(Ok(
                r#"{"operations":["oci/v1/verify_legacy_then_bundles","oci/v1/verify_with_format"]}"#
            )),
            BundleReading::ByFormat
        );
    }

    /// Each operation is read from the list alone, by its exact name in the `oci` namespace:
    /// `verify_key_with_hash` says nothing of bundles, nor bundles of it.
    #[test]
    fn each_operation_is_read_from_the_list_alone() {
        let offered = |answer| Answering(answer).operations();
        let key_with_hash = HostOperations {
            key_with_hash: true,
            ..HostOperations::default()
        };
        assert_eq!(
            offered(Ok(r#"{"operations":["oci/v1/verify_key_with_hash"]}"#)),
            key_with_hash
        );
        assert_eq!(key_with_hash.bundle_reading(), BundleReading::No);
        assert_eq!(
            offered(Ok(
                r#"{"operations":["host/v1/operations","oci/v1/verify_legacy_then_bundle","oci/v1/verify_with_format"]}"#
            )),
            HostOperations {
                with_format: true,
                legacy_then_bundle: true,
                key_with_hash: false,
                attestations_with_hash: false,
            }
        );
        // `verify_attestations_with_hash` alone: not `verify_attestations`, nor the key's.
        assert_eq!(
            offered(Ok(
                r#"{"operations":["oci/v1/verify_attestations","oci/v1/verify_attestations_with_hash"]}"#
            )),
            HostOperations {
                attestations_with_hash: true,
                ..HostOperations::default()
            }
        );
        for answer in [
            Err(r#"{"operations":["oci/v1/verify_key_with_hash"]}"#),
            Ok(r#"{"operations":["oci/v1/verify_key_with_hashes","kms/v1/verify_key_with_hash"]}"#),
            Ok(r#"{"operations":["v1/verify_key_with_hash","oci/v1/verify_key_with_has"]}"#),
            Ok(r#"{"operations":["oci/v1/verify_attestations","kms/v1/verify_attestations_with_hash"]}"#),
        ] {
            assert!(offered(answer).lists_none(), "{answer:?}");
        }
        // An entry with an escape, known or not, is read as its text: the rest of the list still
        // counts (it was all read as none).
        assert_eq!(
            offered(Ok(r#"{"operations":["x/v1/café","oci\/v1\/verify_key_with_hash"]}"#)),
            key_with_hash
        );
    }

    /// The stock mock refuses every operation the module asks only from a host listing it, as
    /// an unknown binding, without asking its responder (even one that trusts everything); the
    /// `cip` mock lists each.
    #[test]
    fn the_stock_mock_refuses_what_only_cip_lists() {
        let trusting = || mock::MockHost::new(|_, _| mock::trusted(&format!("sha256:{}", "1".repeat(64))));
        let mut stock = trusting();
        for capability in [
            CIP_VERIFY_WITH_FORMAT,
            CIP_VERIFY_LEGACY_THEN_BUNDLE,
            CIP_VERIFY_KEY_WITH_HASH,
            CIP_VERIFY_ATTESTATIONS_WITH_HASH,
            CIP_HOST_OPERATIONS,
        ] {
            assert_eq!(
                stock.call(capability, b"{}"),
                Err("unknown binding: cluster-image-policy".to_owned()),
                "{capability}"
            );
        }
        assert!(stock.calls.is_empty());
        assert!(stock.operations().lists_none());
        assert_eq!(
            trusting().into_cip().operations(),
            HostOperations {
                with_format: true,
                legacy_then_bundle: true,
                key_with_hash: true,
                attestations_with_hash: true,
            }
        );
    }

    /// A memo asks the host once per evaluation, whatever the answer, and knows the answer
    /// afterwards without asking; before, it knows only what its host knows.
    #[test]
    fn the_memo_asks_once_whether_the_host_reads_bundles() {
        for (host, reading) in [
            (mock::MockHost::failing(), BundleReading::No),
            (mock::MockHost::cip(|_, _| Err("none".into())), BundleReading::InOneCall),
        ] {
            let mut memo = Memo::new(host);
            assert_eq!(memo.known_bundle_reading(), None);
            for _ in 0..3 {
                assert_eq!(memo.bundle_reading(), reading);
                assert_eq!(memo.known_bundle_reading(), Some(reading));
            }
            assert_eq!(memo.inner().unrecorded, [CIP_HOST_OPERATIONS]);
        }
    }

    /// The request every one-call test verifies, and the payload that call must carry.
    const ONE_CALL_REQUEST: &str = r#"{"type":"SigstorePubKeyVerify","image":"a"}"#;

    /// A host known to verify both storages in one call, answering that call with `answer`.
    struct OneCall(Result<Vec<u8>, String>);

    impl HostCalls for OneCall {
        fn call(&mut self, capability: Capability, payload: &[u8]) -> Result<Vec<u8>, String> {
            assert_eq!(capability, CIP_VERIFY_LEGACY_THEN_BUNDLE);
            assert_eq!(payload, format!(r#"{{"v2":{ONE_CALL_REQUEST}}}"#).as_bytes());
            self.0.clone()
        }

        fn operations(&mut self) -> HostOperations {
            unreachable!("known without asking")
        }

        fn known_operations(&self) -> Option<HostOperations> {
            Some(HostOperations {
                with_format: true,
                legacy_then_bundle: true,
                key_with_hash: true,
                attestations_with_hash: true,
            })
        }
    }

    /// What an authority without `signatureFormat` gets from a host answering the one call
    /// with `answer`: the digest and whether a bundle verified it, or the reason.
    fn one_call(answer: Result<Vec<u8>, String>) -> Result<(String, bool), String> {
        verify_formats_json(
            &mut OneCall(answer),
            KUBEWARDEN_VERIFY_V2,
            "v2",
            ONE_CALL_REQUEST,
            SignatureFormat::Both,
        )
        .map(|verified| (verified.digest, verified.bundle))
    }

    proptest! {
        /// Whatever the reasons `cip` writes (any characters, escaped as `serde_json` escapes
        /// them), the module reads them back exactly and joins them as after two calls; any
        /// digest `cip` writes is the one verified, in the storage it names.
        #[test]
        fn the_one_call_answer_is_read_back_exactly(
            legacy in "\\PC{0,60}|[\"\\\\\u{0}-\u{1f}\u{7f}-\u{10ffff}]{0,8}",
            bundle in "\\PC{0,60}",
            hex in "[0-9a-f]{64}",
            in_bundle in any::<bool>(),
        ) {
            let verify = |answer: serde_json::Value| one_call(Ok(answer.to_string().into_bytes()));
            prop_assert_eq!(
                verify(serde_json::json!({"unverified": [&legacy, &bundle]})),
                Err(both_failed(&legacy, &bundle))
            );
            let digest = format!("sha256:{hex}");
            let storage = if in_bundle { "bundle" } else { "legacy" };
            prop_assert_eq!(verify(serde_json::json!({ storage: &digest })), Ok((digest, in_bundle)));
        }
    }

    /// The one-call answer read strictly: which storage verified (a legacy answer leaves the
    /// `.sig` layers to check), each storage's reason joined as after two calls, the host's
    /// own failure as it gave it, and anything else refused with the capability named.
    #[test]
    fn the_one_call_answer_is_read_strictly() {
        const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        let verify =
            |answer: Result<&str, &str>| one_call(answer.map(|text| text.as_bytes().to_vec()).map_err(str::to_owned));
        let legacy = format!(r#"{{"legacy":"{DIGEST}"}}"#);
        assert_eq!(verify(Ok(&legacy)), Ok((DIGEST.to_owned(), false)));
        let bundle = format!(r#"{{"bundle":"{DIGEST}"}}"#);
        assert_eq!(verify(Ok(&bundle)), Ok((DIGEST.to_owned(), true)));
        assert_eq!(
            verify(Ok(r#"{"unverified":["no \"sig\"","none"]}"#)),
            Err(both_failed("no \"sig\"", "none"))
        );
        assert_eq!(verify(Err("deadline")), Err("deadline".to_owned()));
        let unusable = verify(Ok(r#"{"bundle":"sha256:11"}"#)).unwrap_err();
        assert!(
            unusable.starts_with(
                "host capability cluster-image-policy/oci/v1/verify_legacy_then_bundle answered an unusable digest"
            ),
            "{unusable}"
        );
        let named = format!(r#"{{"legacy":{{"digest":"{DIGEST}"}}}}"#);
        let both = format!(r#"{{"legacy":"{DIGEST}","bundle":"{DIGEST}"}}"#);
        for answer in [
            r#"{"is_trusted":true,"digest":"sha256:11"}"#,
            &both,
            &named,
            r#"{"unverified":["a"]}"#,
            r#"{"unverified":["a","b","c"]}"#,
            r#"{"unverified":{"legacy":"a","bundle":"b"}}"#,
            r#"{"Legacy":"sha256:11"}"#,
            r#""legacy""#,
            "",
        ] {
            let refused = verify(Ok(answer)).unwrap_err();
            assert!(
                refused.starts_with(
                    "unreadable answer from host capability cluster-image-policy/oci/v1/verify_legacy_then_bundle"
                ),
                "{answer}: {refused}"
            );
        }
    }

    /// A second identical question is answered from the memo; another capability or payload
    /// is asked again.
    #[test]
    fn the_memo_asks_each_question_once() {
        let mut memo = Memo::new(mock::MockHost::new(|_, value| Ok(serde_json::to_vec(value).unwrap())));
        for _ in 0..3 {
            assert_eq!(memo.call(KUBEWARDEN_VERIFY_V2, b"{\"a\":1}").unwrap(), b"{\"a\":1}");
            assert_eq!(memo.call(KUBEWARDEN_VERIFY_V2, b"{\"a\":2}").unwrap(), b"{\"a\":2}");
            assert_eq!(memo.call(KUBEWARDEN_OCI_MANIFEST, b"{\"a\":1}").unwrap(), b"{\"a\":1}");
        }
        assert_eq!(memo.inner().calls.len(), 3);
    }
}

#[cfg(test)]
pub(crate) mod mock {
    //! A scripted host for unit tests.

    use super::*;

    type Responder = Box<dyn FnMut(Capability, &serde_json::Value) -> Result<Vec<u8>, String>>;

    /// What the current `cip` answers to [`CIP_HOST_OPERATIONS`] (the operations the module
    /// asks only from a host listing them, and one it never asks so).
    const CIP_OPERATIONS: &[u8] = br#"{"operations":["oci/v1/verify_attestations","oci/v1/verify_attestations_with_hash","oci/v1/verify_key_with_hash","oci/v1/verify_keyless_regexp","oci/v1/verify_legacy_then_bundle","oci/v1/verify_with_format"]}"#;

    /// Our operations the module asks only from a host listing them, and the list itself:
    /// a stock host refuses each.
    const LISTED_ONLY: [Capability; 5] = [
        CIP_VERIFY_WITH_FORMAT,
        CIP_VERIFY_LEGACY_THEN_BUNDLE,
        CIP_VERIFY_KEY_WITH_HASH,
        CIP_VERIFY_ATTESTATIONS_WITH_HASH,
        CIP_HOST_OPERATIONS,
    ];

    /// Answers host calls with a closure and records every call. Built with [`MockHost::new`]
    /// it is a stock Kubewarden host: the operations of [`HostOperations`] and
    /// [`CIP_HOST_OPERATIONS`] (which only `cip` has) fail as an unknown binding, unrecorded;
    /// [`MockHost::cip`] hands the first to the closure too and answers the second itself, as
    /// `cip` does ([`MockHost::listing`]: as an older `cip` listing fewer). The calls it answers
    /// itself are listed in `unrecorded`.
    pub struct MockHost {
        responder: Responder,
        pub calls: Vec<(Capability, serde_json::Value)>,
        pub unrecorded: Vec<Capability>,
        /// `None` for a stock host; else its answer to [`CIP_HOST_OPERATIONS`].
        operations: Option<&'static [u8]>,
    }

    impl MockHost {
        pub fn new(responder: impl FnMut(Capability, &serde_json::Value) -> Result<Vec<u8>, String> + 'static) -> Self {
            Self {
                responder: Box::new(responder),
                calls: Vec::new(),
                unrecorded: Vec::new(),
                operations: None,
            }
        }

        /// A `cip` host: every capability goes to `responder`.
        pub fn cip(responder: impl FnMut(Capability, &serde_json::Value) -> Result<Vec<u8>, String> + 'static) -> Self {
            Self::new(responder).into_cip()
        }

        /// This host as `cip`: its responder is also asked for bundles.
        pub fn into_cip(self) -> Self {
            Self {
                operations: Some(CIP_OPERATIONS),
                ..self
            }
        }

        /// This host as a `cip` answering [`CIP_HOST_OPERATIONS`] with `operations` (an older
        /// `cip`): every capability still goes to its responder.
        pub fn listing(self, operations: &'static str) -> Self {
            Self {
                operations: Some(operations.as_bytes()),
                ..self
            }
        }

        /// A host on which every verification fails; for tests that must make no call.
        pub fn failing() -> Self {
            Self::new(|_, _| Err("no host call expected".to_owned()))
        }
    }

    impl HostCalls for MockHost {
        fn call(&mut self, capability: Capability, payload: &[u8]) -> Result<Vec<u8>, String> {
            if let (true, Some(operations)) = (capability == CIP_HOST_OPERATIONS, self.operations) {
                self.unrecorded.push(capability);
                return Ok(operations.to_vec());
            }
            if self.operations.is_none() && LISTED_ONLY.contains(&capability) {
                self.unrecorded.push(capability);
                return Err("unknown binding: cluster-image-policy".to_owned());
            }
            let value: serde_json::Value = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
            self.calls.push((capability, value.clone()));
            if capability == CIP_VERIFY_LEGACY_THEN_BUNDLE {
                return Ok(self.legacy_then_bundle(&value));
            }
            (self.responder)(capability, &value)
        }
    }

    impl MockHost {
        /// [`CIP_VERIFY_LEGACY_THEN_BUNDLE`] as `cip` answers it, from what the responder
        /// answers to the legacy call and then to the bundle call the module would make.
        fn legacy_then_bundle(&mut self, value: &serde_json::Value) -> Vec<u8> {
            let (kind, request) = value
                .as_object()
                .and_then(|object| object.iter().next())
                .expect("{kind: request}");
            let legacy = if kind == "v2" {
                KUBEWARDEN_VERIFY_V2
            } else {
                CIP_VERIFY_KEYLESS_REGEXP
            };
            // Each storage's outcome as the module reads it after its own call.
            let mut ask = |capability, payload: &serde_json::Value| {
                trusted_digest(capability, &(self.responder)(capability, payload)?)
            };
            let answer = match ask(legacy, request) {
                Ok(digest) => serde_json::json!({ "legacy": digest }),
                Err(legacy) => {
                    let wrapped = serde_json::json!({"signature_format": "bundle", "request": value});
                    match ask(CIP_VERIFY_WITH_FORMAT, &wrapped) {
                        Ok(digest) => serde_json::json!({ "bundle": digest }),
                        Err(bundle) => serde_json::json!({"unverified": [legacy, bundle]}),
                    }
                }
            };
            answer.to_string().into_bytes()
        }
    }

    /// A successful verification answer.
    pub fn trusted(digest: &str) -> Result<Vec<u8>, String> {
        Ok(serde_json::to_vec(&serde_json::json!({"is_trusted": true, "digest": digest})).unwrap_or_default())
    }
}
