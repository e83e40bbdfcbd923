//! Namespace `kms` of our binding: `v1/public_key` `{"uri": "awskms://…"}` →
//! `{"pem": "-----BEGIN PUBLIC KEY-----…"}`, so a `key` authority can name its key by
//! `key.kms` alone. The module then verifies with that key through the stock `v2/verify`.

use serde::{Deserialize, Serialize};

use super::{Call, CapabilityError, answer, parse, unknown_operation};

const PUBLIC_KEY: &str = "cluster-image-policy/kms/v1/public_key";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    uri: String,
}

#[derive(Serialize)]
struct Answer {
    pem: String,
}

/// Binding `cluster-image-policy`, namespace `kms`.
pub(super) fn dispatch(call: &Call<'_>, operation: &str, payload: &[u8]) -> Result<Vec<u8>, CapabilityError> {
    match operation {
        "v1/public_key" => {
            let request: Request = parse(PUBLIC_KEY, payload)?;
            let resolver = call.kms(PUBLIC_KEY)?;
            let pem = call.run(PUBLIC_KEY, async move { Ok(resolver.public_key(&request.uri).await?) })?;
            answer(PUBLIC_KEY, &Answer { pem })
        }
        other => Err(unknown_operation(other)),
    }
}
