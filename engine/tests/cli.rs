//! The `ringwire` binary: bad flags and configs (exit status 2 and a message that names the
//! problem), a shard that dies (noticed at once, named, the others drained, exit status 1), a
//! host that refuses io_uring (the cause and the fix named, exit status 2), SIGUSR1 and SIGTERM.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ringwire::kernel::{available_or_explain, skip_or_fail};
use ringwire::session::client::ClientPool;
use ringwire::session::{EndpointConfig, Event, Keypair, PublicKey};

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

/// A running `ringwire serve`, with its stdout read line by line and its stderr collected by a
/// thread (so the test can wait for a line there too). A watchdog kills it after [`GUARD`],
/// so that a hang fails the test rather than the test run.
struct Server {
    child: Child,
    stdout: Option<BufReader<ChildStdout>>,
    stderr: mpsc::Receiver<String>,
    stderr_seen: Vec<String>,
    addr: SocketAddr,
    done: mpsc::Sender<()>,
    watchdog: std::thread::JoinHandle<()>,
}

impl Server {
    /// Starts the binary and reads its "listening on ADDR" line.
    fn start(args: &[&str]) -> Self {
        Self::start_with(&["--bind", "127.0.0.1:0", "--no-pin"], args)
    }

    /// Starts `ringwire serve BASE ARGS`.
    fn start_with(base: &[&str], args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringwire"))
            .arg("serve")
            .args(base)
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
        let (lines, stderr) = mpsc::channel();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            loop {
                let mut line = String::new();
                match err.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if lines.send(line.trim_end().to_string()).is_err() {
                            break;
                        }
                    }
                }
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
            stdout: Some(stdout),
            stderr,
            stderr_seen: Vec::new(),
            addr,
            done,
            watchdog,
        }
    }

    /// Whether the binary has exited (without waiting).
    fn has_exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn line(&mut self) -> String {
        read_line(self.stdout.as_mut().expect("stdout is open"))
    }

    /// Waits for a stderr line containing `text` (the watchdog bounds the wait).
    fn await_stderr(&mut self, text: &str) -> String {
        if let Some(l) = self.stderr_seen.iter().find(|l| l.contains(text)) {
            return l.clone();
        }
        loop {
            match self.stderr.recv_timeout(GUARD) {
                Ok(line) => {
                    self.stderr_seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!("no stderr line with {text:?}: {:?}", self.stderr_seen),
            }
        }
    }

    /// The session public key the binary announces on stderr at start.
    fn session_key(&mut self) -> PublicKey {
        self.await_stderr("session public key ")
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Waits for the binary to exit; returns its status, the rest of its stdout, and its
    /// stderr.
    fn wait(mut self) -> (ExitStatus, String, String) {
        let mut stdout = String::new();
        if let Some(mut out) = self.stdout.take() {
            out.read_to_string(&mut stdout).unwrap();
        }
        let status = self.child.wait().unwrap();
        let _ = self.done.send(());
        self.watchdog.join().unwrap();
        let mut stderr = self.stderr_seen.join("\n");
        while let Ok(line) = self.stderr.recv_timeout(GUARD) {
            stderr.push('\n');
            stderr.push_str(&line);
        }
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
    assert!(stderr.contains("draining the other shards"), "{stderr}");
}

/// Under load from 200 sessions over 2 shards, one shard's handler panics: the binary names
/// that shard, the other shard drains (every session it holds hears `Close(ShuttingDown)` from
/// the server before the binary exits; the failed shard's sessions hear nothing, their state
/// went with the panic), the survivor's final counters are printed, and the exit status is 1.
/// A session client pool without keepalives (`seed`: the endpoint's, `pool_seed`: the pool's).
fn session_client(seed: u8, pool_seed: u64) -> ClientPool {
    let mut client = EndpointConfig::new([seed; 32], Keypair::generate().unwrap());
    client.keepalive_interval = None;
    ClientPool::new(client, pool_seed).unwrap()
}

/// One poll of `pool`; a poll that found nothing sleeps a millisecond before the caller's next
/// check (the callers' loops wait for events, bounded by the guard).
fn pump(pool: &mut ClientPool, events: &mut Vec<Event>) {
    if pool.poll(events).unwrap() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_shard_that_panics_under_load_is_named_and_the_others_drain() {
    use ringwire::session::{CloseReason, Closer};
    use std::time::Instant;

    if !available_or_explain() {
        return;
    }
    const SESSIONS: usize = 200;
    const WINDOW: usize = 50;
    let cfg = config_file(
        "panic.toml",
        "drain_timeout_ms = 20000\n[sessions.admission]\nmax_sessions_per_prefix = 100000\n\
         new_sessions_per_prefix_per_second = 1000000\nnew_sessions_per_prefix_burst = 100000\n",
    );
    let mut server = Server::start(&[
        "--shards",
        "2",
        "--app",
        "session-echo",
        "--config",
        &cfg,
        "--test-panic-on",
        "boom",
    ]);
    let server_key = server.session_key();
    let mut pool = session_client(6, 22);
    let mut events = Vec::new();
    let guard = Instant::now() + GUARD;
    let mut conns = Vec::new();
    for _ in 0..SESSIONS {
        let local = "127.0.0.1:0".parse().unwrap();
        conns.push(pool.connect(local, server.addr, Some(server_key)).unwrap());
    }
    let count = |events: &[Event], f: fn(&Event) -> bool| events.iter().filter(|e| f(e)).count();
    while count(&events, |e| matches!(e, Event::Connected { .. })) < SESSIONS {
        assert!(Instant::now() < guard, "sessions did not connect");
        pump(&mut pool, &mut events);
    }
    // Load: windows of echoes over every session; the last window is in flight at the panic.
    let mut sent = 0;
    for round in 0..4 {
        for k in 0..WINDOW {
            let _ = pool
                .send(conns[(round * WINDOW + k) % SESSIONS], b"load")
                .unwrap();
            sent += 1;
        }
        while count(&events, |e| matches!(e, Event::Message { .. })) < sent {
            assert!(Instant::now() < guard, "echoes did not come back");
            pump(&mut pool, &mut events);
        }
    }
    events.clear();
    for conn in &conns[..WINDOW] {
        let _ = pool.send(*conn, b"load").unwrap();
    }
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"boom", server.addr)
        .unwrap();
    // Every goodbye is sent before the binary exits: once it has, one more read finds them all.
    let mut closes = Vec::new();
    let mut exited = false;
    loop {
        assert!(Instant::now() < guard, "the binary did not exit");
        let done = exited;
        exited = server.has_exited();
        pump(&mut pool, &mut events);
        closes.extend(events.drain(..).filter_map(|e| match e {
            Event::Disconnected { reason, by, .. } => Some((reason, by)),
            _ => None,
        }));
        if done {
            break;
        }
    }
    assert!(
        closes
            .iter()
            .all(|c| *c == (CloseReason::ShuttingDown, Closer::Peer)),
        "{closes:?}"
    );
    let (status, stdout, stderr) = server.wait();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let failed: usize = stderr
        .split("ringwire: shard ")
        .find(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no failed shard named in {stderr}"));
    assert!(
        stderr.contains(&format!("ringwire: shard {failed} panicked: test hook")),
        "{stderr}"
    );
    assert!(stderr.contains("draining the other shards"), "{stderr}");
    assert!(
        stderr.contains(&format!("the shards other than shard {failed} drained")),
        "{stderr}"
    );
    // Only the survivor reports; it accepted exactly the sessions that heard a Close.
    let survivor = 1 - failed;
    for prefix in ["final shard", "app shard"] {
        assert!(!stdout.contains(&format!("{prefix} {failed}:")), "{stdout}");
        assert!(
            stdout.contains(&format!("{prefix} {survivor}:")),
            "{stdout}"
        );
    }
    let fields: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            l.starts_with(&format!("final shard {survivor}:"))
                || l.starts_with(&format!("app shard {survivor}:"))
        })
        .flat_map(|l| l.split(' '))
        .collect();
    let field = |k: &str| -> u64 {
        fields
            .iter()
            .find_map(|f| f.strip_prefix(k)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {stdout}"))
    };
    assert_eq!(field("sessions"), 0, "{stdout}");
    let accepted = usize::try_from(field("sessions_accepted")).unwrap();
    assert_eq!(closes.len(), accepted, "{stdout}");
    assert!(0 < accepted && accepted < SESSIONS, "{stdout}");
    println!(
        "shard {failed} panicked; shard {survivor} held {accepted} of {SESSIONS} sessions, \
         each heard Close(ShuttingDown)"
    );
}

/// A host that refuses io_uring: `io_uring_setup` fails with EPERM (a seccomp filter, as
/// Docker's default profile; or `kernel.io_uring_disabled`), the way it would for a restart
/// after the host changed under a running gateway. The binary names the cause and the fix and
/// exits 2 (starting again unchanged would fail the same way); ENOMEM names the memory limits
/// and exits 1. Runs the binary under `scripts/no-io-uring.py`, which needs Python 3.
#[test]
fn a_host_that_refuses_io_uring_is_named_with_the_fix() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/no-io-uring.py");
    if Command::new("python3").arg("--version").output().is_err() {
        // Under RINGWIRE_REQUIRE_IO_URING (CI) a missing python3 fails instead of passing.
        skip_or_fail("python3 is not installed (scripts/no-io-uring.py needs it)");
        return;
    }
    for (errno, code, fixes) in [
        (
            "EPERM",
            2,
            &[
                "allow io_uring_setup, io_uring_enter and io_uring_register",
                "sysctl -w kernel.io_uring_disabled=0",
            ][..],
        ),
        ("ENOMEM", 1, &["RLIMIT_MEMLOCK"][..]),
    ] {
        let out = Command::new("python3")
            .args([script, "--errno", errno, env!("CARGO_BIN_EXE_ringwire")])
            .args([
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--no-pin",
                "--app",
                "echo",
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{errno}: {stderr}");
        assert!(stderr.contains("ringwire: "), "{stderr}");
        assert!(stderr.contains("io_uring"), "{stderr}");
        assert!(
            fixes.iter().any(|f| stderr.contains(f)),
            "{errno}: {stderr}"
        );
        println!("{errno}: exit {code}: {}", stderr.trim());
    }
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
    // The binary waits 2 s for each shard's report; a shard starved that long on a loaded
    // host is printed as `no report`, and a later SIGUSR1 asks again (the watchdog bounds it).
    let mut summaries = std::collections::BTreeSet::new();
    while summaries.len() < 2 {
        let line = server.line();
        assert!(!line.is_empty(), "stdout ended before the reports");
        if let Some((shard, rest)) = line
            .strip_prefix("report shard ")
            .and_then(|l| l.split_once(": "))
        {
            if rest.starts_with("sessions=0 ") {
                summaries.insert(shard.to_string());
            } else if rest.starts_with("no report") {
                server.signal("USR1");
            }
        }
    }
    assert_eq!(summaries, ["0".to_string(), "1".to_string()].into());
    server.signal("TERM");
    let (status, stdout, stderr) = server.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("SIGTERM, draining"), "{stderr}");
    assert!(stderr.contains("ringwire: drained:"), "{stderr}");
    assert!(stdout.lines().any(|l| l.starts_with("total ")), "{stdout}");
}

fn ringwire(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringwire"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `config check` reports every error of a file at once (exit status 2), each naming its key;
/// a good file exits 0; `config default` prints a config that checks clean.
#[test]
fn config_check_reports_every_error_at_once() {
    let path = config_file(
        "three.toml",
        "shards = 0\nbogus = 1\n[shard]\nrecv_buffers = 3\n",
    );
    let (code, _, err) = ringwire(&["config", "check", &path]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("3 error(s)"), "{err}");
    for want in [
        "`shards` = 0",
        "unknown field `bogus`",
        "`shard.recv_buffers` = 3",
    ] {
        assert!(err.contains(want), "{want} missing:\n{err}");
    }
    let (code, default, err) = ringwire(&["config", "default"]);
    assert_eq!(code, 0, "{err}");
    let path = config_file("default.toml", &default);
    let (code, out, err) = ringwire(&["config", "check", &path]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": ok: bind=127.0.0.1:4500 app=echo"), "{out}");
    let twice = config_file("twice.toml", "cores = [0, 0]\n");
    let (code, _, err) = ringwire(&["config", "check", &twice]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: `cores` lists CPU 0 2 times"),
        "{err}"
    );
    // serve reports every error too, before starting anything.
    let path = config_file(
        "three-serve.toml",
        "shards = 0\n[shard]\nrecv_buffers = 3\n",
    );
    let (code, err) = serve(&["--config", &path, "--bind", "127.0.0.1:0"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("`shards` = 0") && err.contains("`shard.recv_buffers` = 3"),
        "{err}"
    );
}

/// `ringwire keygen` writes a private key readable by its owner only and prints its public
/// key (which `ringwire pubkey` derives again from the file); it refuses to overwrite a key
/// unless `--force`. `--psk` writes a pre-shared key and prints nothing on stdout.
#[test]
fn keygen_writes_a_private_key_file_and_refuses_to_overwrite_it() {
    use std::os::unix::fs::PermissionsExt;
    let path = config_file("keygen.key", "");
    std::fs::remove_file(&path).unwrap();
    let (code, public, err) = ringwire(&["keygen", "--out", &path]);
    assert_eq!(code, 0, "{err}");
    let public = public.trim().to_string();
    assert!(
        public.parse::<ringwire::session::PublicKey>().is_ok(),
        "{public}"
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (code, derived, err) = ringwire(&["pubkey", &path]);
    assert_eq!((code, derived.trim()), (0, public.as_str()), "{err}");
    let (code, out, err) = ringwire(&["keygen", "--out", &path]);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("exists") && err.contains("--force"), "{err}");
    let (code, again, _) = ringwire(&["pubkey", &path]);
    assert_eq!(
        (code, again.trim()),
        (0, public.as_str()),
        "the key is untouched"
    );
    let (code, replaced, err) = ringwire(&["keygen", "--out", &path, "--force"]);
    assert_eq!(code, 0, "{err}");
    assert_ne!(replaced.trim(), public);
    let psk = config_file("keygen.psk", "");
    std::fs::remove_file(&psk).unwrap();
    let (code, out, err) = ringwire(&["keygen", "--psk", "--out", &psk]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    let mode = std::fs::metadata(&psk).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

/// A key file that group or others may read is refused, naming the file and the fix, by
/// `serve` (exit status 2, before anything starts), `config check` and `pubkey`; a bad
/// `allowed_peers` entry is named by its index.
#[test]
fn a_group_readable_key_file_is_refused_with_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let key = config_file("loose.key", "");
    std::fs::remove_file(&key).unwrap();
    let (code, _, err) = ringwire(&["keygen", "--out", &key]);
    assert_eq!(code, 0, "{err}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let cfg = config_file(
        "loose.toml",
        &format!("app = \"session-echo\"\n[security]\nkey_file = \"{key}\"\n"),
    );
    let (code, err) = serve(&["--config", &cfg, "--bind", "127.0.0.1:0", "--no-pin"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "key file {key} is accessible by group or others (mode 0640)"
        )) && err.contains(&format!("chmod 600 {key}")),
        "{err}"
    );
    let (code, _, err) = ringwire(&["config", "check", &cfg]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("chmod 600"), "{err}");
    let (code, _, err) = ringwire(&["pubkey", &key]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, out, err) = ringwire(&["config", "check", &cfg]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("security=noise key="), "{out}");
    let bad = config_file(
        "bad-peers.toml",
        "[security]\nallowed_peers = [\"AAAA\"]\nmode = \"plain\"\n",
    );
    let (code, _, err) = ringwire(&["config", "check", &bad]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`security.allowed_peers[0]`") && err.contains("unknown variant `plain`"),
        "{err}"
    );
}

/// With a key file the binary announces that key's public half and no warning; with
/// `security.mode = "none"` it says loudly that sessions are plaintext.
#[test]
fn serve_announces_its_key_and_warns_loudly_about_plaintext() {
    if !available_or_explain() {
        return;
    }
    let key = config_file("serve.key", "");
    std::fs::remove_file(&key).unwrap();
    let (code, public, err) = ringwire(&["keygen", "--out", &key]);
    assert_eq!(code, 0, "{err}");
    let cfg = config_file(
        "serve-key.toml",
        &format!("[security]\nkey_file = \"{key}\"\n"),
    );
    let mut server = Server::start(&["--shards", "1", "--app", "session-echo", "--config", &cfg]);
    let line = server.await_stderr("session public key ");
    assert!(line.ends_with(public.trim()), "{line}");
    server.signal("TERM");
    let (status, _, stderr) = server.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("WARNING"), "{stderr}");

    let cfg = config_file("serve-none.toml", "[security]\nmode = \"none\"\n");
    let mut server = Server::start(&["--shards", "1", "--app", "relay", "--config", &cfg]);
    let line = server.await_stderr("WARNING");
    assert!(
        line.contains("security.mode = \"none\"")
            && line.contains("NEITHER AUTHENTICATED NOR ENCRYPTED"),
        "{line}"
    );
    server.signal("TERM");
    let (status, _, stderr) = server.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("session public key"), "{stderr}");
}

/// A second instance on a port another process holds exits with status 2 and says so; with
/// `--join-existing` it joins on purpose.
#[test]
fn a_second_instance_on_a_busy_port_exits_2_unless_asked_to_join() {
    if !available_or_explain() {
        return;
    }
    let first = Server::start(&["--shards", "1", "--app", "echo"]);
    let bind = first.addr.to_string();
    let (code, err) = serve(&["--bind", &bind, "--no-pin", "--shards", "1"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("{bind} is already in use")) && err.contains("--join-existing"),
        "{err}"
    );
    let second = Server::start_with(
        &["--bind", &bind, "--no-pin", "--join-existing"],
        &["--shards", "1"],
    );
    assert_eq!(second.addr, first.addr);
    for server in [first, second] {
        server.signal("TERM");
        let (status, _, stderr) = server.wait();
        assert_eq!(status.code(), Some(0), "{stderr}");
    }
}

/// Losing stdout (`ringwire serve ... | head -1`) does not stop the engine: the failed write is
/// logged once, datagrams are still answered, SIGTERM drains and the exit status is 0.
#[test]
fn a_closed_stdout_neither_panics_nor_stops_the_engine() {
    if !available_or_explain() {
        return;
    }
    let mut server = Server::start(&["--shards", "1", "--app", "echo", "--stats-interval", "1"]);
    // The reader goes away, as `head -1` does after the first line.
    drop(server.stdout.take());
    server.await_stderr("standard output failed");
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(GUARD)).unwrap();
    client.send_to(b"still there?", server.addr).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"still there?");
    server.signal("USR1");
    server.signal("TERM");
    let (status, _, stderr) = server.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("ringwire: drained:"), "{stderr}");
}

/// SIGHUP reloads (never stops), SIGUSR2 prints the counters, SIGQUIT stops at once with the
/// final counters: every signal an operator sends is handled on purpose.
#[test]
fn sighup_reloads_sigusr2_prints_and_sigquit_stops_with_counters() {
    if !available_or_explain() {
        return;
    }
    let path = config_file("hup.toml", "log = \"warn\"\n");
    let mut server = Server::start(&["--shards", "1", "--app", "echo", "--config", &path]);
    std::fs::write(
        &path,
        "log = \"info\"\nstats_interval_secs = 3600\nshards = 1\n",
    )
    .unwrap();
    server.signal("HUP");
    let reloaded = server.await_stderr("SIGHUP: reloaded");
    assert!(reloaded.contains("log=\"info\""), "{reloaded}");
    std::fs::write(&path, "[shard]\nrecv_buffers = 3\n").unwrap();
    server.signal("HUP");
    server.await_stderr("SIGHUP: config not reloaded");
    server.signal("USR2");
    let line = server.line();
    assert!(
        line.starts_with("stats ") && line.contains(" shard 0: "),
        "{line}"
    );
    server.signal("QUIT");
    let (status, stdout, stderr) = server.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("SIGQUIT, stopping now"), "{stderr}");
    assert!(stdout.lines().any(|l| l.starts_with("total ")), "{stdout}");
}

/// Under load from 1,000 sessions, SIGTERM makes every session hear `Close(ShuttingDown)` from
/// the server, the binary exits 0 having drained before its deadline (the deadline here is a
/// liveness guard), and its final counters balance: every datagram a shard read reached the
/// session layer, and every one the session layer took was handled by an endpoint or handed to
/// its owner; no Close was lost to a full control queue.
#[test]
fn sigterm_under_load_closes_every_session_and_drains() {
    use ringwire::session::{CloseReason, Closer};
    use std::collections::HashMap;
    use std::time::Instant;

    if !available_or_explain() {
        return;
    }
    const SESSIONS: usize = 1000;
    // Messages in flight at most: no socket buffer on either side can overflow on them.
    const WINDOW: usize = 100;
    // Every client is on 127.0.0.1: the per-address limits would refuse most of them.
    let cfg = config_file(
        "drain.toml",
        "drain_timeout_ms = 60000\n[sessions.admission]\nmax_sessions_per_prefix = 100000\n\
         new_sessions_per_prefix_per_second = 1000000\nnew_sessions_per_prefix_burst = 100000\n",
    );
    let mut server = Server::start(&["--shards", "2", "--app", "session-echo", "--config", &cfg]);
    let server_key = server.session_key();
    let mut pool = session_client(5, 21);
    let mut events = Vec::new();
    let guard = Instant::now() + GUARD;
    let mut conns = Vec::new();
    for i in 0..SESSIONS {
        conns.push(
            pool.connect(
                "127.0.0.1:0".parse().unwrap(),
                server.addr,
                Some(server_key),
            )
            .unwrap(),
        );
        if i % 100 == 99 {
            pool.poll(&mut events).unwrap();
        }
    }
    let count = |events: &[Event], f: fn(&Event) -> bool| events.iter().filter(|e| f(e)).count();
    while count(&events, |e| matches!(e, Event::Connected { .. })) < SESSIONS {
        assert!(Instant::now() < guard, "sessions did not connect");
        pump(&mut pool, &mut events);
    }
    // Load: a window of messages at a time, round robin over the sessions.
    let echoes = |events: &[Event]| count(events, |e| matches!(e, Event::Message { .. }));
    let mut sent = 0;
    for round in 0..10 {
        for k in 0..WINDOW {
            let conn = conns[(round * WINDOW + k) % SESSIONS];
            let _ = pool.send(conn, b"load").unwrap();
            sent += 1;
        }
        while echoes(&events) < sent {
            assert!(Instant::now() < guard, "echoes did not come back");
            pump(&mut pool, &mut events);
        }
    }
    // One more window in flight, then SIGTERM while it is.
    for conn in &conns[..WINDOW] {
        let _ = pool.send(*conn, b"load").unwrap();
    }
    server.signal("TERM");
    let mut closed: HashMap<_, (CloseReason, Closer)> = HashMap::new();
    while closed.len() < SESSIONS {
        assert!(
            Instant::now() < guard,
            "{} of {SESSIONS} sessions heard a Close",
            closed.len()
        );
        pump(&mut pool, &mut events);
        for e in events.drain(..) {
            if let Event::Disconnected { conn, reason, by } = e {
                assert!(closed.insert(conn, (reason, by)).is_none(), "closed twice");
            }
        }
    }
    assert!(
        closed
            .values()
            .all(|c| *c == (CloseReason::ShuttingDown, Closer::Peer)),
        "{:?}",
        closed
            .values()
            .find(|c| **c != (CloseReason::ShuttingDown, Closer::Peer))
    );
    let (status, stdout, stderr) = server.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("ringwire: drained:"), "{stderr}");
    assert!(!stdout.contains("(not drained)"), "{stdout}");
    // The final counters balance.
    let mut total: HashMap<String, u64> = HashMap::new();
    for line in stdout
        .lines()
        .filter(|l| l.starts_with("final shard ") || l.starts_with("app shard "))
    {
        let fields = line.split_once(": ").unwrap().1;
        for (k, v) in fields.split(' ').filter_map(|f| f.split_once('=')) {
            if let Ok(v) = v.parse::<u64>() {
                *total.entry(k.to_string()).or_default() += v;
            }
        }
    }
    let t = |k: &str| *total.get(k).unwrap_or_else(|| panic!("no {k} in {stdout}"));
    assert_eq!(t("datagrams_in"), t("session_datagrams"), "{total:?}");
    assert_eq!(
        t("session_endpoint_datagrams"),
        t("session_datagrams") + t("session_handoffs_received"),
        "{total:?}"
    );
    assert_eq!(
        t("session_handed_off") + t("session_handoff_full") + t("session_handoff_closed"),
        t("session_handoffs_received"),
        "{total:?}"
    );
    assert_eq!(t("session_control_dropped"), 0, "no Close lost: {total:?}");
    assert_eq!(t("sessions"), 0, "{total:?}");
    assert_eq!(t("sessions_accepted"), SESSIONS as u64, "{total:?}");
    assert!(t("echoed") >= sent as u64, "{total:?}");
    assert_eq!(t("kernel_drops"), 0, "{total:?}");
}
