//! The `cip` command line.

/// Entry point of the `cip` binary.
pub fn main() -> anyhow::Result<()> {
    Ok(())
}
