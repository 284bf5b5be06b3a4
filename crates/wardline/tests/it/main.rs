//! The CLI's integration tests, in one binary: each module drives the
//! `wardline` binary as a person would, against a server it starts. Filter
//! with `cargo nextest run -p wardline cli_chat::` and the like.

#[macro_use]
mod support;

mod cli;
mod cli_chat;
mod cli_lifecycle;
mod cli_patients;
mod cli_routing;
