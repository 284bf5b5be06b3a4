//! The Wardline server: the HTTP and WebSocket entry point over the domain
//! services of `wardline-core`.
//!
//! [`routes`] (one file per domain: thin handlers, the sync socket, the
//! patient's pages), [`authn`] (the session behind a request), [`request_audit`]
//! (the one place requests are audited: [`request_audit::ROUTES`] names every
//! route's action), [`http`] (extractors and middleware), [`error`] (errors as
//! responses), [`state`] (what handlers use), [`connections`] and [`ops`]
//! (connection limits, health and metrics), [`tls`], [`telemetry`], [`demo`]
//! (the demo organisation) and [`app`] (assembly, serving and shutdown).

pub mod app;
pub mod authn;
pub mod connections;
pub mod demo;
pub mod error;
pub mod http;
pub mod ops;
pub mod request_audit;
pub mod routes;
pub mod state;
pub mod telemetry;
pub mod tls;

pub use app::Server;
pub use state::AppState;
pub use wardline_core::Config;
