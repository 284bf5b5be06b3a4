//! The server's integration tests, in one binary (one link instead of eleven
//! on a 2-core machine). Each module is one area, run against the real server
//! on SQLite and on PostgreSQL; filter with `cargo nextest run -p
//! wardline-server messaging::` and the like.

#[macro_use]
mod common;

mod api_document;
mod at_rest;
mod audit_trail;
mod auth_flows;
mod authz_matrix;
mod bad_input;
mod browser_session;
mod data_dir;
mod lifecycle;
mod messaging;
mod ops;
mod patients;
mod reports;
mod routing;
mod siem_rsyslog;
mod tidy;
mod web_app;
mod web_clinical;
mod web_console;
mod web_push;
