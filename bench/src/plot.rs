//! `ringwire-bench plot DIR --out FILE.svg`: p50 and p99 latency (log axis)
//! against achieved load for every server of a `scripts/bench.sh` run.
//!
//! Points per server: the window-8 phase and the three open-loop phases, at
//! their achieved rate (medians over rounds when DIR has `round-K/`).

use crate::compare::{self, Error, Runs};
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

/// The phases plotted, in load order.
const PLOTTED: [&str; 4] = ["lat", "open25", "open50", "open75"];

/// One phase of one server: (achieved resp/s, p50 us, p99 us).
type Point = (f64, f64, f64);

/// One server's points, by rate.
fn points(runs: &Runs, name: &str) -> Vec<Point> {
    let mut v: Vec<Point> = runs
        .1
        .get(name)
        .map(|r| {
            PLOTTED
                .iter()
                .filter_map(|p| r.loads.get(*p))
                .map(|l| (l.achieved_rps, l.latency_us.p50, l.latency_us.p99))
                .collect()
        })
        .unwrap_or_default();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// The plot as an SVG document.
pub fn svg(runs: &Runs) -> Result<String, Error> {
    let series: Vec<(&String, Vec<Point>)> = runs.0.iter().map(|n| (n, points(runs, n))).collect();
    let all = series.iter().flat_map(|(_, p)| p.iter());
    let x_max = all.clone().map(|p| p.0).fold(1.0, f64::max) * 1.05;
    let y_min = all
        .clone()
        .map(|p| p.1)
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let y_min = if y_min.is_finite() { y_min / 1.5 } else { 1.0 };
    let y_max = all.map(|p| p.2).fold(y_min * 10.0, f64::max) * 1.5;
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (900, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption("ringwire-bench: latency against load", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("achieved load (responses/s)")
            .y_desc("latency (us, log scale)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let p50: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, p.1.max(y_min))).collect();
            let p99: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, p.2.max(y_min))).collect();
            chart
                .draw_series(LineSeries::new(p50.clone(), color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(format!("{name} p50"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart
                .draw_series(DashedLineSeries::new(
                    p99.clone(),
                    6,
                    4,
                    color.stroke_width(1),
                ))
                .map_err(|e| e.to_string())?
                .label(format!("{name} p99"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 8, y)], color.stroke_width(1))
                });
            chart
                .draw_series(
                    p50.into_iter()
                        .chain(p99)
                        .map(|p| Circle::new(p, 3, color.filled())),
                )
                .map_err(|e| e.to_string())?;
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

/// Writes the SVG.
pub fn run(args: PlotArgs) -> crate::CmdResult {
    let runs = compare::read_rounds(&compare::round_dirs(&args.dir))?;
    let text = svg(&runs)?;
    std::fs::write(&args.out, text).map_err(|e| format!("writing {}: {e}", args.out.display()))?;
    println!("wrote {}", args.out.display());
    Ok(())
}
