//! The token realm a registry names is checked before the credentials are sent there.
//!
//! The registry's `WWW-Authenticate: Bearer realm="…"` was used as given (as oci-client and
//! go-containerregistry use it; google/go-containerregistry#2193 closed unfixed): an https
//! registry naming an `http://` realm (a known Harbor misconfiguration) made `cip` send the
//! docker config's Basic credentials there in cleartext, and a registry could steer them to a
//! link-local address (the node's cloud metadata service). Now, for the registry client
//! (signatures, `oci/v1/*`) and the policy module download alike:
//!
//! - an https registry (here a TLS loopback server with a private CA listed in
//!   `source_authorities`) naming a plain-http realm (a loopback token server recording what it
//!   is sent) is refused, the error naming the realm and the fix, and the token server is never
//!   asked; listing the realm's `host:port` in `insecure_sources` (the operator's explicit
//!   choice) lets the exchange proceed (control);
//! - a registry naming a realm on 169.254.0.0/16 or fe80::/10 is refused at once (no request is
//!   made: the refusal comes back without waiting for the unreachable address).

mod hostile_registry;

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use cip::artifact::{ArtifactError, PolicyRegistry, parse_policy_uri};
use cip::registry::{BoundedError, DockerCredentials, DownloadLimits, RegistryClient, RegistryError, Sources};
use hostile_registry::{Hostile, Reply, Request, ok};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The token the realm grants.
const TOKEN: &str = "granted-token";
/// `user:secret`, base64: the docker config's credentials for the registry.
const BASIC: &str = "dXNlcjpzZWNyZXQ=";
/// The manifest the registry serves (its digest is all that is asked).
const MANIFEST: &[u8] = br#"{"schemaVersion":2}"#;

/// An https loopback "registry": `GET /v2/` challenges for a bearer token at `realm`; a
/// manifest request bearing [`TOKEN`] is answered with the digest of [`MANIFEST`], any other 401.
struct TlsRegistry {
    addr: SocketAddr,
    ca_pem: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TlsRegistry {
    fn start(realm: String) -> Self {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::default();
        ca.distinguished_name.push(DnType::CommonName, "realm test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).expect("CA");
        let issuer = Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().expect("server key");
        let mut server = CertificateParams::new(Vec::<String>::new()).expect("params");
        server
            .subject_alt_names
            .push(SanType::IpAddress(Ipv4Addr::LOCALHOST.into()));
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = server.signed_by(&key, &issuer).expect("server certificate");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .expect("server config");
        let config = Arc::new(config);

        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        let stop = Arc::new(AtomicBool::new(false));
        let realm = Arc::new(realm);
        let thread = std::thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let config = Arc::clone(&config);
                            let realm = Arc::clone(&realm);
                            std::thread::spawn(move || serve_tls(stream, config, &realm));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            }
        });
        Self {
            addr,
            ca_pem: ca_cert.pem(),
            stop,
            thread: Some(thread),
        }
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for TlsRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One request over TLS on `stream`, answered and the connection closed.
fn serve_tls(stream: TcpStream, config: Arc<rustls::ServerConfig>, realm: &str) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(connection) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(connection, stream);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        match tls.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let mut words = head.split_whitespace();
    let method = words.next().unwrap_or("GET").to_string();
    let path = words.next().unwrap_or("/").to_string();
    let authorization = head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case("authorization")
            .then(|| value.trim().to_string())
    });
    let (status, headers, body): (&str, String, &[u8]) = if path == "/v2/" {
        (
            "401 Unauthorized",
            format!("WWW-Authenticate: Bearer realm=\"{realm}\",service=\"loopback\"\r\n"),
            b"{}",
        )
    } else if path.contains("/manifests/") && authorization.as_deref() == Some(&format!("Bearer {TOKEN}")) {
        let body: &[u8] = if method == "HEAD" { b"" } else { MANIFEST };
        (
            "200 OK",
            format!(
                "Docker-Content-Digest: {}\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n",
                testkit::sha256_digest(MANIFEST)
            ),
            body,
        )
    } else {
        ("401 Unauthorized", String::new(), b"{}")
    };
    let _ = tls.write_all(
        format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let _ = tls.write_all(body);
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

/// A plain-HTTP token server granting [`TOKEN`] at `/token`, recording what it is sent.
fn token_server() -> Hostile {
    Hostile::serve(Arc::new(|request: &Request| {
        if request.path.starts_with("/token") {
            ok("application/json", format!(r#"{{"token":"{TOKEN}"}}"#).into_bytes())
        } else {
            Reply::Fixed {
                status: 404,
                content_type: "application/json",
                body: b"{}".to_vec(),
            }
        }
    }))
}

/// Sources trusting `registry`'s CA for it, and reaching `insecure` over plain HTTP.
fn sources(registry: &TlsRegistry, insecure: &[String]) -> Sources {
    let indented: String = registry
        .ca_pem
        .lines()
        .map(|line| format!("        {line}\n"))
        .collect();
    let mut yaml = format!(
        "source_authorities:\n  \"{}\":\n    - type: Data\n      data: |\n{indented}",
        registry.host()
    );
    if !insecure.is_empty() {
        yaml.push_str(&format!("insecure_sources: {insecure:?}\n"));
    }
    Sources::from_yaml(&yaml, Path::new(".")).expect("valid sources")
}

/// The docker config's Basic credentials for `host`.
fn credentials(host: &str) -> DockerCredentials {
    DockerCredentials::from_json(&serde_json::json!({"auths": {host: {"auth": BASIC}}}).to_string()).expect("config")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("tokio runtime")
}

/// `digest_of` through a registry client with `sources` and `credentials`, 5 s per round trip.
fn digest_of(sources: &Sources, credentials: &DockerCredentials, image: &str) -> Result<String, BoundedError> {
    let client = RegistryClient::new(sources.clone(), credentials.clone(), Duration::from_secs(5));
    let reference = RegistryClient::parse_reference(image).expect("reference");
    runtime().block_on(client.digest_of(&reference, &DownloadLimits::default()))
}

/// The module puller's digest look-up of `registry://image` (`cip run registry://…:tag`).
fn puller_digest(sources: &Sources, credentials: &DockerCredentials, image: &str) -> Result<String, ArtifactError> {
    let puller = PolicyRegistry::new(sources, credentials.clone());
    let reference = parse_policy_uri(&format!("registry://{image}")).expect("uri");
    runtime().block_on(puller.digest(&reference))
}

/// The refusal's reason; panics on any other outcome.
fn refusal<T: std::fmt::Debug>(outcome: Result<T, BoundedError>) -> String {
    match outcome {
        Err(BoundedError::Registry(error @ RegistryError::Other { .. })) => error.to_string(),
        other => panic!("expected the realm to be refused, got {other:?}"),
    }
}

#[test]
fn an_https_registry_naming_a_plain_http_realm_gets_no_credentials_sent_there() {
    let tokens = token_server();
    let realm = format!("http://{}/token", tokens.host());
    let registry = TlsRegistry::start(realm.clone());
    let image = format!("{}/team/app:v1", registry.host());
    let credentials = credentials(&registry.host());
    let sources = sources(&registry, &[]);

    let refused = refusal(digest_of(&sources, &credentials, &image));
    assert!(refused.contains(&format!("{realm:?}")), "names the realm: {refused}");
    assert!(
        refused.contains("insecure_sources") && refused.contains(&format!("{:?}", tokens.host())),
        "names the fix: {refused}"
    );
    let refused = puller_digest(&sources, &credentials, &image).expect_err("the module download too");
    assert!(
        matches!(refused, ArtifactError::Registry(RegistryError::Other { .. })),
        "{refused:?}"
    );
    assert!(refused.to_string().contains(&format!("{realm:?}")), "{refused}");
    assert!(
        tokens.requests("/token").is_empty(),
        "the plain-http realm was asked: {:?}",
        tokens.requests("/token")
    );

    // Control: the operator lists the token service as a plain-HTTP source.
    let sources = self::sources(&registry, &[tokens.host()]);
    let digest = testkit::sha256_digest(MANIFEST);
    assert_eq!(
        digest_of(&sources, &credentials, &image).expect("exchange allowed"),
        digest
    );
    assert_eq!(
        puller_digest(&sources, &credentials, &image).expect("exchange allowed"),
        digest
    );
    let asked = tokens.requests("/token");
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(
        asked
            .iter()
            .all(|request| request.authorization.as_deref() == Some(&format!("Basic {BASIC}"))),
        "{asked:?}"
    );
}

#[test]
fn a_registry_naming_a_link_local_realm_is_refused_at_once() {
    for realm in ["http://169.254.169.254/latest/api/token", "http://[fe80::1]:8080/token"] {
        let registry = Hostile::serve(Arc::new(move |request: &Request| {
            if request.path == "/v2/" {
                Reply::Fixed {
                    status: 401,
                    content_type: "application/json",
                    body: b"{}".to_vec(),
                }
                .with_header("WWW-Authenticate", format!(r#"Bearer realm="{realm}",service="s""#))
            } else {
                Reply::Fixed {
                    status: 401,
                    content_type: "application/json",
                    body: b"{}".to_vec(),
                }
            }
        }));
        let sources = Sources {
            insecure_sources: vec![registry.host()],
            ..Sources::default()
        };
        let image = format!("{}/team/app:v1", registry.host());
        let credentials = credentials(&registry.host());
        let refused = refusal(digest_of(&sources, &credentials, &image));
        assert!(
            refused.contains("link-local") && refused.contains(&format!("{realm:?}")),
            "{refused}"
        );
        let refused = puller_digest(&sources, &credentials, &image).expect_err("the module download too");
        assert!(refused.to_string().contains("link-local"), "{refused}");
    }
}
