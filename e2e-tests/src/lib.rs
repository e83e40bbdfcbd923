//! End-to-end tests live in `tests/`; `src/bin/demo.rs` is the `make demo` walkthrough.
