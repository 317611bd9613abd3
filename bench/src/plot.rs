//! `ringwire-bench plot DIR --out FILE.svg`: p50 and p99 latency (log axis)
//! against offered load for every server of a `scripts/bench.sh` run.
//!
//! What is drawn is decided by [`series`], apart from the drawing so tests
//! can check it:
//! - latency points come only from open-loop cells that are valid
//!   ([`crate::validity`]), at their offered rate; a line never joins
//!   across a cell that is missing or invalid, and closed-loop phases are
//!   not points (their load is whatever the server sustains, not offered);
//! - saturation (the `sat` phase's achieved rate) is a separate dotted
//!   vertical line, not a point of the curve;
//! - the client's p99 lag of every open-loop cell that recorded it, valid
//!   or not, is a cross, with the validity limit as a red horizontal line.

use crate::compare::{self, Error, OPEN_PHASES, Runs};
use crate::validity;
use clap::Args;
use plotters::prelude::*;
use std::path::PathBuf;

/// Arguments of `ringwire-bench plot`.
#[derive(Debug, Clone, Args)]
pub struct PlotArgs {
    /// A `scripts/bench.sh --out` directory.
    pub dir: PathBuf,
    /// The SVG file to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// One valid open-loop cell: offered rate (requests/s), p50 and p99 (us).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Offered rate, requests/s.
    pub offered: f64,
    /// Median latency, us.
    pub p50: f64,
    /// 99th percentile latency, us.
    pub p99: f64,
}

/// What the plot shows of one server.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Server name.
    pub name: String,
    /// Runs of consecutive valid open-loop cells, by offered rate; a new
    /// segment starts after a missing or invalid cell.
    pub segments: Vec<Vec<Point>>,
    /// Saturation throughput (closed loop, window 256), responses/s.
    pub saturation: Option<f64>,
    /// (offered rate, client p99 lag in us) of every open-loop cell that
    /// recorded its lag (with rounds: the worst round).
    pub lag: Vec<(f64, f64)>,
}

/// The plot's data, one [`Series`] per server in run order.
#[must_use]
pub fn series(runs: &Runs) -> Vec<Series> {
    runs.0
        .iter()
        .filter_map(|name| {
            let r = runs.1.get(name).filter(|r| r.has_echo_phases())?;
            let mut segments: Vec<Vec<Point>> = Vec::new();
            let mut current: Vec<Point> = Vec::new();
            let mut lag = Vec::new();
            for (phase, _) in OPEN_PHASES {
                let cell = r.cell(phase);
                let offered = cell.and_then(|c| c.report.rate);
                if let (Some(offered), Some(l)) = (offered, cell.and_then(|c| c.worst_lag())) {
                    lag.push((offered, l.p99));
                }
                match (r.valid(phase), offered) {
                    (Some(v), Some(offered)) => current.push(Point {
                        offered,
                        p50: v.latency_us.p50,
                        p99: v.latency_us.p99,
                    }),
                    _ => {
                        if !current.is_empty() {
                            segments.push(std::mem::take(&mut current));
                        }
                    }
                }
            }
            if !current.is_empty() {
                segments.push(current);
            }
            Some(Series {
                name: name.clone(),
                segments,
                saturation: r.saturation_rps(),
                lag,
            })
        })
        .collect()
}

/// Latency axis range (us) holding every point, lag and the limit, with
/// headroom on top (the log axis grows by 60%) where the legend goes, so it
/// hides no data.
fn y_range(all: &[Series]) -> (f64, f64) {
    let values = all.iter().flat_map(|s| {
        s.segments
            .iter()
            .flatten()
            .flat_map(|p| [p.p50, p.p99])
            .chain(s.lag.iter().map(|l| l.1))
    });
    let values: Vec<f64> = values
        .chain([validity::MAX_CLIENT_LAG_P99_US])
        .filter(|v| *v > 0.0)
        .collect();
    let lo = values
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .max(0.1)
        / 1.5;
    let hi = (values.iter().copied().fold(0.0, f64::max) * 1.5).max(lo * 10.0);
    (lo, hi * (hi / lo).powf(0.6))
}

/// The plot as an SVG document.
pub fn svg(runs: &Runs) -> Result<String, Error> {
    let all = series(runs);
    let x_max = all
        .iter()
        .flat_map(|s| {
            s.segments
                .iter()
                .flatten()
                .map(|p| p.offered)
                .chain(s.saturation)
                .chain(s.lag.iter().map(|l| l.0))
        })
        .fold(1.0, f64::max)
        * 1.05;
    let (y_min, y_max) = y_range(&all);
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (900, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "ringwire-bench: latency against offered load (valid open-loop cells)",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("offered load (requests/s); dotted verticals: saturation")
            .y_desc("latency (us, log scale)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(|e| e.to_string())?;
        let limit = validity::MAX_CLIENT_LAG_P99_US;
        chart
            .draw_series(LineSeries::new(
                [(0.0, limit), (x_max, limit)],
                LIMIT.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?
            .label(format!(
                "client lag p99 limit ({}): crosses above it are invalid cells",
                validity::duration_us(limit)
            ))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], LIMIT));
        style_key(&mut chart)?;
        for (i, s) in all.iter().enumerate() {
            let color = SERVER_COLORS[i % SERVER_COLORS.len()].to_rgba();
            draw_series(&mut chart, s, color, (y_min, y_max))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(text)
}

/// The validity limit's colour; no server uses it.
const LIMIT: RGBColor = RGBColor(214, 39, 40);

/// Server colours (Tableau 10 without its red), in run order.
const SERVER_COLORS: [RGBColor; 9] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<
        plotters::coord::types::RangedCoordf64,
        plotters::coord::combinators::LogCoord<f64>,
    >,
>;

/// Legend entries, in black, for what each line style means (the servers
/// then get one entry each, in their colour).
fn style_key<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>) -> Result<(), Error> {
    let none = std::iter::empty::<Circle<(f64, f64), i32>>;
    chart
        .draw_series(none())
        .map_err(|e| e.to_string())?
        .label("p50 (solid)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
    chart
        .draw_series(none())
        .map_err(|e| e.to_string())?
        .label("p99 (dashed)")
        .legend(|(x, y)| {
            EmptyElement::at((x, y))
                + PathElement::new(vec![(0, 0), (7, 0)], BLACK)
                + PathElement::new(vec![(12, 0), (19, 0)], BLACK)
        });
    chart
        .draw_series(none())
        .map_err(|e| e.to_string())?
        .label("saturation, closed loop (dotted vertical)")
        .legend(|(x, y)| {
            EmptyElement::at((x, y))
                + PathElement::new(vec![(0, 0), (3, 0)], BLACK)
                + PathElement::new(vec![(8, 0), (11, 0)], BLACK)
                + PathElement::new(vec![(16, 0), (19, 0)], BLACK)
        });
    chart
        .draw_series(none())
        .map_err(|e| e.to_string())?
        .label("client lag p99 of an open-loop cell (cross)")
        .legend(|(x, y)| Cross::new((x + 10, y), 4, BLACK));
    Ok(())
}

fn draw_series<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b>,
    s: &Series,
    color: RGBAColor,
    (y_min, y_max): (f64, f64),
) -> Result<(), Error> {
    let label = match s.saturation {
        Some(sat) => format!("{} (saturation {sat:.0}/s)", s.name),
        None => s.name.clone(),
    };
    chart
        .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
        .map_err(|e| e.to_string())?
        .label(label)
        .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 20, y + 4)], color.filled()));
    for seg in &s.segments {
        let p50: Vec<(f64, f64)> = seg.iter().map(|p| (p.offered, p.p50.max(y_min))).collect();
        let p99: Vec<(f64, f64)> = seg.iter().map(|p| (p.offered, p.p99.max(y_min))).collect();
        chart
            .draw_series(LineSeries::new(p50.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(DashedLineSeries::new(
                p99.clone(),
                6,
                4,
                color.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                p50.into_iter()
                    .chain(p99)
                    .map(|p| Circle::new(p, 3, color.filled())),
            )
            .map_err(|e| e.to_string())?;
    }
    if let Some(sat) = s.saturation {
        chart
            .draw_series(DashedLineSeries::new(
                [(sat, y_min), (sat, y_max)],
                2,
                4,
                color.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?;
    }
    chart
        .draw_series(
            s.lag
                .iter()
                .map(|&(x, lag)| Cross::new((x, lag.max(y_min)), 4, color.stroke_width(1))),
        )
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Writes the SVG.
pub fn run(args: PlotArgs) -> crate::CmdResult {
    let runs = compare::read_rounds(&compare::round_dirs(&args.dir))?;
    let text = svg(&runs)?;
    std::fs::write(&args.out, text).map_err(|e| format!("writing {}: {e}", args.out.display()))?;
    println!("wrote {}", args.out.display());
    Ok(())
}
