//! Value parsers for flags that clap has no ready-made check for.

/// A count of at least 1 (`--reps`, `--threads`, `--ctx-size`).
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        Ok(_) => Err("must be at least 1".to_string()),
        Err(e) => Err(e.to_string()),
    }
}
