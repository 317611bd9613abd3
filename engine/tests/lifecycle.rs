//! The engine's lifecycle as a library user sees it: dropping a handle stops and joins its
//! shards and frees the port, a shard that dies is reported at once with its reason, shard
//! threads are told apart by name, and report replies belong to their own request.
#![allow(clippy::unwrap_used)]

mod common;

use std::cell::RefCell;
use std::error::Error;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringwire::apps::SessionEcho;
use ringwire::engine::thread_name;
use ringwire::kernel::available_or_explain;
use ringwire::session::client::ClientPool;
use ringwire::session::{EndpointConfig, Event, Keypair, Placement, SessionClock, SessionHost};
use ringwire::{
    Ctx, Engine, EngineError, EngineEvent, Handler, ReportError, ReportPage, ReportRequest,
    ShardConfig,
};

/// How long a test waits for something that must happen before it fails instead of hanging.
/// Never a claim about speed.
const GUARD: Duration = common::HANG;

/// Sends `payload` to `addr` and waits for the echo.
fn echo_once(addr: SocketAddr, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let client = UdpSocket::bind("127.0.0.1:0")?;
    client.set_read_timeout(Some(GUARD))?;
    client.send_to(payload, addr)?;
    let mut buf = [0u8; 64];
    let (n, _) = client.recv_from(&mut buf)?;
    Ok(buf[..n].to_vec())
}

/// Counts its drops: one per shard thread that ran its thread-local destructors, which happens
/// as the thread ends, before a join on it returns.
struct CountOnDrop(Arc<AtomicUsize>);

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

thread_local! {
    static THREAD_END: RefCell<Option<CountOnDrop>> = const { RefCell::new(None) };
}

/// Echoes, and panics on `boom`.
struct Echo {
    _dropped: CountOnDrop,
}

impl Handler for Echo {
    type Message = ();
    fn on_datagram(&mut self, peer: SocketAddr, payload: &[u8], ctx: &mut Ctx<'_, ()>) {
        assert_ne!(payload, b"boom", "handler told to panic");
        let _ = ctx.send_to(peer, payload);
    }
}

struct Counts {
    handlers_dropped: Arc<AtomicUsize>,
    threads_ended: Arc<AtomicUsize>,
}

fn counting_echo(counts: &Counts) -> impl Fn(ringwire::ShardInfo) -> Echo + Send + Sync + 'static {
    let handlers = Arc::clone(&counts.handlers_dropped);
    let threads = Arc::clone(&counts.threads_ended);
    move |_| {
        let end = CountOnDrop(Arc::clone(&threads));
        THREAD_END.with(|t| *t.borrow_mut() = Some(end));
        Echo {
            _dropped: CountOnDrop(Arc::clone(&handlers)),
        }
    }
}

/// Starts an engine, uses it, then fails with `?` before any shutdown: the shape of code that
/// leaked running shards before handles stopped them on drop.
fn start_then_fail(counts: &Counts, addr: &mut Option<SocketAddr>) -> Result<(), Box<dyn Error>> {
    let config = common::config(2);
    let engine = Engine::start(&config, counting_echo(counts))?;
    *addr = Some(engine.local_addr());
    assert_eq!(echo_once(engine.local_addr(), b"hello")?, b"hello");
    let _: u32 = "not a number".parse()?;
    unreachable!("the parse fails");
}

#[test]
fn dropping_a_handle_stops_and_joins_its_shards_and_frees_the_port() {
    if !available_or_explain() {
        return;
    }
    let counts = Counts {
        handlers_dropped: Arc::new(AtomicUsize::new(0)),
        threads_ended: Arc::new(AtomicUsize::new(0)),
    };
    let mut addr = None;
    assert!(start_then_fail(&counts, &mut addr).is_err());
    // By the time the drop returned, both shards had stopped, dropped their handlers, and
    // their threads had ended and been joined.
    assert_eq!(counts.handlers_dropped.load(Ordering::SeqCst), 2);
    assert_eq!(counts.threads_ended.load(Ordering::SeqCst), 2);
    // No socket of the group is left: the port can be bound again, without SO_REUSEPORT.
    let addr = addr.unwrap();
    let again = UdpSocket::bind(addr);
    assert!(again.is_ok(), "{addr} still bound: {again:?}");
}

#[test]
fn a_panicking_handler_is_reported_at_once_with_its_shard_and_message() {
    if !available_or_explain() {
        return;
    }
    let counts = Counts {
        handlers_dropped: Arc::new(AtomicUsize::new(0)),
        threads_ended: Arc::new(AtomicUsize::new(0)),
    };
    let config = common::config(2);
    let mut engine = Engine::start(&config, counting_echo(&counts)).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"boom", engine.local_addr()).unwrap();

    let failed = match engine.wait_event_timeout(GUARD) {
        Some(EngineEvent::ShardStopped {
            shard,
            outcome: Err(EngineError::Panicked { shard: s, message }),
        }) => {
            assert_eq!(*s, shard);
            assert!(message.contains("handler told to panic"), "{message}");
            shard
        }
        other => panic!("expected a panicked shard, got {other:?}"),
    };
    // The panicking shard's handler was dropped by the unwind.
    assert_eq!(counts.handlers_dropped.load(Ordering::SeqCst), 1);
    match engine.shutdown(GUARD) {
        Err(EngineError::Panicked { shard, .. }) => assert_eq!(shard, failed),
        other => panic!("expected the panic again from shutdown, got {other:?}"),
    }
    assert_eq!(counts.threads_ended.load(Ordering::SeqCst), 2);
}

#[test]
fn shard_threads_have_names_linux_keeps_whole() {
    if !available_or_explain() {
        return;
    }
    let config = common::config(2);
    let engine = Engine::start(&config, |_| ringwire::apps::Echo).unwrap();
    for (shard, tid) in engine.thread_ids().into_iter().enumerate() {
        let comm = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).unwrap();
        assert_eq!(comm.trim_end(), thread_name(shard));
    }
    assert_eq!(thread_name(999_999).len(), 15);
}

/// A handler whose loop can be held inside `on_datagram`, and whose reports say which request
/// they answer.
struct Gate {
    entered: Sender<()>,
    release: Receiver<()>,
    reported: Sender<usize>,
}

impl Handler for Gate {
    type Message = ();
    fn on_datagram(&mut self, _: SocketAddr, _: &[u8], _: &mut Ctx<'_, ()>) {
        self.entered.send(()).unwrap();
        self.release.recv_timeout(GUARD).unwrap();
    }

    fn report(&self, request: &ReportRequest, page: &mut ReportPage) -> Option<u64> {
        page.summary.push_str(&format!("limit={}", request.limit()));
        self.reported.send(request.limit()).unwrap();
        None
    }
}

#[test]
fn a_timed_out_report_request_never_answers_the_next_one() {
    if !available_or_explain() {
        return;
    }
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let (reported_tx, reported) = mpsc::channel();
    let release_rx = Mutex::new(Some(release_rx));
    let config = common::config(1);
    let mut engine = Engine::start(&config, move |_| Gate {
        entered: entered_tx.clone(),
        release: release_rx.lock().unwrap().take().unwrap(),
        reported: reported_tx.clone(),
    })
    .unwrap();

    // Hold the shard inside its handler: it cannot answer anything until released.
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"hold", engine.local_addr()).unwrap();
    entered.recv_timeout(GUARD).unwrap();
    let first = engine.reports(ReportRequest::first(1), Duration::ZERO);
    assert!(
        matches!(first[..], [Err(ReportError::Timeout)]),
        "{first:?}"
    );

    // Released, the shard answers the first request; its reply now waits, stale.
    release.send(()).unwrap();
    assert_eq!(reported.recv_timeout(GUARD).unwrap(), 1);

    let second = engine.reports(ReportRequest::first(2), GUARD);
    match &second[..] {
        [Ok(report)] => assert_eq!(report.summary, "limit=2"),
        other => panic!("{other:?}"),
    }
    assert_eq!(engine.report_counters().stale_discarded, 1);
    assert_eq!(reported.recv_timeout(GUARD).unwrap(), 2);
    engine.shutdown(GUARD).unwrap();
}

fn session_echo_host() -> SessionHost<SessionEcho> {
    let place = Placement::new(
        SessionClock::start(),
        0,
        1,
        ShardConfig::default().max_datagram,
    );
    SessionHost::new(
        EndpointConfig::new([9u8; 32], Keypair::from_seed_bytes([0x51; 32])),
        place,
        [1u8; 32],
        SessionEcho::default(),
    )
    .unwrap()
}

#[test]
fn session_reports_come_in_bounded_pages_that_cover_every_session_once() {
    if !available_or_explain() {
        return;
    }
    const SESSIONS: usize = 40;
    const PAGE: usize = 16;
    let config = common::config(1);
    let mut engine = Engine::start(&config, |_| session_echo_host()).unwrap();
    let mut pool = ClientPool::new(
        EndpointConfig::new([9u8; 32], Keypair::from_seed_bytes([0x52; 32])),
        3,
    )
    .unwrap();
    for _ in 0..SESSIONS {
        pool.connect(
            "127.0.0.1:0".parse().unwrap(),
            engine.local_addr(),
            Some(Keypair::from_seed_bytes([0x51; 32]).public),
        )
        .unwrap();
    }
    let mut events = Vec::new();
    let guard = Instant::now() + GUARD;
    while events
        .iter()
        .filter(|e| matches!(e, Event::Connected { .. }))
        .count()
        < SESSIONS
    {
        assert!(
            Instant::now() < guard,
            "sessions did not connect: {events:?}"
        );
        if pool.poll(&mut events).unwrap() == 0 {
            // The pool's sockets are non-blocking; let the shard run.
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    let mut request = ReportRequest::first(PAGE);
    let mut ids = Vec::new();
    let mut pages = Vec::new();
    loop {
        let mut reports = engine.reports(request, GUARD);
        let report = reports.remove(0).unwrap();
        assert!(
            report.summary.starts_with(&format!("sessions={SESSIONS} ")),
            "{}",
            report.summary
        );
        assert_eq!(report.counter("sessions"), SESSIONS as u64);
        let page: Vec<u64> = report.items.iter().map(|i| i.key).collect();
        pages.push(page.len());
        ids.extend(page);
        match report.next {
            Some(cursor) => request = request.after(cursor),
            None => break,
        }
    }
    assert_eq!(pages, [PAGE, PAGE, SESSIONS - 2 * PAGE]);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:x?}");
    engine.shutdown(GUARD).unwrap();
}

#[test]
fn notifications_arrive_in_order_and_are_bounded() {
    if !available_or_explain() {
        return;
    }
    let config = common::config(1);
    let mut engine = Engine::start(&config, |_| ringwire::apps::Echo).unwrap();
    let notifier = engine.notifier();
    let capacity = ringwire::EngineNotifier::CAPACITY as u64;
    for token in 0..capacity {
        notifier.notify(token).unwrap();
    }
    assert_eq!(notifier.notify(capacity), Err(ringwire::NotifyError::Full));
    assert!(matches!(engine.wait_event(), EngineEvent::Notified(0)));
    notifier.notify(capacity).unwrap();
    for want in 1..=capacity {
        match engine.wait_event() {
            EngineEvent::Notified(token) => assert_eq!(token, want),
            other => panic!("{other:?}"),
        }
    }
    // A stop asked for elsewhere arrives as a clean stop, then nothing is left to wait for.
    engine.shutdown_handle().request();
    assert!(matches!(
        engine.wait_event(),
        EngineEvent::ShardStopped {
            shard: 0,
            outcome: Ok(_)
        }
    ));
    assert!(matches!(engine.wait_event(), EngineEvent::AllStopped));
    let report = engine.wait(GUARD).unwrap();
    assert_eq!(report.shards.len(), 1);
}

/// A port another socket holds is refused, naming it, unless joining is asked for.
#[test]
fn a_held_port_is_refused_unless_joining_is_asked_for() {
    if !available_or_explain() {
        return;
    }
    let first = Engine::start(&common::config(1), |_| ringwire::apps::Echo).unwrap();
    let mut config = common::config(1);
    config.bind = first.local_addr();
    let err = Engine::start(&config, |_| ringwire::apps::Echo)
        .err()
        .expect("refused");
    assert!(
        matches!(err, EngineError::PortInUse { addr } if addr == first.local_addr()),
        "{err}"
    );
    config.join_existing = true;
    let second = Engine::start(&config, |_| ringwire::apps::Echo).unwrap();
    common::shutdown(second);
    common::shutdown(first);
}

/// A drain with nothing to say goodbye with ends at once, gracefully, on every shard.
#[test]
fn a_drain_ends_gracefully_when_handlers_have_nothing_queued() {
    if !available_or_explain() {
        return;
    }
    let engine = Engine::start(&common::config(2), |_| ringwire::apps::Echo).unwrap();
    let report = engine.drain(GUARD).unwrap();
    assert!(report.drained_gracefully(), "{:?}", report.shards);
    assert!(report.shards.iter().all(|s| s.drained));
}
