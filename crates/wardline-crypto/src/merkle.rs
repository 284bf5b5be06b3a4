//! The audit log's Merkle tree, as RFC 9162 §2.1 defines it (the Certificate
//! Transparency tree): leaves are `SHA-256(0x00 || entry)`, interior nodes
//! `SHA-256(0x01 || left || right)`, and the tree over `n` leaves splits at the
//! largest power of two below `n`.
//!
//! The server never holds the whole tree. Appending needs only the
//! [`CompactRange`] (one hash per set bit of the size). Proofs are computed from
//! a [`LeafSet`]: the leaf hashes that are still stored plus, when old entries
//! were purged under the retention policy, the compact range that summarised the
//! purged prefix. That summary is exactly enough for proofs about what remains.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// `MTH({})`: the hash of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The hash chain beside the tree: `chain(i) = SHA-256(0x02 || chain(i-1) ||
/// leaf(i))` from [`CHAIN_GENESIS`]. The tree proves membership and prefixes; the
/// chain lets a verifier name the first entry where the stored log departs from
/// what was written, without a checkpoint at every entry.
pub fn chain_hash(prev: &Hash, leaf: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([2u8]);
    h.update(prev);
    h.update(leaf);
    h.finalize().into()
}

pub const CHAIN_GENESIS: Hash = [0u8; 32];

/// The largest power of two strictly below `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The right edge of a tree: the roots of its maximal perfect subtrees, largest
/// (leftmost) first. Enough to append and to compute the root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    nodes: Vec<Hash>,
}

impl CompactRange {
    pub fn new() -> CompactRange {
        CompactRange::default()
    }

    /// Rebuilds a range from stored parts; `None` if the node count does not
    /// match the size (one node per set bit).
    pub fn from_parts(size: u64, nodes: Vec<Hash>) -> Option<CompactRange> {
        (size.count_ones() as usize == nodes.len()).then_some(CompactRange { size, nodes })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    pub fn push(&mut self, leaf: Hash) {
        let mut node = leaf;
        // Each trailing one bit of the old size is a perfect subtree that the new
        // leaf completes into a bigger one.
        let mut size = self.size;
        while size & 1 == 1 {
            let left = self.nodes.pop().expect("one node per set bit");
            node = node_hash(&left, &node);
            size >>= 1;
        }
        self.nodes.push(node);
        self.size += 1;
    }

    pub fn root(&self) -> Hash {
        let mut iter = self.nodes.iter().rev();
        let Some(last) = iter.next() else {
            return empty_root();
        };
        iter.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("tree size {size} is beyond the log ({available} entries)")]
    BeyondLog { size: u64, available: u64 },
    #[error("entry {index} is not in a tree of {size} entries")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("entries before {0} were purged under the retention policy")]
    Purged(u64),
}

/// The leaf hashes a proof can be computed from: a purged prefix summarised by
/// its compact range, then the stored leaves in order.
pub struct LeafSet<'a> {
    purged: &'a CompactRange,
    leaves: &'a [Hash],
}

impl<'a> LeafSet<'a> {
    pub fn new(purged: &'a CompactRange, leaves: &'a [Hash]) -> LeafSet<'a> {
        LeafSet { purged, leaves }
    }

    pub fn size(&self) -> u64 {
        self.purged.size + self.leaves.len() as u64
    }

    /// `MTH(D[lo:hi])`.
    fn subtree(&self, lo: u64, hi: u64) -> Result<Hash, ProofError> {
        let p = self.purged.size;
        if lo >= p {
            return Ok(mth(&self.leaves[(lo - p) as usize..(hi - p) as usize]));
        }
        if hi <= p {
            // Inside the purged prefix only its own perfect subtrees are known;
            // a range made of several of them is split below until it meets them.
            let mut start = 0u64;
            for (bit, node) in set_bits_desc(p).zip(&self.purged.nodes) {
                if start == lo && start + bit == hi {
                    return Ok(*node);
                }
                start += bit;
            }
            if (hi - lo).is_power_of_two() {
                return Err(ProofError::Purged(p));
            }
        }
        let k = split(hi - lo);
        Ok(node_hash(
            &self.subtree(lo, lo + k)?,
            &self.subtree(lo + k, hi)?,
        ))
    }

    pub fn root(&self, size: u64) -> Result<Hash, ProofError> {
        self.check_size(size)?;
        if size == 0 {
            return Ok(empty_root());
        }
        self.subtree(0, size)
    }

    fn check_size(&self, size: u64) -> Result<(), ProofError> {
        if size > self.size() {
            return Err(ProofError::BeyondLog {
                size,
                available: self.size(),
            });
        }
        Ok(())
    }

    /// RFC 9162 §2.1.3.1 `PATH(m, D[0:n])`, leaf to root.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size });
        }
        if index < self.purged.size {
            return Err(ProofError::Purged(self.purged.size));
        }
        let mut out = Vec::new();
        self.path(index, 0, size, &mut out)?;
        Ok(out)
    }

    fn path(&self, m: u64, lo: u64, hi: u64, out: &mut Vec<Hash>) -> Result<(), ProofError> {
        if hi - lo <= 1 {
            return Ok(());
        }
        let k = split(hi - lo);
        if m - lo < k {
            self.path(m, lo, lo + k, out)?;
            out.push(self.subtree(lo + k, hi)?);
        } else {
            self.path(m, lo + k, hi, out)?;
            out.push(self.subtree(lo, lo + k)?);
        }
        Ok(())
    }

    /// RFC 9162 §2.1.4.1 `PROOF(m, D[0:n])`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(new)?;
        if old > new {
            return Err(ProofError::IndexOutOfRange {
                index: old,
                size: new,
            });
        }
        let mut out = Vec::new();
        if old == 0 || old == new {
            return Ok(out);
        }
        self.subproof(old, 0, new, true, &mut out)?;
        Ok(out)
    }

    fn subproof(
        &self,
        m: u64,
        lo: u64,
        hi: u64,
        complete: bool,
        out: &mut Vec<Hash>,
    ) -> Result<(), ProofError> {
        let n = hi - lo;
        if m == n {
            if !complete {
                out.push(self.subtree(lo, hi)?);
            }
            return Ok(());
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, lo, lo + k, complete, out)?;
            out.push(self.subtree(lo + k, hi)?);
        } else {
            self.subproof(m - k, lo + k, hi, false, out)?;
            out.push(self.subtree(lo, lo + k)?);
        }
        Ok(())
    }
}

/// Powers of two of the set bits of `n`, largest first.
fn set_bits_desc(n: u64) -> impl Iterator<Item = u64> {
    (0..64)
        .rev()
        .map(|b| 1u64 << b)
        .filter(move |bit| n & bit != 0)
}

/// `MTH` over a slice of leaf hashes, via a compact range (linear, no recursion).
pub fn mth(leaves: &[Hash]) -> Hash {
    let mut range = CompactRange::new();
    for l in leaves {
        range.push(*l);
    }
    range.root()
}

/// RFC 9162 §2.1.3.2: does `proof` show `leaf` at `index` in the tree of `size`
/// with `root`?
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && r == *root
}

/// RFC 9162 §2.1.4.2: does `proof` show that the tree of `old` entries with
/// `old_root` is a prefix of the tree of `new` entries with `new_root`?
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old > new {
        return false;
    }
    if old == new {
        return proof.is_empty() && old_root == new_root;
    }
    if old == 0 {
        return proof.is_empty();
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut f_n, mut s_n) = (old - 1, new - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    fr == *old_root && sr == *new_root && s_n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    /// The RFC's recursive definition, written as plainly as possible.
    fn reference_mth(d: &[Hash]) -> Hash {
        match d.len() {
            0 => empty_root(),
            1 => d[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&reference_mth(&d[..k]), &reference_mth(&d[k..]))
            }
        }
    }

    #[test]
    fn compact_range_root_matches_the_recursive_definition() {
        let all = leaves(70);
        for n in 0..=70 {
            assert_eq!(mth(&all[..n]), reference_mth(&all[..n]), "n={n}");
        }
    }

    #[test]
    fn known_answer_from_rfc_6962_test_vectors() {
        // The 8-leaf tree used by Certificate Transparency's reference tests.
        let inputs: [&[u8]; 8] = [
            b"",
            &[0x00],
            &[0x10],
            &[0x20, 0x21],
            &[0x30, 0x31],
            &[0x40, 0x41, 0x42, 0x43],
            &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
            &[
                0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
                0x6e, 0x6f,
            ],
        ];
        let l: Vec<Hash> = inputs.iter().map(|d| leaf_hash(d)).collect();
        assert_eq!(
            hex::encode(mth(&l)),
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
        );
        assert_eq!(
            hex::encode(mth(&l[..3])),
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"
        );
    }

    #[test]
    fn every_inclusion_and_consistency_proof_verifies_and_tampering_fails() {
        let all = leaves(33);
        let empty = CompactRange::new();
        let set = LeafSet::new(&empty, &all);
        for n in 1..=33u64 {
            let root = set.root(n).unwrap();
            for i in 0..n {
                let proof = set.inclusion_proof(i, n).unwrap();
                assert!(verify_inclusion(&all[i as usize], i, n, &proof, &root));
                let other = &all[(i as usize + 1) % 33];
                assert!(!verify_inclusion(other, i, n, &proof, &root));
                if i + 1 < n {
                    assert!(!verify_inclusion(&all[i as usize], i + 1, n, &proof, &root));
                }
            }
            for m in 0..=n {
                let old_root = set.root(m).unwrap();
                let proof = set.consistency_proof(m, n).unwrap();
                assert!(
                    verify_consistency(m, n, &old_root, &root, &proof),
                    "m={m} n={n}"
                );
                if m > 0 && m < n {
                    let wrong = leaf_hash(b"forged");
                    assert!(!verify_consistency(m, n, &wrong, &root, &proof));
                    assert!(!verify_consistency(m, n, &old_root, &wrong, &proof));
                }
            }
        }
    }

    #[test]
    fn proofs_after_a_purge_equal_proofs_over_the_full_log() {
        let all = leaves(45);
        let empty = CompactRange::new();
        let full = LeafSet::new(&empty, &all);
        for purged in [1u64, 8, 13, 32] {
            let mut prefix = CompactRange::new();
            for l in &all[..purged as usize] {
                prefix.push(*l);
            }
            let rest = LeafSet::new(&prefix, &all[purged as usize..]);
            for n in purged..=45 {
                assert_eq!(rest.root(n).unwrap(), full.root(n).unwrap());
                for i in purged..n {
                    assert_eq!(
                        rest.inclusion_proof(i, n).unwrap(),
                        full.inclusion_proof(i, n).unwrap()
                    );
                }
                assert_eq!(
                    rest.consistency_proof(purged, n).unwrap(),
                    full.consistency_proof(purged, n).unwrap()
                );
            }
            if purged > 1 {
                assert_eq!(rest.inclusion_proof(0, 45), Err(ProofError::Purged(purged)));
            }
        }
    }

    #[test]
    fn compact_range_parts_round_trip_and_reject_mismatched_sizes() {
        let mut r = CompactRange::new();
        for l in leaves(11) {
            r.push(l);
        }
        let back = CompactRange::from_parts(11, r.nodes().to_vec()).unwrap();
        assert_eq!(back.root(), r.root());
        assert!(CompactRange::from_parts(12, r.nodes().to_vec()).is_none());
    }
}
