//! `static`: a decision made without looking at signatures, e.g. to exempt images or to block
//! them outright.

use super::{Check, required};
use crate::host::HostCalls;
use crate::reference::ImageReference;
use crate::settings::raw::RawStatic;

/// `static: {action: pass|fail, message}`.
#[derive(Debug)]
pub struct StaticAuthority {
    pass: bool,
    message: Option<String>,
}

impl StaticAuthority {
    /// Parses the `static` block.
    pub fn parse(raw: RawStatic) -> Result<Self, (String, String)> {
        let action = required(raw.action, "static.action", "pass or fail")?;
        let pass = match action.as_str() {
            "pass" => true,
            "fail" => false,
            other => {
                return Err((
                    "static.action".into(),
                    format!("unknown action `{other}`: use pass or fail"),
                ));
            }
        };
        if pass && raw.message.is_some() {
            return Err((
                "static.message".into(),
                "static.message is only shown when action is fail, and action is pass: remove it".into(),
            ));
        }
        Ok(Self {
            pass,
            message: raw.message,
        })
    }
}

impl Check for StaticAuthority {
    fn passes_unsigned(&self) -> bool {
        self.pass
    }

    fn verify(&self, _image: &ImageReference, _host: &mut dyn HostCalls) -> Result<Option<String>, String> {
        if self.pass {
            Ok(None)
        } else {
            Err(self
                .message
                .clone()
                .unwrap_or_else(|| "refused by a static fail authority".to_owned()))
        }
    }
}
