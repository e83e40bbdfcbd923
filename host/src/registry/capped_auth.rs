//! oci-client's bearer-token exchange (`Client::auth`, `_auth`), read under caps.
//!
//! oci-client 0.18 reads the answer of the token endpoint (the `realm` of the registry's
//! `WWW-Authenticate: Bearer` challenge) whole (`Response::text`), on success and on failure
//! alike, with no size limit: a registry naming a realm that streams without end (anyone who can
//! create a Pod can name their own registry) made `cip` and the Gatekeeper provider read it until
//! the timeout. Here the same requests are made (`GET /v2/` without credentials; the challenge
//! parsed with the `http-auth` parser oci-client uses; `GET <realm>?scope=repository:<repo>:pull
//! &service=<service>` with the Basic credentials, if any), the token answer read at most
//! [`MAX_TOKEN_BYTES`] and an error answer's first [`ERROR_PREFIX_BYTES`] only. Within those
//! caps the outcome is oci-client's.
//!
//! The outcome is kept per registry and repository for at most [`TOKEN_REUSE`] (less when the
//! token endpoint says the token expires sooner), so an evaluation asking one repository for a
//! manifest, its digest and its signatures makes one exchange instead of one per request.
//!
//! The realm is not used exactly as the registry gives it (oci-client and go-containerregistry
//! do; google/go-containerregistry#2193 was closed unfixed): [`realm_refusal`] refuses a plain
//! `http://` realm named by a registry reached over https (Harbor behind a TLS terminator with
//! an `http://` external URL does it; the Basic credentials would cross the network in
//! cleartext) unless the realm's `host[:port]` is itself in `insecure_sources`, and a realm on a
//! link-local address (169.254.0.0/16, fe80::/10: where cloud metadata services answer) unless
//! the registry is on one too. The refusal fails the request and names the realm and the fix.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_auth::ChallengeParser;
use oci_client::Reference;
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::token_cache::RegistryToken;
use serde::Deserialize as _;

use super::bounded::BoundedError;
use super::{RegistryClient, RegistryError, Sources};

/// Cap of the token endpoint's 200 answer. A registry token is a JWT or an opaque string of a
/// few KiB (Docker Hub's and GHCR's stay under 4 KiB, a token carrying many scopes under
/// 16 KiB); the answer is JSON around it. Fixed rather than a flag: nothing legitimate comes
/// near it, and the answer is kept in [`TokenCache`].
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// How much of an error answer of the token endpoint is read, for the message (oci-client puts
/// the whole body in its `AuthenticationFailure`).
pub const ERROR_PREFIX_BYTES: usize = 4 * 1024;

/// Longest reuse of an exchange's outcome: the distribution spec's default token lifetime
/// (60 s, which oci-client assumes for tokens without an `exp` claim), less a margin for the
/// time between the token's issue and its last use.
pub const TOKEN_REUSE: Duration = Duration::from_secs(55);

/// Most registry/repository pairs whose exchange outcome is kept (each at most
/// [`MAX_TOKEN_BYTES`]).
const TOKEN_CACHE_ENTRIES: usize = 256;

/// What a registry request carries, as oci-client's `_auth` decides it.
#[derive(Clone)]
pub(crate) enum Authorization {
    /// `Authorization: Bearer <token>` (the realm's token, or the configured bearer token).
    Bearer(String),
    /// HTTP Basic with the configured credentials: the registry challenges, but not for a
    /// bearer token.
    Basic(String, String),
    /// Nothing: the registry sends no challenge (or the exchange failed).
    None,
}

impl Authorization {
    /// `request` authorized as oci-client's `apply_auth` authorizes it.
    pub(crate) fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Self::Bearer(token) => request.bearer_auth(token),
            Self::Basic(user, password) => request.basic_auth(user, Some(password)),
            Self::None => request,
        }
    }
}

/// A registry and a repository of it.
type Repository = (String, String);

/// Outcomes of token exchanges, per registry and repository, each with the instant it expires.
#[derive(Clone, Default)]
pub(crate) struct TokenCache {
    entries: Arc<Mutex<HashMap<Repository, (Authorization, Instant)>>>,
}

impl TokenCache {
    fn get(&self, key: &Repository) -> Option<Authorization> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(_, expires)| Instant::now() < *expires)
            .map(|(authorization, _)| authorization.clone())
    }

    fn insert(&self, key: Repository, authorization: Authorization, reuse: Duration) {
        if reuse.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= TOKEN_CACHE_ENTRIES && !entries.contains_key(&key) {
            entries.retain(|_, (_, expires)| now < *expires);
            if entries.len() >= TOKEN_CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (authorization, now + reuse));
    }

    fn remove(&self, key: &Repository) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

/// What an exchange gave.
enum Exchange {
    /// What requests carry, and how long it may be reused.
    Granted(Authorization, Duration),
    /// The realm was refused ([`realm_refusal`]): the request fails with this error (not
    /// [`Authorization::None`], which would hide why).
    Refused(RegistryError),
}

/// Why the token `realm` named by `registry` (`host[:port]`, reached over `registry_scheme`,
/// `http` or `https`) is not asked for a token, or `None` when it may be:
///
/// - a registry reached over `https` naming an `http://` realm, unless the realm's
///   `host[:port]` (as written, or with the default port 80 spelled out) is in
///   `sources.insecure_sources`: the Basic credentials sent to the realm would cross the network
///   in cleartext, and the token come back unauthenticated;
/// - a realm whose host is a link-local address (169.254.0.0/16, fe80::/10, also IPv4-mapped),
///   unless the registry's host is one too: a registry must not steer `cip` (and the credentials
///   it sends) to the node's cloud metadata service.
///
/// A realm that is not an absolute URL is left to fail on its request, as before (nothing is
/// sent). Host names are not resolved: a name resolving to a link-local address is not caught.
pub(crate) fn realm_refusal(registry: &str, registry_scheme: &str, realm: &str, sources: &Sources) -> Option<String> {
    let url = reqwest::Url::parse(realm).ok()?;
    let host = url.host_str()?;
    if registry_scheme == "https" && url.scheme() == "http" {
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let with_default_port = format!("{host}:{}", url.port_or_known_default().unwrap_or(80));
        if !sources.is_insecure(&authority) && !sources.is_insecure(&with_default_port) {
            return Some(format!(
                "registry {registry}, reached over https, names the plain-http token realm {realm:?}: the \
                 credentials sent there and the token would cross the network unencrypted, so it is not \
                 asked; have the registry advertise an https realm (Harbor: an https external URL), or, if \
                 that token service is meant to be reached over plain HTTP, list {authority:?} in \
                 insecure_sources (sources.yaml)"
            ));
        }
    }
    if url.host().is_some_and(|host| is_link_local(&host)) && !registry_is_link_local(registry) {
        return Some(format!(
            "registry {registry} names the token realm {realm:?}, on a link-local address (169.254.0.0/16, \
             fe80::/10, where cloud metadata services answer) while the registry is not on one: it is not \
             asked; have the registry advertise its real token service"
        ));
    }
    None
}

/// Whether `host` is a link-local address (IPv4 169.254.0.0/16, IPv6 fe80::/10, an IPv4-mapped
/// IPv6 address of the former).
fn is_link_local(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Ipv4(ip) => ip.is_link_local(),
        url::Host::Ipv6(ip) => {
            (ip.segments()[0] & 0xffc0) == 0xfe80 || ip.to_ipv4_mapped().is_some_and(|ip| ip.is_link_local())
        }
        url::Host::Domain(_) => false,
    }
}

/// Whether the host of `registry` (`host[:port]`, `[v6]:port`) is a link-local address.
fn registry_is_link_local(registry: &str) -> bool {
    reqwest::Url::parse(&format!("https://{registry}/"))
        .ok()
        .is_some_and(|url| url.host().is_some_and(|host| is_link_local(&host)))
}

/// oci-client's private `BearerChallenge`: the first `Bearer` challenge with a `realm` (scheme
/// and parameter names compared case-insensitively, values unescaped).
struct BearerChallenge {
    realm: String,
    service: Option<String>,
}

fn bearer_challenge(header: &reqwest::header::HeaderValue) -> Option<BearerChallenge> {
    let header = header.to_str().ok()?;
    ChallengeParser::new(header)
        .filter_map(Result::ok)
        .find_map(|challenge| {
            if !challenge.scheme.eq_ignore_ascii_case("Bearer") {
                return None;
            }
            let mut realm = None;
            let mut service = None;
            for (name, value) in &challenge.params {
                if name.eq_ignore_ascii_case("realm") {
                    realm = Some(value.to_unescaped());
                }
                if name.eq_ignore_ascii_case("service") {
                    service = Some(value.to_unescaped());
                }
            }
            Some(BearerChallenge { realm: realm?, service })
        })
}

impl RegistryClient {
    /// What requests to `reference`'s repository carry: the outcome of oci-client's `_auth`
    /// for a pull, reused while it lasts. A token answer over [`MAX_TOKEN_BYTES`] fails
    /// ([`BoundedError::OverCap`]); any other failure of the exchange gives
    /// [`Authorization::None`], as oci-client's `apply_auth` ignores it (the request then
    /// fails on the registry's answer).
    pub(crate) async fn authorization(&self, reference: &Reference) -> Result<Authorization, BoundedError> {
        let auth = self.auth_for(reference);
        if let RegistryAuth::Bearer(token) = &auth {
            return Ok(Authorization::Bearer(token.clone()));
        }
        let key = (
            reference.resolve_registry().to_string(),
            reference.repository().to_string(),
        );
        if let Some(authorization) = self.tokens.get(&key) {
            return Ok(authorization);
        }
        // `GET /v2/` and the realm.
        match self.within(reference, 2, self.exchange(reference, &auth)).await {
            Ok(Exchange::Granted(authorization, reuse)) => {
                self.tokens.insert(key, authorization.clone(), reuse);
                Ok(authorization)
            }
            Ok(Exchange::Refused(error)) => Err(BoundedError::Registry(error)),
            Err(over @ BoundedError::OverCap { .. }) => Err(over),
            Err(_) => Ok(Authorization::None),
        }
    }

    /// Forgets the kept outcome for `reference`'s repository: the registry refused a request
    /// carrying it (401), as it does a token revoked or expired before its stated lifetime.
    /// The next request makes a new exchange, as every request did under oci-client's `auth`.
    pub(crate) fn forget_authorization(&self, reference: &Reference) {
        self.tokens.remove(&(
            reference.resolve_registry().to_string(),
            reference.repository().to_string(),
        ));
    }

    /// `GET /v2/<repository>/<path>` of `reference`'s registry asking for `accept`, with the
    /// credentials it takes: the bearer token of the capped exchange, or Basic credentials for a
    /// registry without token auth (which answers the first request itself: they are sent
    /// whether or not `/v2/` challenged).
    pub(crate) async fn authorized_get(
        &self,
        reference: &Reference,
        path: &str,
        accept: &str,
    ) -> Result<reqwest::RequestBuilder, BoundedError> {
        let auth = self.auth_for(reference);
        let registry = reference.resolve_registry().to_string();
        let authorization = self.authorization(reference).await?;
        let url = format!(
            "{}://{registry}/v2/{}/{path}",
            self.scheme_for(&registry),
            reference.repository()
        );
        let request = self.http_for(&registry).get(&url).header("Accept", accept);
        Ok(match (&authorization, &auth) {
            (Authorization::Bearer(_), _) => authorization.apply(request),
            (_, RegistryAuth::Basic(user, password)) => request.basic_auth(user, Some(password)),
            _ => request,
        })
    }

    /// [`RegistryClient::authorized_get`], sent; a failure to send is classified as every
    /// registry failure is.
    pub(crate) async fn send_authorized_get(
        &self,
        reference: &Reference,
        path: &str,
        accept: &str,
    ) -> Result<reqwest::Response, BoundedError> {
        self.authorized_get(reference, path, accept)
            .await?
            .send()
            .await
            .map_err(|e| BoundedError::Registry(self.http_error(reference, e)))
    }

    /// A failed read of an answer of `reference`'s registry, classified as every registry
    /// failure is.
    pub(crate) fn request_error(&self, reference: &Reference, error: reqwest::Error) -> RegistryError {
        self.http_error(reference, error)
    }

    /// oci-client's `_auth` for a pull, its answers read under caps, and how long its outcome
    /// may be reused; a realm [`realm_refusal`] refuses is not asked.
    async fn exchange(&self, reference: &Reference, auth: &RegistryAuth) -> Result<Exchange, BoundedError> {
        let registry = reference.resolve_registry();
        let url = format!("{}://{registry}/v2/", self.scheme_for(registry));
        // The answer's body is not read (oci-client drops it too).
        let probe = self
            .http_for(registry)
            .get(&url)
            .send()
            .await
            .map_err(|e| self.http_error(reference, e))?;
        let Some(header) = probe.headers().get(reqwest::header::WWW_AUTHENTICATE) else {
            // Kept only when the registry said it needs no credentials: a `/v2/` failing
            // without a challenge (a 502 of a proxy, a restarting registry) would otherwise
            // leave every request of the repository without its token for `TOKEN_REUSE`.
            let reuse = if probe.status().is_success() {
                TOKEN_REUSE
            } else {
                Duration::ZERO
            };
            return Ok(Exchange::Granted(Authorization::None, reuse));
        };
        let Some(challenge) = bearer_challenge(header) else {
            // Falling back to HTTP Basic.
            let authorization = match auth {
                RegistryAuth::Basic(user, password) => Authorization::Basic(user.clone(), password.clone()),
                _ => Authorization::None,
            };
            return Ok(Exchange::Granted(authorization, TOKEN_REUSE));
        };
        drop(probe);
        if let Some(reason) = realm_refusal(registry, self.scheme_for(registry), &challenge.realm, &self.sources) {
            return Ok(Exchange::Refused(RegistryError::Other {
                image: reference.whole(),
                registry: registry.to_string(),
                reason,
            }));
        }
        let scope = format!("repository:{}:pull", reference.repository());
        let mut query = vec![("scope", scope.as_str())];
        if let Some(service) = &challenge.service {
            query.push(("service", service.as_str()));
        }
        let mut request = self.http_for(registry).get(challenge.realm.as_str()).query(&query);
        request = match auth {
            RegistryAuth::Basic(user, password) => request.basic_auth(user, Some(password)),
            RegistryAuth::Bearer(token) => request.bearer_auth(token),
            RegistryAuth::Anonymous => request,
        };
        let mut response = request.send().await.map_err(|e| self.http_error(reference, e))?;
        let failed = |error: OciDistributionError| {
            BoundedError::Registry(RegistryError::from_oci(error, reference, self.timeout))
        };
        if response.status() != reqwest::StatusCode::OK {
            let (prefix, cut) = super::bounded::read_prefix(&mut response, ERROR_PREFIX_BYTES)
                .await
                .map_err(|e| self.http_error(reference, e))?;
            let mut reason = String::from_utf8_lossy(&prefix).into_owned();
            if cut {
                reason.push_str(&format!(" … (first {ERROR_PREFIX_BYTES} bytes)"));
            }
            return Err(failed(OciDistributionError::AuthenticationFailure(reason)));
        }
        let body = super::bounded::read_capped(&mut response, MAX_TOKEN_BYTES)
            .await
            .map_err(|e| self.http_error(reference, e))?
            .ok_or_else(|| BoundedError::OverCap {
                what: "the registry's token answer",
                image: reference.whole(),
                cap: MAX_TOKEN_BYTES,
                unit: "bytes",
                setting: "a fixed cap: registry tokens are a few KiB",
            })?;
        // `Response::text`: UTF-8 (oci-client decodes by the charset the answer names, which
        // for a JSON token is UTF-8), invalid sequences replaced; read once for the token and
        // its stated lifetime.
        let decode = |e: serde_json::Error| failed(OciDistributionError::RegistryTokenDecodeError(e.to_string()));
        let answer: serde_json::Value = serde_json::from_str(&String::from_utf8_lossy(&body)).map_err(decode)?;
        let token = RegistryToken::deserialize(&answer).map_err(decode)?;
        // The token's stated lifetime (`expires_in`, seconds; 60 when absent, per the spec),
        // when shorter than the reuse.
        let reuse = answer
            .get("expires_in")
            .and_then(serde_json::Value::as_u64)
            .map_or(TOKEN_REUSE, |seconds| {
                TOKEN_REUSE.min(Duration::from_secs(seconds).saturating_sub(Duration::from_secs(5)))
            });
        Ok(Exchange::Granted(
            Authorization::Bearer(token.token().to_string()),
            reuse,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(value: &str) -> Option<(String, Option<String>)> {
        bearer_challenge(&reqwest::header::HeaderValue::from_str(value).unwrap()).map(|c| (c.realm, c.service))
    }

    #[test]
    fn the_challenge_is_read_as_oci_client_reads_it() {
        assert_eq!(
            challenge(r#"Bearer realm="https://auth.example/token",service="registry.example",scope="x""#),
            Some(("https://auth.example/token".into(), Some("registry.example".into())))
        );
        assert_eq!(
            challenge(r#"Basic realm="r", bearer REALM="https://a/t""#),
            Some(("https://a/t".into(), None))
        );
        assert_eq!(challenge(r#"Basic realm="Registry Realm""#), None);
        assert_eq!(challenge(r#"Bearer service="s""#), None);
    }

    fn insecure(hosts: &[&str]) -> Sources {
        Sources {
            insecure_sources: hosts.iter().map(|host| host.to_string()).collect(),
            ..Sources::default()
        }
    }

    #[test]
    fn an_https_registry_may_not_name_a_plain_http_realm_unless_it_is_an_insecure_source() {
        let none = Sources::default();
        let refused = realm_refusal("harbor.example", "https", "http://harbor.example/service/token", &none)
            .expect("cleartext credentials refused");
        assert!(refused.contains("\"http://harbor.example/service/token\""), "{refused}");
        assert!(
            refused.contains("insecure_sources") && refused.contains("\"harbor.example\""),
            "{refused}"
        );
        let refused = realm_refusal("r.example:5443", "https", "http://auth.example:8080/t", &none).expect("refused");
        assert!(
            refused.contains("\"auth.example:8080\""),
            "names the host:port to list: {refused}"
        );
        // Case-insensitive scheme, the default port spelled out: still plain http.
        assert!(realm_refusal("r.example", "https", "HTTP://auth.example:80/t", &none).is_some());

        // The realm's own host:port listed as plain HTTP (as written, or with port 80).
        assert_eq!(
            realm_refusal(
                "r.example",
                "https",
                "http://auth.example:8080/t",
                &insecure(&["auth.example:8080"])
            ),
            None
        );
        assert_eq!(
            realm_refusal(
                "r.example",
                "https",
                "http://auth.example/t",
                &insecure(&["auth.example"])
            ),
            None
        );
        assert_eq!(
            realm_refusal(
                "r.example",
                "https",
                "http://auth.example/t",
                &insecure(&["auth.example:80"])
            ),
            None
        );
        // Another host or port listed, or the registry itself: not the realm.
        for listed in ["r.example", "auth.example:8081", "auth.example.evil"] {
            assert!(
                realm_refusal("r.example", "https", "http://auth.example:8080/t", &insecure(&[listed])).is_some(),
                "{listed}"
            );
        }
        // Controls: an https realm, and a registry itself reached over plain HTTP.
        assert_eq!(
            realm_refusal("r.example", "https", "https://auth.example/t", &none),
            None
        );
        assert_eq!(
            realm_refusal("127.0.0.1:5000", "http", "http://auth.example/t", &none),
            None
        );
        // Not a URL: left to fail on its request (nothing is sent).
        assert_eq!(realm_refusal("r.example", "https", "/token", &none), None);
    }

    #[test]
    fn a_link_local_realm_is_refused_unless_the_registry_is_link_local_too() {
        let none = Sources::default();
        for realm in [
            "http://169.254.169.254/latest/api/token",
            "https://169.254.0.1/t",
            "https://169.254.255.255:8443/t",
            "https://[fe80::1]/t",
            "https://[febf::1]:443/t",
            "https://[::ffff:169.254.169.254]/t",
        ] {
            let refused = realm_refusal("127.0.0.1:5000", "http", realm, &none).unwrap_or_else(|| panic!("{realm}"));
            assert!(refused.contains("link-local") && refused.contains(realm), "{refused}");
            // Over https too, also when its host is an insecure source.
            let host = reqwest::Url::parse(realm).unwrap().host_str().unwrap().to_owned();
            assert!(
                realm_refusal("r.example", "https", realm, &insecure(&[&host])).is_some(),
                "{realm}"
            );
        }
        for registry in ["169.254.10.10:5000", "[fe80::2]:5000", "169.254.10.10"] {
            assert_eq!(
                realm_refusal(registry, "http", "http://169.254.169.254/t", &none),
                None,
                "a link-local registry may name a link-local realm: {registry}"
            );
        }
        for realm in [
            "http://169.255.0.1/t",
            "http://169.253.255.255/t",
            "http://[fec0::1]/t",
            "http://[fe7f::1]/t",
            "http://127.0.0.1:5001/t",
            "http://metadata.example/t",
        ] {
            assert_eq!(realm_refusal("127.0.0.1:5000", "http", realm, &none), None, "{realm}");
        }
    }

    #[test]
    fn the_cache_forgets_expired_outcomes_and_stays_bounded() {
        let cache = TokenCache::default();
        let key = |i: usize| ("r".to_string(), format!("repo{i}"));
        cache.insert(key(0), Authorization::None, Duration::ZERO);
        assert!(cache.get(&key(0)).is_none());
        for i in 0..TOKEN_CACHE_ENTRIES + 10 {
            cache.insert(key(i), Authorization::Bearer(format!("t{i}")), TOKEN_REUSE);
        }
        assert!(cache.entries.lock().unwrap().len() <= TOKEN_CACHE_ENTRIES);
        assert!(matches!(
            cache.get(&key(TOKEN_CACHE_ENTRIES + 9)),
            Some(Authorization::Bearer(t)) if t == format!("t{}", TOKEN_CACHE_ENTRIES + 9)
        ));
    }
}
