//! ChaCha20-Poly1305 from RustCrypto (audited by NCC Group, 2020): portable Rust, for
//! the targets without ring's assembly here. It wipes its key when dropped.

use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::{AeadInPlace, KeyInit, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};

use super::{Forged, KEY_LEN, NONCE_LEN, TAG_LEN};

pub(super) struct Cipher(ChaCha20Poly1305);

impl Cipher {
    pub(super) fn new(key: &[u8; KEY_LEN]) -> Cipher {
        Cipher(ChaCha20Poly1305::new(Key::from_slice(key)))
    }

    pub(super) fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        body: &mut [u8],
    ) -> [u8; TAG_LEN] {
        self.0
            .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, body)
            .expect("ChaCha20-Poly1305 seals any message under 256 GiB")
            .into()
    }

    pub(super) fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        body: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), Forged> {
        self.0
            .decrypt_in_place_detached(Nonce::from_slice(nonce), aad, body, Tag::from_slice(tag))
            .map_err(|_| Forged)
    }
}

// Unused in the assembly build's tests, which compile this module to compare with it.
#[cfg_attr(aead_assembly, allow(dead_code))]
pub(super) fn fill_random(bytes: &mut [u8]) -> Result<(), String> {
    OsRng.try_fill_bytes(bytes).map_err(|e| e.to_string())
}
