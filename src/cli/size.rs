//! Parsing human quantities: byte sizes such as `10G` or `512MiB` (binary multiples), and
//! short durations such as `1s` or `500ms`.

/// Parses `N`, `NK`, `NM`, `NG`, `NT` (optionally followed by `B` or `iB`, any case), in
/// powers of 1024. Fractions are not accepted; zero is refused (a cache that holds nothing).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(digits_end);
    let bad = || {
        format!(
            "invalid size {text:?}: expected a whole number with an optional K, M, G or T suffix, like 10G"
        )
    };
    if digits.is_empty() {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let suffix = suffix.trim().to_ascii_uppercase();
    let unit = suffix
        .strip_suffix("IB")
        .or_else(|| suffix.strip_suffix('B'))
        .unwrap_or(&suffix);
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(bad()),
    };
    let bytes = n
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size {text:?} is too large"))?;
    if bytes == 0 {
        return Err(format!("size {text:?} must be greater than zero"));
    }
    Ok(bytes)
}

/// Parses a duration of at most `max`: `N` or `Ns` (seconds, fractions allowed) or `Nms`.
pub fn parse_duration(text: &str, max: std::time::Duration) -> Result<std::time::Duration, String> {
    let t = text.trim().to_ascii_lowercase();
    let (number, scale) = match t.strip_suffix("ms") {
        Some(n) => (n, 0.001),
        None => (t.strip_suffix('s').unwrap_or(&t), 1.0),
    };
    let bad = || format!("invalid duration {text:?}: expected seconds like 1, 0.5 or 2s, or 500ms");
    let n: f64 = number.trim().parse().map_err(|_| bad())?;
    if !n.is_finite() || n < 0.0 {
        return Err(bad());
    }
    let d = std::time::Duration::from_secs_f64(n * scale);
    if d > max {
        return Err(format!(
            "duration {text:?} is longer than {} s",
            max.as_secs()
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("3 GB"), Ok(3 << 30));
    }

    #[test]
    fn refuses_nonsense_with_a_clear_message() {
        for bad in ["", "G", "1.5G", "10X", "-1G", "10GG"] {
            let e = parse_size(bad).expect_err(bad);
            assert!(e.contains("invalid size"), "{bad}: {e}");
        }
        assert!(parse_size("0").is_err_and(|e| e.contains("greater than zero")));
        assert!(parse_size("99999999999T").is_err_and(|e| e.contains("too large")));
    }

    #[test]
    fn parses_durations() {
        use std::time::Duration;
        let max = Duration::from_secs(60);
        assert_eq!(parse_duration("1", max), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("2s", max), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("0.5", max), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250ms", max), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0", max), Ok(Duration::ZERO));
        for bad in ["", "s", "-1", "1h", "NaN", "inf", "61", "1e9"] {
            assert!(parse_duration(bad, max).is_err(), "{bad}");
        }
    }
}
