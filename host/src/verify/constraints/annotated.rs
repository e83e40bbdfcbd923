//! Any constraint plus annotations that the same layer's payload must carry.

use std::collections::BTreeMap;

use sigstore::cosign::SignatureLayer;
use sigstore::cosign::verification_constraint::{AnnotationVerifier, VerificationConstraint};

/// `inner` and the annotations, satisfied by one and the same layer.
#[derive(Debug)]
pub struct Annotated {
    inner: Box<dyn VerificationConstraint + Send + Sync>,
    annotations: AnnotationVerifier,
}

impl Annotated {
    /// Wraps `inner`; `annotations` must all be present with equal values.
    pub fn new(inner: Box<dyn VerificationConstraint + Send + Sync>, annotations: BTreeMap<String, String>) -> Self {
        Self {
            inner,
            annotations: AnnotationVerifier { annotations },
        }
    }
}

impl VerificationConstraint for Annotated {
    fn verify(&self, layer: &SignatureLayer) -> sigstore::errors::Result<bool> {
        Ok(self.inner.verify(layer)? && self.annotations.verify(layer)?)
    }
}
