//! KMS URIs: the very parser the module uses in `validate_settings` (one file compiled into
//! both crates, so the host never accepts a URI the module refused, nor the reverse).

#[path = "../../../src/kms_uri.rs"]
mod shared;

pub use shared::{KmsUri, KmsUriError};
