//! The binary's command line: bad input is a clap error (status 2).

use std::process::Command;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringwire-bench"))
}

#[test]
fn bad_arguments_exit_with_status_2() {
    let cases: &[&[&str]] = &[
        &["load", "--target", "127.0.0.1:9", "--payload", "8"],
        &["load", "--target", "not-an-address"],
        &[
            "load",
            "--target",
            "127.0.0.1:9",
            "--window",
            "4",
            "--rate",
            "10",
        ],
        &["load", "--target", "127.0.0.1:9", "--peers", "0"],
        &["load", "--target", "127.0.0.1:9", "--duration", "-1"],
        &["server", "--kind", "nginx"],
        &["server", "--kind", "mmsg", "--threads", "0"],
    ];
    for args in cases {
        let out = bench().args(*args).output().expect("binary runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn help_lists_subcommands() {
    let out = bench().arg("--help").output().expect("binary runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("load") && text.contains("server"), "{text}");
}

#[test]
fn server_runs_for_its_duration_and_reports() {
    let out = bench()
        .args([
            "server",
            "--kind",
            "mmsg",
            "--bind",
            "127.0.0.1:0",
            "--duration",
            "0.2",
        ])
        .output()
        .expect("binary runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("listening on 127.0.0.1:"), "{text}");
    assert!(text.contains("mmsg served 0 datagrams"), "{text}");
}
