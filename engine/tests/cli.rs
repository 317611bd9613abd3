//! The `ringwire` binary's handling of bad flags and configs: exit status 2 and a message that
//! names the problem.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn serve(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringwire"))
        .arg("serve")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn config_file(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("ringwire-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn unknown_key_is_named() {
    let path = config_file("unknown.toml", "bind = \"127.0.0.1:0\"\nshardz = 2\n");
    let (code, err) = serve(&["--config", &path]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown field `shardz`"), "{err}");
}

#[test]
fn zero_shards_is_refused() {
    let (code, err) = serve(&["--shards", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("`shards` = 0"), "{err}");
    let path = config_file("zero.toml", "shards = 0\n");
    let (code, err) = serve(&["--config", &path]);
    assert_eq!(code, 2);
    assert!(err.contains("`shards` = 0"), "{err}");
}

#[test]
fn core_outside_affinity_mask_is_refused() {
    let (code, err) = serve(&["--cores", "4096"]);
    assert_eq!(code, 2);
    assert!(err.contains("`cores` = 4096"), "{err}");
    assert!(err.contains("affinity mask"), "{err}");
}

#[test]
fn bad_address_is_refused() {
    let (code, err) = serve(&["--bind", "not-an-address"]);
    assert_eq!(code, 2);
    assert!(err.contains("`bind`"), "{err}");
}

#[test]
fn bad_flag_value_and_missing_file_exit_2() {
    let (code, err) = serve(&["--shards", "many"]);
    assert_eq!(code, 2);
    assert!(err.contains("--shards"), "{err}");
    let (code, err) = serve(&["--config", "/nonexistent/ringwire.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read config"), "{err}");
    let (code, err) = serve(&["--app", "redis"]);
    assert_eq!(code, 2);
    assert!(err.contains("--app") && err.contains("\"session-echo\""), "{err}");
}
