//! A subset of CUE, evaluated in the module: enough for the policies policy-controller and
//! the article document (see `docs/policies.md` for the subset).
//!
//! [`Program::compile`] parses and evaluates the policy once (references resolved, builtins
//! applied, self-conflicts found), as `validate_settings` does; [`Program::check`] unifies the
//! compiled value with a concrete JSON document and reports the first conflict.

mod eval;
mod labels;
mod lexer;
mod parser;

use std::fmt;

pub use eval::Conflict;
use eval::Val;

/// A position in the policy text (1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

/// Why a policy text is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {}, column {}: {message}", pos.line, pos.col)]
pub struct CueError {
    pub pos: Pos,
    pub message: String,
}

impl CueError {
    /// Something outside the subset.
    pub fn unsupported(pos: Pos, what: &str) -> Self {
        Self {
            pos,
            message: format!("{what} is not supported (see the CUE subset in docs/policies.md)"),
        }
    }

    /// Something that is not valid CUE.
    pub fn invalid(pos: Pos, message: String) -> Self {
        Self { pos, message }
    }
}

/// A compiled CUE policy.
#[derive(Clone, Debug)]
pub struct Program {
    package: Option<String>,
    value: Val,
    unused_imports: Vec<String>,
}

impl Program {
    /// Parses and evaluates `text`; refuses anything outside the subset and any conflict the
    /// policy has with itself (CUE would fail every evaluation).
    pub fn compile(text: &str) -> Result<Self, CueError> {
        let file = parser::parse(text)?;
        let (value, unused_imports) = eval::compile(&file)?;
        Ok(Self {
            package: file.package,
            value,
            unused_imports,
        })
    }

    /// Unifies the policy with `input`; `Err` is the first conflict, or a key of the input CUE
    /// may read otherwise than as written (see `labels`).
    pub fn check(&self, input: &serde_json::Value) -> Result<(), Conflict> {
        labels::check_keys(input)?;
        eval::check(&self.value, input, &mut Vec::new())
    }

    /// The package clause's name, if any (it does not change the evaluation).
    pub fn package(&self) -> Option<&str> {
        self.package.as_deref()
    }

    /// Imports the policy never uses (accepted, as real CUE refuses them; worth a lint).
    pub fn unused_imports(&self) -> &[String] {
        &self.unused_imports
    }
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.value)
    }
}

#[cfg(test)]
mod tests;
