//! cosign's KMS key URIs (`key.kms`): parsed into a typed reference, or refused with a message
//! that shows the expected shape.
//!
//! This file has no dependencies on purpose: the module checks the syntax in
//! `validate_settings`, and the host (`host/src/kms/uri.rs` includes this very file) parses
//! the same way before it asks a KMS, so both sides always agree on what a valid URI is.
//! The shapes follow sigstore's KMS clients (`pkg/signature/kms/{aws,gcp,azure,hashivault}`):
//! whatever this parser accepts, their regular expressions accept and read alike, and where
//! they accept more, the difference is a listed deliberate choice (`src/tests/kms_uri_reference.rs`).

use std::fmt;

/// A KMS key reference, as cosign writes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KmsUri {
    /// `awskms://[ENDPOINT]/KEY`: KEY is a key id, a key ARN, `alias/NAME` or an alias ARN.
    Aws {
        /// `host[:port]` of a KMS-compatible endpoint; `None` for the SDK's default.
        endpoint: Option<String>,
        /// Key id, key ARN, `alias/NAME` or alias ARN, as AWS's `KeyId` parameter takes it.
        key: String,
    },
    /// `gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/V]`.
    Gcp {
        /// `projects/P/locations/L/keyRings/R/cryptoKeys/K`.
        key_name: String,
        /// The version; `None` means the newest enabled one.
        version: Option<String>,
    },
    /// `azurekms://VAULT/KEY[/VERSION]`: VAULT is the vault's host (`name.vault.azure.net`).
    Azure {
        /// Host of the vault.
        vault: String,
        /// Key name.
        key: String,
        /// Key version; `None` means the current one.
        version: Option<String>,
    },
    /// `hashivault://KEY`: a key of Vault's (or OpenBao's) transit secrets engine.
    HashiVault {
        /// Key name.
        key: String,
    },
}

/// Why a `key.kms` value is not a usable KMS URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KmsUriError {
    /// Not one of the four schemes.
    UnknownScheme(String),
    /// The scheme is known but the rest does not have its shape.
    Malformed {
        /// `awskms`, `gcpkms`, `azurekms` or `hashivault`.
        scheme: &'static str,
        /// The shape the scheme expects.
        expected: &'static str,
    },
}

impl fmt::Display for KmsUriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KmsUriError::UnknownScheme(uri) => write!(
                f,
                "`{uri}` is not a supported KMS URI: use awskms://, gcpkms://, azurekms:// or hashivault:// (cosign's schemes)"
            ),
            KmsUriError::Malformed { scheme, expected } => {
                write!(f, "malformed {scheme} URI: expected {expected}")
            }
        }
    }
}

impl std::error::Error for KmsUriError {}

const AWS_SHAPE: &str = "awskms://[ENDPOINT]/KEY where KEY is a key id (1234abcd-12ab-34cd-56ef-1234567890ab), a key ARN, alias/NAME or an alias ARN (awskms:///alias/cosign for AWS's default endpoint)";
const GCP_SHAPE: &str =
    "gcpkms://projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY[/cryptoKeyVersions/VERSION]";
const AZURE_SHAPE: &str = "azurekms://VAULT.vault.azure.net/KEY[/VERSION] with a lowercase VERSION";
const VAULT_SHAPE: &str = "hashivault://KEY with a transit key name (letters, digits, -, _ and .)";

impl KmsUri {
    /// Parses a `key.kms` value, as written: surrounding whitespace is refused, as sigstore
    /// refuses it (no scheme matches a leading space; a trailing one or a newline would end up
    /// in the key's name).
    pub fn parse(uri: &str) -> Result<Self, KmsUriError> {
        if let Some(rest) = uri.strip_prefix("awskms://") {
            parse_aws(rest)
        } else if let Some(rest) = uri.strip_prefix("gcpkms://") {
            parse_gcp(rest)
        } else if let Some(rest) = uri.strip_prefix("azurekms://") {
            parse_azure(rest)
        } else if let Some(rest) = uri.strip_prefix("hashivault://") {
            parse_vault(rest)
        } else {
            Err(KmsUriError::UnknownScheme(uri.to_owned()))
        }
    }

    /// The scheme, without `://`.
    pub fn scheme(&self) -> &'static str {
        match self {
            KmsUri::Aws { .. } => "awskms",
            KmsUri::Gcp { .. } => "gcpkms",
            KmsUri::Azure { .. } => "azurekms",
            KmsUri::HashiVault { .. } => "hashivault",
        }
    }
}

impl fmt::Display for KmsUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KmsUri::Aws { endpoint, key } => write!(f, "awskms://{}/{key}", endpoint.as_deref().unwrap_or("")),
            KmsUri::Gcp { key_name, version } => match version {
                Some(v) => write!(f, "gcpkms://{key_name}/cryptoKeyVersions/{v}"),
                None => write!(f, "gcpkms://{key_name}"),
            },
            KmsUri::Azure { vault, key, version } => match version {
                Some(v) => write!(f, "azurekms://{vault}/{key}/{v}"),
                None => write!(f, "azurekms://{vault}/{key}"),
            },
            KmsUri::HashiVault { key } => write!(f, "hashivault://{key}"),
        }
    }
}

fn malformed(scheme: &'static str, expected: &'static str) -> KmsUriError {
    KmsUriError::Malformed { scheme, expected }
}

/// `host[:port]` without path, query, user info or spaces.
fn is_endpoint(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'))
}

fn parse_aws(rest: &str) -> Result<KmsUri, KmsUriError> {
    let err = || malformed("awskms", AWS_SHAPE);
    let (endpoint, key) = rest.split_once('/').ok_or_else(err)?;
    if !endpoint.is_empty() && !is_endpoint(endpoint) {
        return Err(err());
    }
    if !(is_key_id(key) || is_alias_name(key) || is_arn(key)) {
        return Err(err());
    }
    Ok(KmsUri::Aws {
        endpoint: (!endpoint.is_empty()).then(|| endpoint.to_owned()),
        key: key.to_owned(),
    })
}

/// A UUID key id, possibly a multi-Region `mrk-` id (32 hex digits).
fn is_key_id(s: &str) -> bool {
    let s = s.strip_prefix("mrk-").unwrap_or(s);
    let groups: Vec<&str> = s.split('-').collect();
    let uuid = groups.len() == 5
        && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.chars().all(|c| c.is_ascii_hexdigit()));
    let mrk = s.len() == 32 && s.chars().all(|c| c.is_ascii_hexdigit());
    uuid || mrk
}

/// `alias/NAME`: AWS allows letters, digits, `/`, `_` and `-`.
fn is_alias_name(s: &str) -> bool {
    s.strip_prefix("alias/").is_some_and(|name| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-'))
    })
}

/// `arn:PARTITION:kms:REGION:ACCOUNT:key/ID` or `…:alias/NAME`.
fn is_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts.as_slice() else {
        return false;
    };
    *arn == "arn"
        && matches!(*partition, "aws" | "aws-us-gov" | "aws-cn")
        && *service == "kms"
        && !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && account.len() == 12
        && account.chars().all(|c| c.is_ascii_digit())
        && (resource.strip_prefix("key/").is_some_and(is_key_id) || is_alias_name(resource))
}

/// A GCP resource id segment: no `/`, not empty.
fn is_segment(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A GCP project id, possibly domain-scoped (`example.com:project`).
fn is_project(s: &str) -> bool {
    match s.split_once(':') {
        Some((domain, project)) => is_segment(domain) && is_segment(project),
        None => is_segment(s),
    }
}

fn parse_gcp(rest: &str) -> Result<KmsUri, KmsUriError> {
    let err = || malformed("gcpkms", GCP_SHAPE);
    let parts: Vec<&str> = rest.split('/').collect();
    let (key, version) = match parts.as_slice() {
        ["projects", p, "locations", l, "keyRings", r, "cryptoKeys", k] => ([*p, *l, *r, *k], None),
        [
            "projects",
            p,
            "locations",
            l,
            "keyRings",
            r,
            "cryptoKeys",
            k,
            "cryptoKeyVersions" | "versions",
            v,
        ] => ([*p, *l, *r, *k], Some(*v)),
        _ => return Err(err()),
    };
    let [project, rest @ ..] = key;
    if !is_project(project)
        || !rest.iter().all(|s| is_segment(s))
        || version.is_some_and(|v| v.is_empty() || !v.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(err());
    }
    let [p, l, r, k] = key;
    Ok(KmsUri::Gcp {
        key_name: format!("projects/{p}/locations/{l}/keyRings/{r}/cryptoKeys/{k}"),
        version: version.map(str::to_owned),
    })
}

fn parse_azure(rest: &str) -> Result<KmsUri, KmsUriError> {
    let err = || malformed("azurekms", AZURE_SHAPE);
    let parts: Vec<&str> = rest.split('/').collect();
    let (vault, key, version) = match parts.as_slice() {
        [vault, key] => (*vault, *key, None),
        [vault, key, version] => (*vault, *key, Some(*version)),
        _ => return Err(err()),
    };
    let key_ok = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    // Lowercase, as sigstore's `(/[a-z0-9]*)?` (Key Vault writes versions as lowercase hex).
    let version_ok =
        version.is_none_or(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    if !is_endpoint(vault) || !key_ok || !version_ok {
        return Err(err());
    }
    Ok(KmsUri::Azure {
        vault: vault.to_owned(),
        key: key.to_owned(),
        version: version.map(str::to_owned),
    })
}

fn parse_vault(rest: &str) -> Result<KmsUri, KmsUriError> {
    let ok = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !rest.starts_with(['-', '.'])
        && !rest.ends_with(['-', '.']);
    if !ok {
        return Err(malformed("hashivault", VAULT_SHAPE));
    }
    Ok(KmsUri::HashiVault { key: rest.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosign_examples_parse() {
        for uri in [
            "awskms:///1234abcd-12ab-34cd-56ef-1234567890ab",
            "awskms://localhost:4566/1234abcd-12ab-34cd-56ef-1234567890ab",
            "awskms:///arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "awskms://localhost:4566/arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "awskms:///alias/ExampleAlias",
            "awskms://localhost:4566/alias/ExampleAlias",
            "awskms:///arn:aws:kms:us-east-2:111122223333:alias/ExampleAlias",
            "awskms:///mrk-1234abcd12ab34cd56ef1234567890ab",
            "gcpkms://projects/PROJECT_ID/locations/us-central1/keyRings/cosign/cryptoKeys/cosign-key",
            "gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3",
            "azurekms://myvault.vault.azure.net/cosign",
            "azurekms://myvault.vault.azure.net/cosign/0123abcd",
            "hashivault://cosign",
            "hashivault://my-key.v2",
        ] {
            let parsed = KmsUri::parse(uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
            assert_eq!(parsed.to_string(), uri, "round trip");
        }
    }

    /// Domain-scoped projects (`example.com:project`, Google Workspace's older project ids)
    /// name real keys, and sigstore accepts them (`([^/]+)`): one `:` between two segments.
    #[test]
    fn gcp_domain_scoped_projects_are_accepted() {
        let uri = "gcpkms://projects/example.com:my-project/locations/global/keyRings/r/cryptoKeys/k";
        let parsed = KmsUri::parse(uri);
        assert_eq!(
            parsed,
            Ok(KmsUri::Gcp {
                key_name: "projects/example.com:my-project/locations/global/keyRings/r/cryptoKeys/k".into(),
                version: None
            })
        );
        for project in [":p", "example.com:", "a:b:c", "a::b"] {
            let uri = format!("gcpkms://projects/{project}/locations/global/keyRings/r/cryptoKeys/k");
            assert!(KmsUri::parse(&uri).is_err(), "{uri}");
        }
        // Only the project may be domain-scoped.
        assert!(KmsUri::parse("gcpkms://projects/p/locations/a:b/keyRings/r/cryptoKeys/k").is_err());
    }

    #[test]
    fn gcp_versions_alias_is_accepted_and_normalised() {
        let uri = KmsUri::parse("gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k/versions/2");
        assert_eq!(
            uri,
            Ok(KmsUri::Gcp {
                key_name: "projects/p/locations/l/keyRings/r/cryptoKeys/k".into(),
                version: Some("2".into())
            })
        );
    }

    #[test]
    fn malformed_uris_name_their_scheme_and_shape() {
        for (uri, scheme) in [
            ("awskms://", "awskms"),
            ("awskms:///not-a-key", "awskms"),
            ("awskms:///alias/", "awskms"),
            ("awskms://host/path/1234abcd-12ab-34cd-56ef-1234567890ab", "awskms"),
            (
                "awskms:///arn:aws:kms:us-east-2:1111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                "awskms",
            ),
            ("gcpkms://projects/p/locations/l/keyRings/r", "gcpkms"),
            (
                "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/latest",
                "gcpkms",
            ),
            ("gcpkms://projects//locations/l/keyRings/r/cryptoKeys/k", "gcpkms"),
            ("azurekms://vault", "azurekms"),
            ("azurekms://vault/key/v/extra", "azurekms"),
            ("azurekms://vault/key_with_underscore", "azurekms"),
            ("hashivault://", "hashivault"),
            ("hashivault://a/b", "hashivault"),
            ("hashivault://-key", "hashivault"),
        ] {
            match KmsUri::parse(uri) {
                Err(KmsUriError::Malformed { scheme: s, expected }) => {
                    assert_eq!(s, scheme, "{uri}");
                    assert!(expected.starts_with(scheme), "{uri}: {expected}");
                }
                other => panic!("{uri}: expected malformed, got {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_schemes_list_the_supported_ones() {
        for uri in ["k8s://ns/secret", "pkcs11:token=x", "", "AWSKMS:///alias/x"] {
            let error = KmsUri::parse(uri).expect_err(uri);
            assert!(matches!(error, KmsUriError::UnknownScheme(_)), "{uri}");
            assert!(
                error
                    .to_string()
                    .contains("awskms://, gcpkms://, azurekms:// or hashivault://")
            );
        }
    }
}
