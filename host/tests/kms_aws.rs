//! AWS KMS through moto's server (PyPI `moto[server]`, started on 127.0.0.1 by the test): a
//! cosign-style ECC_NIST_P256 signing key, `cip kms resolve` and `cip provider` as users run
//! them, credentials from the environment as the AWS SDK reads them.

mod kms_support;
mod provider_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use provider_support::*;
use serde::Deserialize as _;
use serde_json::Value;
use testkit::{
    AwsKey, ClosedPort, MOTO_REGION, MotoProcess, MotoServer, ProviderProcess, Registry, push_image, sign_with_external,
};

/// The bound of one `cip` or boto3 run: seconds normally, so a hung child fails its test
/// instead of hanging the run.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Runs `command` to completion within [`RUN_LIMIT`] ([`testkit::run_bounded`]).
fn bounded(command: &mut Command) -> TestResult<Output> {
    Ok(testkit::run_bounded(command, RUN_LIMIT)?)
}

fn policy_wasm() -> String {
    std::env::var("CIP_POLICY_WASM").unwrap_or_else(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/wasm32-wasip1/policy/cluster_image_policy.wasm")
            .display()
            .to_string()
    })
}

/// The article's policy, verbatim but for its image glob (`gcr.io/myproject/**` → the test
/// registry) and its key URI (the local AWS KMS).
fn article_policy(registry: &str, kms_uri: &str) -> TestResult<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../src/testdata/article/kms-signed-policy.yaml");
    let text = std::fs::read_to_string(path)?;
    let original = "gcpkms://projects/PROJECT_ID/locations/us-central1/keyRings/cosign/cryptoKeys/cosign-key";
    assert!(text.contains(original) && text.contains("gcr.io/myproject/**"));
    Ok(text
        .replace(original, kms_uri)
        .replace("gcr.io/myproject", &format!("{registry}/myproject")))
}

/// `cip` with a clean environment: an IAM user's access key from moto, no profile.
fn cip(home: &Path, key: &AwsKey) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cip"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_ACCESS_KEY_ID", &key.id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret)
        .env("AWS_REGION", MOTO_REGION)
        // Loopback only: instance metadata (169.254.169.254) is never asked.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null());
    command
}

fn der(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM body")
}

fn resolve(home: &Path, key: &AwsKey, input: &Path, output: &Path, extra: &[&str]) -> TestResult<Output> {
    bounded(
        cip(home, key)
            .args(["kms", "resolve", "-f"])
            .arg(input)
            .arg("-o")
            .arg(output)
            .args(extra),
    )
}

#[test]
fn resolve_replaces_key_kms_by_key_data_from_aws_kms_and_keeps_the_uri_in_an_annotation() -> TestResult {
    let moto = MotoServer::start()?;
    let key_id = moto.create_signing_key()?;
    moto.create_alias("alias/cosign", &key_id)?;
    let expected = moto.public_key_der(&key_id)?;
    let dir = tempfile::tempdir()?;
    let insecure = ["--kms-insecure-endpoint", &moto.host()];

    // Two documents: a ClusterImagePolicy by key id, and settings naming the alias.
    let by_id = format!("awskms://{}/{key_id}", moto.host());
    let by_alias = format!("awskms://{}/alias/cosign", moto.host());
    let input = dir.path().join("in.yaml");
    std::fs::write(
        &input,
        format!(
            "{}---\npolicies:\n- metadata: {{name: second}}\n  spec:\n    images: [{{glob: \"**\"}}]\n    authorities:\n    - key: {{kms: \"{by_alias}\"}}\n",
            article_policy("registry.example", &by_id)?
        ),
    )?;
    let output = dir.path().join("out.yaml");
    let run = resolve(dir.path(), moto.signer(), &input, &output, &insecure)?;
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("resolved {by_id} → document 0: spec.authorities[0].key.data")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "resolved {by_alias} → document 1: policies[0].spec.authorities[0].key.data"
        )),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&output)?;
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(Value::deserialize)
        .collect::<Result<_, _>>()?;
    let first = &docs[0]["spec"]["authorities"][0]["key"];
    assert!(first.get("kms").is_none(), "kms replaced by data: {first}");
    assert_eq!(der(first["data"].as_str().ok_or("no data")?), expected);
    assert_eq!(docs[0]["metadata"]["name"], "kms-signed-policy");
    let label: Value = serde_json::from_str(
        docs[0]["metadata"]["annotations"]["cluster-image-policy/kms-keys"]
            .as_str()
            .ok_or("no annotation")?,
    )?;
    assert_eq!(label, serde_json::json!({"authority-0": by_id}));
    let second = &docs[1]["policies"][0]["spec"]["authorities"][0]["key"];
    assert!(second.get("kms").is_none(), "{second}");
    assert_eq!(der(second["data"].as_str().ok_or("no data")?), expected);

    // Run again on its own output with a stale key.data (a rotation): the annotated keys are
    // resolved again.
    let mut stale = docs.clone();
    stale[0]["spec"]["authorities"][0]["key"]["data"] =
        Value::from("-----BEGIN PUBLIC KEY-----\nc3RhbGU=\n-----END PUBLIC KEY-----\n");
    let stale_text = stale
        .iter()
        .map(serde_yaml::to_string)
        .collect::<Result<Vec<_>, _>>()?
        .join("---\n");
    std::fs::write(&input, stale_text)?;
    let run = resolve(dir.path(), moto.signer(), &input, &output, &insecure)?;
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let again: Vec<Value> = serde_yaml::Deserializer::from_str(&std::fs::read_to_string(&output)?)
        .map(Value::deserialize)
        .collect::<Result<_, _>>()?;
    assert_eq!(again, docs, "the annotation names the keys to resolve again");

    // awskms:/// (no endpoint) with the SDK's standard AWS_ENDPOINT_URL.
    std::fs::write(
        &input,
        article_policy("registry.example", &format!("awskms:///{key_id}"))?,
    )?;
    let run = bounded(
        cip(dir.path(), moto.signer())
            .env("AWS_ENDPOINT_URL", format!("http://{}", moto.host()))
            .args(["kms", "resolve", "-f"])
            .arg(&input),
    )?;
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let doc: Value = serde_yaml::from_slice(&run.stdout)?;
    assert_eq!(
        der(doc["spec"]["authorities"][0]["key"]["data"].as_str().ok_or("no data")?),
        expected
    );
    Ok(())
}

#[test]
fn resolve_errors_name_the_key_and_write_nothing() -> TestResult {
    let moto = MotoServer::start()?;
    let encryption = moto.create_encryption_key()?;
    let dir = tempfile::tempdir()?;
    let host = moto.host();
    let closed_port = ClosedPort::new()?;
    let closed = closed_port.addr().to_string();
    let cases = [
        (
            format!("awskms://{host}/1234abcd-12ab-34cd-56ef-1234567890ab"),
            vec!["--kms-insecure-endpoint", host.as_str()],
            "key not found",
        ),
        (
            format!("awskms://{host}/{encryption}"),
            vec!["--kms-insecure-endpoint", host.as_str()],
            "not a signing key",
        ),
        (
            format!("awskms://{closed}/alias/cosign"),
            vec!["--kms-insecure-endpoint", closed.as_str(), "--kms-timeout", "3s"],
            "KMS unreachable",
        ),
    ];
    for (uri, flags, expected) in cases {
        let input = dir.path().join("in.yaml");
        std::fs::write(&input, article_policy("registry.example", &uri)?)?;
        let output = dir.path().join("out.yaml");
        let started = Instant::now();
        let run = resolve(dir.path(), moto.signer(), &input, &output, &flags)?;
        assert!(started.elapsed() < Duration::from_secs(30), "hang guard");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{uri}: {stderr}");
        assert!(
            stderr.contains(&format!("document 0: spec.authorities[0].key: {uri}: {expected}")),
            "{uri}: {stderr}"
        );
        assert!(!stderr.contains("testing"), "no credential in messages: {stderr}");
        assert!(!output.exists(), "nothing written on failure");
    }

    // No region anywhere and a key id (not an ARN): say what to set.
    let input = dir.path().join("in.yaml");
    std::fs::write(
        &input,
        article_policy("registry.example", &format!("awskms://{host}/alias/cosign"))?,
    )?;
    let run = bounded(
        cip(dir.path(), moto.signer())
            .env_remove("AWS_REGION")
            .args(["kms", "resolve", "--kms-insecure-endpoint", &host, "-f"])
            .arg(&input),
    )?;
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("no AWS region: set AWS_REGION"), "{stderr}");

    // Malformed and unknown URIs never reach a KMS.
    for (uri, expected) in [
        ("awskms:///not-a-key-id", "malformed awskms URI"),
        ("vault://cosign", "is not a supported KMS URI"),
    ] {
        std::fs::write(&input, article_policy("registry.example", uri)?)?;
        let run = resolve(dir.path(), moto.signer(), &input, &dir.path().join("x.yaml"), &[])?;
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success() && stderr.contains(expected), "{uri}: {stderr}");
    }
    Ok(())
}

#[test]
fn moto_refuses_a_wrong_secret_key_and_a_user_without_kms_rights() -> TestResult {
    let moto = MotoServer::start()?;
    let key_id = moto.create_signing_key()?;
    let dir = tempfile::tempdir()?;
    let uri = format!("awskms://{}/{key_id}", moto.host());
    let input = dir.path().join("in.yaml");
    std::fs::write(&input, article_policy("registry.example", &uri)?)?;
    let output = dir.path().join("out.yaml");
    let insecure = ["--kms-insecure-endpoint", &moto.host()];
    // moto recomputes the SigV4 signature with botocore from the IAM user's secret key.
    let wrong = AwsKey {
        id: moto.signer().id.clone(),
        secret: format!("{}A", &moto.signer().secret[1..]),
    };
    for (key, expected) in [(&wrong, "SignatureDoesNotMatch"), (moto.no_kms(), "AccessDenied")] {
        let run = resolve(dir.path(), key, &input, &output, &insecure)?;
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{stderr}");
        assert!(
            stderr.contains(&format!("document 0: spec.authorities[0].key: {uri}: access denied")),
            "{stderr}"
        );
        assert!(stderr.contains(expected), "{stderr}");
        assert!(
            stderr.contains("credentials from the AWS SDK's default chain (profile default)"),
            "{stderr}"
        );
        assert!(!stderr.contains(&key.secret), "no secret in messages: {stderr}");
        assert!(!output.exists(), "nothing written on failure");
    }
    // The same request with the right secret key passes (the check above is the signature's).
    let run = resolve(dir.path(), moto.signer(), &input, &output, &insecure)?;
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    Ok(())
}

#[test]
fn static_keys_and_region_are_read_from_a_profile_of_the_shared_files() -> TestResult {
    let moto = MotoServer::start()?;
    let key_id = moto.create_signing_key()?;
    let expected = moto.public_key_der(&key_id)?;
    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join(".aws"))?;
    std::fs::write(
        dir.path().join(".aws/credentials"),
        format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            moto.no_kms().id,
            moto.no_kms().secret
        ),
    )?;
    std::fs::write(
        dir.path().join(".aws/credentials-ci"),
        format!(
            "[ci]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            moto.signer().id,
            moto.signer().secret
        ),
    )?;
    std::fs::write(
        dir.path().join(".aws/config"),
        format!("[profile ci]\nregion = {MOTO_REGION}\n"),
    )?;
    let input = dir.path().join("in.yaml");
    std::fs::write(
        &input,
        article_policy("registry.example", &format!("awskms:///{key_id}"))?,
    )?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_cip"));
    command
        .env_clear()
        .env("HOME", dir.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_PROFILE", "ci")
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join(".aws/credentials-ci"))
        .env("AWS_ENDPOINT_URL", format!("http://{}", moto.host()))
        .args(["kms", "resolve", "-f"])
        .arg(&input)
        .stdin(Stdio::null());
    let run = bounded(&mut command)?;
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let doc: Value = serde_yaml::from_slice(&run.stdout)?;
    assert_eq!(
        der(doc["spec"]["authorities"][0]["key"]["data"].as_str().ok_or("no data")?),
        expected
    );
    // The default profile (~/.aws/credentials) is the user without KMS rights: refused, and
    // the message names where the credentials came from.
    let run = bounded(
        command
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SHARED_CREDENTIALS_FILE")
            .env("AWS_REGION", MOTO_REGION),
    )?;
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(
        stderr.contains("access denied") && stderr.contains("profile default"),
        "{stderr}"
    );
    // No credentials at all: say which sources were tried.
    std::fs::remove_file(dir.path().join(".aws/credentials"))?;
    let run = bounded(&mut command)?;
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("no awskms credentials: the AWS SDK's default chain")
            && stderr.contains("Ec2InstanceMetadata")
            && stderr.contains("AWS_EC2_METADATA_DISABLED"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn web_identity_container_and_instance_metadata_credentials_are_read_as_the_sdk_reads_them() -> TestResult {
    let moto = MotoServer::start()?;
    let key_id = moto.create_signing_key()?;
    let expected = moto.public_key_der(&key_id)?;
    let endpoints = kms_support::AwsCredentialEndpoints::start(&moto.signer().id, &moto.signer().secret, MOTO_REGION)?;
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.yaml");
    std::fs::write(
        &input,
        article_policy("registry.example", &format!("awskms:///{key_id}"))?,
    )?;
    let token_file = dir.path().join("token");
    // No trailing newline: the SDK refuses a token file ending in white space.
    std::fs::write(&token_file, kms_support::CONTAINER_TOKEN)?;
    let base = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cip"));
        command
            .env_clear()
            .env("HOME", dir.path())
            .env("AWS_ENDPOINT_URL", format!("http://{}", moto.host()))
            .args(["kms", "resolve", "-f"])
            .arg(&input)
            .stdin(Stdio::null());
        command
    };
    let resolved = |run: &Output| -> TestResult<Vec<u8>> {
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let doc: Value = serde_yaml::from_slice(&run.stdout)?;
        Ok(der(doc["spec"]["authorities"][0]["key"]["data"]
            .as_str()
            .ok_or("no data")?))
    };

    // EKS Pod Identity's shape: a full URI and a token file.
    let container_uri = format!("{}{}", endpoints.url(), kms_support::CONTAINER_PATH);
    let run = bounded(
        base()
            .env("AWS_REGION", MOTO_REGION)
            .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &container_uri)
            .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_file),
    )?;
    assert_eq!(resolved(&run)?, expected);
    // A wrong token: the endpoint refuses, and the message says which source failed.
    let run = bounded(
        base()
            .env("AWS_REGION", MOTO_REGION)
            .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &container_uri)
            .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong"),
    )?;
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(
        stderr.contains("no awskms credentials: the AWS SDK's default chain")
            && stderr.contains("HTTP credential provider: StatusCode(401)"),
        "{stderr}"
    );
    // Plain HTTP to anything but loopback or the ECS/EKS agents is refused, as by the SDK.
    let run = bounded(
        base()
            .env("AWS_REGION", MOTO_REGION)
            .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://10.0.0.1/creds"),
    )?;
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success()
            && stderr.contains("no awskms credentials")
            && stderr.contains("URI did not refer to an allowed IP address"),
        "{stderr}"
    );

    // EC2 instance metadata (IMDSv2): credentials and the region.
    let run = bounded(base().env("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoints.url()))?;
    assert_eq!(resolved(&run)?, expected);
    // Disabled: nothing left to try; the message lists the sources.
    let run = bounded(
        base()
            .env("AWS_REGION", MOTO_REGION)
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoints.url())
            .env("AWS_EC2_METADATA_DISABLED", "true"),
    )?;
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("no awskms credentials: the AWS SDK's default chain")
            && stderr.contains("IMDS disabled by AWS_EC2_METADATA_DISABLED"),
        "{stderr}"
    );
    // Web identity (EKS IRSA): STS AssumeRoleWithWebIdentity with the token file's token; it
    // comes before the instance role.
    let identity_file = dir.path().join("web-identity-token");
    std::fs::write(&identity_file, kms_support::WEB_IDENTITY_TOKEN)?;
    let irsa = || {
        let mut command = base();
        command
            .env("AWS_REGION", MOTO_REGION)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ROLE_ARN", kms_support::WEB_IDENTITY_ROLE)
            .env("AWS_ENDPOINT_URL_STS", endpoints.url());
        command
    };
    let run = bounded(irsa().env("AWS_WEB_IDENTITY_TOKEN_FILE", &identity_file))?;
    assert_eq!(resolved(&run)?, expected);
    // A token STS refuses: said so, with STS' code, without the token.
    let run = bounded(irsa().env("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file))?;
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(
        stderr.contains("no awskms credentials: the AWS SDK's default chain")
            && stderr.contains("InvalidIdentityToken"),
        "{stderr}"
    );
    assert!(!stderr.contains(kms_support::CONTAINER_TOKEN), "{stderr}");
    // No AWS_ROLE_ARN: said so.
    let run = bounded(
        irsa()
            .env_remove("AWS_ROLE_ARN")
            .env("AWS_WEB_IDENTITY_TOKEN_FILE", &identity_file),
    )?;
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("AWS_ROLE_ARN environment variable must be set"),
        "{stderr}"
    );
    Ok(())
}

/// `cip kms resolve` with a clean environment, the profiles of `config` (`AWS_CONFIG_FILE`),
/// moto as the KMS endpoint and `AWS_PROFILE=profile`.
fn resolve_with_profile(
    dir: &Path,
    moto: &MotoServer,
    config: &str,
    profile: &str,
    input: &Path,
) -> TestResult<Command> {
    let config_file = dir.join("aws-config");
    std::fs::write(&config_file, config)?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_cip"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", &config_file)
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-credentials"))
        .env("AWS_PROFILE", profile)
        .env("AWS_ENDPOINT_URL", format!("http://{}", moto.host()))
        .args(["kms", "resolve", "-f"])
        .arg(input)
        .stdin(Stdio::null());
    Ok(command)
}

#[test]
fn a_credential_process_profile_is_run_for_the_credentials() -> TestResult {
    use std::os::unix::fs::PermissionsExt as _;
    let moto = MotoServer::start()?;
    let key_id = moto.create_signing_key()?;
    let expected = moto.public_key_der(&key_id)?;
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.yaml");
    std::fs::write(
        &input,
        article_policy("registry.example", &format!("awskms:///{key_id}"))?,
    )?;
    // The process prints the IAM user's key in the documented JSON (Version 1); moto then
    // authenticates the KMS request signed with it.
    let script = dir.path().join("credentials.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s' '{{\"Version\": 1, \"AccessKeyId\": \"{}\", \"SecretAccessKey\": \"{}\"}}'\n",
            moto.signer().id,
            moto.signer().secret
        ),
    )?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    let failing = dir.path().join("failing.sh");
    std::fs::write(
        &failing,
        "#!/bin/sh\necho 'session expired, log in again' >&2\nexit 3\n",
    )?;
    std::fs::set_permissions(&failing, std::fs::Permissions::from_mode(0o755))?;
    let config = format!(
        "[profile proc]\ncredential_process = {}\nregion = {MOTO_REGION}\n[profile broken]\ncredential_process = {}\nregion = {MOTO_REGION}\n",
        script.display(),
        failing.display()
    );

    let run = bounded(&mut resolve_with_profile(dir.path(), &moto, &config, "proc", &input)?)?;
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let doc: Value = serde_yaml::from_slice(&run.stdout)?;
    assert_eq!(
        der(doc["spec"]["authorities"][0]["key"]["data"].as_str().ok_or("no data")?),
        expected
    );
    assert!(!stderr.contains(&moto.signer().secret), "{stderr}");

    // A process that fails: refused, with its exit status and its stderr (the SDK's report).
    let run = bounded(&mut resolve_with_profile(dir.path(), &moto, &config, "broken", &input)?)?;
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(
        stderr.contains("no awskms credentials: the AWS SDK's default chain (environment, profile broken"),
        "{stderr}"
    );
    assert!(
        stderr.contains("external process exited with code exit status: 3")
            && stderr.contains("session expired, log in again"),
        "{stderr}"
    );
    Ok(())
}

/// Set-up of [`a_role_arn_profile_assumes_the_role_with_its_source_profile`]'s own moto (boto3,
/// the first [`ROLE_SETUP_ACTIONS`] requests unauthenticated): an IAM user allowed only
/// `sts:AssumeRole`, a role allowed `kms:*`, and a signing key made with the role's session.
const ROLE_SETUP: &str = r#"
import base64, json, sys, boto3
from botocore.config import Config
endpoint = sys.argv[1]
def client(service, key="setup", secret="setup", token=None):
    return boto3.client(service, region_name="us-east-1", endpoint_url=endpoint,
        aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token,
        config=Config(retries={"max_attempts": 1}))
def policy(action):
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]})
iam = client("iam")
iam.create_user(UserName="source")
iam.put_user_policy(UserName="source", PolicyName="assume", PolicyDocument=policy("sts:AssumeRole"))
trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}
iam.create_role(RoleName="cip-kms", AssumeRolePolicyDocument=json.dumps(trust))
iam.put_role_policy(RoleName="cip-kms", PolicyName="kms", PolicyDocument=policy("kms:*"))
key = iam.create_access_key(UserName="source")["AccessKey"]
session = client("sts", key["AccessKeyId"], key["SecretAccessKey"]).assume_role(
    RoleArn="arn:aws:iam::123456789012:role/cip-kms", RoleSessionName="setup")["Credentials"]
kms = client("kms", session["AccessKeyId"], session["SecretAccessKey"], session["SessionToken"])
key_id = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["KeyId"]
der = kms.get_public_key(KeyId=key_id)["PublicKey"]
print(json.dumps({"id": key["AccessKeyId"], "secret": key["SecretAccessKey"], "key_id": key_id,
    "der_b64": base64.b64encode(der).decode()}))
"#;
const ROLE_SETUP_ACTIONS: u32 = 5;

#[test]
fn a_role_arn_profile_assumes_the_role_with_its_source_profile() -> TestResult {
    use base64::Engine as _;
    // moto's STS with authentication on: AssumeRole is checked against the source user's
    // SigV4 signature and IAM policy; the KMS request against the role session's.
    let moto = MotoProcess::start(ROLE_SETUP_ACTIONS)?;
    let setup = bounded(&mut moto.python(ROLE_SETUP)?)?;
    assert!(setup.status.success(), "{}", String::from_utf8_lossy(&setup.stderr));
    let setup: Value = serde_json::from_slice(&setup.stdout)?;
    let field = |name: &str| setup[name].as_str().map(str::to_owned).ok_or(format!("no {name}"));
    let (id, secret, key_id) = (field("id")?, field("secret")?, field("key_id")?);
    let expected = base64::engine::general_purpose::STANDARD.decode(field("der_b64")?)?;

    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.yaml");
    std::fs::write(
        &input,
        article_policy("registry.example", &format!("awskms:///{key_id}"))?,
    )?;
    let config = |secret: &str| {
        format!(
            "[profile source]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n\
             [profile assumed]\nrole_arn = arn:aws:iam::123456789012:role/cip-kms\nsource_profile = source\nregion = {MOTO_REGION}\n"
        )
    };
    let run = |config: &str| -> TestResult<Output> {
        let config_file = dir.path().join("aws-config");
        std::fs::write(&config_file, config)?;
        bounded(
            Command::new(env!("CARGO_BIN_EXE_cip"))
                .env_clear()
                .env("HOME", dir.path())
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env("AWS_CONFIG_FILE", &config_file)
                .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("no-credentials"))
                .env("AWS_PROFILE", "assumed")
                // STS and KMS: the same moto.
                .env("AWS_ENDPOINT_URL", moto.endpoint())
                .args(["kms", "resolve", "-f"])
                .arg(&input)
                .stdin(Stdio::null()),
        )
    };
    let resolved = run(&config(&secret))?;
    let stderr = String::from_utf8_lossy(&resolved.stderr);
    assert!(resolved.status.success(), "{stderr}");
    let doc: Value = serde_yaml::from_slice(&resolved.stdout)?;
    assert_eq!(
        der(doc["spec"]["authorities"][0]["key"]["data"].as_str().ok_or("no data")?),
        expected
    );

    // The source profile's secret key wrong: moto's STS refuses the AssumeRole signature (with
    // its `<ErrorResponse><Errors><Error>` shape, whose code the SDK's STS client does not read:
    // it says "service error" with the request id; real STS answers the standard shape).
    let wrong = format!("{}A", &secret[1..]);
    let refused = run(&config(&wrong))?;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("no awskms credentials: the AWS SDK's default chain (environment, profile assumed")
            && stderr.contains("service error"),
        "{stderr}"
    );
    assert!(!stderr.contains(&wrong) && !stderr.contains(&secret), "{stderr}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_article_kms_policy_admits_kms_signed_images_through_the_provider() -> TestResult {
    let moto = MotoServer::start()?;
    let key_id = moto.create_signing_key()?;
    let registry = Registry::start()?;
    let host = registry.host();
    let digest = push_image(&host, "myproject/app", "v1", "kms-signed")?;
    sign_with_external(&host, "myproject/app", &digest, &BTreeMap::new(), |payload| {
        moto.sign(&key_id, payload)
    })?;
    push_image(&host, "myproject/unsigned", "v1", "unsigned")?;

    let policy: Value = serde_yaml::from_str(&article_policy(&host, &format!("awskms://{}/{key_id}", moto.host()))?)?;
    let ca = Ca::new("serving CA")?;
    let gatekeeper_ca = Ca::new("gatekeeper CA")?;
    let files = TlsFiles::write(&ca.server()?, &gatekeeper_ca)?;
    let settings = files.dir.path().join("settings.yaml");
    std::fs::write(&settings, serde_json::json!({"policies": [policy]}).to_string())?;
    let sources = files.dir.path().join("sources.yaml");
    std::fs::write(&sources, format!("insecure_sources: [\"{host}\"]\n"))?;
    let provider = ProviderProcess::start(|| {
        let mut command = cip(files.dir.path(), moto.signer());
        command
            .arg("provider")
            .arg("--settings-path")
            .arg(&settings)
            .arg("--sources-path")
            .arg(&sources)
            .args(["--kms-insecure-endpoint", &moto.host()])
            .args(files.provider_args())
            .arg(policy_wasm());
        command
    })?;
    let addr = provider.addr();
    let gatekeeper = bounded_tls13_client(&ca, Some(&gatekeeper_ca.client()?))?;
    let signed = key(&format!("{host}/myproject/app:v1"), "default");
    let unsigned = key(&format!("{host}/myproject/unsigned:v1"), "default");
    let answer: Value = gatekeeper
        .post(format!("https://{addr}/validate"))
        .json(&request(&[signed.clone(), unsigned.clone()]))
        .send()
        .await?
        .json()
        .await?;
    let value = &item(&answer, &signed).ok_or("no item")?["value"];
    assert_eq!(value["verdict"], "allow", "{answer}");
    assert_eq!(value["digest"], digest.as_str(), "{answer}");
    let value = &item(&answer, &unsigned).ok_or("no item")?["value"];
    assert_eq!(value["verdict"], "deny", "{answer}");
    assert!(
        value["message"]
            .as_str()
            .unwrap_or_default()
            .contains("denied by policy kms-signed-policy"),
        "{answer}"
    );
    Ok(())
}
