//! Wardline's domain: the services behind every entry point, without HTTP.
//!
//! One folder per domain, each a service (the logic) split by operation:
//! [`auth`] (sign-in, MFA, sessions), [`directory`] (organisations, users,
//! policy), [`messaging`] (the MLS delivery service: devices, conversations,
//! submission, sync), [`patients`] (patient texting: consent, templates, SMS,
//! secure links), [`lifecycle`] (retention, legal hold, recall, remote wipe),
//! [`routing`] (clinical directory, on-call, escalation), [`audit`] (the
//! trail's one writer; [`audit_reader`] reads and verifies it).
//!
//! Below the domains, so that no domain needs another's service for a rule:
//! [`policy`] (the organisation's policy rules as pure functions),
//! [`credentials`] (password hashing, TOTP), [`hub`] (wake-ups for open sync
//! connections), [`authz`] (the one place permissions are checked),
//! [`vault`] (the one place PHI is encrypted), [`phone`], [`text`], [`clock`],
//! [`config`], [`error`].
//!
//! Services are built from one [`deps::Deps`]; use cases spanning services
//! are in [`use_cases`]; background loops are [`worker::Worker`]s. Storage is
//! behind the traits of `wardline-store`. Entry points (`wardline-server`'s
//! HTTP API, the CLI) sit above this crate; nothing here knows about them.

pub mod audit;
pub mod audit_reader;
pub mod auth;
pub mod authz;
pub mod caller;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod deps;
pub mod directory;
pub mod error;
pub mod hub;
pub mod lifecycle;
pub mod messaging;
pub mod patients;
pub mod phone;
pub mod policy;
pub mod push;
pub mod reports;
pub mod routing;
pub mod text;
pub mod use_cases;
pub mod vault;
pub mod worker;

pub use config::Config;
pub use error::{ApiError, ApiResult};
