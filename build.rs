//! Generates include/multicast.h from the FFI module with cbindgen, in the C build only
//! (`--features capi`); a Rust dependent's build does nothing here and needs no cbindgen.
//!
//! The header is always written to $OUT_DIR/multicast.h; the committed copy in include/
//! is refreshed only when MC_UPDATE_HEADER=1 (`make header`), and a test fails when the
//! two differ, so a change to the C API cannot land without its header.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // `linux_fast`: the Linux fast paths (src/platform/linux.rs). Elsewhere, and on Linux
    // with the `portable` feature (so the portable path runs in the tests here too), the
    // portable path over socket2 (src/platform/portable.rs).
    println!("cargo::rustc-check-cfg=cfg(linux_fast)");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    if linux && std::env::var_os("CARGO_FEATURE_PORTABLE").is_none() {
        println!("cargo:rustc-cfg=linux_fast");
    }
    aead_backend();
    #[cfg(feature = "capi")]
    c_api::generate();
}

/// `aead_assembly`: authenticated groups seal with ring (BoringSSL's assembly) on the
/// targets this project builds and tests it for, where Cargo.toml makes ring a
/// dependency (the two conditions must agree); elsewhere with the portable RustCrypto
/// implementation (src/auth/aead.rs). Set here, so a Rust dependent gets it too.
fn aead_backend() {
    println!("cargo::rustc-check-cfg=cfg(aead_assembly)");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let (os, arch, env) = (
        var("CARGO_CFG_TARGET_OS"),
        var("CARGO_CFG_TARGET_ARCH"),
        var("CARGO_CFG_TARGET_ENV"),
    );
    let linux = os == "linux" && (arch == "x86_64" || arch == "aarch64");
    let mingw = os == "windows" && env == "gnu" && arch == "x86_64";
    if linux || mingw {
        println!("cargo:rustc-cfg=aead_assembly");
    }
}

#[cfg(feature = "capi")]
mod c_api {
    use std::env;
    use std::fs;
    use std::path::PathBuf;

    pub fn generate() {
        let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
        let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
        println!("cargo:rerun-if-changed=src");
        println!("cargo:rerun-if-changed=cbindgen.toml");
        println!("cargo:rerun-if-env-changed=MC_UPDATE_HEADER");

        let major = env::var("CARGO_PKG_VERSION_MAJOR").unwrap();
        let minor = env::var("CARGO_PKG_VERSION_MINOR").unwrap();
        let patch = env::var("CARGO_PKG_VERSION_PATCH").unwrap();
        let version = env::var("CARGO_PKG_VERSION").unwrap();

        let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
            .expect("cbindgen.toml is readable");
        config.after_includes = Some(format!(
            "\n/** The version of this header; compare with mc_version() at run time. */\n\
         #define MC_VERSION \"{version}\"\n\
         #define MC_VERSION_MAJOR {major}\n\
         #define MC_VERSION_MINOR {minor}\n\
         #define MC_VERSION_PATCH {patch}\n"
        ));
        let generated = cbindgen::Builder::new()
            .with_crate(&crate_dir)
            .with_config(config)
            .generate()
            .expect("cbindgen could not generate the header");
        let mut bytes = Vec::new();
        generated.write(&mut bytes);
        let text = String::from_utf8(bytes).expect("header is UTF-8");
        // Rust must accept any integer from C here (an out-of-range enum value would be
        // undefined behaviour in Rust), yet C callers should see the enum type.
        let text = replace_once(
            &text,
            "const char *mc_status_str(int status);",
            "const char *mc_status_str(mc_status status);",
        );

        fs::write(out_dir.join("multicast.h"), &text).unwrap();
        if env::var("MC_UPDATE_HEADER").as_deref() == Ok("1") {
            let committed = crate_dir.join("include/multicast.h");
            if fs::read_to_string(&committed).ok().as_deref() != Some(text.as_str()) {
                fs::write(committed, &text).unwrap();
            }
        }
    }

    fn replace_once(text: &str, from: &str, to: &str) -> String {
        assert_eq!(
            text.matches(from).count(),
            1,
            "expected exactly one {from:?} in the header"
        );
        text.replacen(from, to, 1)
    }
}
