//! Randomness is a parameter, like the clock: request IDs, session-binding tokens and one-time
//! passwords come from an [`Rng`] handed down in the application state.

use std::sync::Mutex;

pub trait Rng: Send + Sync + 'static {
    /// Fills `buf` with unpredictable bytes.
    fn fill(&self, buf: &mut [u8]);

    fn bytes16(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        self.fill(&mut b);
        b
    }

    /// 32 random bytes as unpadded base64url (43 characters): tokens carried in cookies.
    fn token(&self) -> String {
        use base64::Engine;
        let mut b = [0u8; 32];
        self.fill(&mut b);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }
}

/// The operating system's generator (through OpenSSL's DRBG).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRng;

impl Rng for SystemRng {
    fn fill(&self, buf: &mut [u8]) {
        // OpenSSL's DRBG fails only if the kernel refuses entropy; nothing can go on without it.
        openssl::rand::rand_bytes(buf)
            .expect("invariant: the system random generator is available");
    }
}

/// A deterministic generator for tests (splitmix64). Never use it to protect anything.
#[derive(Debug)]
pub struct SeededRng(Mutex<u64>);

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        SeededRng(Mutex::new(seed))
    }
}

impl Rng for SeededRng {
    fn fill(&self, buf: &mut [u8]) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for chunk in buf.chunks_mut(8) {
            *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = *s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}
