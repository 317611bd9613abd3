//! The `ringwire` binary: bad flags and configs (exit status 2 and a message that names the
//! problem), a shard that dies (noticed at once, named, exit status 1), SIGUSR1 and SIGTERM.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ringwire_shard::driver::available_or_explain;

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
    assert!(
        err.contains("--app") && err.contains("\"session-echo\""),
        "{err}"
    );
}

/// How long a test lets the binary run before killing it, so that a hang fails the test
/// rather than the test run. Never a claim about speed.
const GUARD: Duration = Duration::from_secs(60);

/// A running `ringwire serve`, with its stdout read line by line. A watchdog kills it after
/// [`GUARD`], so that a hang fails the test rather than the test run.
struct Server {
    child: Child,
    stdout: BufReader<ChildStdout>,
    addr: SocketAddr,
    done: mpsc::Sender<()>,
    watchdog: std::thread::JoinHandle<()>,
}

impl Server {
    /// Starts the binary and reads its "listening on ADDR" line.
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringwire"))
            .arg("serve")
            .args(["--bind", "127.0.0.1:0", "--no-pin"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id().to_string();
        let (done, exited) = mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            if exited.recv_timeout(GUARD).is_err() {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let line = read_line(&mut stdout);
        let addr = line
            .strip_prefix("ringwire: listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Self {
            child,
            stdout,
            addr,
            done,
            watchdog,
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the binary to exit; returns its status, the rest of its stdout, and its
    /// stderr.
    fn wait(mut self) -> (ExitStatus, String, String) {
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let mut stdout = String::new();
        self.stdout.read_to_string(&mut stdout).unwrap();
        let status = self.child.wait().unwrap();
        let _ = self.done.send(());
        self.watchdog.join().unwrap();
        (status, stdout, stderr)
    }
}

fn read_line(stdout: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    line.trim_end().to_string()
}

/// A handler that panics is noticed by the binary at once: it names the shard and the panic,
/// stops the other shards and exits with status 1. (The trigger is a hidden flag that exists
/// only in builds with the `test-hooks` feature, which `cargo test` turns on.)
#[test]
fn a_shard_that_panics_stops_the_binary_which_names_it() {
    if !available_or_explain() {
        return;
    }
    let server = Server::start(&["--shards", "2", "--app", "echo", "--test-panic-on", "boom"]);
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"boom", server.addr)
        .unwrap();
    let (status, _, stderr) = server.wait();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let shard: usize = stderr
        .split("test hook: datagram \"boom\" on shard ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no panic message in {stderr}"));
    assert!(
        stderr.contains(&format!("ringwire: shard {shard} panicked: test hook")),
        "{stderr}"
    );
    // The panic hook's line names the thread (`thread 'rw-shard-1' (TID) panicked at ...`).
    assert!(
        stderr.contains(&format!("thread 'rw-shard-{shard}' ")),
        "{stderr}"
    );
    assert!(stderr.contains("stopping the other shards"), "{stderr}");
}

/// SIGUSR1 prints each shard's report and the binary keeps serving; SIGTERM stops it cleanly
/// with the final counters.
#[test]
fn sigusr1_reports_and_sigterm_stops_cleanly() {
    if !available_or_explain() {
        return;
    }
    let mut server = Server::start(&["--shards", "2", "--app", "session-echo"]);
    server.signal("USR1");
    let mut summaries = Vec::new();
    while summaries.len() < 2 {
        let line = read_line(&mut server.stdout);
        assert!(!line.is_empty(), "stdout ended before the reports");
        if let Some((shard, rest)) = line
            .strip_prefix("report shard ")
            .and_then(|l| l.split_once(": "))
            && rest.starts_with("sessions=0 ")
        {
            summaries.push(shard.to_string());
        }
    }
    summaries.sort();
    assert_eq!(summaries, ["0", "1"]);
    server.signal("TERM");
    let (status, stdout, stderr) = server.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("SIGTERM, draining"), "{stderr}");
    assert!(stdout.lines().any(|l| l.starts_with("total ")), "{stdout}");
}
