//! ChaCha20-Poly1305 (RFC 8439) for authenticated groups: one facade over two backends
//! with the same bytes on the wire. `assembly` (ring: BoringSSL's assembly, AVX2 on
//! x86-64, NEON on arm64) where build.rs sets `aead_assembly` (Linux x86-64 and arm64,
//! Windows through mingw: the targets this project can build and test it for); the
//! `portable` RustCrypto implementation everywhere else. The tests hold the two to
//! identical output.
//!
//! The facade owns key hygiene, whatever the backend: a cipher lives on the heap from
//! the start (made with an all-zero key, then given the real one in place) and is
//! overwritten with the all-zero key's cipher when dropped, because ring does not wipe
//! its keys and a value moved or freed keeps its bytes.

use super::{KEY_LEN, TAG_LEN};

#[cfg(aead_assembly)]
mod assembly;
#[cfg(any(test, not(aead_assembly)))]
mod portable;

#[cfg(aead_assembly)]
use assembly as backend;
#[cfg(not(aead_assembly))]
use portable as backend;

/// Bytes in a nonce: the header's sender id and sequence number.
pub(crate) const NONCE_LEN: usize = 12;

/// The AEAD under one key. Wipes its key when dropped.
pub(crate) struct Cipher {
    inner: Box<backend::Cipher>,
}

/// A tag that did not verify: nothing was decrypted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Forged;

impl Cipher {
    /// The cipher for `key`, on the heap before it holds the key.
    pub(crate) fn new(key: &[u8; KEY_LEN]) -> Cipher {
        let mut inner = Box::new(backend::Cipher::new(&[0; KEY_LEN]));
        // Making it moves the key through the stack (ring expands it in frames of its own).
        leaving_no_trace(|| *inner = backend::Cipher::new(key));
        Cipher { inner }
    }

    /// Encrypts `body` in place; returns the tag over `aad` and the ciphertext.
    pub(crate) fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        body: &mut [u8],
    ) -> [u8; TAG_LEN] {
        self.inner.seal(nonce, aad, body)
    }

    /// Verifies `tag` over `aad` and `body` and decrypts `body` in place. A tag that
    /// does not verify leaves no plaintext: `body` as it was, or zeroed.
    pub(crate) fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        body: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), Forged> {
        self.inner.open(nonce, aad, body, tag)
    }
}

impl Drop for Cipher {
    fn drop(&mut self) {
        *self.inner = backend::Cipher::new(&[0; KEY_LEN]);
        // The overwrite must happen although the memory is freed next: make it observed.
        std::hint::black_box(&mut *self.inner);
    }
}

/// Runs `work`, which handles a key, in a frame below the caller's; then overwrites the
/// stack it used and zeroes the vector registers. What a cipher leaves there, the key's
/// words among it, are values moved from place to place that no destructor wipes:
/// without this a copy of the key outlived `mc_free` on the stack of the last thread
/// that sent or joined (and glibc's AVX-512 memcpy leaves the cipher state in
/// ymm16-31, which a lazy binding's xsave later spills to the stack). Costs a memset
/// of [`SCRUB_BYTES`] and a few instructions per call.
pub(crate) fn leaving_no_trace<T>(work: impl FnOnce() -> T) -> T {
    let result = below(work);
    scrub_stack();
    crate::sys::clear_vector_registers();
    result
}

/// Runs `work` in a frame of its own, so that [`scrub_stack`] reaches what it left.
#[inline(never)]
fn below<T>(work: impl FnOnce() -> T) -> T {
    work()
}

/// How much of the stack below its caller [`scrub_stack`] overwrites: more than sealing,
/// opening or making a cipher uses.
const SCRUB_BYTES: usize = 4096;

/// Overwrites the stack just below the caller.
#[inline(never)]
fn scrub_stack() {
    std::hint::black_box(&mut [0u8; SCRUB_BYTES]);
}

/// Fills `bytes` from the operating system's random generator.
pub(crate) fn fill_random(bytes: &mut [u8]) -> Result<(), String> {
    backend::fill_random(bytes)
}

#[cfg(all(test, aead_assembly))]
mod agreement {
    //! The assembly and portable backends give the same bytes for the same input, and
    //! each opens what the other sealed.
    use super::*;

    fn pseudo_random(seed: &mut u64, into: &mut [u8]) {
        for byte in into {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *byte = (*seed >> 33) as u8;
        }
    }

    #[test]
    fn both_backends_give_the_same_bytes() {
        let mut seed = 1;
        let sizes = (0..=300).chain([511, 512, 1023, 1024, 1400, 4096, 8191, 8192, 65_477]);
        for size in sizes {
            let (mut key, mut nonce, mut aad) =
                ([0u8; KEY_LEN], [0u8; NONCE_LEN], vec![0u8; size % 40]);
            let mut message = vec![0u8; size];
            for part in [&mut key[..], &mut nonce[..], &mut aad[..], &mut message[..]] {
                pseudo_random(&mut seed, part);
            }
            let fast = assembly::Cipher::new(&key);
            let portable = portable::Cipher::new(&key);
            let (mut by_fast, mut by_portable) = (message.clone(), message.clone());
            let fast_tag = fast.seal(&nonce, &aad, &mut by_fast);
            let portable_tag = portable.seal(&nonce, &aad, &mut by_portable);
            assert_eq!(
                (&by_fast, fast_tag),
                (&by_portable, portable_tag),
                "{size} bytes"
            );
            assert!(
                size == 0 || by_fast != message,
                "{size} bytes: not encrypted"
            );
            portable
                .open(&nonce, &aad, &mut by_fast, &fast_tag)
                .unwrap();
            fast.open(&nonce, &aad, &mut by_portable, &portable_tag)
                .unwrap();
            assert_eq!(
                (&by_fast, &by_portable),
                (&message, &message),
                "{size} bytes"
            );
            let mut forged_tag = fast_tag;
            forged_tag[size % TAG_LEN] ^= 1;
            let mut sealed = by_fast.clone();
            let sealed_tag = fast.seal(&nonce, &aad, &mut sealed);
            let before = sealed.clone();
            assert_ne!(sealed_tag, forged_tag);
            assert_eq!(
                fast.open(&nonce, &aad, &mut sealed, &forged_tag),
                Err(Forged)
            );
            assert_eq!(
                portable.open(&nonce, &aad, &mut sealed, &forged_tag),
                Err(Forged)
            );
            // ring decrypts, then zeroes what it decrypted; RustCrypto verifies first.
            assert!(
                sealed == before || sealed.iter().all(|&b| b == 0),
                "{size} bytes: a forgery leaves no plaintext behind"
            );
        }
    }

    #[test]
    fn rfc_8439_test_vector() {
        // RFC 8439, section 2.8.2.
        let key: [u8; 32] = std::array::from_fn(|i| 0x80 + i as u8);
        let nonce = [
            0x07, 0, 0, 0, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47,
        ];
        let aad = [
            0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
        ];
        let mut text = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".to_vec();
        let tag = Cipher::new(&key).seal(&nonce, &aad, &mut text);
        assert_eq!(
            tag,
            [
                0x1a, 0xe1, 0x0b, 0x59, 0x4f, 0x09, 0xe2, 0x6a, 0x7e, 0x90, 0x2e, 0xcb, 0xd0, 0x60,
                0x06, 0x91
            ]
        );
        assert_eq!(&text[..4], &[0xd3, 0x1a, 0x8d, 0x34]);
    }
}
