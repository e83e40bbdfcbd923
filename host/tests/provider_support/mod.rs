//! Shared by the provider tests: a PKI made with rcgen, a provider on 127.0.0.1 over real TLS,
//! and reqwest clients configured like Gatekeeper (TLS 1.3, optional client certificate).

#![allow(dead_code)]

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cip::provider::protocol::{Decision, ImageKey, Verdict};
use cip::provider::{ConnectionLimits, Decider, Limits, ProviderConfig, RunningProvider};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};

pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A certificate authority that issues server and client certificates.
pub struct Ca {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A leaf certificate and its key, in PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn new(name: &str) -> TestResult<Self> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// A serving certificate for 127.0.0.1 and localhost.
    pub fn server(&self) -> TestResult<Leaf> {
        self.leaf(
            vec!["127.0.0.1".into(), "localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate, like Gatekeeper's webhook certificate.
    pub fn client(&self) -> TestResult<Leaf> {
        self.leaf(
            vec!["gatekeeper-webhook-service.gatekeeper-system.svc".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    fn leaf(&self, names: Vec<String>, usage: ExtendedKeyUsagePurpose) -> TestResult<Leaf> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name.push(DnType::CommonName, "leaf");
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Files the provider reads: serving certificate, key and (optionally) the client CA.
pub struct TlsFiles {
    pub dir: tempfile::TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

impl TlsFiles {
    /// The arguments that make `cip provider` serve with these files: `--tls-cert-file`,
    /// `--tls-key-file` (the serving certificate and its key) and `--client-ca-file` (the CA whose
    /// client certificates it requires).
    pub fn provider_args(&self) -> [&OsStr; 6] {
        [
            OsStr::new("--tls-cert-file"),
            self.cert.as_os_str(),
            OsStr::new("--tls-key-file"),
            self.key.as_os_str(),
            OsStr::new("--client-ca-file"),
            self.client_ca.as_os_str(),
        ]
    }

    pub fn write(server: &Leaf, client_ca: &Ca) -> TestResult<Self> {
        let dir = tempfile::tempdir()?;
        let files = Self {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
            client_ca: dir.path().join("client-ca.crt"),
            dir,
        };
        files.replace_serving(server)?;
        std::fs::write(&files.client_ca, &client_ca.cert_pem)?;
        Ok(files)
    }

    /// Replaces the serving pair the way a secret update does: new files renamed into place.
    pub fn replace_serving(&self, server: &Leaf) -> TestResult {
        atomic_write(&self.key, &server.key_pem)?;
        atomic_write(&self.cert, &server.cert_pem)?;
        Ok(())
    }

    /// Replaces the client CA file the way a Secret update does: a new file renamed into place.
    pub fn replace_client_ca(&self, pem: &str) -> TestResult {
        atomic_write(&self.client_ca, pem)
    }
}

fn atomic_write(path: &Path, text: &str) -> TestResult {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Starts a provider on 127.0.0.1 ephemeral ports.
pub async fn start(
    decider: Arc<dyn Decider>,
    files: &TlsFiles,
    mtls: bool,
    limits: Limits,
) -> TestResult<RunningProvider> {
    start_with(decider, files, mtls, limits, ConnectionLimits::default()).await
}

/// Starts a provider on 127.0.0.1 ephemeral ports with the given connection limits.
pub async fn start_with(
    decider: Arc<dyn Decider>,
    files: &TlsFiles,
    mtls: bool,
    limits: Limits,
    connections: ConnectionLimits,
) -> TestResult<RunningProvider> {
    let any: SocketAddr = "127.0.0.1:0".parse()?;
    let config = ProviderConfig {
        addr: any,
        metrics_addr: any,
        cert_path: files.cert.clone(),
        key_path: files.key.clone(),
        client_ca_path: mtls.then(|| files.client_ca.clone()),
        limits,
        connections,
    };
    Ok(cip::provider::start(config, decider).await?)
}

/// A client trusting `ca`, speaking only `versions`, presenting `identity` if given.
pub fn client(
    ca: &Ca,
    identity: Option<&Leaf>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> TestResult<reqwest::Client> {
    Ok(client_builder(ca, identity, versions)?.build()?)
}

/// The builder [`client`] builds, for tests that set more (HTTP/1.1 only, a timeout).
pub fn client_builder(
    ca: &Ca,
    identity: Option<&Leaf>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> TestResult<reqwest::ClientBuilder> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes())?)?;
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)?
        .with_root_certificates(roots);
    let config = match identity {
        Some(leaf) => builder.with_client_auth_cert(
            vec![CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes())?],
            PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes())?,
        )?,
        None => builder.with_no_client_auth(),
    };
    Ok(reqwest::Client::builder().tls_backend_preconfigured(config).no_proxy())
}

/// A TLS 1.3 client like Gatekeeper's.
pub fn tls13_client(ca: &Ca, identity: Option<&Leaf>) -> TestResult<reqwest::Client> {
    client(ca, identity, &[&rustls::version::TLS13])
}

/// The bound of every request a test sends to a provider process ([`testkit::ProviderProcess`]),
/// from connecting to the end of the body: a provider that hangs fails the test with a
/// timeout error instead of hanging it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// [`tls13_client`] whose every request ends within [`REQUEST_TIMEOUT`] (Gatekeeper's
/// requests have a timeout too).
pub fn bounded_tls13_client(ca: &Ca, identity: Option<&Leaf>) -> TestResult<reqwest::Client> {
    Ok(client_builder(ca, identity, &[&rustls::version::TLS13])?
        .timeout(REQUEST_TIMEOUT)
        .build()?)
}

/// [`bounded_tls13_client`] that opens a new connection, with a full TLS handshake, for every
/// request, from the loopback address `source` (`127.x.y.z`: Linux routes all of 127.0.0.0/8 to
/// the loopback interface, so a test can play clients at distinct addresses).
pub fn fresh_connection_tls13_client(
    ca: &Ca,
    identity: Option<&Leaf>,
    source: std::net::IpAddr,
) -> TestResult<reqwest::Client> {
    Ok(client_builder(ca, identity, &[&rustls::version::TLS13])?
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(0)
        .local_address(source)
        .build()?)
}

/// A TCP connection to `addr` from the loopback address `source` (see
/// [`fresh_connection_tls13_client`]).
pub async fn connect_from(source: std::net::Ipv4Addr, addr: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    tokio::time::timeout(REQUEST_TIMEOUT, socket.connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?
}

/// A plain-HTTP client (for the metrics port) whose every request ends within
/// [`REQUEST_TIMEOUT`].
pub fn bounded_http_client() -> TestResult<reqwest::Client> {
    Ok(reqwest::Client::builder().no_proxy().timeout(REQUEST_TIMEOUT).build()?)
}

/// A key as the ConstraintTemplate builds it.
pub fn key(image: &str, namespace: &str) -> String {
    json!({"image": image, "namespace": namespace}).to_string()
}

/// A ProviderRequest body.
pub fn request(keys: &[String]) -> Value {
    json!({
        "apiVersion": "externaldata.gatekeeper.sh/v1beta1",
        "kind": "ProviderRequest",
        "request": {"keys": keys},
    })
}

/// POSTs `body` to the provider's /validate and returns the status and JSON answer.
pub async fn post(client: &reqwest::Client, provider: &RunningProvider, body: &Value) -> TestResult<(u16, Value)> {
    let response = client
        .post(format!("https://{}/validate", provider.addr()))
        .json(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

/// The item answering `key`, if any.
pub fn item<'a>(answer: &'a Value, key: &str) -> Option<&'a Value> {
    answer["response"]["items"]
        .as_array()?
        .iter()
        .find(|item| item["key"] == key)
}

/// The text of the provider's /metrics.
pub async fn metrics(provider: &RunningProvider) -> TestResult<String> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .build()?
        .get(format!("http://{}/metrics", provider.metrics_addr()))
        .send()
        .await?
        .text()
        .await?)
}

/// Decides by image name: `…deny…`, `…warn…`, `…slow…` (sleeps 3 s), `…broken…` (error),
/// anything else allowed. Counts calls.
#[derive(Default)]
pub struct Scripted {
    pub calls: AtomicUsize,
}

impl Decider for Scripted {
    fn decide(&self, key: &ImageKey) -> Result<Decision, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let image = key.image.as_str();
        if image.contains("slow") {
            std::thread::sleep(Duration::from_secs(3));
        }
        if image.contains("broken") {
            return Err(format!("registry unreachable for {image}"));
        }
        let (verdict, message) = if image.contains("deny") {
            (Verdict::Deny, format!("image {image} denied by policy p"))
        } else if image.contains("warn") {
            (Verdict::Warn, format!("image {image} failed warn policy p"))
        } else {
            (Verdict::Allow, String::new())
        };
        Ok(Decision {
            verdict,
            digest: (verdict != Verdict::Deny).then(|| format!("sha256:{}", "ab".repeat(32))),
            message,
            policies: Vec::new(),
        })
    }
}

/// The policy module the tests run: `CIP_POLICY_WASM` (set by `make test`), else the cargo build.
pub fn policy_wasm_path() -> PathBuf {
    std::env::var_os("CIP_POLICY_WASM").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip1/policy/cluster_image_policy.wasm"),
        PathBuf::from,
    )
}

/// The policy module, compiled once per test binary.
pub fn policy_module() -> TestResult<cip::runtime::PolicyModule> {
    static MODULE: std::sync::OnceLock<cip::runtime::PolicyModule> = std::sync::OnceLock::new();
    if let Some(module) = MODULE.get() {
        return Ok(module.clone());
    }
    let path = policy_wasm_path();
    let module = cip::runtime::PolicyModule::from_file(&path)
        .map_err(|e| format!("{}: {e} (build the policy module first)", path.display()))?;
    Ok(MODULE.get_or_init(|| module).clone())
}

/// Host capabilities verifying against a plain-HTTP loopback registry (on the current runtime).
pub fn loopback_capabilities(registry_host: &str) -> TestResult<Arc<cip::capabilities::Capabilities>> {
    let verifier = cip::verify::Verifier::new(cip::verify::VerifierConfig {
        sources: cip::registry::Sources {
            insecure_sources: vec![registry_host.to_owned()],
            ..cip::registry::Sources::default()
        },
        ..cip::verify::VerifierConfig::default()
    })?;
    Ok(Arc::new(cip::capabilities::Capabilities::new(
        Arc::new(verifier),
        tokio::runtime::Handle::current(),
    )))
}

/// A PolicyDecider over the real module, verifying against a plain-HTTP loopback registry.
pub async fn policy_decider(
    registry_host: &str,
    settings: Value,
) -> TestResult<Result<cip::provider::PolicyDecider, cip::provider::PolicyDeciderError>> {
    let capabilities = loopback_capabilities(registry_host)?;
    let evaluator = cip::runtime::Evaluator::new(
        &policy_module()?,
        capabilities,
        cip::runtime::EvaluatorOptions::default(),
    )?;
    Ok(tokio::task::spawn_blocking(move || cip::provider::PolicyDecider::new(evaluator, settings)).await?)
}

/// Production enforces the key; development only warns; other namespaces are not checked.
pub fn production_and_development_settings(public_key_pem: &str) -> Value {
    let policy = |name: &str, namespace: &str, mode: &str| {
        json!({
            "apiVersion": "policy.sigstore.dev/v1beta1",
            "kind": "ClusterImagePolicy",
            "metadata": {"name": name},
            "spec": {
                "match": [{"namespaces": [namespace]}],
                "images": [{"glob": "**"}],
                "authorities": [{"name": "team-key", "key": {"data": public_key_pem}}],
                "mode": mode,
            }
        })
    };
    json!({
        "policies": [
            policy("production-strict-policy", "production", "enforce"),
            policy("dev-warn-policy", "development", "warn"),
        ],
        "noMatchPolicy": "allow",
    })
}
