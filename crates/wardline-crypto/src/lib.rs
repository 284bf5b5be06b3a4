//! Cryptography that is Wardline's own composition of standard primitives:
//!
//! * [`envelope`]: AES-256-GCM encryption of PHI fields under per-record data keys,
//!   with the data keys wrapped by a key-encryption key (KEK).
//! * [`key_provider`]: where KEKs come from. The local key file is the default;
//!   an HSM provider implements the same trait.
//! * [`blind_index`]: keyed hashes that let the server look up an encrypted value
//!   (an e-mail address at login) without storing it in clear.
//! * [`token`]: random bearer tokens and the hashes the server stores instead.
//! * [`merkle`]: the audit log's RFC 9162 Merkle tree, proofs and their
//!   verification; checkpoint signatures come from the key provider.
//! * [`mls`]: what server and clients agree on about MLS (RFC 9420): the
//!   ciphersuite, the group configuration, how a credential names a user's
//!   device, and the delivery service's checks of messages it cannot read.
//!
//! No I/O here except the key provider reading and writing its own key file
//! (not built for WebAssembly, where the client core uses this crate).

pub mod blind_index;
pub mod envelope;
#[cfg(not(target_family = "wasm"))]
pub mod key_provider;
pub mod merkle;
pub mod mls;
pub mod token;

pub use envelope::{DataKey, WrappedKey};
#[cfg(not(target_family = "wasm"))]
pub use key_provider::{
    CheckpointSignature, KeyProvider, LocalKeyFile, verify_checkpoint_signature,
};

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Authentication tag mismatch: wrong key, wrong context, or tampered data.
    #[error("decryption failed: wrong key, wrong context or tampered ciphertext")]
    Decrypt,
    #[error("ciphertext is malformed: {0}")]
    Malformed(&'static str),
    #[error("key-encryption key {0:?} is not in the key provider")]
    UnknownKek(String),
    #[error("signing key {0:?} is not in the key provider")]
    UnknownKey(String),
    #[error("key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
}

pub type Result<T> = std::result::Result<T, CryptoError>;
