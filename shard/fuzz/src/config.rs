//! Target `config`: the TOML config parser and checker of the `ringwire` binary
//! (`Config::from_toml`, `Config::parse_all`, `Config::check_toml`, `Config::resolve_all`).
//!
//! Properties: no panic on any text; `check_toml` (every error at once) accepts exactly what
//! parsing and resolving one error at a time accepts, and a rejection always names at least one
//! error; every error has a message.

use ringwire::config::Config;

/// One input: the text of a config file (inputs that are not UTF-8 are skipped, as
/// `Config::from_file` refuses them before parsing).
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let first = Config::from_toml(text)
        .map_err(|e| vec![e])
        .and_then(|c| c.resolve_all());
    let all = Config::check_toml(text);
    assert_eq!(
        first.is_ok(),
        all.is_ok(),
        "check_toml and from_toml + resolve_all disagree on {text:?}: {first:?} / {all:?}"
    );
    match all {
        Ok(resolved) => {
            let _ = format!("{resolved:?}");
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "a rejection names an error");
            for e in errors {
                assert!(!e.to_string().is_empty());
            }
        }
    }
    if let Err(e) = Config::parse_all(text) {
        assert!(!e.errors.is_empty());
    }
}
