//! End-to-end tests live in `tests/`; `src/bin/demo.rs` is the `make demo` walkthrough and
//! `src/bin/bench.rs` the `make bench` fixture. What they share lives here.

/// Replaces the placeholder PEM blocks of an article policy by `keys`, in order. Nothing else
/// of the document changes.
pub fn with_keys(yaml: &str, keys: &[&str]) -> String {
    let mut out = String::new();
    let mut keys = keys.iter();
    let mut lines = yaml.lines();
    while let Some(line) = lines.next() {
        out.push_str(line);
        out.push('\n');
        if line.trim() == "-----BEGIN PUBLIC KEY-----" {
            let indent = &line[..line.len() - line.trim_start().len()];
            let key = keys
                .next()
                .unwrap_or_else(|| panic!("more placeholder key blocks than keys in:\n{yaml}"));
            for body in key.lines().filter(|l| !l.starts_with("-----")) {
                out.push_str(indent);
                out.push_str(body);
                out.push('\n');
            }
            for skipped in lines.by_ref() {
                if skipped.trim() == "-----END PUBLIC KEY-----" {
                    out.push_str(skipped);
                    out.push('\n');
                    break;
                }
            }
        }
    }
    assert!(keys.next().is_none(), "more keys than placeholder blocks in:\n{yaml}");
    out
}
