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
//!
//! No I/O here except the key provider reading and writing its own key file.

pub mod blind_index;
pub mod envelope;
pub mod key_provider;
pub mod merkle;
pub mod token;

pub use envelope::{DataKey, WrappedKey};
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
