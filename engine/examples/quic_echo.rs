//! QUIC on the shards: a `QuicHost` per shard, each owning a `quinn_proto::Endpoint`, with an
//! app that echoes streams and DATAGRAM frames, and the kernel steering every packet to the
//! shard named in its connection ID.
//!
//! ```text
//! cargo run --example quic_echo                    # self-test: start, connect with the quinn client, echo, stop
//! cargo run --example quic_echo -- 127.0.0.1:4433  # serve (self-signed, ALPN ringwire-echo) until stdin closes
//! ```
//!
//! The server side runs no async runtime: quinn-proto is sans-IO, and the shard feeds it
//! datagrams, timers and `now`. The self-test's client is the `quinn` crate on a tokio runtime
//! on the main thread, an independent implementation of QUIC v1.
#![forbid(unsafe_code)]

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ringwire::apps::QuicEcho;
use ringwire::quic::{QuicHost, QuicOptions, QuicTls, SteeringProgram};
use ringwire::{Engine, EngineConfig};
use rustls::pki_types::CertificateDer;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let serve: Option<SocketAddr> = std::env::args().nth(1).map(|a| a.parse()).transpose()?;
    let bind = serve.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    // A certificate for the demo; a server reads its own with `QuicTls::from_pem_files`.
    let tls = QuicTls::self_signed(&["localhost"])?;
    let options = QuicOptions::default();
    let server = options.server_config(&tls)?;
    let mut config = EngineConfig::unpinned(bind, 2);
    config.steering = true;
    config.steering_program = SteeringProgram::Quic;
    let engine = Engine::try_start(&config, move |info| {
        QuicHost::new(
            info.index,
            info.shards,
            server.clone(),
            &options,
            QuicEcho::default(),
        )
    })?;
    println!("quic_echo: listening on {}", engine.local_addr());

    if serve.is_some() {
        println!("quic_echo: serving until stdin closes");
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
    } else {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let addr = engine.local_addr();
        let cert = tls.chain()[0].clone();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), self_test(addr, cert)).await
        })??;
    }

    let report = engine.shutdown(Duration::from_secs(2))?;
    for shard in &report.shards {
        let app: Vec<String> = shard.app.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("shard {}: {}", shard.stats.shard, app.join(" "));
    }
    Ok(())
}

/// Four connections (so both shards hold some), a 100 KB stream and 100 DATAGRAM frames on
/// each, checked byte for byte, then closed with code 0.
async fn self_test(
    server: SocketAddr,
    cert: CertificateDer<'static>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"ringwire-echo".to_vec()];
    let client = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls)?,
    ));
    let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    for c in 0..4 {
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
        let conn = endpoint
            .connect_with(client.clone(), server, "localhost")?
            .await?;
        let (mut send, mut recv) = conn.open_bi().await?;
        let write = async {
            send.write_all(&data).await?;
            send.finish()?;
            Ok::<_, Box<dyn std::error::Error>>(())
        };
        let (written, back) = tokio::join!(write, recv.read_to_end(data.len()));
        written?;
        if back? != data {
            return Err("the stream came back different".into());
        }
        let mut echoed = 0;
        for i in 0..100u32 {
            let payload = bytes::Bytes::copy_from_slice(&i.to_be_bytes());
            // DATAGRAM frames are unreliable: resend until the echo comes back.
            loop {
                conn.send_datagram(payload.clone())?;
                let wait = Duration::from_millis(500);
                if let Ok(got) = tokio::time::timeout(wait, conn.read_datagram()).await
                    && got? == payload
                {
                    echoed += 1;
                    break;
                }
            }
        }
        conn.close(0u32.into(), b"done");
        endpoint.wait_idle().await;
        println!(
            "quic_echo: connection {c}: {} bytes on a stream and {echoed} datagrams echoed",
            data.len()
        );
    }
    Ok(())
}
