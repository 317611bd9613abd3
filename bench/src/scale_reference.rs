//! The scale page's reference table: what the growth of the server's CPU per request from the
//! 1-session row is made of (`docs/DECISIONS.md` D79, D84).
//!
//! The aim's rows differ from the 1-session row in two ways at once: the server holds N
//! sessions, and the load generator sends from min(N, 4,000) sockets instead of one, so the
//! 1-session row's replies all go to one address (some leave together in one GSO send, and on
//! loopback the server's send always delivers to one hot client socket). `scripts/scale.sh`
//! therefore also runs N sessions over **one** client socket (`load --peers 1`: the 1-session
//! row's client structure with N sessions' state), and the 1-session row **again** after the
//! larger rows, so the reference's own drift over the phase is on the page. From these the
//! table splits the growth at N into the server's session state (1 session → N over one
//! socket) and the load generator's sockets (N over one socket → N over many).

use crate::compare::Error;
use crate::scale::{ScaleRow, ScaleRun, caption, cells, latency, rows};
use std::fmt::Write as _;

/// The runs that calibrate the sessions table (each may be absent: an older run, or
/// `scripts/scale.sh` with `ONE_SOCKET_SIZES=""`).
#[derive(Clone, Copy, Default)]
pub struct References<'a> {
    /// N sessions over one client socket (scale.sh's `one-socket` directory).
    pub one_socket: Option<&'a ScaleRun>,
    /// The 1-session row run again after the larger rows (scale.sh's `again` directory).
    pub again: Option<&'a ScaleRun>,
}

/// The 1-session reference CPU per request: the mean of the sessions table's 1-session row and
/// its repetition after the larger rows when both exist, else whichever exists.
#[must_use]
pub fn reference_us(all: &[ScaleRow], again: &[ScaleRow]) -> Option<f64> {
    let one = |rows: &[ScaleRow]| {
        rows.iter()
            .find(|r| r.sessions == 1)
            .and_then(|r| r.server_cpu_us_per_request)
    };
    match (one(all), one(again)) {
        (Some(a), Some(b)) => Some((a + b) / 2.0),
        (a, b) => a.or(b),
    }
}

/// `cpu` over the reference, as `1.23x` (`-` when either is missing).
#[must_use]
pub fn ratio(cpu: Option<f64>, reference: Option<f64>) -> String {
    match (cpu, reference) {
        (Some(c), Some(r)) if r > 0.0 => format!("{:.2}x", c / r),
        _ => "-".to_string(),
    }
}

fn pct(v: f64) -> String {
    format!("{:+.0}%", (v - 1.0) * 100.0)
}

/// The reference table and its sentences (nothing when neither reference run exists).
pub fn table(
    md: &mut String,
    run: &ScaleRun,
    all: &[ScaleRow],
    refs: References<'_>,
    ticks_per_s: f64,
) -> Result<(), Error> {
    if refs.one_socket.is_none() && refs.again.is_none() {
        return Ok(());
    }
    let one_rows = refs
        .one_socket
        .map(|r| rows(r, ticks_per_s))
        .unwrap_or_default();
    let again_rows = refs.again.map(|r| rows(r, ticks_per_s)).unwrap_or_default();
    let reference = reference_us(all, &again_rows);
    writeln!(
        md,
        "### The 1-session reference: the client's sockets against the server's session state\n"
    )?;
    let mut all_cells = Vec::new();
    for r in [refs.one_socket, refs.again].into_iter().flatten() {
        all_cells.extend(cells(r));
    }
    let runs: Vec<&ScaleRun> = [refs.one_socket, refs.again]
        .into_iter()
        .flatten()
        .collect();
    writeln!(md, "{}\n", caption(runs[0], &all_cells))?;
    writeln!(
        md,
        "| row | sessions | client sockets | server CPU us/req | vs 1 session | sends coalesced | p50 us | p99 us | client lag p99 us | load average before → after | verdict |"
    )?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")?;
    // (label, row, run and index of its load report, for latency, sockets and counters)
    let mut lines: Vec<(String, &ScaleRow, &ScaleRun, usize)> = Vec::new();
    if let Some(i) = all.iter().position(|r| r.sessions == 1) {
        lines.push(("1 session (first)".into(), &all[i], run, i));
    }
    if let Some(one) = refs.one_socket {
        for (i, row) in one_rows.iter().enumerate() {
            lines.push((format!("{} over one socket", row.sessions), row, one, i));
            if let Some(j) = all.iter().position(|r| r.sessions == row.sessions) {
                let label = format!("{} over {} sockets", row.sessions, run.runs[j].0.peers);
                lines.push((label, &all[j], run, j));
            }
        }
    }
    if let Some(again) = refs.again {
        for (i, row) in again_rows.iter().enumerate() {
            lines.push((
                format!("{} session (again, last)", row.sessions),
                row,
                again,
                i,
            ));
        }
    }
    for (label, row, src, i) in &lines {
        let (load, server) = &src.runs[*i];
        let cell = &cells(src)[*i];
        let (p50, p99, verdict) = latency(row, cell);
        let coalesced = server
            .counters
            .as_ref()
            .and_then(|c| c.get("send_coalesced"))
            .map_or("-".to_string(), u64::to_string);
        writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {coalesced} | {p50} | {p99} | {} | {} → {} | {verdict} |",
            row.sessions,
            load.peers,
            row.server_cpu_us_per_request
                .map_or("-".to_string(), |v| format!("{v:.2}")),
            ratio(row.server_cpu_us_per_request, reference),
            row.client_lag_p99_us
                .map_or("-".to_string(), |v| format!("{v:.1}")),
            row.loadavg_before
                .map_or("-".to_string(), |l| format!("{:.2}", l.one)),
            crate::scale::after(row),
        )?;
    }
    writeln!(md)?;
    let first = all
        .iter()
        .find(|r| r.sessions == 1)
        .and_then(|r| r.server_cpu_us_per_request);
    let last = again_rows
        .iter()
        .find(|r| r.sessions == 1)
        .and_then(|r| r.server_cpu_us_per_request);
    if let (Some(a), Some(b), Some(r)) = (first, last, reference) {
        writeln!(
            md,
            "- **The reference:** the 1-session row ran first and again after the larger rows: \
             {a:.2} then {b:.2} us per request ({} over the phase); *vs 1 session* here and in \
             the sessions table is over their mean, {r:.2} us.",
            pct(b / a)
        )?;
    }
    if let Some(r) = reference {
        for row in &one_rows {
            let (Some(one), Some(many)) = (
                row.server_cpu_us_per_request,
                all.iter()
                    .find(|a| a.sessions == row.sessions)
                    .and_then(|a| a.server_cpu_us_per_request),
            ) else {
                continue;
            };
            writeln!(
                md,
                "- **{} sessions:** {} from 1 session to {} sessions over one socket (the \
                 server's session state; the client's structure unchanged), {} from one socket \
                 to many (the load generator's sockets, and the batching one destination \
                 allows), {} in all.",
                row.sessions,
                pct(one / r),
                row.sessions,
                pct(many / one),
                pct(many / r),
            )?;
        }
    }
    writeln!(md)?;
    Ok(())
}
