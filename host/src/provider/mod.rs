//! OPA Gatekeeper external data provider: answers Gatekeeper's `ProviderRequest`s about
//! `{"image","namespace"}` keys with the policy module's verdicts, over TLS 1.3 (optionally
//! mTLS), within a deadline below Gatekeeper's webhook timeout. See `docs/gatekeeper.md`.

mod batch;
mod budget;
mod connection;
mod decider;
mod fd_limit;
mod metrics;
pub mod mutation;
mod policy_decider;
pub mod protocol;
mod server;
pub mod settings_watch;
mod slots;
mod tls;

pub use batch::Limits;
pub use connection::ConnectionLimits;
pub use decider::{Decider, DownloadPoolStats, SettingsStatus};
pub use policy_decider::{PolicyDecider, PolicyDeciderError};
pub use protocol::{Decision, Item, ProviderRequest, ProviderResponse};
pub use server::{ProviderConfig, RunningProvider, ServeError, start};
pub use tls::{ReloadingCertResolver, ReloadingClientVerifier, TlsError};
