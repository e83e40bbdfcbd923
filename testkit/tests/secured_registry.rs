//! HTTPS and password-protected registries: the fixtures push and sign through them, and a
//! client under test gets in only with the CA and credentials the registry hands out.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sigstore::cosign::verification_constraint::{PublicKeyVerifier, VerificationConstraintVec};
use sigstore::cosign::{ClientBuilder, CosignCapabilities, SignatureLayer, verify_constraints};
use sigstore::registry::{Auth, Certificate, CertificateEncoding, ClientConfig, ClientProtocol, OciReference};
use testkit::{KeyPair, Registry, RegistryOptions};

async fn layers(config: ClientConfig, auth: &Auth, image: &str) -> anyhow::Result<Vec<SignatureLayer>> {
    let mut client = ClientBuilder::default().with_oci_client_config(config).build()?;
    let image: OciReference = image.parse()?;
    Ok(client.trusted_signature_layers(auth, &image).await?)
}

#[tokio::test]
async fn tls_registry_with_basic_auth_serves_signed_images_to_clients_with_ca_and_password() -> anyhow::Result<()> {
    let registry = Registry::start_with(RegistryOptions {
        tls: true,
        basic_auth: true,
    })?;
    let host = registry.host();
    assert!(registry.url().starts_with("https://127.0.0.1:"));
    let ca_pem = registry
        .ca_pem()
        .ok_or_else(|| anyhow::anyhow!("a TLS registry has a CA"))?
        .to_owned();
    assert!(ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));

    let digest = testkit::push_image(&host, "secure/app", "v1", "secure")?;
    assert_eq!(testkit::resolve_digest(&host, "secure/app", "v1")?, digest);
    let key = KeyPair::ecdsa_p256()?;
    testkit::sign_with_key(&host, "secure/app", &digest, &key, &BTreeMap::new())?;
    assert_eq!(testkit::fetch_signature_layers(&host, "secure/app", &digest)?.len(), 1);

    let config: serde_json::Value = serde_json::from_str(&registry.docker_config_json())?;
    let auth = config["auths"][&host]["auth"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no auth for {host}: {config}"))?;
    let decoded = String::from_utf8(BASE64.decode(auth)?)?;
    assert_eq!(
        decoded,
        format!("{}:{}", testkit::REGISTRY_USER, testkit::REGISTRY_PASSWORD)
    );

    let trusted_tls = ClientConfig {
        protocol: ClientProtocol::Https,
        extra_root_certificates: vec![Certificate {
            encoding: CertificateEncoding::Pem,
            data: ca_pem.into_bytes(),
        }],
        ..Default::default()
    };
    let basic = Auth::Basic(testkit::REGISTRY_USER.into(), testkit::REGISTRY_PASSWORD.into());
    let image = format!("{host}/secure/app@{digest}");
    let found = layers(trusted_tls.clone(), &basic, &image).await?;
    let constraints: VerificationConstraintVec = vec![Box::new(PublicKeyVerifier::new(
        key.public_key_pem().as_bytes(),
        &key.scheme(),
    )?)];
    assert!(verify_constraints(&found, constraints.iter()).is_ok());

    assert!(
        layers(trusted_tls, &Auth::Anonymous, &image).await.is_err(),
        "anonymous access must be refused"
    );
    let plain_http = ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    };
    assert!(
        layers(plain_http, &basic, &image).await.is_err(),
        "plain HTTP must fail"
    );
    let system_roots_only = ClientConfig {
        protocol: ClientProtocol::Https,
        ..Default::default()
    };
    assert!(
        layers(system_roots_only, &basic, &image).await.is_err(),
        "the registry CA must be required"
    );
    Ok(())
}

#[test]
fn plain_registry_needs_no_credentials() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    assert_eq!(registry.ca_pem(), None);
    assert_eq!(registry.docker_config_json(), r#"{"auths":{}}"#);
    assert!(registry.url().starts_with("http://"));
    Ok(())
}

#[test]
fn proxy_in_front_of_a_tls_registry_is_reached_like_the_registry() -> anyhow::Result<()> {
    let registry = Registry::start_with(RegistryOptions {
        tls: true,
        basic_auth: true,
    })?;
    let proxy = testkit::CountingProxy::start(registry.addr())?;
    let digest = testkit::push_image(&proxy.host(), "via/proxy", "v1", "via proxy")?;
    assert_eq!(testkit::resolve_digest(&registry.host(), "via/proxy", "v1")?, digest);
    assert!(proxy.connection_count() >= 1);
    assert_eq!(proxy.request_count(), 0, "TLS traffic cannot be parsed");
    Ok(())
}
