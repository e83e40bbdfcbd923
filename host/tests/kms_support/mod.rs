//! Loopback emulators of Google Cloud KMS and Azure Key Vault for the KMS tests. Neither
//! service has a local server, so these answer the documented REST shapes (Cloud KMS v1
//! `cryptoKeys.get`, `cryptoKeyVersions.list`, `getPublicKey`, Google's OAuth token endpoint and
//! metadata server; Key Vault `keys/get` 7.4 and Microsoft Entra ID's client-credentials token
//! endpoint), checking the credentials the way the real services do: a JWT signed by the
//! service account's key, a client secret, a bearer token.
//!
//! Each emulator serves on a free `127.0.0.1` port until dropped. Keys:
//! * GCP `cosign`: ASYMMETRIC_SIGN, versions 1 (key A), 2 (disabled), 10 (key B): the newest
//!   enabled is 10. `encrypt`: ENCRYPT_DECRYPT. `forbidden`: 403. `slow`: never answers.
//! * Azure `cosign`: EC P-256 (sign, verify), `p384`: EC-HSM P-384, `encrypt`: RSA key for
//!   encrypt/decrypt only, `disabled`: disabled, `forbidden`: 403.

#![allow(dead_code, reason = "each test binary uses its own subset")]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sigstore::crypto::{CosignVerificationKey, Signature, SigningScheme};
use testkit::KeyPair;

pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A server running on its own thread and runtime, stopped on drop.
pub struct Served {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(router: Router) -> TestResult<Served> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("emulator runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("emulator listener");
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
    });
    Ok(Served {
        addr,
        shutdown: Some(tx),
        thread: Some(thread),
    })
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, [("content-type", "application/json")], body.to_string()).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_owned)
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

// ---------------------------------------------------------------- Google Cloud KMS

/// The Cloud KMS emulator.
pub struct GcpEmulator {
    pub served: Served,
    /// Service account key: the emulator verifies the JWT assertions with its public half.
    pub service_account: KeyPair,
    /// Version 1 of `cosign`.
    pub key_a: KeyPair,
    /// Version 10 of `cosign` (the newest enabled).
    pub key_b: KeyPair,
    state: Arc<GcpState>,
}

pub const GCP_EMAIL: &str = "cosign-verifier@project.iam.gserviceaccount.com";
pub const GCP_KEY_PREFIX: &str = "projects/project/locations/global/keyRings/ring/cryptoKeys";

struct GcpState {
    sa_public_pem: String,
    key_a_pem: String,
    key_b_pem: String,
    tokens: Mutex<Vec<String>>,
    /// Requests received (path only), to see the cache at work.
    requests: Mutex<Vec<String>>,
}

impl GcpEmulator {
    pub fn start() -> TestResult<Self> {
        let service_account = KeyPair::generate(SigningScheme::RSA_PKCS1_SHA256(2048))?;
        let key_a = KeyPair::ecdsa_p256()?;
        let key_b = KeyPair::ecdsa_p256()?;
        let state = Arc::new(GcpState {
            sa_public_pem: service_account.public_key_pem().to_owned(),
            key_a_pem: key_a.public_key_pem().to_owned(),
            key_b_pem: key_b.public_key_pem().to_owned(),
            tokens: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
        });
        let router = Router::new().fallback(gcp_handler).with_state(Arc::clone(&state));
        Ok(Self {
            served: serve(router)?,
            service_account,
            key_a,
            key_b,
            state,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.served.addr)
    }

    /// A service-account credentials file whose `token_uri` is this emulator.
    pub fn credentials_json(&self) -> TestResult<String> {
        Ok(json!({
            "type": "service_account",
            "project_id": "project",
            "private_key_id": "1",
            "private_key": self.service_account.private_key_pem()?,
            "client_email": GCP_EMAIL,
            "client_id": "1",
            "token_uri": format!("{}/token", self.url()),
        })
        .to_string())
    }

    /// `gcpkms://…/cryptoKeys/NAME`.
    pub fn uri(name: &str) -> String {
        format!("gcpkms://{GCP_KEY_PREFIX}/{name}")
    }

    /// How many requests hit `path_suffix`.
    pub fn hits(&self, path_suffix: &str) -> usize {
        self.state
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.ends_with(path_suffix))
            .count()
    }
}

fn verify_assertion(state: &GcpState, assertion: &str) -> bool {
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return false;
    };
    let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
        return false;
    };
    let Ok(key) =
        CosignVerificationKey::from_pem(state.sa_public_pem.as_bytes(), &SigningScheme::RSA_PKCS1_SHA256(2048))
    else {
        return false;
    };
    if key
        .verify_signature(Signature::Raw(&signature), format!("{header}.{claims}").as_bytes())
        .is_err()
    {
        return false;
    }
    let Ok(claims) = URL_SAFE_NO_PAD.decode(claims) else {
        return false;
    };
    let claims: Value = serde_json::from_slice(&claims).unwrap_or_default();
    claims["iss"] == GCP_EMAIL && claims["scope"] == "https://www.googleapis.com/auth/cloudkms"
}

fn google_error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        json!({"error": {"code": status.as_u16(), "message": message, "status": code}}),
    )
}

async fn gcp_handler(
    State(state): State<Arc<GcpState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    state.requests.lock().unwrap().push(path.clone());
    if method == Method::POST && path == "/token" {
        let form = form(&body);
        if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
            || !form.get("assertion").is_some_and(|a| verify_assertion(&state, a))
        {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}),
            );
        }
        let token = format!("ya29.test-{}", state.tokens.lock().unwrap().len());
        state.tokens.lock().unwrap().push(token.clone());
        return json_response(
            StatusCode::OK,
            json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}),
        );
    }
    if path == "/computeMetadata/v1/instance/service-accounts/default/token" {
        if headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
            return (StatusCode::FORBIDDEN, "Missing Metadata-Flavor:Google header").into_response();
        }
        let token = "ya29.metadata".to_owned();
        state.tokens.lock().unwrap().push(token.clone());
        return json_response(
            StatusCode::OK,
            json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}),
        );
    }
    if !bearer(&headers).is_some_and(|t| state.tokens.lock().unwrap().contains(&t)) {
        return google_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        );
    }
    let Some(rest) = path.strip_prefix(&format!("/v1/{GCP_KEY_PREFIX}/")) else {
        return google_error(StatusCode::NOT_FOUND, "NOT_FOUND", "not found");
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let name = segments[0];
    let full = format!("{GCP_KEY_PREFIX}/{name}");
    match name {
        "forbidden" => {
            return google_error(
                StatusCode::FORBIDDEN,
                "PERMISSION_DENIED",
                &format!("Permission 'cloudkms.cryptoKeys.get' denied on resource '{full}' (or it may not exist)."),
            );
        }
        "slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        "cosign" | "encrypt" => {}
        _ => {
            return google_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                &format!("CryptoKey {full} not found."),
            );
        }
    }
    let purpose = if name == "encrypt" {
        "ENCRYPT_DECRYPT"
    } else {
        "ASYMMETRIC_SIGN"
    };
    let version = |n: &str, state_name: &str| json!({"name": format!("{full}/cryptoKeyVersions/{n}"), "state": state_name, "algorithm": "EC_SIGN_P256_SHA256"});
    match segments.as_slice() {
        [_] => json_response(StatusCode::OK, json!({"name": full, "purpose": purpose})),
        [_, "cryptoKeyVersions"] => {
            // Two pages, in an order where a string sort would pick 2.
            let first_page = uri.query().is_none_or(|q| !q.contains("pageToken=next"));
            if first_page {
                json_response(
                    StatusCode::OK,
                    json!({"cryptoKeyVersions": [version("1", "ENABLED"), version("10", "ENABLED")], "nextPageToken": "next"}),
                )
            } else {
                json_response(StatusCode::OK, json!({"cryptoKeyVersions": [version("2", "DISABLED")]}))
            }
        }
        [_, "cryptoKeyVersions", v, "publicKey"] => {
            let pem = match *v {
                "1" => &state.key_a_pem,
                "10" => &state.key_b_pem,
                _ => {
                    return google_error(
                        StatusCode::NOT_FOUND,
                        "NOT_FOUND",
                        &format!("CryptoKeyVersion {full}/cryptoKeyVersions/{v} not found."),
                    );
                }
            };
            json_response(
                StatusCode::OK,
                json!({"pem": pem, "algorithm": "EC_SIGN_P256_SHA256", "name": format!("{full}/cryptoKeyVersions/{v}")}),
            )
        }
        _ => google_error(StatusCode::NOT_FOUND, "NOT_FOUND", "not found"),
    }
}

// ---------------------------------------------------------------- Azure Key Vault

pub const AZURE_TENANT: &str = "tenant-id";
pub const AZURE_CLIENT: &str = "client-id";
pub const AZURE_SECRET: &str = "client-secret-value";

/// The Key Vault (and Entra ID token endpoint) emulator.
pub struct AzureEmulator {
    pub served: Served,
    pub p256: KeyPair,
    pub p384: KeyPair,
}

struct AzureState {
    p256_der: Vec<u8>,
    p384_der: Vec<u8>,
}

impl AzureEmulator {
    pub fn start() -> TestResult<Self> {
        let p256 = KeyPair::ecdsa_p256()?;
        let p384 = KeyPair::generate(SigningScheme::ECDSA_P384_SHA384_ASN1)?;
        let state = Arc::new(AzureState {
            p256_der: p256.public_key_der().to_vec(),
            p384_der: p384.public_key_der().to_vec(),
        });
        let router = Router::new().fallback(azure_handler).with_state(state);
        Ok(Self {
            served: serve(router)?,
            p256,
            p384,
        })
    }

    /// `127.0.0.1:PORT`: the VAULT of `azurekms://VAULT/KEY`.
    pub fn vault(&self) -> String {
        self.served.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`: the authority host.
    pub fn url(&self) -> String {
        format!("http://{}", self.served.addr)
    }
}

/// A JWK with the affine coordinates of an EC key (the last 2×len bytes of its SPKI).
fn ec_jwk(spki: &[u8], len: usize, crv: &str, kty: &str) -> Value {
    let point = &spki[spki.len() - 2 * len..];
    json!({
        "kid": "https://vault/keys/k/0123abcd",
        "kty": kty,
        "key_ops": ["sign", "verify"],
        "crv": crv,
        "x": URL_SAFE_NO_PAD.encode(&point[..len]),
        "y": URL_SAFE_NO_PAD.encode(&point[len..]),
    })
}

fn azure_error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(status, json!({"error": {"code": code, "message": message}}))
}

async fn azure_handler(
    State(state): State<Arc<AzureState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    if method == Method::POST && path == format!("/{AZURE_TENANT}/oauth2/v2.0/token") {
        let form = form(&body);
        let ok = form.get("grant_type").map(String::as_str) == Some("client_credentials")
            && form.get("client_id").map(String::as_str) == Some(AZURE_CLIENT)
            && form.get("client_secret").map(String::as_str) == Some(AZURE_SECRET)
            && form.get("scope").map(String::as_str) == Some("https://vault.azure.net/.default");
        if !ok {
            return json_response(
                StatusCode::UNAUTHORIZED,
                json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}),
            );
        }
        return json_response(
            StatusCode::OK,
            json!({"token_type": "Bearer", "expires_in": 3599, "access_token": "eyJ.azure-test-token"}),
        );
    }
    if bearer(&headers).as_deref() != Some("eyJ.azure-test-token") {
        return azure_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "AKV10000: Request is missing a Bearer token.",
        );
    }
    if !uri.query().is_some_and(|q| q.contains("api-version=7.4")) {
        return azure_error(StatusCode::BAD_REQUEST, "BadParameter", "api-version is missing");
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let name = match segments.as_slice() {
        ["keys", name] | ["keys", name, _] => *name,
        _ => return azure_error(StatusCode::NOT_FOUND, "NotFound", "not found"),
    };
    let bundle = |key: Value, enabled: bool| json!({"key": key, "attributes": {"enabled": enabled}});
    match name {
        "cosign" => json_response(StatusCode::OK, bundle(ec_jwk(&state.p256_der, 32, "P-256", "EC"), true)),
        "p384" => json_response(
            StatusCode::OK,
            bundle(ec_jwk(&state.p384_der, 48, "P-384", "EC-HSM"), true),
        ),
        "disabled" => json_response(
            StatusCode::OK,
            bundle(ec_jwk(&state.p256_der, 32, "P-256", "EC"), false),
        ),
        "encrypt" => json_response(
            StatusCode::OK,
            bundle(
                json!({"kty": "RSA", "key_ops": ["encrypt", "decrypt", "wrapKey", "unwrapKey"], "n": "AQAB", "e": "AQAB"}),
                true,
            ),
        ),
        "forbidden" => azure_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "The user, group or application does not have keys get permission on key vault.",
        ),
        other => azure_error(
            StatusCode::NOT_FOUND,
            "KeyNotFound",
            &format!("A key with (name/id) {other} was not found in this key vault."),
        ),
    }
}

// ---------------------------------------------------------------- AWS credential endpoints

/// An emulator of the AWS credential endpoints a workload reaches over HTTP: the container
/// credentials endpoint (ECS task roles, EKS Pod Identity: `GET` with an `Authorization` token),
/// EC2 instance metadata, IMDSv2 (`PUT /latest/api/token`, then the security credentials
/// and the region with `X-aws-ec2-metadata-token`; requests without a session token get 401 as
/// from IMDS with IMDSv1 disabled), and STS `AssumeRoleWithWebIdentity` (`POST /`, query
/// protocol form, XML answer; a wrong token gets `InvalidIdentityToken`, as from STS). It hands
/// out the access key it was given (with an empty session token, which the SDK requires and
/// `cip` drops: moto would look for an STS session behind a real one).
pub struct AwsCredentialEndpoints {
    pub served: Served,
}

/// The container endpoint's path and authorization token.
pub const CONTAINER_PATH: &str = "/v2/credentials/task";
pub const CONTAINER_TOKEN: &str = "container-authorization-token";
const IMDS_TOKEN: &str = "imds-session-token";
pub const IMDS_ROLE: &str = "cip-node";
/// The web identity token and role STS accepts.
pub const WEB_IDENTITY_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.web-identity.sig";
pub const WEB_IDENTITY_ROLE: &str = "arn:aws:iam::123456789012:role/cip";

struct AwsEndpointsState {
    id: String,
    secret: String,
    region: String,
}

impl AwsCredentialEndpoints {
    pub fn start(id: &str, secret: &str, region: &str) -> TestResult<Self> {
        let state = Arc::new(AwsEndpointsState {
            id: id.to_owned(),
            secret: secret.to_owned(),
            region: region.to_owned(),
        });
        let router = Router::new().fallback(aws_endpoints_handler).with_state(state);
        Ok(Self { served: serve(router)? })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.served.addr)
    }
}

async fn aws_endpoints_handler(
    State(state): State<Arc<AwsEndpointsState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let credentials = || {
        json_response(
            StatusCode::OK,
            json!({
                "Code": "Success",
                "Type": "AWS-HMAC",
                "AccessKeyId": state.id,
                "SecretAccessKey": state.secret,
                // Required by the SDK; empty, as moto would look for an STS session behind one.
                "Token": "",
                "Expiration": "2099-01-01T00:00:00Z",
            }),
        )
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let path = uri.path();
    if path == "/" && method == Method::POST {
        let form = form(&body);
        let get = |k: &str| form.get(k).map(String::as_str);
        let xml = |status: StatusCode, text: String| (status, [("content-type", "text/xml")], text).into_response();
        if get("Action") != Some("AssumeRoleWithWebIdentity") || get("Version") != Some("2011-06-15") {
            return xml(
                StatusCode::BAD_REQUEST,
                "<ErrorResponse><Error><Code>InvalidAction</Code></Error></ErrorResponse>".to_owned(),
            );
        }
        if get("WebIdentityToken") != Some(WEB_IDENTITY_TOKEN)
            || get("RoleArn") != Some(WEB_IDENTITY_ROLE)
            || get("RoleSessionName").is_none()
        {
            return xml(
                StatusCode::BAD_REQUEST,
                "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>Couldn't retrieve verification key from your identity provider</Message></Error></ErrorResponse>".to_owned(),
            );
        }
        return xml(
            StatusCode::OK,
            format!(
                "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
                state.id, state.secret
            ),
        );
    }
    if path == CONTAINER_PATH {
        if header("authorization").as_deref() != Some(CONTAINER_TOKEN) {
            return json_response(StatusCode::UNAUTHORIZED, json!({"message": "bad authorization token"}));
        }
        return credentials();
    }
    if path == "/latest/api/token" {
        if method != Method::PUT || header("x-aws-ec2-metadata-token-ttl-seconds").is_none() {
            return StatusCode::BAD_REQUEST.into_response();
        }
        return ([("x-aws-ec2-metadata-token-ttl-seconds", "21600")], IMDS_TOKEN).into_response();
    }
    if header("x-aws-ec2-metadata-token").as_deref() != Some(IMDS_TOKEN) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match path {
        "/latest/meta-data/iam/security-credentials/" => IMDS_ROLE.into_response(),
        "/latest/meta-data/placement/region" => state.region.clone().into_response(),
        p if p == format!("/latest/meta-data/iam/security-credentials/{IMDS_ROLE}") => credentials(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
