//! One device's side of MLS: its signing key (the device identity), its key
//! packages, and the groups of the conversations it is in.
//!
//! All MLS state lives in the provider's key–value storage, which
//! [`MlsDevice::export`] hands to the encrypted local store and
//! [`MlsDevice::restore`] takes back; groups are cached in memory on top
//! (openmls writes every change through to the storage as it makes it).

use std::collections::HashMap;

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use uuid::Uuid;
use wardline_crypto::mls::{
    CIPHERSUITE, credential_identity, group_create_config, group_id, group_join_config,
    member_identity,
};

#[derive(Debug, thiserror::Error)]
pub enum MlsError {
    #[error("no group for conversation {0} on this device")]
    NoGroup(Uuid),
    #[error("malformed MLS data: {0}")]
    Malformed(String),
    #[error("MLS: {0}")]
    Protocol(String),
}

fn proto(e: impl std::fmt::Display) -> MlsError {
    MlsError::Protocol(e.to_string())
}

pub type Result<T> = std::result::Result<T, MlsError>;

/// `(user, device)` of group leaves.
pub type Leaves = Vec<(Uuid, Uuid)>;

/// What an incoming group message turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Content from `(user, device)`.
    Application {
        user: Uuid,
        device: Uuid,
        plaintext: Vec<u8>,
    },
    /// A commit, now merged: the group is at its next epoch.
    Commit {
        /// This device was removed by it: the conversation is closed to it.
        removed_self: bool,
        /// `(user, device)` of the leaves it added and removed: what the
        /// group's membership really became, whatever the server says.
        added: Leaves,
        removed: Leaves,
    },
    /// A proposal, stored for the next commit.
    Proposal,
}

/// Leaf capabilities: the defaults, plus the last-resort key package
/// extension (a leaf must declare every extension its key package carries).
fn capabilities() -> Capabilities {
    Capabilities::new(None, None, Some(&[ExtensionType::LastResort]), None, None)
}

pub struct MlsDevice {
    provider: OpenMlsRustCrypto,
    signer: SignatureKeyPair,
    pub user: Uuid,
    pub device: Uuid,
    groups: HashMap<Uuid, MlsGroup>,
}

impl MlsDevice {
    /// A new device identity (Ed25519) for `user`'s device `device`.
    pub fn generate(user: Uuid, device: Uuid) -> Result<MlsDevice> {
        let provider = OpenMlsRustCrypto::default();
        let signer = SignatureKeyPair::new(CIPHERSUITE.signature_algorithm()).map_err(proto)?;
        signer.store(provider.storage()).map_err(proto)?;
        Ok(MlsDevice {
            provider,
            signer,
            user,
            device,
            groups: HashMap::new(),
        })
    }

    /// The device's state as key–value pairs, for the encrypted local store.
    pub fn export(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let values = self.provider.storage().values.read().expect("storage lock");
        let mut out: Vec<_> = values.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        out.sort();
        out
    }

    /// Rebuilds a device from [`MlsDevice::export`]ed state.
    pub fn restore(
        user: Uuid,
        device: Uuid,
        identity_key: &[u8],
        storage: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<MlsDevice> {
        let provider = OpenMlsRustCrypto::default();
        provider
            .storage()
            .values
            .write()
            .expect("storage lock")
            .extend(storage);
        let signer = SignatureKeyPair::read(
            provider.storage(),
            identity_key,
            CIPHERSUITE.signature_algorithm(),
        )
        .ok_or_else(|| MlsError::Malformed("the device's signing key is missing".into()))?;
        Ok(MlsDevice {
            provider,
            signer,
            user,
            device,
            groups: HashMap::new(),
        })
    }

    /// The Ed25519 public key: the device's identity and MLS signature key.
    pub fn identity_key(&self) -> Vec<u8> {
        self.signer.to_public_vec()
    }

    fn credential(&self) -> CredentialWithKey {
        CredentialWithKey {
            credential: BasicCredential::new(credential_identity(self.user, self.device)).into(),
            signature_key: self.signer.to_public_vec().into(),
        }
    }

    /// `n` one-use key packages and a last-resort one, serialized for upload.
    pub fn key_packages(&self, n: usize) -> Result<(Vec<Vec<u8>>, Vec<u8>)> {
        let mut one_use = Vec::with_capacity(n);
        for _ in 0..n {
            let b = KeyPackage::builder()
                .leaf_node_capabilities(capabilities())
                .build(CIPHERSUITE, &self.provider, &self.signer, self.credential())
                .map_err(proto)?;
            one_use.push(b.key_package().tls_serialize_detached().map_err(proto)?);
        }
        let lr = KeyPackage::builder()
            .leaf_node_capabilities(capabilities())
            .mark_as_last_resort()
            .build(CIPHERSUITE, &self.provider, &self.signer, self.credential())
            .map_err(proto)?;
        Ok((
            one_use,
            lr.key_package().tls_serialize_detached().map_err(proto)?,
        ))
    }

    fn group(&mut self, conv: Uuid) -> Result<&mut MlsGroup> {
        if !self.groups.contains_key(&conv) {
            let g = MlsGroup::load(self.provider.storage(), &group_id(conv))
                .map_err(proto)?
                .ok_or(MlsError::NoGroup(conv))?;
            self.groups.insert(conv, g);
        }
        Ok(self.groups.get_mut(&conv).expect("just inserted"))
    }

    pub fn has_group(&mut self, conv: Uuid) -> bool {
        self.group(conv).is_ok_and(|g| g.is_active())
    }

    /// Forgets the conversation's group: its secrets leave the store, so
    /// nothing more sent to it can be read here (this person left). A group
    /// this device never had is not an error.
    pub fn forget_group(&mut self, conv: Uuid) -> Result<()> {
        match self.group(conv) {
            Ok(_) => {}
            Err(MlsError::NoGroup(_)) => return Ok(()),
            Err(e) => return Err(e),
        }
        let mut g = self.groups.remove(&conv).expect("loaded above");
        g.delete(self.provider.storage()).map_err(proto)?;
        Ok(())
    }

    /// Starts the conversation's group with this device as its only member.
    pub fn create_group(&mut self, conv: Uuid) -> Result<()> {
        let g = MlsGroup::new_with_group_id(
            &self.provider,
            &self.signer,
            &group_create_config(),
            group_id(conv),
            self.credential(),
        )
        .map_err(proto)?;
        self.groups.insert(conv, g);
        Ok(())
    }

    pub fn epoch(&mut self, conv: Uuid) -> Result<u64> {
        Ok(self.group(conv)?.epoch().as_u64())
    }

    /// `(user, device)` of every leaf of the group.
    pub fn members(&mut self, conv: Uuid) -> Result<Vec<(Uuid, Uuid)>> {
        Ok(self
            .group(conv)?
            .members()
            .filter_map(|m| member_identity(&m.credential))
            .collect())
    }

    /// A commit adding the devices whose (serialized) key packages are given,
    /// and the Welcome for them. Pending until [`MlsDevice::merge_pending`].
    pub fn add(&mut self, conv: Uuid, key_packages: &[Vec<u8>]) -> Result<(Vec<u8>, Vec<u8>)> {
        self.group(conv)?;
        let crypto = self.provider.crypto();
        let mut kps = Vec::with_capacity(key_packages.len());
        for kp in key_packages {
            let kp = KeyPackageIn::tls_deserialize_exact(kp)
                .map_err(|e| MlsError::Malformed(e.to_string()))?
                .validate(crypto, ProtocolVersion::Mls10)
                .map_err(proto)?;
            kps.push(kp);
        }
        let provider = &self.provider;
        let signer = &self.signer;
        let g = self.groups.get_mut(&conv).ok_or(MlsError::NoGroup(conv))?;
        let (commit, welcome, _) = g.add_members(provider, signer, &kps).map_err(proto)?;
        Ok((
            wardline_crypto::mls::serialize(&commit),
            wardline_crypto::mls::serialize(&welcome),
        ))
    }

    /// A commit removing every leaf of the given devices.
    pub fn remove(&mut self, conv: Uuid, devices: &[Uuid]) -> Result<Vec<u8>> {
        self.group(conv)?;
        let provider = &self.provider;
        let signer = &self.signer;
        let g = self.groups.get_mut(&conv).expect("loaded above");
        let leaves: Vec<LeafNodeIndex> = g
            .members()
            .filter(|m| member_identity(&m.credential).is_some_and(|(_, d)| devices.contains(&d)))
            .map(|m| m.index)
            .collect();
        let (commit, _, _) = g.remove_members(provider, signer, &leaves).map_err(proto)?;
        Ok(wardline_crypto::mls::serialize(&commit))
    }

    /// The server accepted this device's pending commit. Returns the
    /// `(user, device)` pairs it added and removed.
    pub fn merge_pending(&mut self, conv: Uuid) -> Result<(Leaves, Leaves)> {
        self.group(conv)?;
        let provider = &self.provider;
        let g = self.groups.get_mut(&conv).expect("loaded above");
        let (added, removed) = match g.pending_commit() {
            Some(staged) => (
                staged
                    .add_proposals()
                    .filter_map(|a| {
                        member_identity(a.add_proposal().key_package().leaf_node().credential())
                    })
                    .collect(),
                staged
                    .remove_proposals()
                    .filter_map(|r| g.member(r.remove_proposal().removed()))
                    .filter_map(member_identity)
                    .collect(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        g.merge_pending_commit(provider).map_err(proto)?;
        Ok((added, removed))
    }

    /// The server refused this device's pending commit (another won the epoch).
    pub fn clear_pending(&mut self, conv: Uuid) -> Result<()> {
        self.group(conv)?;
        let storage = self.provider.storage();
        let g = self.groups.get_mut(&conv).expect("loaded above");
        g.clear_pending_commit(storage).map_err(proto)
    }

    pub fn encrypt(&mut self, conv: Uuid, plaintext: &[u8]) -> Result<Vec<u8>> {
        self.group(conv)?;
        let provider = &self.provider;
        let signer = &self.signer;
        let g = self.groups.get_mut(&conv).expect("loaded above");
        let msg = g
            .create_message(provider, signer, plaintext)
            .map_err(proto)?;
        Ok(wardline_crypto::mls::serialize(&msg))
    }

    /// Decrypts and applies an incoming group message.
    pub fn process(&mut self, conv: Uuid, bytes: &[u8]) -> Result<Incoming> {
        self.group(conv)?;
        let msg = MlsMessageIn::tls_deserialize_exact(bytes)
            .map_err(|e| MlsError::Malformed(e.to_string()))?;
        let protocol = msg
            .try_into_protocol_message()
            .map_err(|e| MlsError::Malformed(e.to_string()))?;
        let provider = &self.provider;
        let g = self.groups.get_mut(&conv).expect("loaded above");
        let processed = g.process_message(provider, protocol).map_err(proto)?;
        let sender = member_identity(processed.credential());
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(app) => {
                let (user, device) = sender.ok_or_else(|| {
                    MlsError::Protocol("sender credential is not a Wardline device".into())
                })?;
                Ok(Incoming::Application {
                    user,
                    device,
                    plaintext: app.into_bytes(),
                })
            }
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                let removed_self = staged.self_removed();
                // Every leaf must be a Wardline device: a commit that brings in
                // anything else is not merged (the group stays where it was).
                let mut added = Vec::new();
                for a in staged.add_proposals() {
                    let cred = a.add_proposal().key_package().leaf_node().credential();
                    added.push(member_identity(cred).ok_or_else(|| {
                        MlsError::Protocol(
                            "commit adds a leaf that is not a Wardline device".into(),
                        )
                    })?);
                }
                let removed: Leaves = staged
                    .remove_proposals()
                    .filter_map(|r| g.member(r.remove_proposal().removed()))
                    .filter_map(member_identity)
                    .collect();
                g.merge_staged_commit(provider, *staged).map_err(proto)?;
                if removed_self {
                    self.groups.remove(&conv);
                }
                Ok(Incoming::Commit {
                    removed_self,
                    added,
                    removed,
                })
            }
            ProcessedMessageContent::ProposalMessage(p) => {
                g.store_pending_proposal(provider.storage(), *p)
                    .map_err(proto)?;
                Ok(Incoming::Proposal)
            }
            _ => Err(MlsError::Protocol("unexpected message content".into())),
        }
    }

    /// Joins a group from a Welcome; returns the conversation id.
    pub fn join(&mut self, welcome: &[u8]) -> Result<Uuid> {
        let msg = MlsMessageIn::tls_deserialize_exact(welcome)
            .map_err(|e| MlsError::Malformed(e.to_string()))?;
        let MlsMessageBodyIn::Welcome(w) = msg.extract() else {
            return Err(MlsError::Malformed("not a Welcome".into()));
        };
        let g = StagedWelcome::new_from_welcome(&self.provider, &group_join_config(), w, None)
            .map_err(proto)?
            .into_group(&self.provider)
            .map_err(proto)?;
        let conv = Uuid::from_slice(g.group_id().as_slice())
            .map_err(|_| MlsError::Malformed("group id is not a conversation id".into()))?;
        self.groups.insert(conv, g);
        Ok(conv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> MlsDevice {
        MlsDevice::generate(Uuid::new_v4(), Uuid::new_v4()).unwrap()
    }

    fn kp(d: &MlsDevice) -> Vec<u8> {
        d.key_packages(1).unwrap().0.remove(0)
    }

    #[test]
    fn members_see_who_joins_and_leaves_and_refuse_foreign_leaves() {
        let conv = Uuid::new_v4();
        let (mut alice, mut bob, carol) = (device(), device(), device());
        alice.create_group(conv).unwrap();
        let (_, welcome) = alice.add(conv, &[kp(&bob)]).unwrap();
        alice.merge_pending(conv).unwrap();
        assert_eq!(bob.join(&welcome).unwrap(), conv);

        let (commit, _) = alice.add(conv, &[kp(&carol)]).unwrap();
        let (added, _) = alice.merge_pending(conv).unwrap();
        assert_eq!(added, vec![(carol.user, carol.device)]);
        let got = bob.process(conv, &commit).unwrap();
        assert_eq!(
            got,
            Incoming::Commit {
                removed_self: false,
                added: vec![(carol.user, carol.device)],
                removed: vec![],
            }
        );
        let commit = alice.remove(conv, &[carol.device]).unwrap();
        alice.merge_pending(conv).unwrap();
        let Incoming::Commit { removed, .. } = bob.process(conv, &commit).unwrap() else {
            panic!("not a commit")
        };
        assert_eq!(removed, vec![(carol.user, carol.device)]);

        // A key package whose credential is not a Wardline device.
        let provider = OpenMlsRustCrypto::default();
        let signer = SignatureKeyPair::new(CIPHERSUITE.signature_algorithm()).unwrap();
        signer.store(provider.storage()).unwrap();
        let foreign = KeyPackage::builder()
            .build(
                CIPHERSUITE,
                &provider,
                &signer,
                CredentialWithKey {
                    credential: BasicCredential::new(b"mallory".to_vec()).into(),
                    signature_key: signer.to_public_vec().into(),
                },
            )
            .unwrap()
            .key_package()
            .tls_serialize_detached()
            .unwrap();
        let epoch = bob.epoch(conv).unwrap();
        let (commit, _) = alice.add(conv, &[foreign]).unwrap();
        assert!(bob.process(conv, &commit).is_err());
        assert_eq!(
            bob.epoch(conv).unwrap(),
            epoch,
            "the foreign commit was not merged"
        );
    }
}
