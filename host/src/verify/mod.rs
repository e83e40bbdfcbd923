//! TODO(owner): see docs/wire-protocol.md
