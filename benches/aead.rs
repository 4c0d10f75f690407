//! The authenticated groups' AEAD against OpenSSL's libcrypto on the same bytes: the
//! library's `auth::seal_into` and `auth::open` (header, ChaCha20-Poly1305, and the key
//! hygiene that follows each: stack overwrite, vector registers zeroed) against
//! OpenSSL's EVP ChaCha20-Poly1305 per message as `openssl speed -aead` runs it (new
//! nonce, associated data, message, tag), alternating slices in one process. Both seal
//! the same message under the same key, nonce and associated data, and the bench
//! checks they give the same ciphertext and tag before timing anything.
//!
//! Also reported: OpenSSL's cipher loop alone, as `openssl speed -evp` times it (one
//! message that never ends: no nonce, no one-time Poly1305 key, no tag per call). It is
//! the floor of the cipher on this CPU, not a per-message time: OpenSSL 3's EVP calls
//! around it cost more than the cipher for short messages.
//!
//! Run by benches/run.py (make bench): `cargo bench --bench aead -- SECONDS ROUNDS`;
//! prints one JSON object. Needs libcrypto (libssl-dev, installed by scripts/setup).

use std::ffi::{c_int, c_void};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use multicast::auth::{self, Destination, GroupKey, Keyring, HEADER_LEN, TAG_LEN};

const TO: Destination = Destination {
    group: IpAddr::V4(Ipv4Addr::new(239, 77, 0, 1)),
    port: 47000,
};
const SENDER: u64 = 0x0102_0304_0506_0708;
const SIZES: [usize; 3] = [64, 1024, 8192];
const SLICES: usize = 10;

#[link(name = "crypto")]
extern "C" {
    fn EVP_CIPHER_CTX_new() -> *mut c_void;
    fn EVP_CIPHER_CTX_free(ctx: *mut c_void);
    fn EVP_chacha20_poly1305() -> *const c_void;
    fn EVP_EncryptInit_ex(
        ctx: *mut c_void,
        cipher: *const c_void,
        engine: *mut c_void,
        key: *const u8,
        iv: *const u8,
    ) -> c_int;
    fn EVP_DecryptInit_ex(
        ctx: *mut c_void,
        cipher: *const c_void,
        engine: *mut c_void,
        key: *const u8,
        iv: *const u8,
    ) -> c_int;
    fn EVP_EncryptUpdate(
        ctx: *mut c_void,
        out: *mut u8,
        outl: *mut c_int,
        inp: *const u8,
        inl: c_int,
    ) -> c_int;
    fn EVP_DecryptUpdate(
        ctx: *mut c_void,
        out: *mut u8,
        outl: *mut c_int,
        inp: *const u8,
        inl: c_int,
    ) -> c_int;
    fn EVP_EncryptFinal_ex(ctx: *mut c_void, out: *mut u8, outl: *mut c_int) -> c_int;
    fn EVP_DecryptFinal_ex(ctx: *mut c_void, out: *mut u8, outl: *mut c_int) -> c_int;
    fn EVP_CIPHER_CTX_ctrl(ctx: *mut c_void, kind: c_int, arg: c_int, ptr: *mut c_void) -> c_int;
}
const EVP_CTRL_AEAD_GET_TAG: c_int = 0x10;
const EVP_CTRL_AEAD_SET_TAG: c_int = 0x11;

/// OpenSSL's ChaCha20-Poly1305 under one key: two contexts, sealing and opening.
struct OpenSsl {
    seal: *mut c_void,
    open: *mut c_void,
    stream: *mut c_void,
}

impl OpenSsl {
    fn new(key: &[u8; 32]) -> OpenSsl {
        // SAFETY: fresh contexts from libcrypto, initialised with a 32-byte key; the
        // nonce is set per message. Each call's status is checked.
        unsafe {
            let (seal, open) = (EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_new());
            let stream = EVP_CIPHER_CTX_new();
            assert!(!seal.is_null() && !open.is_null() && !stream.is_null());
            let zero_nonce = [0u8; 12];
            assert_eq!(
                EVP_EncryptInit_ex(
                    stream,
                    EVP_chacha20_poly1305(),
                    none_engine(),
                    key.as_ptr(),
                    zero_nonce.as_ptr()
                ),
                1
            );
            let none = std::ptr::null_mut();
            assert_eq!(
                EVP_EncryptInit_ex(
                    seal,
                    EVP_chacha20_poly1305(),
                    none,
                    key.as_ptr(),
                    std::ptr::null()
                ),
                1
            );
            assert_eq!(
                EVP_DecryptInit_ex(
                    open,
                    EVP_chacha20_poly1305(),
                    none,
                    key.as_ptr(),
                    std::ptr::null()
                ),
                1
            );
            OpenSsl { seal, open, stream }
        }
    }

    /// Encrypts `body` in place as the next part of one endless message (openssl speed).
    fn stream(&self, body: &mut [u8]) {
        let mut n: c_int = 0;
        // SAFETY: as in `seal`.
        let ok = unsafe {
            EVP_EncryptUpdate(
                self.stream,
                body.as_mut_ptr(),
                &mut n,
                body.as_ptr(),
                body.len() as c_int,
            )
        };
        assert_eq!(ok, 1);
    }

    /// Seals `body` in place, as the library does: `aad` then the message; the tag.
    fn seal(&self, nonce: &[u8; 12], aad: &[u8], body: &mut [u8]) -> [u8; TAG_LEN] {
        let mut tag = [0u8; TAG_LEN];
        let mut n: c_int = 0;
        // SAFETY: every pointer is to a live buffer of the length passed with it;
        // OpenSSL encrypts in place when out == in.
        unsafe {
            let ctx = self.seal;
            assert_eq!(
                EVP_EncryptInit_ex(
                    ctx,
                    std::ptr::null(),
                    std::ptr::null_mut(),
                    std::ptr::null(),
                    nonce.as_ptr()
                ),
                1
            );
            assert_eq!(
                EVP_EncryptUpdate(
                    ctx,
                    std::ptr::null_mut(),
                    &mut n,
                    aad.as_ptr(),
                    aad.len() as c_int
                ),
                1
            );
            assert_eq!(
                EVP_EncryptUpdate(
                    ctx,
                    body.as_mut_ptr(),
                    &mut n,
                    body.as_ptr(),
                    body.len() as c_int
                ),
                1
            );
            assert_eq!(
                EVP_EncryptFinal_ex(ctx, body.as_mut_ptr().add(body.len()), &mut n),
                1
            );
            assert_eq!(
                EVP_CIPHER_CTX_ctrl(
                    ctx,
                    EVP_CTRL_AEAD_GET_TAG,
                    TAG_LEN as c_int,
                    tag.as_mut_ptr().cast()
                ),
                1
            );
        }
        tag
    }

    /// Verifies and decrypts `body` in place; whether the tag verified.
    fn open(&self, nonce: &[u8; 12], aad: &[u8], body: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
        let mut n: c_int = 0;
        let mut tag = *tag;
        // SAFETY: as in `seal`.
        unsafe {
            let ctx = self.open;
            assert_eq!(
                EVP_DecryptInit_ex(
                    ctx,
                    std::ptr::null(),
                    std::ptr::null_mut(),
                    std::ptr::null(),
                    nonce.as_ptr()
                ),
                1
            );
            assert_eq!(
                EVP_CIPHER_CTX_ctrl(
                    ctx,
                    EVP_CTRL_AEAD_SET_TAG,
                    TAG_LEN as c_int,
                    tag.as_mut_ptr().cast()
                ),
                1
            );
            assert_eq!(
                EVP_DecryptUpdate(
                    ctx,
                    std::ptr::null_mut(),
                    &mut n,
                    aad.as_ptr(),
                    aad.len() as c_int
                ),
                1
            );
            assert_eq!(
                EVP_DecryptUpdate(
                    ctx,
                    body.as_mut_ptr(),
                    &mut n,
                    body.as_ptr(),
                    body.len() as c_int
                ),
                1
            );
            EVP_DecryptFinal_ex(ctx, body.as_mut_ptr().add(body.len()), &mut n) == 1
        }
    }
}

impl Drop for OpenSsl {
    fn drop(&mut self) {
        // SAFETY: the contexts came from EVP_CIPHER_CTX_new and are freed once.
        unsafe {
            EVP_CIPHER_CTX_free(self.seal);
            EVP_CIPHER_CTX_free(self.open);
            EVP_CIPHER_CTX_free(self.stream);
        }
    }
}

fn none_engine() -> *mut c_void {
    std::ptr::null_mut()
}

/// The associated data the library binds into a datagram to TO with this header.
fn aad_of(header: &[u8]) -> Vec<u8> {
    let mut aad = header.to_vec();
    aad.extend_from_slice(&[239, 77, 0, 1]);
    aad.extend_from_slice(&TO.port.to_be_bytes());
    aad
}

/// Mean microseconds per call of `op` over `slice` of time.
fn per_call(slice: Duration, mut op: impl FnMut()) -> f64 {
    let (start, mut calls) = (Instant::now(), 0u64);
    while start.elapsed() < slice {
        for _ in 0..64 {
            op();
        }
        calls += 64;
    }
    start.elapsed().as_secs_f64() * 1e6 / calls as f64
}

/// Alternating slices of `a` and `b` (a, b, b, a, ...): each one's mean time per call.
fn alternate(seconds: f64, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    let slice = Duration::from_secs_f64(seconds / SLICES as f64 / 2.0);
    let (mut ta, mut tb) = (0.0, 0.0);
    for i in 0..SLICES {
        if i % 2 == 0 {
            ta += per_call(slice, &mut a);
            tb += per_call(slice, &mut b);
        } else {
            tb += per_call(slice, &mut b);
            ta += per_call(slice, &mut a);
        }
    }
    (ta / SLICES as f64, tb / SLICES as f64)
}

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let seconds: f64 = args.get(1).map_or(0.5, |s| s.parse().expect("SECONDS"));
    let key_bytes = [0x42u8; 32];
    let keys = Keyring::new(&GroupKey::new(1, &key_bytes).expect("key"), None).expect("keyring");
    let openssl = OpenSsl::new(&key_bytes);
    let mut rows = Vec::new();
    for size in SIZES {
        let message: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let mut datagram = Vec::with_capacity(size + auth::OVERHEAD);
        auth::seal_into(&keys, TO, SENDER, 7, &message, &mut datagram);
        let (header, rest) = datagram.split_at(HEADER_LEN);
        let (lib_body, lib_tag) = rest.split_at(size);
        let nonce: [u8; 12] = header[2..].try_into().unwrap();
        let aad = aad_of(header);
        let mut body = message.clone();
        let tag = openssl.seal(&nonce, &aad, &mut body);
        assert_eq!(
            (&body[..], &tag[..]),
            (lib_body, lib_tag),
            "{size} B: OpenSSL and the library differ"
        );
        assert!(openssl.open(&nonce, &aad, &mut body, &tag) && body == message);

        let mut out = Vec::with_capacity(size + auth::OVERHEAD);
        let (lib_seal, ossl_seal) = alternate(
            seconds,
            || auth::seal_into(&keys, TO, SENDER, 7, black_box(&message), &mut out),
            || {
                body.copy_from_slice(&message);
                black_box(openssl.seal(&nonce, &aad, &mut body));
            },
        );
        let sealed = datagram.clone();
        let mut scratch = sealed.clone();
        let (lib_open, ossl_open) = alternate(
            seconds,
            || {
                scratch.copy_from_slice(&sealed);
                assert!(auth::open(&keys, TO, &mut scratch).is_ok());
            },
            || {
                body.copy_from_slice(lib_body);
                assert!(openssl.open(&nonce, &aad, &mut body, &tag));
            },
        );
        let (_, ossl_loop) = alternate(
            seconds,
            || auth::seal_into(&keys, TO, SENDER, 7, black_box(&message), &mut out),
            || {
                body.copy_from_slice(&message);
                openssl.stream(black_box(&mut body));
            },
        );
        rows.push(format!(
            "\"{size}\": {{\"seal_lib_us\": {lib_seal:.4}, \"seal_openssl_us\": {ossl_seal:.4}, \
             \"open_lib_us\": {lib_open:.4}, \"open_openssl_us\": {ossl_open:.4}, \
             \"openssl_cipher_loop_us\": {ossl_loop:.4}}}"
        ));
    }
    println!("{{{}}}", rows.join(", "));
}
