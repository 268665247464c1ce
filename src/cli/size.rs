//! Parsing human byte sizes such as `10G` or `512MiB` (binary multiples).

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
}
