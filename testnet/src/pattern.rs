//! Deterministic pseudo-random bytes that both ends of a transfer can generate, so a large
//! body can be checked by its SHA-256 without ever holding it in memory.

/// Size of the chunks probes send and generate.
pub const CHUNK: usize = 64 * 1024;

/// An endless stream of bytes determined by a seed (splitmix64, little-endian words). The
/// stream is the same however it is cut into chunks.
#[derive(Debug, Clone)]
pub struct Pattern {
    state: u64,
    word: [u8; 8],
    used: usize,
}

impl Pattern {
    /// The stream for `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed,
            word: [0; 8],
            used: 8,
        }
    }

    fn next_word(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fills `out` with the next bytes of the stream.
    pub fn fill(&mut self, out: &mut [u8]) {
        let mut at = 0;
        // Finish the word a previous call started.
        while at < out.len() && self.used < 8 {
            out[at] = self.word[self.used];
            self.used += 1;
            at += 1;
        }
        let mut words = out[at..].chunks_exact_mut(8);
        for slot in &mut words {
            slot.copy_from_slice(&self.next_word().to_le_bytes());
        }
        let rest = words.into_remainder();
        if !rest.is_empty() {
            self.word = self.next_word().to_le_bytes();
            let n = rest.len();
            rest.copy_from_slice(&self.word[..n]);
            self.used = n;
        }
    }

    /// The next `n` bytes (`n` at most a chunk or so: this allocates them).
    pub fn take(&mut self, n: usize) -> Vec<u8> {
        let mut out = vec![0; n];
        self.fill(&mut out);
        out
    }
}

/// A streaming SHA-256. ring's assembly keeps it near 1 GB/s even in debug builds, where the
/// pure-Rust `sha2` manages about 20 MB/s: too slow to hash gigabytes in lab tests.
#[derive(Clone)]
pub struct Sha256(ring::digest::Context);

impl std::fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sha256")
    }
}

impl Default for Sha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl Sha256 {
    /// An empty hash.
    pub fn new() -> Self {
        Self(ring::digest::Context::new(&ring::digest::SHA256))
    }

    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest in lowercase hex.
    pub fn hex(self) -> String {
        hex::encode(self.0.finish().as_ref())
    }
}

/// SHA-256 (hex) and length of the first `n` bytes of the stream for `seed`, computed in
/// chunks.
pub fn digest_of(seed: u64, n: u64) -> (String, u64) {
    let mut pattern = Pattern::new(seed);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut left = n;
    while left > 0 {
        let take = left.min(CHUNK as u64) as usize;
        pattern.fill(&mut buf[..take]);
        hasher.update(&buf[..take]);
        left -= take as u64;
    }
    (hasher.hex(), n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_does_not_depend_on_how_it_is_cut() {
        let whole = Pattern::new(7).take(1000);
        let mut cut = Pattern::new(7);
        let mut pieces = Vec::new();
        for size in [1, 3, 8, 13, 100, 875] {
            pieces.extend(cut.take(size));
        }
        assert_eq!(whole, pieces);
        assert_ne!(whole, Pattern::new(8).take(1000));
    }

    #[test]
    fn digests_match_hashing_the_bytes() {
        let bytes = Pattern::new(1).take(200_000);
        let (hex, n) = digest_of(1, 200_000);
        assert_eq!(n, 200_000);
        let mut whole = Sha256::new();
        whole.update(&bytes);
        assert_eq!(hex, whole.hex());
        let mut empty = Sha256::new();
        empty.update(b"");
        assert_eq!(
            empty.hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
