//! Use cases that span several services, one function each, so that every
//! entry point (the HTTP API today; SCIM and directory sync next) runs the
//! same steps in the same order instead of repeating the orchestration.

pub mod deprovision;

pub use deprovision::deprovision;
