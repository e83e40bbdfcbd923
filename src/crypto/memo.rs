//! Outcomes of signature verifications, remembered for the life of an instance.
//!
//! The binding check ([`crate::authority::binding`]) verifies a keyless or certificate layer's
//! signature in every evaluation that admits its image: an ECDSA P-256 verification is ≈ 13
//! million instructions in wasm (≈ 1 ms), 93 % of a warm keyless evaluation
//! (docs/benchmarks.md). Hosts that keep an instance (`cip run`, `cip bench` warm, the Gatekeeper
//! provider) see the same layers again and again; Kubewarden's policy-server gives every
//! evaluation a fresh instance, where this memo starts empty each time and changes nothing.
//!
//! A verification's outcome depends on the key, the digest and the signature alone, so the memo
//! keys it by **all of their bytes**, never by a hash or a part of them: a signature copied onto
//! another digest, a key swapped, a byte of the DER changed, each is a different entry and is
//! verified anew. The memo holds at most `CAPACITY` (256) outcomes, the oldest replaced first, so
//! layers nobody asked for cannot grow an instance's memory.

use std::cell::RefCell;

/// Outcomes an instance remembers: ≈ 64 KB of P-256 entries, ≈ 256 KB of 4096-bit RSA ones.
pub(crate) const CAPACITY: usize = 256;

/// A bounded memo of outcomes keyed by `(key, digest, signature)`: a ring, searched in full
/// (at most [`CAPACITY`] comparisons that mostly stop within the digest, thousands of
/// instructions against millions for a verification) and filled in order.
pub(crate) struct Memo<T> {
    entries: Vec<(Box<[u8]>, T)>,
    /// Where the next outcome goes once the ring is full.
    next: usize,
    capacity: usize,
}

impl<T: Clone> Memo<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Memo {
            entries: Vec::new(),
            next: 0,
            capacity: capacity.max(1),
        }
    }

    /// The outcome remembered for these exact bytes, or `verify`'s, then remembered.
    pub(crate) fn get_or_verify(
        &mut self,
        spki: &[u8],
        digest: &[u8; 32],
        signature: &[u8],
        verify: impl FnOnce() -> T,
    ) -> T {
        let key = memo_key(spki, digest, signature);
        if let Some((_, outcome)) = self.entries.iter().find(|(k, _)| **k == *key) {
            return outcome.clone();
        }
        let outcome = verify();
        if self.entries.len() < self.capacity {
            self.entries.push((key, outcome.clone()));
        } else {
            self.entries[self.next] = (key, outcome.clone());
            self.next = (self.next + 1) % self.capacity;
        }
        outcome
    }

    /// How many outcomes are remembered (tests check the bound).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The digest, the key's length, the key, then the signature: the digest has a fixed length
/// and the key's is written, so two different triples never give the same bytes.
fn memo_key(spki: &[u8], digest: &[u8; 32], signature: &[u8]) -> Box<[u8]> {
    let mut key = Vec::with_capacity(32 + size_of::<usize>() + spki.len() + signature.len());
    key.extend_from_slice(digest);
    key.extend_from_slice(&spki.len().to_le_bytes());
    key.extend_from_slice(spki);
    key.extend_from_slice(signature);
    key.into_boxed_slice()
}

thread_local! {
    /// The instance's memo of [`super::signature::verify_sha256_prehash`]'s outcomes.
    pub(super) static VERIFIED: RefCell<Memo<Result<(), super::signature::SignatureError>>> =
        RefCell::new(Memo::new(CAPACITY));
}

/// Empties this instance's memo: what a fresh instance starts from (benches measure both).
pub fn forget() {
    VERIFIED.with_borrow_mut(|memo| *memo = Memo::new(CAPACITY));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_outcome_is_computed_once_per_exact_triple() {
        let mut memo = Memo::new(8);
        let mut calls = 0;
        let mut verify = |spki: &[u8], digest: &[u8; 32], signature: &[u8]| {
            memo.get_or_verify(spki, digest, signature, || {
                calls += 1;
                calls
            })
        };
        assert_eq!(verify(b"key", &[1; 32], b"sig"), 1);
        assert_eq!(verify(b"key", &[1; 32], b"sig"), 1, "remembered");
        // Each part changed, and the key/signature boundary moved: verified anew.
        assert_eq!(verify(b"key", &[2; 32], b"sig"), 2);
        assert_eq!(verify(b"kez", &[1; 32], b"sig"), 3);
        assert_eq!(verify(b"key", &[1; 32], b"sih"), 4);
        assert_eq!(verify(b"keys", &[1; 32], b"ig"), 5);
        assert_eq!(
            verify(b"key", &[1; 32], b"sig"),
            1,
            "still remembered: the ring was not full"
        );
    }

    #[test]
    fn the_memo_never_holds_more_than_its_capacity_and_forgets_the_oldest() {
        let mut memo = Memo::new(3);
        for i in 0..10u8 {
            memo.get_or_verify(b"key", &[i; 32], b"sig", || i);
            assert!(memo.len() <= 3);
        }
        assert_eq!(memo.len(), 3);
        // 7, 8 and 9 are remembered; 6 is verified again.
        assert_eq!(memo.get_or_verify(b"key", &[9; 32], b"sig", || 99), 9);
        assert_eq!(memo.get_or_verify(b"key", &[6; 32], b"sig", || 66), 66);
        assert_eq!(memo.get_or_verify(b"key", &[6; 32], b"sig", || 67), 66);
    }

    /// Short parts over a two-letter alphabet and two digests: different triples whose bytes
    /// run together the same way (`ab`+`c` and `a`+`bc`) come up often.
    fn triple() -> impl Strategy<Value = (Vec<u8>, [u8; 32], Vec<u8>)> {
        let part = || prop::collection::vec(0u8..2, 0..4);
        (part(), prop::sample::select(vec![[0u8; 32], [1; 32]]), part())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Keys of different triples differ (the memo can only confuse triples whose keys are
        /// equal).
        #[test]
        fn different_triples_have_different_keys(
            a in triple(),
            b in triple(),
        ) {
            let (spki_a, digest_a, sig_a) = a;
            let (spki_b, digest_b, sig_b) = b;
            let equal_keys = memo_key(&spki_a, &digest_a, &sig_a) == memo_key(&spki_b, &digest_b, &sig_b);
            prop_assert_eq!(equal_keys, (spki_a, digest_a, sig_a) == (spki_b, digest_b, sig_b));
        }
    }
}
