//! The committed header must be exactly what build.rs generates, and its version macros
//! must agree with Cargo.toml and mc_version().

const GENERATED: &str = include_str!(concat!(env!("OUT_DIR"), "/multicast.h"));
const COMMITTED: &str = include_str!("../include/multicast.h");

#[test]
fn committed_header_is_up_to_date() {
    assert!(
        GENERATED == COMMITTED,
        "include/multicast.h differs from what build.rs generates; run `make header` and commit it"
    );
}

fn macro_value(name: &str) -> String {
    let prefix = format!("#define {name} ");
    COMMITTED
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{name} missing from the header"))
        .trim()
        .to_owned()
}

#[test]
fn version_macros_match_cargo() {
    assert_eq!(
        macro_value("MC_VERSION"),
        format!("\"{}\"", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        macro_value("MC_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MAJOR")
    );
    assert_eq!(
        macro_value("MC_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_MINOR")
    );
    assert_eq!(
        macro_value("MC_VERSION_PATCH"),
        env!("CARGO_PKG_VERSION_PATCH")
    );
}

#[test]
fn header_declares_the_contract() {
    for item in [
        "typedef struct mc_group mc_group;",
        "typedef enum mc_status {",
        "#define MC_MAX_MESSAGE_SIZE 65507",
        "#define MC_SOURCE_MAX 64",
        "const char *mc_status_str(mc_status status);",
        "#ifdef __cplusplus",
        "#ifndef MULTICAST_H",
    ] {
        assert!(COMMITTED.contains(item), "header lacks {item:?}");
    }
}

/// Every macro carries the MC_ prefix: the core's own constants (auth::KEY_LEN,
/// message::MAX_JSON_DEPTH, ...) are Rust API and must stay out of C's namespace
/// (cbindgen.toml's export.exclude).
#[test]
fn every_macro_is_prefixed() {
    let unprefixed: Vec<&str> = COMMITTED
        .lines()
        .filter_map(|l| l.strip_prefix("#define "))
        .filter(|rest| !rest.starts_with("MC_") && !rest.starts_with("MULTICAST_H"))
        .collect();
    assert!(unprefixed.is_empty(), "unprefixed macros: {unprefixed:?}");
}
