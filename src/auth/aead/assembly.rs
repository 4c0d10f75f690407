//! ChaCha20-Poly1305 from ring: BoringSSL's assembly, chosen at run time for the CPU
//! (AVX2 or SSE4.1 on x86-64, NEON on arm64). ring does not wipe its keys: the facade
//! overwrites them.

use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, CHACHA20_POLY1305};
use ring::rand::{SecureRandom, SystemRandom};

use super::{Forged, KEY_LEN, NONCE_LEN, TAG_LEN};

pub(super) struct Cipher(LessSafeKey);

impl Cipher {
    pub(super) fn new(key: &[u8; KEY_LEN]) -> Cipher {
        let key =
            UnboundKey::new(&CHACHA20_POLY1305, key).expect("ChaCha20-Poly1305 keys are 32 bytes");
        Cipher(LessSafeKey::new(key))
    }

    pub(super) fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        body: &mut [u8],
    ) -> [u8; TAG_LEN] {
        let tag = self
            .0
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), body)
            .expect("ChaCha20-Poly1305 seals any message under 256 GiB");
        tag.as_ref().try_into().expect("16-byte tag")
    }

    pub(super) fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        body: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), Forged> {
        self.0
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                Tag::from(*tag),
                body,
                0..,
            )
            .map(|_| ())
            .map_err(|_| Forged)
    }
}

pub(super) fn fill_random(bytes: &mut [u8]) -> Result<(), String> {
    SystemRandom::new()
        .fill(bytes)
        .map_err(|_| "the system's random generator failed".to_string())
}
