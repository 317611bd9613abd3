//! QUIC interop: the `quinn` crate (an independent client, on a tokio runtime that lives on the
//! test's own thread) against `QuicHost<QuicEcho>` on two shards. Handshake, a 1 MB stream
//! echo, 1,000 DATAGRAM frames, a unidirectional stream, close with a code, Retry; a client
//! that rebinds its port keeps its connection, with no handoff between shards when the kernel
//! steers by connection ID, and through a counted handoff when it does not; a wrong ALPN and an
//! untrusted certificate fail with clear errors. Connection control: Retry once the shard is
//! under load, admission refusing by source prefix, the manager trimming to its watermark.
#![allow(clippy::unwrap_used)]

mod common;

use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use bytes::Bytes;
use common::HANG;
use quinn::crypto::rustls::QuicClientConfig;
use ringwire::apps::QuicEcho;
use ringwire::kernel::available_or_explain;
use ringwire::quic::{
    AdmissionConfig, CLOSE_TRIMMED, ManagerConfig, QuicHost, QuicOptions, QuicTls, RateLimit,
    RetryMode, SteeringProgram,
};
use ringwire::{Engine, EngineHandle};
use rustls::pki_types::CertificateDer;

const ALPN: &[u8] = b"ringwire-echo";

/// Two QUIC shards on loopback, with the QUIC steering program or without any.
fn server(steering: bool, options: QuicOptions) -> (EngineHandle, CertificateDer<'static>) {
    let tls = QuicTls::self_signed(&["localhost"]).unwrap();
    let cert = tls.chain()[0].clone();
    let server = options.server_config(&tls).unwrap();
    let mut config = common::config(2);
    config.steering = steering;
    config.steering_program = SteeringProgram::Quic;
    config.mtu_probe = options.mtu_discovery;
    let engine = Engine::try_start(&config, move |info| {
        QuicHost::new(
            info.index,
            info.shards,
            server.clone(),
            &options,
            QuicEcho::default(),
        )
    })
    .unwrap();
    (engine, cert)
}

fn client_config(trusted: &CertificateDer<'static>, alpn: &[u8]) -> quinn::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).unwrap()))
}

/// Runs `f` on a current-thread tokio runtime on this thread, under a liveness guard.
fn block_on<T>(f: impl Future<Output = T>) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { tokio::time::timeout(HANG, f).await.expect("hung") })
}

async fn connect(
    addr: SocketAddr,
    cert: &CertificateDer<'static>,
) -> (quinn::Endpoint, quinn::Connection) {
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = endpoint
        .connect_with(client_config(cert, ALPN), addr, "localhost")
        .unwrap()
        .await
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    (endpoint, conn)
}

/// Sends `data` on a new bidirectional stream and returns what came back.
async fn echo_stream(conn: &quinn::Connection, data: &[u8]) -> Vec<u8> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let write = async {
        send.write_all(data).await.unwrap();
        send.finish().unwrap();
    };
    let read = recv.read_to_end(data.len() + 1);
    let ((), back) = tokio::join!(write, read);
    back.unwrap()
}

/// Sends DATAGRAM frames numbered `from..to`, one at a time, each until its echo comes back (a
/// lost datagram is sent again: DATAGRAM frames are unreliable).
async fn echo_datagrams(conn: &quinn::Connection, from: u32, to: u32) {
    for i in from..to {
        let mut payload = i.to_be_bytes().to_vec();
        payload.resize(64, 0x5a);
        loop {
            conn.send_datagram(Bytes::from(payload.clone())).unwrap();
            let wait = std::time::Duration::from_millis(500);
            match tokio::time::timeout(wait, conn.read_datagram()).await {
                Ok(got) if got.as_ref().unwrap()[..] == payload[..] => break,
                // An echo of an earlier resend, or a timeout: send again.
                Ok(_) | Err(_) => continue,
            }
        }
    }
}

/// The sum over the shards of the handler counter `name`, live.
fn counter(engine: &mut EngineHandle, name: &str) -> u64 {
    engine
        .app_counters(HANG)
        .into_iter()
        .map(|c| {
            let c = c.expect("every shard answers");
            c.iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .sum::<u64>()
        })
        .sum()
}

#[test]
fn quinn_client_handshake_stream_datagrams_close() {
    if !available_or_explain() {
        return;
    }
    let (mut engine, cert) = server(true, QuicOptions::default());
    let addr = engine.local_addr();
    const CONNS: usize = 4;
    block_on(async {
        let mut clients = Vec::new();
        for _ in 0..CONNS {
            clients.push(connect(addr, &cert).await);
        }
        let (_, first) = &clients[0];
        // 1 MB on one bidirectional stream, echoed byte for byte.
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        assert!(echo_stream(first, &data).await == data, "1 MB echo differs");
        // 1,000 DATAGRAM frames.
        echo_datagrams(first, 0, 1000).await;
        // A unidirectional stream comes back on one the server opens.
        let mut uni = first.open_uni().await.unwrap();
        uni.write_all(b"one way").await.unwrap();
        uni.finish().unwrap();
        let mut back = first.accept_uni().await.unwrap();
        assert_eq!(back.read_to_end(100).await.unwrap(), b"one way");
        // Every connection, whichever shard holds it, echoes.
        for (_, conn) in &clients {
            assert_eq!(echo_stream(conn, b"hello").await, b"hello");
        }
        for (endpoint, conn) in &clients {
            conn.close(7u32.into(), b"done");
            endpoint.wait_idle().await;
        }
    });
    common::os::wait_until("every close seen", || {
        counter(&mut engine, "quic_echo_closed_by_peer") == CONNS as u64
    });
    assert_eq!(counter(&mut engine, "quic_accepted"), CONNS as u64);
    assert_eq!(counter(&mut engine, "quic_echo_connected"), CONNS as u64);
    // Every number came back at least once (a resend after a loss is echoed too); none was
    // refused.
    assert!(counter(&mut engine, "quic_echo_datagrams") >= 1000);
    assert_eq!(counter(&mut engine, "quic_echo_datagrams_refused"), 0);
    // With steering, no packet needed another shard.
    assert_eq!(counter(&mut engine, "quic_handed_off"), 0);
    // The live view's summary (SIGUSR1, the metrics endpoint) names the QUIC figures.
    for page in engine.reports(ringwire::ReportRequest::first(0), HANG) {
        let page = page.unwrap();
        assert!(
            page.summary.starts_with("quic connections="),
            "{}",
            page.summary
        );
    }
    let report = common::shutdown(engine);
    let total = report.total();
    assert_eq!(total.send_queue_full + total.send_too_large, 0);
}

#[test]
fn rebinding_client_keeps_its_connection_on_one_shard() {
    if !available_or_explain() {
        return;
    }
    let (mut engine, cert) = server(true, QuicOptions::default());
    let addr = engine.local_addr();
    block_on(async {
        let (endpoint, conn) = connect(addr, &cert).await;
        assert_eq!(echo_stream(&conn, b"before").await, b"before");
        for round in 0..8u32 {
            endpoint
                .rebind(UdpSocket::bind("127.0.0.1:0").unwrap())
                .unwrap();
            echo_datagrams(&conn, round * 10, round * 10 + 10).await;
            assert_eq!(echo_stream(&conn, b"after").await, b"after");
        }
        conn.close(0u32.into(), b"");
        endpoint.wait_idle().await;
    });
    // One connection throughout, and never a packet on the wrong shard.
    assert_eq!(counter(&mut engine, "quic_accepted"), 1);
    assert_eq!(counter(&mut engine, "quic_handed_off"), 0);
    assert_eq!(counter(&mut engine, "quic_handoffs_received"), 0);
    common::shutdown(engine);
}

#[test]
fn without_steering_a_rebound_client_is_handed_to_its_shard() {
    if !available_or_explain() {
        return;
    }
    let (mut engine, cert) = server(false, QuicOptions::default());
    let addr = engine.local_addr();
    block_on(async {
        let (endpoint, conn) = connect(addr, &cert).await;
        // Each new port lands on either shard by the kernel's hash; the chance that 64 ports
        // all land on the connection's own shard is 2^-64.
        for round in 0..64u32 {
            endpoint
                .rebind(UdpSocket::bind("127.0.0.1:0").unwrap())
                .unwrap();
            echo_datagrams(&conn, round, round + 1).await;
            if counter(&mut engine, "quic_handed_off") > 0 {
                break;
            }
        }
        assert_eq!(echo_stream(&conn, b"still here").await, b"still here");
        conn.close(0u32.into(), b"");
        endpoint.wait_idle().await;
    });
    assert_eq!(counter(&mut engine, "quic_accepted"), 1);
    let handed = counter(&mut engine, "quic_handed_off");
    assert!(handed > 0, "no packet reached the other shard");
    assert_eq!(counter(&mut engine, "quic_handoffs_received"), handed);
    assert_eq!(counter(&mut engine, "quic_handoff_full"), 0);
    common::shutdown(engine);
}

#[test]
fn retry_validates_the_address_first() {
    if !available_or_explain() {
        return;
    }
    let mut options = QuicOptions::default();
    options.retry = RetryMode::Always;
    let (mut engine, cert) = server(true, options);
    let addr = engine.local_addr();
    block_on(async {
        let (endpoint, conn) = connect(addr, &cert).await;
        assert_eq!(echo_stream(&conn, b"retried").await, b"retried");
        conn.close(0u32.into(), b"");
        endpoint.wait_idle().await;
    });
    assert_eq!(counter(&mut engine, "quic_retries"), 1);
    assert_eq!(counter(&mut engine, "quic_accepted"), 1);
    common::shutdown(engine);
}

#[test]
fn wrong_alpn_and_untrusted_certificate_fail_clearly() {
    if !available_or_explain() {
        return;
    }
    let (mut engine, cert) = server(true, QuicOptions::default());
    let addr = engine.local_addr();
    let stranger = QuicTls::self_signed(&["localhost"]).unwrap().chain()[0].clone();
    block_on(async {
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let err = endpoint
            .connect_with(client_config(&cert, b"not-echo"), addr, "localhost")
            .unwrap()
            .await
            .unwrap_err();
        // TLS alert 120, no_application_protocol, from the server.
        let text = err.to_string();
        assert!(
            matches!(&err, quinn::ConnectionError::ConnectionClosed(c)
                if c.error_code == quinn::TransportErrorCode::crypto(120)),
            "{text}"
        );
        let err = endpoint
            .connect_with(client_config(&stranger, ALPN), addr, "localhost")
            .unwrap()
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("invalid peer certificate"), "{text}");
        endpoint.wait_idle().await;
    });
    // The server refused the wrong ALPN at its first Initial (no connection, counted); it
    // accepted the other and saw it fail.
    common::os::wait_until("the failed handshake ended", || {
        counter(&mut engine, "quic_echo_closed") == 1
    });
    assert_eq!(counter(&mut engine, "quic_accept_failed"), 1);
    assert_eq!(counter(&mut engine, "quic_accepted"), 1);
    assert_eq!(counter(&mut engine, "quic_echo_connected"), 0);
    common::shutdown(engine);
}

#[test]
fn a_thousand_connections_stay_each_on_one_shard() {
    if !available_or_explain() {
        return;
    }
    const CONNS: usize = 1000;
    let (mut engine, cert) = server(true, QuicOptions::default());
    let addr = engine.local_addr();
    block_on(async {
        // One client endpoint (one socket, one port) per connection, so that the kernel's
        // hash spreads their Initials over both shards.
        // 50 at a time, each connecting and echoing its number on a stream.
        let mut clients = Vec::with_capacity(CONNS);
        for batch in 0..CONNS / 50 {
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..50 {
                let cert = cert.clone();
                tasks.spawn(async move {
                    let (endpoint, conn) = connect(addr, &cert).await;
                    let msg = ((batch * 50 + i) as u32).to_be_bytes();
                    assert_eq!(echo_stream(&conn, &msg).await, msg);
                    (endpoint, conn)
                });
            }
            clients.extend(tasks.join_all().await);
        }
        // Close all, then wait: the endpoints drain (three PTOs each) side by side.
        for (_, conn) in &clients {
            conn.close(0u32.into(), b"");
        }
        for (endpoint, _) in &clients {
            endpoint.wait_idle().await;
        }
    });
    let per_shard: Vec<u64> = engine
        .app_counters(HANG)
        .into_iter()
        .map(|c| {
            let c = c.unwrap();
            c.iter()
                .find(|(n, _)| *n == "quic_accepted")
                .map(|(_, v)| *v)
                .unwrap()
        })
        .collect();
    assert_eq!(per_shard.iter().sum::<u64>(), CONNS as u64);
    assert!(
        per_shard.iter().all(|&n| n > 0),
        "one shard got all: {per_shard:?}"
    );
    // Every datagram was either steered to the shard its CID names or hashed (Initials): none
    // had to cross to another shard.
    let datagrams = counter(&mut engine, "quic_datagrams");
    assert_eq!(counter(&mut engine, "quic_handed_off"), 0);
    assert_eq!(
        counter(&mut engine, "quic_owned_here") + counter(&mut engine, "quic_hashed"),
        datagrams
    );
    common::shutdown(engine);
}

#[test]
fn draining_closes_connections_with_code_zero() {
    if !available_or_explain() {
        return;
    }
    let (engine, cert) = server(true, QuicOptions::default());
    let addr = engine.local_addr();
    let shutdown = engine.shutdown_handle();
    block_on(async {
        let (endpoint, conn) = connect(addr, &cert).await;
        assert_eq!(echo_stream(&conn, b"hi").await, b"hi");
        shutdown.drain(std::time::Instant::now() + HANG);
        match conn.closed().await {
            quinn::ConnectionError::ApplicationClosed(close) => {
                assert_eq!(close.error_code, 0u32.into());
                assert_eq!(&close.reason[..], b"shutting down");
            }
            other => panic!("closed by {other}"),
        }
        endpoint.wait_idle().await;
    });
    let report = engine.drain(HANG).unwrap();
    assert!(report.drained_gracefully());
}

/// Polls `done` every 10 ms without blocking the client's runtime.
async fn until(mut done: impl FnMut() -> bool) {
    while !done() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[test]
fn retry_under_load_validates_new_clients_and_they_connect() {
    if !available_or_explain() {
        return;
    }
    // Under load from one connection per shard: every shard's second client onwards gets a
    // Retry (the first connection stays open, so the shard stays over the threshold).
    const CONNS: usize = 6;
    let mut options = QuicOptions::default();
    options.retry = RetryMode::UnderLoad;
    options.retry_above_connections = 1;
    let (mut engine, cert) = server(true, options);
    let addr = engine.local_addr();
    block_on(async {
        let mut clients = Vec::new();
        for i in 0..CONNS {
            let (endpoint, conn) = connect(addr, &cert).await;
            let msg = (i as u32).to_be_bytes();
            assert_eq!(echo_stream(&conn, &msg).await, msg);
            clients.push((endpoint, conn));
        }
        for (endpoint, conn) in &clients {
            conn.close(0u32.into(), b"");
            endpoint.wait_idle().await;
        }
    });
    assert_eq!(counter(&mut engine, "quic_accepted"), CONNS as u64);
    let retries = counter(&mut engine, "quic_retries");
    // Two shards: at most two clients came first on theirs.
    assert!(retries >= CONNS as u64 - 2, "{retries} retries");
    assert_eq!(counter(&mut engine, "quic_retries_under_load"), retries);
    assert_eq!(counter(&mut engine, "quic_retries_connections"), retries);
    common::shutdown(engine);
}

#[test]
fn admission_refuses_a_prefix_over_its_limit() {
    if !available_or_explain() {
        return;
    }
    // One connection per source prefix node-wide: each of the two shards holds its part
    // (one), so of four clients from 127.0.0.1 at most two connect, and the rest are refused
    // at their first Initial with CONNECTION_REFUSED, counted by reason.
    let mut options = QuicOptions::default();
    let mut admission = AdmissionConfig::default();
    admission.max_sessions_per_prefix = 2;
    options.admission = Some(admission);
    let (mut engine, cert) = server(true, options);
    let addr = engine.local_addr();
    let (held, refused) = block_on(async {
        let mut held = Vec::new();
        let mut refused = 0;
        for _ in 0..4 {
            let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
            let connecting = endpoint
                .connect_with(client_config(&cert, ALPN), addr, "localhost")
                .unwrap();
            match connecting.await {
                Ok(conn) => held.push((endpoint, conn)),
                Err(quinn::ConnectionError::ConnectionClosed(c))
                    if c.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
                {
                    refused += 1;
                }
                Err(e) => panic!("unexpected: {e}"),
            }
        }
        let n = held.len();
        for (endpoint, conn) in held {
            conn.close(0u32.into(), b"");
            endpoint.wait_idle().await;
        }
        (n, refused)
    });
    assert!((1..=2).contains(&held), "{held} connected");
    assert_eq!(held + refused, 4);
    assert_eq!(
        counter(&mut engine, "quic_refusals_prefix_full"),
        refused as u64
    );
    assert_eq!(counter(&mut engine, "quic_accepted"), held as u64);
    common::shutdown(engine);
}

#[test]
fn the_manager_trims_connections_above_the_high_watermark() {
    if !available_or_explain() {
        return;
    }
    // A node-wide high watermark of 2 and low of 1, no grace period: with 4 connections held
    // the shards trim (one round each: a long silence period), and every trimmed client is
    // told with the application code CLOSE_TRIMMED.
    let mut options = QuicOptions::default();
    let mut manager = ManagerConfig::default();
    manager.high_watermark = 2;
    manager.low_watermark = 1;
    manager.grace_period = std::time::Duration::ZERO;
    manager.silence_period = std::time::Duration::from_secs(600);
    options.manager = Some(manager);
    // Admission on (its count exchange carries the counts the watermarks are judged by), its
    // per-source limits lifted: every client is 127.0.0.1.
    let mut admission = AdmissionConfig::default();
    admission.new_sessions_per_prefix = RateLimit::per_second(1000, 1000);
    options.admission = Some(admission);
    let (mut engine, cert) = server(true, options);
    let addr = engine.local_addr();
    block_on(async {
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(connect(addr, &cert).await);
        }
        let trimmed = |clients: &[(quinn::Endpoint, quinn::Connection)]| {
            clients
                .iter()
                .filter(|(_, c)| {
                    matches!(c.close_reason(), Some(quinn::ConnectionError::ApplicationClosed(a))
                        if a.error_code == CLOSE_TRIMMED.into() && &a.reason[..] == b"trimmed")
                })
                .count()
        };
        until(|| {
            let n = counter(&mut engine, "quic_trims_watermark");
            n > 0 && trimmed(&clients) as u64 == n
        })
        .await;
        // Nothing but trims closed a connection.
        let closed = clients
            .iter()
            .filter(|(_, c)| c.close_reason().is_some())
            .count();
        assert_eq!(closed, trimmed(&clients));
        for (endpoint, conn) in &clients {
            conn.close(0u32.into(), b"");
            endpoint.wait_idle().await;
        }
    });
    common::shutdown(engine);
}

/// The largest path MTU the server's live view reports for any connection.
fn server_mtu(engine: &mut EngineHandle) -> u16 {
    engine
        .reports(ringwire::ReportRequest::first(16), HANG)
        .into_iter()
        .flat_map(|page| page.unwrap().items)
        .filter_map(|item| {
            let (_, mtu) = item.fields.iter().find(|(name, _)| *name == "mtu")?;
            mtu.parse().ok()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn path_mtu_discovery_raises_the_packet_size_both_ways() {
    if !available_or_explain() {
        return;
    }
    // The sockets send with Don't Fragment; on loopback (MTU 65,536) both ends' probes succeed
    // up to quinn's 1,452-byte bound.
    let mut options = QuicOptions::default();
    options.mtu_discovery = true;
    let (mut engine, cert) = server(true, options);
    let addr = engine.local_addr();
    block_on(async {
        let (endpoint, conn) = connect(addr, &cert).await;
        let data = vec![7u8; 20_000];
        loop {
            assert!(echo_stream(&conn, &data).await == data);
            if conn.stats().path.current_mtu > 1200 && server_mtu(&mut engine) > 1200 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        conn.close(0u32.into(), b"");
        endpoint.wait_idle().await;
    });
    let report = common::shutdown(engine);
    assert_eq!(report.total().send_too_large, 0);
}

#[test]
fn early_timers_are_rearmed_and_due_ones_still_close_an_idle_connection() {
    if !available_or_explain() {
        return;
    }
    // A connection's timer is armed at its deadline and left there while the deadline moves
    // later (loss detection and idle move with every packet); such a timer fires early, and
    // the host re-arms it at the real deadline without driving the connection (D82). The
    // deadlines that do come due still run: with traffic stopped, the idle timeout (the
    // client's 500 ms, the smaller of the two) closes and frees the server's connection.
    let (mut engine, cert) = server(true, QuicOptions::default());
    let addr = engine.local_addr();
    block_on(async {
        let mut config = client_config(&cert, ALPN);
        let mut transport = quinn::TransportConfig::default();
        transport.max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(std::time::Duration::from_millis(500)).unwrap(),
        ));
        config.transport_config(Arc::new(transport));
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let conn = endpoint
            .connect_with(config, addr, "localhost")
            .unwrap()
            .await
            .unwrap();
        let mut next = 0;
        while counter(&mut engine, "quic_timers_early") == 0 {
            echo_datagrams(&conn, next, next + 10).await;
            next += 10;
        }
        // Nothing more is sent: the client's own idle timeout ends it without a packet.
        let closed = conn.closed().await;
        assert!(
            matches!(closed, quinn::ConnectionError::TimedOut),
            "{closed}"
        );
        until(|| counter(&mut engine, "quic_closed") == 1).await;
    });
    assert_eq!(counter(&mut engine, "quic_connections"), 0);
    assert_eq!(counter(&mut engine, "quic_echo_closed_by_peer"), 0);
    common::shutdown(engine);
}
