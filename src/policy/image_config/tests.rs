//! Image configs read as Go reads them: each case is what Go's `encoding/json` does with
//! go-containerregistry's `ConfigFile` (checked against Go itself in
//! `tests/image_config_against_go.rs`).

use serde_json::{Map, Value, json};

use super::go_view;
use crate::policy::go_json::GoReadError;

fn view(config: Value) -> Result<Value, GoReadError> {
    let Value::Object(config) = config else {
        panic!("not an object: {config}");
    };
    go_view(config).map(Value::Object)
}

/// What Go writes for a config that sets nothing.
fn empty() -> Map<String, Value> {
    let Value::Object(empty) = json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "os": "",
        "rootfs": {"type": "", "diff_ids": null},
        "config": {},
    }) else {
        unreachable!()
    };
    empty
}

/// `empty()` with `fields` set.
fn with(fields: Value) -> Value {
    let mut config = empty();
    if let Value::Object(fields) = fields {
        config.extend(fields);
    }
    Value::Object(config)
}

#[test]
fn a_usual_config_is_read_as_written_with_the_fields_go_always_writes() {
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-05-01T10:00:00.123456789Z",
        "config": {
            "User": "65532",
            "Env": ["PATH=/usr/bin"],
            "Entrypoint": ["/app"],
            "Labels": {"org.opencontainers.image.source": "https://github.com/acme/app"},
            "ExposedPorts": {"8080/tcp": {}},
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", "a".repeat(64))]},
        "history": [{"created": "2024-05-01T10:00:00Z", "created_by": "COPY app /app", "empty_layer": true}],
    });
    assert_eq!(view(config.clone()).unwrap(), config);
}

#[test]
fn keys_are_fields_whatever_their_case_as_go_matches_them() {
    // The runtime runs this image as root: a policy reading `User` must see it.
    assert_eq!(
        view(json!({"config": {"user": "0"}})).unwrap(),
        with(json!({"config": {"User": "0"}}))
    );
    assert_eq!(
        view(json!({"Config": {"USER": "0", "wOrKiNgDiR": "/root"}, "OS": "linux", "Architecture": "amd64"})).unwrap(),
        with(json!({"config": {"User": "0", "WorkingDir": "/root"}, "os": "linux", "architecture": "amd64"}))
    );
    // U+017F folds to `s`, U+212A (Kelvin) to `k`: `bytes.EqualFold` takes both.
    assert_eq!(
        view(json!({"config": {"U\u{17f}er": "0", "Wor\u{212a}ingDir": "/root"}})).unwrap(),
        with(json!({"config": {"User": "0", "WorkingDir": "/root"}}))
    );
    // `.` and `_` are not letters: `os_version` names no field (nor does `Created_By` at the
    // top), and is dropped as Go drops it.
    assert_eq!(
        view(json!({"OS.Version": "10.0", "os_version": "x", "Created_By": "y"})).unwrap(),
        with(json!({"os.version": "10.0"}))
    );
}

#[test]
fn two_keys_naming_one_field_are_refused() {
    for config in [
        json!({"config": {"User": "65532", "user": "0"}}),
        json!({"config": {"user": "0", "USER": "65532"}}),
        json!({"OS": "linux", "os": "windows"}),
        json!({"history": [{"created_by": "a", "Created_By": "b"}]}),
    ] {
        let error = view(config.clone()).unwrap_err();
        assert!(matches!(error, GoReadError::NamedTwice { .. }), "{config}: {error}");
    }
    let error = view(json!({"config": {"User": "65532", "user": "0"}})).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the keys \"User\" and \"user\" both name `config.User` for Go's encoding/json (it matches names without \
         regard to case and keeps the last one written), and the host's answer no longer says which was last"
    );
}

#[test]
fn fields_go_always_writes_are_there_when_missing_or_null() {
    assert_eq!(view(json!({})).unwrap(), Value::Object(empty()));
    assert_eq!(
        view(json!({"architecture": null, "os": null, "created": null, "rootfs": null, "config": null})).unwrap(),
        Value::Object(empty())
    );
    // A policy about the build time judges a config without one by the zero time, as
    // policy-controller does.
    assert_eq!(view(json!({"os": "linux"})).unwrap()["created"], "0001-01-01T00:00:00Z");
    assert_eq!(
        view(json!({"rootfs": {}})).unwrap()["rootfs"],
        json!({"type": "", "diff_ids": null})
    );
    assert_eq!(
        view(json!({"history": [null, {}]})).unwrap()["history"],
        json!([{"created": "0001-01-01T00:00:00Z"}, {"created": "0001-01-01T00:00:00Z"}])
    );
}

#[test]
fn null_leaves_a_field_unset_and_an_item_empty() {
    assert_eq!(
        view(json!({"config": {"User": null, "Cmd": null, "Labels": null, "Healthcheck": null}})).unwrap(),
        with(json!({}))
    );
    assert_eq!(
        view(json!({"config": {"Cmd": ["a", null], "Labels": {"a": null}}})).unwrap(),
        with(json!({"config": {"Cmd": ["a", ""], "Labels": {"a": ""}}}))
    );
}

/// What Go writes, exactly: a Rego rule `not cfg.config.User` tells a field from none, so a
/// config whose `User` is `""` must not have one (Go omits it) lest it pass as not root.
#[test]
fn empty_values_and_unknown_keys_are_dropped_as_go_drops_them() {
    let config = json!({
        "config": {"User": "", "Tty": false, "Env": [], "Labels": {}, "Healthcheck": {"Retries": 0}},
        "history": [],
        "container_config": {"user": "0"},
        "moby.buildkit.buildinfo.v1": "e30=",
    });
    assert_eq!(view(config).unwrap(), with(json!({"config": {"Healthcheck": {}}})));
    // A struct is never empty; nor are the fields without `omitempty`.
    assert_eq!(
        view(json!({"rootfs": {"type": "", "diff_ids": []}, "architecture": ""})).unwrap(),
        with(json!({"rootfs": {"type": "", "diff_ids": []}}))
    );
}

#[test]
fn sets_hold_empty_objects_as_go_writes_them() {
    assert_eq!(
        view(json!({"config": {"ExposedPorts": {"80/tcp": {"x": 1}, "443/tcp": null}, "Volumes": {"/data": {}}}}))
            .unwrap(),
        with(json!({"config": {"ExposedPorts": {"80/tcp": {}, "443/tcp": {}}, "Volumes": {"/data": {}}}}))
    );
}

#[test]
fn times_are_written_again_as_go_writes_them() {
    assert_eq!(
        view(json!({"created": "2024-01-01T00:00:00.500+00:00"})).unwrap()["created"],
        "2024-01-01T00:00:00.5Z"
    );
    assert_eq!(
        view(json!({"history": [{"created": "2024-01-01T01:00:00.000+01:00"}]})).unwrap()["history"][0]["created"],
        "2024-01-01T01:00:00+01:00"
    );
    for bad in [
        "yesterday",
        "2024-01-01",
        "2024-01-01T00:00:00",
        "2024-13-01T00:00:00Z",
        "2024-01-01t00:00:00z",
    ] {
        let error = view(json!({"created": bad})).unwrap_err();
        assert!(matches!(error, GoReadError::NotATime { .. }), "{bad}: {error}");
    }
}

#[test]
fn what_go_refuses_is_refused() {
    let hex = "a".repeat(64);
    for (config, path) in [
        (json!({"config": {"User": 0}}), "config.User"),
        (json!({"config": {"user": ["root"]}}), "config.User"),
        (json!({"architecture": 1}), "architecture"),
        (json!({"config": {"Tty": "true"}}), "config.Tty"),
        (json!({"config": {"Env": "A=1"}}), "config.Env"),
        (json!({"config": {"Env": ["A=1", 2]}}), "config.Env[1]"),
        (json!({"config": {"Labels": {"a": 1}}}), "config.Labels.a"),
        (json!({"config": {"Labels": ["a"]}}), "config.Labels"),
        (
            json!({"config": {"ExposedPorts": {"80/tcp": true}}}),
            "config.ExposedPorts.80/tcp",
        ),
        (
            json!({"config": {"Healthcheck": {"Interval": "1s"}}}),
            "config.Healthcheck.Interval",
        ),
        (
            json!({"config": {"Healthcheck": {"Interval": 1.5}}}),
            "config.Healthcheck.Interval",
        ),
        (
            json!({"config": {"Healthcheck": {"Retries": 1e3}}}),
            "config.Healthcheck.Retries",
        ),
        (json!({"config": {"Healthcheck": []}}), "config.Healthcheck"),
        (json!({"config": "none"}), "config"),
        (json!({"rootfs": {"diff_ids": [null]}}), "rootfs.diff_ids[0]"),
        (json!({"history": [1]}), "history[0]"),
        (json!({"history": {}}), "history"),
        (json!({"created": 1_700_000_000}), "created"),
    ] {
        let error = view(config.clone()).unwrap_err();
        assert!(
            matches!(&error, GoReadError::WrongType { path: p, .. } if p == path),
            "{config}: {error}"
        );
    }
    for digest in [
        format!("sha256:{}", hex.to_uppercase()),
        format!("sha512:{hex}{hex}"),
        format!("sha256:{}", &hex[1..]),
        format!("sha256:{hex}:x"),
        hex.clone(),
    ] {
        let error = view(json!({"rootfs": {"type": "layers", "diff_ids": [digest]}})).unwrap_err();
        assert!(matches!(error, GoReadError::NotADigest { .. }), "{digest}: {error}");
    }
    let error = view(json!({"config": {"Healthcheck": {"Timeout": u64::MAX}}})).unwrap_err();
    assert_eq!(
        error,
        GoReadError::OutOfRange {
            path: "config.Healthcheck.Timeout".to_owned(),
            value: u64::MAX.to_string()
        }
    );
    assert_eq!(
        view(json!({"config": {"Healthcheck": {"interval": -5, "Test": ["CMD", "true"]}}})).unwrap()["config"],
        json!({"Healthcheck": {"Interval": -5, "Test": ["CMD", "true"]}})
    );
}
