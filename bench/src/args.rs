//! clap value parsers shared by the subcommands (errors exit with status 2).

/// Seconds as a non-negative finite number below 1e7 (fractions allowed).
pub fn parse_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|e| format!("not a number of seconds: {e}"))?;
    if (0.0..1e7).contains(&v) {
        Ok(v)
    } else {
        Err("seconds must be between 0 and 1e7".to_string())
    }
}

/// A positive finite rate.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("not a rate: {e}"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err("rate must be a positive number of datagrams/s".to_string())
    }
}
