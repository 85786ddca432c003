//! RFC 6962 §2.1 Merkle trees over the journal: the leaves are the entries'
//! hashes in journal order, the tree head (MTH) and consistency proofs as the
//! RFC defines them, and the proof check of RFC 9162 §2.1.4.2.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two smaller than `n` (`n` > 1).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// MTH over leaf hashes (already `leaf_hash`ed); the hash of the empty string
/// for no leaves.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// PROOF(m, D\[n\]) of RFC 6962 §2.1.2: that the tree of the first `m` leaves is a
/// prefix of the tree of all of them. Empty when `m` is 0 or all.
pub fn consistency_proof(leaves: &[Hash], m: usize) -> Vec<Hash> {
    if m == 0 || m >= leaves.len() {
        return vec![];
    }
    let mut proof = Vec::new();
    subproof(m, leaves, true, &mut proof);
    proof
}

fn subproof(m: usize, leaves: &[Hash], complete: bool, proof: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            proof.push(root(leaves));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, &leaves[..k], complete, proof);
        proof.push(root(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, proof);
        proof.push(root(&leaves[..k]));
    }
}

/// Whether `proof` shows the tree of size `m` with root `old` to be a prefix of
/// the tree of size `n` with root `new` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(m: u64, n: u64, old: &Hash, new: &Hash, proof: &[Hash]) -> bool {
    if m > n {
        return false;
    }
    if m == n {
        return proof.is_empty() && old == new;
    }
    if m == 0 {
        return proof.is_empty();
    }
    let mut path: Vec<Hash> = proof.to_vec();
    // When m is a power of two, the old root is the first node of the path.
    if m.is_power_of_two() {
        path.insert(0, *old);
    }
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut fn_, mut sn) = (m - 1, n - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && &fr == old && &sr == new
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn the_root_of_three_leaves_is_built_by_hand() {
        let l = leaves(3);
        // RFC 6962: MTH(D[3]) = H(1 || MTH(D[0:2]) || MTH(D[2:3])).
        let expected = node_hash(&node_hash(&l[0], &l[1]), &l[2]);
        assert_eq!(root(&l), expected);
        let empty: Hash = Sha256::digest([]).into();
        assert_eq!(root(&[]), empty);
    }

    #[test]
    fn every_prefix_is_proved_consistent_and_a_changed_leaf_is_not() {
        for n in 1..=20usize {
            let all = leaves(n);
            let new = root(&all);
            for m in 1..=n {
                let old = root(&all[..m]);
                let proof = consistency_proof(&all, m);
                assert!(
                    verify_consistency(m as u64, n as u64, &old, &new, &proof),
                    "{m}/{n}"
                );
                if m < n {
                    // The same proof against a history rewritten before m fails.
                    let mut rewritten = all.clone();
                    rewritten[m - 1] = leaf_hash(b"rewritten");
                    let forged_new = root(&rewritten);
                    let forged_proof = consistency_proof(&rewritten, m);
                    assert!(
                        !verify_consistency(m as u64, n as u64, &old, &forged_new, &forged_proof),
                        "rewritten {m}/{n}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_proof_of_rfc_9162s_example_has_its_three_nodes() {
        // RFC 9162 §2.1.5: the proof between the trees of 3 and 7 leaves is
        // [c, d, g, l]: 4 hashes; between 4 and 7, [l]; between 6 and 7, [i, j, k].
        let all = leaves(7);
        assert_eq!(consistency_proof(&all, 3).len(), 4);
        assert_eq!(consistency_proof(&all, 4), vec![root(&all[4..])]);
        assert_eq!(consistency_proof(&all, 6).len(), 3);
    }
}
