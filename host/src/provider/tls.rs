//! TLS for the provider: TLS 1.3 only (Gatekeeper's requirement), a serving certificate re-read
//! whenever its files change (cert-manager rotates them in place), and optional client
//! certificate verification against a CA file, re-read whenever it changes (mTLS with
//! Gatekeeper's webhook certificate, whose CA Gatekeeper's cert-controller rotates).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path}: invalid PEM: {source}")]
    Pem {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("certificate {cert} and key {key} do not form a usable pair: {source}")]
    KeyPair {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("client CA {path}: {reason}")]
    ClientCa { path: PathBuf, reason: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The ring crypto provider every TLS object of the provider uses.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the server configuration: TLS 1.3 only, HTTP/2 and HTTP/1.1 by ALPN, the serving
/// certificate from `resolver`, and client certificates required by `client_verifier` when
/// given.
///
/// With client certificates required, session resumption is off: a resumed TLS 1.3 session
/// restores the client certificate of the original handshake without verifying it again, so a
/// client whose CA was rotated out could otherwise resume its way past the new CA.
pub fn server_config(
    resolver: Arc<ReloadingCertResolver>,
    client_verifier: Option<Arc<ReloadingClientVerifier>>,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = crypto_provider();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let mtls = client_verifier.is_some();
    let builder = match client_verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if mtls {
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    Ok(config)
}

/// Requires client certificates chaining to the CA bundle of a file, re-read at the next
/// handshake after the file changed (its modification time, size or inode: Kubernetes
/// replaces a mounted Secret's files by swapping a symlink).
///
/// Strict on failure: if the changed file cannot be read or holds no usable CA, **every**
/// client certificate is refused (logged once per change) until a usable file is in place.
/// Neither the previous CA (which the change may have meant to withdraw) nor "no client
/// authentication" is ever used in its place.
///
/// Sends no CA names in its CertificateRequest (they would be those of the bundle at start-up
/// only, and a client such as Go's then keeps back a certificate of a newer CA); Gatekeeper
/// presents its one certificate anyway.
#[derive(Debug)]
pub struct ReloadingClientVerifier {
    path: PathBuf,
    provider: Arc<CryptoProvider>,
    state: Mutex<ClientCa>,
}

#[derive(Debug)]
struct ClientCa {
    stamp: FileStamp,
    /// `None` while the file is unusable: everything is refused.
    verifier: Option<Arc<dyn ClientCertVerifier>>,
    /// Bumped at every change of the file, usable or not.
    generation: u64,
}

impl ReloadingClientVerifier {
    /// Loads the CA file once; fails if it is not usable now.
    pub fn new(path: &Path) -> Result<Self, TlsError> {
        let provider = crypto_provider();
        let stamp = stamp(path);
        let verifier = client_verifier(path, &provider)?;
        Ok(Self {
            path: path.to_owned(),
            provider,
            state: Mutex::new(ClientCa {
                stamp,
                verifier: Some(verifier),
                generation: 0,
            }),
        })
    }

    /// The verifier to use now (`None`: refuse every client), reloaded first if the file
    /// changed, and the generation of the file it comes from.
    fn current(&self) -> (Option<Arc<dyn ClientCertVerifier>>, u64) {
        // The lock only guards plain data; a poisoned lock still holds a consistent state.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = stamp(&self.path);
        if now != state.stamp {
            state.stamp = now;
            state.generation += 1;
            match client_verifier(&self.path, &self.provider) {
                Ok(verifier) => {
                    tracing::info!(path = %self.path.display(), "reloaded the client CA");
                    state.verifier = Some(verifier);
                }
                Err(error) => {
                    tracing::error!(
                        %error,
                        "the client CA file changed and is unusable: refusing every client certificate until it is fixed"
                    );
                    state.verifier = None;
                }
            }
        }
        (state.verifier.clone(), state.generation)
    }

    /// The generation of the CA file last loaded: it changes whenever the file does.
    pub fn generation(&self) -> u64 {
        self.current().1
    }

    /// Whether a client that presented `chain` (end entity first) at its handshake is still
    /// trusted by the CA file as it is now.
    pub fn still_trusts(&self, chain: &[CertificateDer<'static>]) -> bool {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return false;
        };
        self.verify_client_cert(end_entity, intermediates, UnixTime::now())
            .is_ok()
    }

    fn refused() -> rustls::Error {
        rustls::Error::General("the client CA file is unusable: every client certificate is refused".into())
    }
}

impl ClientCertVerifier for ReloadingClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self.current().0 {
            Some(verifier) => verifier.verify_client_cert(end_entity, intermediates, now),
            None => Err(Self::refused()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A verifier requiring client certificates that chain to the CAs of `path`.
fn client_verifier(path: &Path, provider: &Arc<CryptoProvider>) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let client_ca = |reason: String| TlsError::ClientCa {
        path: path.to_owned(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots.add(cert).map_err(|e| client_ca(e.to_string()))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .clear_root_hint_subjects()
        .build()
        .map_err(|e| client_ca(e.to_string()))
}

/// Serves the certificate and key from two files, re-reading them at the next handshake after
/// either file's modification time or size changed. A pair that fails to load (for instance
/// while the files are being replaced one at a time) is logged and the previous pair is kept.
#[derive(Debug)]
pub struct ReloadingCertResolver {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    state: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    stamp: (FileStamp, FileStamp),
    key: Arc<CertifiedKey>,
}

/// What tells a file's versions apart: modification time, size and (on Unix) device and inode.
type FileStamp = Option<(SystemTime, u64, u64, u64)>;

impl ReloadingCertResolver {
    /// Loads the pair once; fails if it is not usable now.
    pub fn new(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let provider = crypto_provider();
        let stamp = (stamp(cert_path), stamp(key_path));
        let key = Arc::new(load_pair(cert_path, key_path, &provider)?);
        Ok(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            provider,
            state: Mutex::new(Loaded { stamp, key }),
        })
    }

    /// The pair to present now, reloaded first if the files changed.
    pub fn current(&self) -> Arc<CertifiedKey> {
        // The lock only guards plain data; a poisoned lock still holds a usable pair.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = (stamp(&self.cert_path), stamp(&self.key_path));
        if now != state.stamp {
            match load_pair(&self.cert_path, &self.key_path, &self.provider) {
                Ok(key) => {
                    tracing::info!(cert = %self.cert_path.display(), "reloaded serving certificate");
                    state.key = Arc::new(key);
                    state.stamp = now;
                }
                Err(error) => {
                    tracing::warn!(%error, "keeping the previous serving certificate");
                }
            }
        }
        Arc::clone(&state.key)
    }
}

impl ResolvesServerCert for ReloadingCertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn stamp(path: &Path) -> FileStamp {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let (dev, ino) = {
        use std::os::unix::fs::MetadataExt as _;
        (meta.dev(), meta.ino())
    };
    #[cfg(not(unix))]
    let (dev, ino) = (0, 0);
    Some((meta.modified().ok()?, meta.len(), dev, ino))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_owned() });
    }
    Ok(certs)
}

fn load_pair(cert_path: &Path, key_path: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let certs = read_certs(cert_path)?;
    let key = PrivateKeyDer::from_pem_slice(&read(key_path)?).map_err(|source| TlsError::Pem {
        path: key_path.to_owned(),
        source,
    })?;
    CertifiedKey::from_der(certs, key, provider).map_err(|source| TlsError::KeyPair {
        cert: cert_path.to_owned(),
        key: key_path.to_owned(),
        source,
    })
}
