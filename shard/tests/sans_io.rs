//! The session protocol is sans-IO by construction: its files name no socket, no io_uring, no
//! clock and none of the shard's IO machinery (driver, rings, mesh). Only the three files that
//! connect it to the world may touch IO or time: `host.rs` (the shard loop's handler, which
//! reaches the mesh only through the handler API), `client.rs` (a plain-socket client for
//! tests and tools) and `clock.rs` (the one place a monotonic origin is read). This test reads
//! the sources, so a new import fails here, not in review.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

/// Never named anywhere under `session/` (tests included would be fine, but `#[cfg(test)]`
/// modules live in their own `tests.rs` files, which are skipped).
const NO_IO_MACHINERY: &[&str] = &[
    "crate::driver",
    "crate::ring",
    "crate::mesh",
    "io_uring",
    "libc::",
    "socket2",
];

/// Never named by the protocol itself (everything but the IO edge files).
const NO_IO_OR_TIME: &[&str] = &[
    "UdpSocket",
    "TcpStream",
    "std::fs",
    "Instant::now",
    "SystemTime::now",
    "crate::handler",
    "crate::timer",
    "thread::",
];

/// The files that connect the protocol to sockets, the loop and the clock.
const IO_EDGE: &[&str] = &["host.rs", "client.rs", "clock.rs"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments (so docs may name what the code must not use).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_session_protocol_names_no_io_and_no_clock() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/session");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 10, "found only {files:?}");
    let mut violations = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_str().unwrap();
        if name == "tests.rs" {
            continue;
        }
        let code = code(&fs::read_to_string(file).unwrap());
        let edge = IO_EDGE.contains(&name) || file.parent().unwrap().ends_with("host");
        let forbidden = NO_IO_MACHINERY.iter().chain(if edge {
            [].iter()
        } else {
            NO_IO_OR_TIME.iter()
        });
        for word in forbidden {
            if code.contains(word) {
                violations.push(format!("{}: {word}", file.display()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "sans-IO violations:\n{}",
        violations.join("\n")
    );
}
