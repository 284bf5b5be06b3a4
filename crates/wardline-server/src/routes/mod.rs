//! The HTTP API, one file per domain: each handler reads the request, lets
//! the session extractor authenticate it, hands over to the domain's service
//! in `wardline-core` and shapes the response. The request's audit event is
//! recorded by [`crate::request_audit`], never by a handler.
//!
//! Also here: the sync WebSocket ([`sync_socket`]), the patient's HTML
//! pages ([`patient_pages`]), which sit above the same services, and the
//! clinicians' web app's files ([`web_app`]).

pub mod audit;
pub mod auth;
pub mod directory;
pub mod lifecycle;
pub mod messaging;
pub mod patient_pages;
pub mod patients;
pub mod reports;
pub mod routing;
pub mod sync_socket;
pub mod web_app;
