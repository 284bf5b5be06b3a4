//! MLS (RFC 9420) as Wardline uses it, through `openmls`.
//!
//! Clients hold the groups; the server is the delivery service and can read
//! only the framing of a message (group, epoch, content type), never its
//! content. Everything both sides must agree on lives here: the ciphersuite,
//! the group configuration, how a credential binds a device to its user, and
//! the checks the server applies to what it is asked to store and forward.

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_rust_crypto::OpenMlsRustCrypto;
use uuid::Uuid;

/// X25519, AES-128-GCM, SHA-256, Ed25519: the mandatory-to-implement suite,
/// supported by every MLS implementation; Ed25519 is also the device identity
/// key type.
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// Credentials name a device as `wardline:<user id>:<device id>`, so that
/// every member can tell whose device a leaf is without asking the server.
pub fn credential_identity(user: Uuid, device: Uuid) -> Vec<u8> {
    format!("wardline:{user}:{device}").into_bytes()
}

/// The (user, device) a credential names, if it is one of ours.
pub fn parse_credential_identity(identity: &[u8]) -> Option<(Uuid, Uuid)> {
    let s = std::str::from_utf8(identity).ok()?;
    let rest = s.strip_prefix("wardline:")?;
    let (user, device) = rest.split_once(':')?;
    Some((Uuid::parse_str(user).ok()?, Uuid::parse_str(device).ok()?))
}

/// The (user, device) of a group member's leaf.
pub fn member_identity(credential: &Credential) -> Option<(Uuid, Uuid)> {
    let basic = BasicCredential::try_from(credential.clone()).ok()?;
    parse_credential_identity(basic.identity())
}

/// Group id of a conversation: its UUID's 16 bytes.
pub fn group_id(conversation: Uuid) -> GroupId {
    GroupId::from_slice(conversation.as_bytes())
}

/// How every conversation's group is configured. The ratchet tree travels in
/// the Welcome, so the server never has to serve it; a few past epochs are kept
/// so that a message sent just before a commit still decrypts after it.
pub fn group_create_config() -> MlsGroupCreateConfig {
    MlsGroupCreateConfig::builder()
        .ciphersuite(CIPHERSUITE)
        .use_ratchet_tree_extension(true)
        .max_past_epochs(3)
        .sender_ratchet_configuration(SenderRatchetConfiguration::new(20, 1000))
        .build()
}

pub fn group_join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(true)
        .max_past_epochs(3)
        .sender_ratchet_configuration(SenderRatchetConfiguration::new(20, 1000))
        .build()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MlsCheckError {
    #[error("not a well-formed MLS message")]
    Malformed,
    #[error("expected {expected}, got {got}")]
    WrongType {
        expected: &'static str,
        got: &'static str,
    },
    #[error("key package signature or contents are invalid: {0}")]
    InvalidKeyPackage(String),
    #[error("key package uses another ciphersuite than {CIPHERSUITE:?}")]
    WrongCiphersuite,
}

/// What the server can see of a handshake or application message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framing {
    pub group_id: Vec<u8>,
    pub epoch: u64,
    pub content: FramedContent,
    /// Application messages must be encrypted; a plaintext one is refused.
    pub encrypted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramedContent {
    Application,
    Proposal,
    Commit,
}

impl FramedContent {
    pub fn as_str(self) -> &'static str {
        match self {
            FramedContent::Application => "an application message",
            FramedContent::Proposal => "a proposal",
            FramedContent::Commit => "a commit",
        }
    }
}

fn body_name(body: &MlsMessageBodyIn) -> &'static str {
    match body {
        MlsMessageBodyIn::PublicMessage(_) => "a public message",
        MlsMessageBodyIn::PrivateMessage(_) => "a private message",
        MlsMessageBodyIn::Welcome(_) => "a Welcome",
        MlsMessageBodyIn::GroupInfo(_) => "a GroupInfo",
        MlsMessageBodyIn::KeyPackage(_) => "a key package",
    }
}

/// Reads the framing of a group message (public or private).
pub fn inspect_message(bytes: &[u8]) -> Result<Framing, MlsCheckError> {
    let msg = MlsMessageIn::tls_deserialize_exact(bytes).map_err(|_| MlsCheckError::Malformed)?;
    let body = msg.extract();
    let encrypted = matches!(body, MlsMessageBodyIn::PrivateMessage(_));
    let protocol: ProtocolMessage = match body {
        MlsMessageBodyIn::PublicMessage(m) => m.into(),
        MlsMessageBodyIn::PrivateMessage(m) => m.into(),
        other => {
            return Err(MlsCheckError::WrongType {
                expected: "a group message",
                got: body_name(&other),
            });
        }
    };
    let content = match protocol.content_type() {
        ContentType::Application => FramedContent::Application,
        ContentType::Proposal => FramedContent::Proposal,
        ContentType::Commit => FramedContent::Commit,
    };
    Ok(Framing {
        group_id: protocol.group_id().as_slice().to_vec(),
        epoch: protocol.epoch().as_u64(),
        content,
        encrypted,
    })
}

/// Checks that `bytes` is a Welcome message.
pub fn check_welcome(bytes: &[u8]) -> Result<(), MlsCheckError> {
    let msg = MlsMessageIn::tls_deserialize_exact(bytes).map_err(|_| MlsCheckError::Malformed)?;
    match msg.extract() {
        MlsMessageBodyIn::Welcome(_) => Ok(()),
        other => Err(MlsCheckError::WrongType {
            expected: "a Welcome",
            got: body_name(&other),
        }),
    }
}

/// A key package the server has checked: signed by the key it names, in our
/// ciphersuite, with our credential format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedKeyPackage {
    pub user: Uuid,
    pub device: Uuid,
    pub signature_key: Vec<u8>,
    pub last_resort: bool,
}

/// Validates a serialized key package (bare, as clients upload them).
pub fn check_key_package(bytes: &[u8]) -> Result<CheckedKeyPackage, MlsCheckError> {
    let kp = KeyPackageIn::tls_deserialize_exact(bytes).map_err(|_| MlsCheckError::Malformed)?;
    let crypto = OpenMlsRustCrypto::default();
    let kp = kp
        .validate(crypto.crypto(), ProtocolVersion::Mls10)
        .map_err(|e| MlsCheckError::InvalidKeyPackage(e.to_string()))?;
    if kp.ciphersuite() != CIPHERSUITE {
        return Err(MlsCheckError::WrongCiphersuite);
    }
    let leaf = kp.leaf_node();
    let (user, device) = member_identity(leaf.credential()).ok_or_else(|| {
        MlsCheckError::InvalidKeyPackage("credential is not a Wardline device credential".into())
    })?;
    Ok(CheckedKeyPackage {
        user,
        device,
        signature_key: leaf.signature_key().as_slice().to_vec(),
        last_resort: kp.last_resort(),
    })
}

/// TLS-serializes an outgoing MLS message.
pub fn serialize(msg: &MlsMessageOut) -> Vec<u8> {
    msg.tls_serialize_detached()
        .expect("serializing an MLS message we built cannot fail")
}

/// A provider for checks that need crypto but no state.
pub fn stateless_provider() -> OpenMlsRustCrypto {
    OpenMlsRustCrypto::default()
}
