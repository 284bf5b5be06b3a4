//! The Wardline server.
//!
//! Layout: one module per domain, each with its service (the logic) and its
//! `routes` (thin HTTP handlers): [`auth`], [`directory`], [`audit`] (the
//! trail's writer; [`audit_reader`] reads it), [`messaging`] (the MLS
//! delivery service), [`patients`] (patient texting: consent, templates, SMS,
//! secure links and the patient's pages), [`lifecycle`], [`routing`].
//! Services are built from one [`deps::Deps`]; use cases spanning services
//! are in [`use_cases`]; background loops are [`worker::Worker`]s.
//! Cross-cutting: [`authz`] (the one place permissions are checked),
//! [`authn`] (the session behind a request), [`audit::scope`] (the one place
//! requests are audited), [`vault`] (the one place PHI is encrypted),
//! [`http`] (extractors and middleware), [`state`] (what handlers use),
//! [`app`] (assembly and serving). Storage is behind the traits of
//! `wardline-store`; `wardline-store-sql` implements them.

pub mod app;
pub mod audit;
pub mod audit_reader;
pub mod auth;
pub mod authn;
pub mod authz;
pub mod clock;
pub mod config;
pub mod connections;
pub mod demo;
pub mod deps;
pub mod directory;
pub mod error;
pub mod http;
pub mod lifecycle;
pub mod messaging;
pub mod ops;
pub mod patients;
pub mod phone;
pub mod routing;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod use_cases;
pub mod vault;
pub mod worker;

pub use app::Server;
pub use config::Config;
pub use state::AppState;
