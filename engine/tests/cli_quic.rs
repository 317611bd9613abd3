//! `ringwire serve --app quic-echo`: the binary serves QUIC with the certificate and key of its
//! `[quic]` table (a quinn client that trusts that certificate echoes a stream and a DATAGRAM
//! frame), generates and announces a self-signed one when the table names none, and drains
//! on SIGTERM with exit status 0.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quinn::crypto::rustls::QuicClientConfig;
use ringwire::kernel::available_or_explain;

/// A liveness guard only: a hung binary is killed after this.
const GUARD: Duration = Duration::from_secs(60);

fn dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ringwire-cli-quic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts `ringwire serve ARGS`; returns the child, its address and its stdout.
fn start(args: &[&str]) -> (Child, SocketAddr, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringwire"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--no-pin",
            "--shards",
            "2",
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    std::thread::spawn(move || {
        std::thread::sleep(GUARD);
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .strip_prefix("ringwire: listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    (child, addr, stdout)
}

/// SIGTERM, then the exit status, stdout and stderr.
fn stop(
    mut child: Child,
    mut stdout: BufReader<std::process::ChildStdout>,
) -> (i32, String, String) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut out = String::new();
    stdout.read_to_string(&mut out).unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let code = child.wait().unwrap().code().unwrap_or(-1);
    (code, out, err)
}

#[test]
fn quic_echo_serves_the_configured_certificate() {
    if !available_or_explain() {
        return;
    }
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = dir();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.key_pair.serialize_pem()).unwrap();
    let config = dir.join("quic.toml");
    std::fs::write(
        &config,
        format!(
            "app = \"quic-echo\"\n[quic]\ncert = {:?}\nkey = {:?}\nalpn = [\"echo-test\"]\n",
            cert_path.display().to_string(),
            key_path.display().to_string()
        ),
    )
    .unwrap();
    let (child, addr, stdout) = start(&["--config", &config.display().to_string()]);

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"echo-test".to_vec()];
    let client = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).unwrap()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(GUARD, async {
            let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
            let conn = endpoint
                .connect_with(client, addr, "localhost")
                .unwrap()
                .await
                .unwrap();
            let (mut send, mut recv) = conn.open_bi().await.unwrap();
            send.write_all(b"through the binary").await.unwrap();
            send.finish().unwrap();
            assert_eq!(recv.read_to_end(100).await.unwrap(), b"through the binary");
            loop {
                conn.send_datagram(Bytes::from_static(b"dgram")).unwrap();
                let wait = Duration::from_millis(500);
                if let Ok(got) = tokio::time::timeout(wait, conn.read_datagram()).await {
                    assert_eq!(&got.unwrap()[..], b"dgram");
                    break;
                }
            }
            conn.close(0u32.into(), b"");
            endpoint.wait_idle().await;
        })
        .await
        .expect("hung");
    });
    let (code, out, err) = stop(child, stdout);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("self-signed"), "{err}");
    assert!(out.contains("quic_accepted=1"), "{out}");
}

#[test]
fn quic_echo_without_a_certificate_generates_and_says_so() {
    if !available_or_explain() {
        return;
    }
    let (child, _addr, stdout) = start(&["--app", "quic-echo"]);
    let (code, _out, err) = stop(child, stdout);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("self-signed certificate"), "{err}");
}
