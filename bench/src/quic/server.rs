//! The QUIC baselines: quinn (on tokio) echoing streams and DATAGRAM frames like `quic-echo`,
//! either one endpoint on one thread, or one endpoint per thread on an `SO_REUSEPORT` group
//! with no steering (what running several quinn endpoints on one port gives today).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::sys::affinity;

/// `ringwire-bench quic-server`.
#[derive(clap::Args, Debug)]
pub struct QuicServerArgs {
    /// Address to serve on; port 0 picks one (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:4433")]
    pub bind: SocketAddr,
    /// Endpoints, one per thread and core; more than one share the port with SO_REUSEPORT and
    /// no steering.
    #[arg(long, default_value_t = 1)]
    pub endpoints: usize,
    /// Cores to pin the endpoint threads to, comma separated (default: thread i on core i).
    #[arg(long, value_delimiter = ',')]
    pub cores: Option<Vec<usize>>,
    /// Stop after this many seconds (default: run until killed).
    #[arg(long, value_parser = crate::args::parse_secs)]
    pub duration: Option<f64>,
}

async fn echo_connection(conn: quinn::Connection) {
    let datagrams = {
        let conn = conn.clone();
        async move {
            while let Ok(d) = conn.read_datagram().await {
                let _ = conn.send_datagram(d);
            }
        }
    };
    let streams = {
        let conn = conn.clone();
        async move {
            while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut recv, &mut send).await;
                    let _ = send.finish();
                });
            }
        }
    };
    tokio::join!(datagrams, streams);
}

/// Runs the quinn baseline until killed or `--duration`.
pub fn serve(args: QuicServerArgs) -> crate::CmdResult {
    let server = tls_server()?;
    let mut sockets = Vec::new();
    for _ in 0..args.endpoints.max(1) {
        let s = socket2::Socket::new(
            socket2::Domain::for_address(args.bind),
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        if args.endpoints > 1 {
            s.set_reuse_port(true)?;
        }
        let bind = sockets
            .first()
            .map_or(Ok(args.bind), |f: &std::net::UdpSocket| f.local_addr())?;
        s.bind(&bind.into())?;
        sockets.push(std::net::UdpSocket::from(s));
    }
    let addr = sockets[0].local_addr()?;
    println!(
        "quic-server: listening on {addr} endpoints={}",
        sockets.len()
    );
    let mut threads = Vec::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        let server = server.clone();
        let core = affinity::core_for(args.cores.as_deref(), i);
        let duration = args.duration;
        threads.push(std::thread::spawn(move || -> std::io::Result<()> {
            affinity::pin_or_warn(core);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let endpoint = quinn::Endpoint::new(
                    quinn::EndpointConfig::default(),
                    Some((*server).clone()),
                    socket,
                    Arc::new(quinn::TokioRuntime),
                )?;
                let accept = async {
                    while let Some(incoming) = endpoint.accept().await {
                        tokio::spawn(async move {
                            if let Ok(conn) = incoming.await {
                                echo_connection(conn).await;
                            }
                        });
                    }
                };
                match duration {
                    Some(secs) => {
                        let _ =
                            tokio::time::timeout(std::time::Duration::from_secs_f64(secs), accept)
                                .await;
                    }
                    None => accept.await,
                }
                Ok(())
            })
        }));
    }
    for t in threads {
        t.join().map_err(|_| "an endpoint thread panicked")??;
    }
    Ok(())
}

fn tls_server() -> Result<Arc<quinn::ServerConfig>, Box<dyn std::error::Error + Send + Sync>> {
    Ok(Arc::new(super::tls::server_config()?))
}
