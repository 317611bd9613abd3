//! `ringwire-bench scale-report DIR [--hot DIR2] [--fanout DIR3] --markdown FILE`: the
//! session-scale page (`docs/BENCHMARKS-scale.md`) from `scripts/scale.sh`'s
//! output directories (its sessions phase; its hot phase, the same with traffic on a fixed
//! subset of the sessions; and its fan-out phase, where N is the number of subscribers and a
//! request is one delivered message).
//!
//! DIR holds, per session count N, `load.N.json` (the load generator's
//! report: session mode, open loop) and `server.N.json` (what the script
//! sampled from `/proc`: RSS when empty and with N idle sessions, CPU ticks
//! over the measured window), plus `machine.txt`, `loadavg.start` and
//! `loadavg.end`. Rows follow [`crate::validity`]: a row whose client was
//! late keeps its CPU and memory columns (they count work and bytes, which
//! the client's lateness does not change) but not its latency.

use crate::compare::{Cell, Error};
use crate::load::report::LoadReport;
use crate::report::{Caption, RunHeader, lateness_sentence};
use crate::scale_reference::{self, References};
use crate::sys::cpu_time::clock_ticks_per_s;
use crate::sys::loadavg::{self, LoadAvg};
use crate::sys::steal;
use crate::validity::{self, Machine, Verdict};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Arguments of `ringwire-bench scale-report`.
#[derive(Debug, Clone, Args)]
pub struct ScaleArgs {
    /// The sessions phase's directory (`scripts/scale.sh --out DIR`: DIR/sessions).
    pub dir: PathBuf,
    /// The hot phase's directory (DIR/hot).
    #[arg(long)]
    pub hot: Option<PathBuf>,
    /// The fan-out phase's directory (DIR/fanout).
    #[arg(long)]
    pub fanout: Option<PathBuf>,
    /// N sessions over one client socket (DIR/one-socket): the 1-session row's client
    /// structure with N sessions' state.
    #[arg(long)]
    pub one_socket: Option<PathBuf>,
    /// The 1-session row run again after the larger rows (DIR/again).
    #[arg(long)]
    pub again: Option<PathBuf>,
    /// The fan-out floor's runs beside it (DIR/fanout-floor: `server --kind mmsg-fanout`,
    /// `load --mode raw-fanout`), set against the fan-out rows of the same N.
    #[arg(long, requires = "fanout")]
    pub fanout_floor: Option<PathBuf>,
    /// Write the page here (`-`: stdout).
    #[arg(long)]
    pub markdown: PathBuf,
    /// Also write the rows as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// A paragraph to put first.
    #[arg(long)]
    pub note: Option<String>,
}

/// What `scripts/scale.sh` sampled from the server for one N.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerSample {
    /// Sessions.
    pub n: usize,
    /// `VmRSS` before any session, KiB.
    pub rss_empty_kib: Option<u64>,
    /// `VmRSS` with every session established and idle, KiB.
    pub rss_idle_kib: Option<u64>,
    /// utime + stime ticks from `load: measuring` to `load: done`.
    pub cpu_ticks: i64,
    /// Whether both CPU samples were taken at those markers.
    pub measured: bool,
    /// utime + stime ticks from the load's start to `load: sessions ready` (absent in older
    /// samples).
    #[serde(default)]
    pub handshake_cpu_ticks: Option<i64>,
    /// On-CPU ns of every server thread (`/proc/PID/task/*/schedstat`) over the same window as
    /// `cpu_ticks`; used instead of the ticks when present (absent in older samples).
    #[serde(default)]
    pub cpu_ns: Option<i64>,
    /// The server's final counters, summed over its shards (absent in older samples).
    #[serde(default)]
    pub counters: Option<std::collections::BTreeMap<String, u64>>,
}

/// One row of the page (and of `--json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScaleRow {
    /// Sessions.
    pub sessions: usize,
    /// Sessions that carried the traffic (`load --active`; `None`: all of them).
    pub active: Option<usize>,
    /// The load generator's sockets (`load --peers`).
    pub client_sockets: usize,
    /// Sessions established by the load generator.
    pub sessions_established: Option<usize>,
    /// Handshake phase, ms.
    pub handshake_ms: Option<f64>,
    /// Server CPU over the handshake phase per session established, ms (retransmitted
    /// Initiations' work included).
    pub server_cpu_ms_per_handshake: Option<f64>,
    /// Offered rate, requests/s.
    pub rate: Option<f64>,
    /// Requests sent in the measured window.
    pub sent: u64,
    /// Of those, lost.
    pub lost: u64,
    /// Server CPU over the measured window, s.
    pub server_cpu_s: f64,
    /// Server CPU per request received, us.
    pub server_cpu_us_per_request: Option<f64>,
    /// RSS with N idle sessions, KiB.
    pub server_rss_idle_kib: Option<u64>,
    /// (RSS_N - RSS_1) / (established - 1), bytes.
    pub bytes_per_session: Option<f64>,
    /// (RSS_N - RSS_prev) / (N - N_prev) against the previous row, bytes.
    pub marginal_bytes_per_session: Option<f64>,
    /// Latency p50, us (as measured; see `verdict`).
    pub p50_us: f64,
    /// Latency p99, us.
    pub p99_us: f64,
    /// The client's p99 lag behind its schedule, us.
    pub client_lag_p99_us: Option<f64>,
    /// Load average before the row's run.
    pub loadavg_before: Option<LoadAvg>,
    /// Load average after it.
    pub loadavg_after: Option<LoadAvg>,
    /// Hypervisor steal during the row's run, % of the machine's CPU time.
    pub steal_pct: Option<f64>,
    /// `valid`, or why the latency is not reported.
    pub verdict: String,
}

/// Everything one scale.sh run left behind.
pub struct ScaleRun {
    /// `machine.txt` as written.
    pub machine: String,
    /// Commit and kernel.
    pub header: RunHeader,
    /// Load average before the first N and at the end.
    pub loadavg: (Option<LoadAvg>, Option<LoadAvg>),
    /// Hypervisor steal from the first N to the end (`cpustat.start`, `cpustat.end`), % of
    /// the machine's CPU time.
    pub steal_pct: Option<f64>,
    /// (load report, server sample) per N, by N.
    pub runs: Vec<(LoadReport, ServerSample)>,
}

/// Reads a scale.sh output directory (every `load.N.json` and its
/// `server.N.json`; a file that does not parse is an error).
pub fn read(dir: &Path) -> Result<ScaleRun, Error> {
    let mut sizes: Vec<usize> = std::fs::read_dir(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name();
            name.to_str()?
                .strip_prefix("load.")?
                .strip_suffix(".json")?
                .parse()
                .ok()
        })
        .collect();
    sizes.sort_unstable();
    let mut runs = Vec::with_capacity(sizes.len());
    for n in sizes {
        let parse =
            |file: String| -> Result<String, Error> { Ok(crate::engine::read(&dir.join(file))?) };
        let load: LoadReport = serde_json::from_str(&parse(format!("load.{n}.json"))?)
            .map_err(|e| format!("load.{n}.json does not parse: {e}"))?;
        let server: ServerSample = serde_json::from_str(&parse(format!("server.{n}.json"))?)
            .map_err(|e| format!("server.{n}.json does not parse: {e}"))?;
        runs.push((load, server));
    }
    let machine = std::fs::read_to_string(dir.join("machine.txt")).unwrap_or_default();
    Ok(ScaleRun {
        header: RunHeader::parse(&machine),
        machine,
        loadavg: (
            loadavg::read(&dir.join("loadavg.start"))
                .or_else(|| runs.first().and_then(|r| r.0.loadavg_before)),
            loadavg::read(&dir.join("loadavg.end"))
                .or_else(|| runs.last().and_then(|r| r.0.loadavg_after)),
        ),
        steal_pct: steal::percent(
            steal::read(&dir.join("cpustat.start")),
            steal::read(&dir.join("cpustat.end")),
        ),
        runs,
    })
}

/// The rows, with CPU ticks at `ticks_per_s`.
#[must_use]
pub fn rows(run: &ScaleRun, ticks_per_s: f64) -> Vec<ScaleRow> {
    let rss = |s: &ServerSample| s.rss_idle_kib.map(|k| k as f64 * 1024.0);
    let base = run
        .runs
        .iter()
        .find(|(_, s)| s.n == 1)
        .and_then(|(_, s)| rss(s));
    let mut prev: Option<(usize, f64)> = None;
    run.runs
        .iter()
        .map(|(load, server)| {
            let n = server.n;
            // Memory is divided by the sessions that exist: those established (a session
            // whose handshake failed holds nothing once the server expires it).
            let live = load.sessions_established.unwrap_or(n);
            let cpu_s = server
                .cpu_ns
                .map_or(server.cpu_ticks as f64 / ticks_per_s, |ns| ns as f64 / 1e9);
            let rss_n = rss(server);
            let per = |from: Option<(usize, f64)>| match (from, rss_n) {
                (Some((n0, r0)), Some(r)) if live > n0 => Some((r - r0) / (live - n0) as f64),
                _ => None,
            };
            let row = ScaleRow {
                sessions: n,
                active: load.active,
                client_sockets: load.peers,
                sessions_established: load.sessions_established,
                handshake_ms: load.handshake_ms,
                server_cpu_ms_per_handshake: match (
                    server.handshake_cpu_ticks,
                    load.sessions_established,
                ) {
                    (Some(t), Some(e)) if e > 0 => Some(t as f64 / ticks_per_s * 1e3 / e as f64),
                    _ => None,
                },
                rate: load.rate,
                sent: load.sent,
                lost: load.lost,
                server_cpu_s: cpu_s,
                server_cpu_us_per_request: (load.received > 0)
                    .then(|| cpu_s * 1e6 / load.received as f64),
                server_rss_idle_kib: server.rss_idle_kib,
                bytes_per_session: per(base.map(|b| (1, b))),
                marginal_bytes_per_session: per(prev),
                p50_us: load.latency_us.p50,
                p99_us: load.latency_us.p99,
                client_lag_p99_us: load.client_lag_us.map(|l| l.p99),
                loadavg_before: load.loadavg_before,
                loadavg_after: load.loadavg_after,
                steal_pct: load.steal_pct,
                verdict: validity::verdict(load).to_string(),
            };
            if let Some(r) = rss_n {
                prev = Some((live, r));
            }
            row
        })
        .collect()
}

/// The caption of one of `run`'s tables (commit, kernel, load average, the client's lateness).
pub(crate) fn caption(run: &ScaleRun, cells: &[Cell]) -> Caption {
    Caption {
        header: run.header.clone(),
        start: run.loadavg.0,
        end: run.loadavg.1,
        lateness: lateness_sentence(cells.iter()),
        steal_pct: run.steal_pct,
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.digits$}"))
}

pub(crate) fn cells(run: &ScaleRun) -> Vec<Cell> {
    run.runs
        .iter()
        .map(|(l, _)| Cell {
            report: l.clone(),
            rounds: vec![l.clone()],
            verdict: validity::verdict(l),
        })
        .collect()
}

fn one(l: Option<LoadAvg>) -> String {
    l.map_or("-".to_string(), |l| format!("{:.2}", l.one))
}

/// The load average after a row's run, with the hypervisor's steal during it if recorded
/// (`1.35 (steal 0.4%)`).
pub(crate) fn after(row: &ScaleRow) -> String {
    match row.steal_pct {
        Some(s) => format!("{} (steal {s:.1}%)", one(row.loadavg_after)),
        None => one(row.loadavg_after),
    }
}

/// p50 and p99 as reported, or `invalid` when the client was late, and the verdict.
pub(crate) fn latency(row: &ScaleRow, cell: &Cell) -> (String, String, String) {
    match cell.verdict {
        Verdict::Late { .. } | Verdict::Stolen { .. } => (
            "invalid".to_string(),
            "invalid".to_string(),
            format!("**{}**", row.verdict),
        ),
        _ => (
            format!("{:.1}", row.p50_us),
            format!("{:.1}", row.p99_us),
            row.verdict.clone(),
        ),
    }
}

/// The page without the 1-session reference's runs ([`markdown_with`]).
pub fn markdown(
    run: &ScaleRun,
    hot: Option<&ScaleRun>,
    fanout: Option<&ScaleRun>,
    floor: Option<&ScaleRun>,
    ticks_per_s: f64,
    note: Option<&str>,
) -> Result<String, Error> {
    markdown_with(
        run,
        References::default(),
        hot,
        fanout,
        floor,
        ticks_per_s,
        note,
    )
}

/// The page: the sessions table, the 1-session reference's table when `refs` holds a run, the
/// hot-subset table when `hot` is given, and the fan-out table when `fanout` is given (with
/// the fan-out floor's runs beside it when `floor` is given).
pub fn markdown_with(
    run: &ScaleRun,
    refs: References<'_>,
    hot: Option<&ScaleRun>,
    fanout: Option<&ScaleRun>,
    floor: Option<&ScaleRun>,
    ticks_per_s: f64,
    note: Option<&str>,
) -> Result<String, Error> {
    let rows = rows(run, ticks_per_s);
    let cells = cells(run);
    let again_rows = refs
        .again
        .map(|a| self::rows(a, ticks_per_s))
        .unwrap_or_default();
    let reference = scale_reference::reference_us(&rows, &again_rows);
    let mut all: Vec<Cell> = cells.clone();
    for extra in [refs.one_socket, refs.again, hot, fanout, floor]
        .into_iter()
        .flatten()
    {
        all.extend(self::cells(extra));
    }
    let mut md = String::new();
    writeln!(
        md,
        "# Session scale: server CPU, memory and latency against the number of sessions and subscribers\n"
    )?;
    writeln!(
        md,
        "Generated by `scripts/scale.sh` (`ringwire-bench scale-report`); do not edit by hand. \
         Sessions: a fresh single-shard `ringwire-bench session-server --app echo` (ringwire's \
         session-echo app, keepalive off, idle timeout and rekey interval 1 h on both sides, handshake rate unlimited, session \
         cap above N) per session count N, driven by `ringwire-bench load --mode session` (many \
         sessions per socket: at most 4,000 sockets on 1,000 loopback addresses), open loop at \
         one fixed rate, so the server's CPU per request is comparable across N. Fan-out: a \
         fresh `session-server --app relay` per subscriber count N, one publisher at a fixed \
         rate (`load --mode fanout`), each N followed by the same load against the fan-out \
         floor, a plain-UDP `sendmmsg` relay (`server --kind mmsg-fanout`, `load --mode \
         raw-fanout`).\n"
    )?;
    if let Some(note) = note {
        writeln!(md, "> **{note}**\n")?;
    }
    writeln!(md, "## Can these figures be trusted?\n")?;
    let machine = validity::machine(run.loadavg.0);
    writeln!(md, "- **Machine: {machine}.**")?;
    if !matches!(machine, Machine::Quiet(_)) {
        writeln!(
            md,
            "  Other processes competed for the cores; re-run on a quiet machine before quoting."
        )?;
    }
    crate::report::steal_bullet(&mut md, run.steal_pct, 0, true)?;
    let valid = all.iter().filter(|c| c.verdict.is_valid()).count();
    writeln!(
        md,
        "- **Valid rows: {valid} of {}.** A row whose client sent more than {} \
         behind its schedule at p99, or during which the hypervisor took more than {}% of the \
         machine's CPU time, keeps its CPU and memory columns but not its latency (a stolen \
         row's CPU is suspect too: the host's other work also empties the caches).\n",
        all.len(),
        validity::duration_us(validity::MAX_CLIENT_LAG_P99_US),
        validity::MAX_STEAL_PCT
    )?;
    writeln!(md, "## Command and machine\n\n```")?;
    write!(md, "{}", run.machine)?;
    writeln!(md, "```\n")?;
    writeln!(md, "## Results\n")?;
    writeln!(md, "{}\n", caption(run, &cells))?;
    writeln!(
        md,
        "| sessions | sockets | established | handshake s | server CPU ms/handshake | offered /s | sent | lost | server CPU us/req | vs 1 session | RSS idle MiB | bytes/session | bytes/session (marginal) | p50 us | p99 us | client lag p99 us | load average before → after | verdict |"
    )?;
    writeln!(
        md,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
    )?;
    for ((row, cell), (load, _)) in rows.iter().zip(&cells).zip(&run.runs) {
        let (p50, p99, verdict) = latency(row, cell);
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {p50} | {p99} | {} | {} → {} | {verdict} |",
            row.sessions,
            load.peers,
            row.sessions_established
                .map_or("-".to_string(), |v| v.to_string()),
            opt(row.handshake_ms.map(|ms| ms / 1e3), 1),
            opt(row.server_cpu_ms_per_handshake, 2),
            opt(row.rate, 0),
            row.sent,
            row.lost,
            opt(row.server_cpu_us_per_request, 2),
            scale_reference::ratio(row.server_cpu_us_per_request, reference),
            opt(row.server_rss_idle_kib.map(|k| k as f64 / 1024.0), 1),
            opt(row.bytes_per_session, 0),
            opt(row.marginal_bytes_per_session, 0),
            opt(row.client_lag_p99_us, 1),
            one(row.loadavg_before),
            after(row),
        )?;
    }
    writeln!(md)?;
    scale_reference::table(&mut md, run, &rows, refs, ticks_per_s)?;
    if let Some(h) = hot {
        hot_table(&mut md, h, reference, ticks_per_s)?;
    }
    if let Some(f) = fanout {
        let frows = self::rows(f, ticks_per_s);
        let fcells = self::cells(f);
        writeln!(md, "### Fan-out\n")?;
        writeln!(md, "{}\n", caption(f, &fcells))?;
        writeln!(
            md,
            "| subscribers | publishes /s | payload B | deliveries expected | lost | server CPU us/delivery | p50 us | p99 us | client lag p99 us | load average before → after | verdict |"
        )?;
        writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")?;
        for ((row, cell), (load, _)) in frows.iter().zip(&fcells).zip(&f.runs) {
            let (p50, p99, verdict) = latency(row, cell);
            writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {p50} | {p99} | {} | {} → {} | {verdict} |",
                row.sessions,
                opt(row.rate, 0),
                load.payload_bytes,
                row.sent,
                row.lost,
                opt(row.server_cpu_us_per_request, 2),
                opt(row.client_lag_p99_us, 1),
                one(row.loadavg_before),
                after(row),
            )?;
        }
        writeln!(md)?;
        fanout_split(&mut md, f)?;
        if let Some(fl) = floor {
            floor_table(&mut md, f, fl, ticks_per_s)?;
        }
    }
    writeln!(md, "## How to read this\n")?;
    for line in [
        "- *server CPU us/req*: the on-CPU time of the server's threads \
         (`/proc/PID/task/*/schedstat`, ns; in runs before it was sampled, utime + stime in \
         clock ticks) from `load: measuring` to `load: done`, divided by the \
         requests received in the measured window (it includes the short drain after the window). \
         Part of the CPU is per wake-up, not per request: compare rows taken at one rate only.",
        "- *vs 1 session*: server CPU per request over the 1-session reference: the mean of the \
         1-session row and its repetition at the end of the sessions phase when it ran (else the \
         1-session row alone). *The 1-session reference* table: the 1-session row's client has \
         one socket, so every reply goes to one address (some leave together in one GSO send: \
         *sends coalesced*, the server's count over its life) and on loopback the server's \
         send always delivers to one hot client socket; the larger rows' clients have up to \
         4,000. *N over one socket* (`load --peers 1`) keeps the 1-session row's client and \
         adds N sessions' state, so 1 session → N over one socket is the server's session \
         state and N over one socket → N over many is the load generator's sockets. The \
         1-session row runs first and again last; their difference is the drift of the \
         machine over the phase, which no row's growth can be read more finely than.",
        "- *Hot subset*: every one of the N sessions is open, but the load goes to the first \
         few only, round robin (`load --active`); the rest stay idle. Against the sessions table \
         (every request to the next session in turn, so at large N each one reaches state that \
         has left the caches) it separates what idle sessions cost the busy ones from what \
         touching cold state costs. *vs 1 session*: CPU per request over the sessions table's \
         1-session row.",
        "- *server CPU ms/handshake*: the server's CPU from the load's start to `load: sessions \
         ready`, divided by the sessions established (Initiations retransmitted by a client that \
         waited too long are answered again, with new Diffie-Hellman work, and counted in it).",
        "- *RSS idle*: `VmRSS` once all N sessions are established, before traffic. \
         *bytes/session*: (RSS_N - RSS_1) / (established - 1), inflated at small N by the tables' first \
         growth steps; *marginal*: against the previous row, the cost of one more session at \
         that scale.",
        "- *Fan-out*: N subscribers and one publisher on one shard; each publish is a 1,200-byte \
         relay message the relay copies to every subscriber in the turn it arrives. *deliveries \
         expected* = publishes in the window × N; latency is per delivery, from the publish's \
         intended send time to the moment the client has decrypted that copy, so the copies of \
         one publish queue behind each other: the last of N leaves about N × the per-copy cost \
         after the first. *server CPU us/delivery*: on-CPU time of the server's threads \
         (`/proc/PID/task/*/schedstat`, ns) over the window, per delivery; at small N it is \
         mostly the per-publish cost (a wake-up, the publish's decryption) over N.",
        "- *Fan-out split*: the client's peer sockets have `SO_TIMESTAMPNS` on, so every copy \
         carries the time it entered the kernel's receive path, which on loopback is inside \
         the server's `sendmsg` for that copy. *first / last copy out*: per publish, from the \
         client's `sendmmsg` of the publish to its first / last copy leaving the server (the \
         server's wake-up, the publish's receive path, and the copies' encryption and sends; \
         p50 and p99 over the publishes). *server us/copy*: per publish, (last − first) / \
         (N − 1), the server's time per copy; flat in N means latency = base + N × a constant. \
         *client delay*: per delivery, from the copy's arrival in the client's socket to its \
         decryption by the client's one thread; it is the load generator's queueing, not the \
         server's. *enobufs* (receive buffer ring empty), *send_queue_full* (a send refused for \
         want of a send slot), *session_backlogged* (times every send slot was in flight and \
         the rest stayed queued for the next turn: nothing lost), *relay_fanout_dropped* (a \
         copy refused by a full session queue), *kernel_drops* (the server's socket buffer): \
         the server's final counters for the whole run, handshakes included.",
        "- *Against the fan-out floor*: at each N, right after ringwire's row, a fresh \
         `ringwire-bench server --kind mmsg-fanout` (plain UDP, no sessions, no encryption, one \
         thread pinned like the shard) relays the same publishes from the same load generator \
         (`load --mode raw-fanout`: same schedule, probes, sockets and kernel timestamps) and \
         sends each publish's N copies with `sendmmsg`, every header pointing at the same \
         received bytes: the least a one-core kernel-socket relay does per copy. Each cell is \
         ringwire / floor = ratio. The floor's *server us/copy* is the kernel's own cost of a \
         send on this machine (on loopback it includes the receiver's side), so its *last copy \
         out* grows as N × that cost too: per shard, latency cannot be flat in N, only its \
         ratio to the floor can. The ratio of *server us/copy* is what ringwire adds per copy \
         (sessions, encryption, io_uring); the ratio of *CPU us/delivery* the same in CPU time. \
         The floor's datagrams are the probes as published (no session header or tag: 41 bytes \
         fewer than ringwire's).",
        "- *client lag p99*: how far behind its intended send time the load generator sent, at \
         p99; latency counts from the intended time, so this lag is inside p50/p99. Over 1 ms the \
         row's latency is not reported.",
        "- *load average*: 1-minute figure before → after the row. The machine counts as quiet \
         only if it was below 0.3 before the first row.",
    ] {
        writeln!(md, "{line}")?;
    }
    Ok(md)
}

/// Counters of the server's final report that say whether a pool or queue held the fan-out
/// back: receive buffers (`enobufs`), send slots (`send_queue_full`: a send refused;
/// `session_backlogged`: times the session layer found every slot in flight and kept the rest
/// queued for the next turn, nothing lost), the relay's copies refused (`relay_fanout_dropped`)
/// and the kernel's drops at the server's socket.
const POOL_COUNTERS: [&str; 5] = [
    "enobufs",
    "send_queue_full",
    "session_backlogged",
    "relay_fanout_dropped",
    "kernel_drops",
];

/// The fan-out split: where a delivery's time goes (the server's first and last copy, the
/// server's time per copy, the client's own delay), and the counters of the pools.
fn fanout_split(md: &mut String, f: &ScaleRun) -> Result<(), Error> {
    writeln!(
        md,
        "#### Fan-out: server time per publish, client delay, pools\n"
    )?;
    writeln!(
        md,
        "| subscribers | publishes timed | first copy out p50 us | last copy out p50 us | last copy out p99 us | server us/copy p50 | server us/copy p99 | client delay p50 us | client delay p99 us | {} |",
        POOL_COUNTERS.join(" | ")
    )?;
    writeln!(
        md,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|{}",
        "---:|".repeat(POOL_COUNTERS.len())
    )?;
    for (load, server) in &f.runs {
        let fan = load.fanout.as_ref();
        let cell = |v: Option<f64>, digits: usize| opt(v, digits);
        let counters: Vec<String> = POOL_COUNTERS
            .iter()
            .map(|name| {
                server
                    .counters
                    .as_ref()
                    .and_then(|c| c.get(*name))
                    .map_or("-".to_string(), u64::to_string)
            })
            .collect();
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            server.n,
            fan.map_or("-".to_string(), |x| x.publishes.to_string()),
            cell(fan.map(|x| x.first_copy.p50), 1),
            cell(fan.map(|x| x.last_copy.p50), 1),
            cell(fan.map(|x| x.last_copy.p99), 1),
            cell(fan.and_then(|x| x.per_copy).map(|p| p.p50), 2),
            cell(fan.and_then(|x| x.per_copy).map(|p| p.p99), 2),
            cell(fan.map(|x| x.client_delay.p50), 1),
            cell(fan.map(|x| x.client_delay.p99), 1),
            counters.join(" | "),
        )?;
    }
    writeln!(md)?;
    Ok(())
}

/// `a / b = ratio` (or what is known of it).
fn versus(a: Option<f64>, b: Option<f64>, digits: usize) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{a:.digits$} / {b:.digits$} = {:.2}x", a / b),
        _ => format!("{} / {}", opt(a, digits), opt(b, digits)),
    }
}

/// Ringwire's fan-out rows against the fan-out floor's of the same N (`floor`): server time
/// per copy, first and last copy out, delivery p50/p99 (when both clients were on time), CPU
/// per delivery.
fn floor_table(
    md: &mut String,
    ringwire: &ScaleRun,
    floor: &ScaleRun,
    ticks_per_s: f64,
) -> Result<(), Error> {
    let (rrows, frows) = (rows(ringwire, ticks_per_s), rows(floor, ticks_per_s));
    let (rcells, fcells) = (cells(ringwire), cells(floor));
    writeln!(md, "#### Fan-out against the kernel floor\n")?;
    writeln!(md, "{}\n", caption(floor, &fcells))?;
    writeln!(
        md,
        "| subscribers | lost ringwire / floor | server us/copy p50 | first copy out p50 us | last copy out p50 us | last copy out p99 us | delivery p50 us | delivery p99 us | server CPU us/delivery | client delay p50 us |"
    )?;
    writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for (i, (load, server)) in ringwire.runs.iter().enumerate() {
        let Some(j) = floor.runs.iter().position(|(_, s)| s.n == server.n) else {
            continue;
        };
        let (fl, (r, f)) = (&floor.runs[j].0, (&rrows[i], &frows[j]));
        let (rf, ff) = (load.fanout.as_ref(), fl.fanout.as_ref());
        let on_time = rcells[i].verdict.is_valid() && fcells[j].verdict.is_valid();
        let delivery = |pick: fn(&ScaleRow) -> f64| {
            if on_time {
                versus(Some(pick(r)), Some(pick(f)), 1)
            } else {
                "invalid (client late or host steal)".to_string()
            }
        };
        writeln!(
            md,
            "| {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            server.n,
            r.lost,
            f.lost,
            versus(
                rf.and_then(|x| x.per_copy).map(|p| p.p50),
                ff.and_then(|x| x.per_copy).map(|p| p.p50),
                2
            ),
            versus(
                rf.map(|x| x.first_copy.p50),
                ff.map(|x| x.first_copy.p50),
                0
            ),
            versus(rf.map(|x| x.last_copy.p50), ff.map(|x| x.last_copy.p50), 0),
            versus(rf.map(|x| x.last_copy.p99), ff.map(|x| x.last_copy.p99), 0),
            delivery(|x| x.p50_us),
            delivery(|x| x.p99_us),
            versus(r.server_cpu_us_per_request, f.server_cpu_us_per_request, 2),
            versus(
                rf.map(|x| x.client_delay.p50),
                ff.map(|x| x.client_delay.p50),
                0
            ),
        )?;
    }
    writeln!(md)?;
    Ok(())
}

/// The hot-subset table: CPU and latency with traffic on a fixed subset of N sessions, and the
/// CPU per request against the 1-session reference (`base`, microseconds per request: the
/// sessions table's 1-session row, or the mean of it and its repetition).
fn hot_table(
    md: &mut String,
    hot: &ScaleRun,
    base: Option<f64>,
    ticks_per_s: f64,
) -> Result<(), Error> {
    let hrows = rows(hot, ticks_per_s);
    let hcells = cells(hot);
    writeln!(
        md,
        "### Hot subset: traffic on a few sessions, the rest idle\n"
    )?;
    writeln!(md, "{}\n", caption(hot, &hcells))?;
    writeln!(
        md,
        "| sessions | active | offered /s | sent | lost | server CPU us/req | vs 1 session | p50 us | p99 us | client lag p99 us | load average before → after | verdict |"
    )?;
    writeln!(
        md,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
    )?;
    for (row, cell) in hrows.iter().zip(&hcells) {
        let (p50, p99, verdict) = latency(row, cell);
        let ratio = scale_reference::ratio(row.server_cpu_us_per_request, base);
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {ratio} | {p50} | {p99} | {} | {} → {} | {verdict} |",
            row.sessions,
            row.active.map_or("all".to_string(), |a| a.to_string()),
            opt(row.rate, 0),
            row.sent,
            row.lost,
            opt(row.server_cpu_us_per_request, 2),
            opt(row.client_lag_p99_us, 1),
            one(row.loadavg_before),
            after(row),
        )?;
    }
    writeln!(md)?;
    Ok(())
}

/// Writes the page (and `--json`).
pub fn run(args: ScaleArgs) -> crate::CmdResult {
    let run = read(&args.dir)?;
    if run.runs.is_empty() {
        return Err(format!("no load.N.json in {}", args.dir.display()).into());
    }
    let ticks = clock_ticks_per_s();
    let hot = args.hot.as_deref().map(read).transpose()?;
    let fanout = args.fanout.as_deref().map(read).transpose()?;
    let floor = args.fanout_floor.as_deref().map(read).transpose()?;
    let one_socket = args.one_socket.as_deref().map(read).transpose()?;
    let again = args.again.as_deref().map(read).transpose()?;
    let refs = References {
        one_socket: one_socket.as_ref(),
        again: again.as_ref(),
    };
    let md = markdown_with(
        &run,
        refs,
        hot.as_ref(),
        fanout.as_ref(),
        floor.as_ref(),
        ticks,
        args.note.as_deref(),
    )?;
    if args.markdown.as_os_str() == "-" {
        print!("{md}");
    } else {
        std::fs::write(&args.markdown, &md)
            .map_err(|e| format!("writing {}: {e}", args.markdown.display()))?;
    }
    if let Some(path) = &args.json {
        let mut all = rows(&run, ticks);
        for extra in [&one_socket, &again, &hot, &fanout, &floor]
            .into_iter()
            .flatten()
        {
            all.extend(rows(extra, ticks));
        }
        crate::engine::write_json(path, &all)?;
    }
    Ok(())
}
