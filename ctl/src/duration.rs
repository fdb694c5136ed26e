//! Durations as people type them (`30s`, `10m`, `1h`, `7d`, or plain seconds) and as they read
//! them (`3m`, `1h 30m`).
//!
//! Kept to whole seconds and four units on purpose: invite lifetimes and "last seen" ages need
//! nothing finer, and a tiny grammar gives error messages that say exactly what to type.

/// Seconds in a minute, hour and day, largest first, with their suffixes.
const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];

/// Parses `30s`, `10m`, `1h`, `7d` or plain seconds (`90`) into seconds.
pub fn parse_secs(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "`{text}` is not a duration: write e.g. 30s, 10m, 1h, 7d or a number of seconds"
        ));
    }
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is too long a duration"))?;
    let scale = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use s, m, h or d (e.g. 30s, 10m, 1h, 7d)"
            ))
        }
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too long a duration"))
}

/// Parses like [`parse_secs`] and requires a result between one second and `max_secs`, so a
/// typo such as `0` or `700d` is refused before it reaches the daemon.
pub fn parse_within(text: &str, max_secs: u64) -> Result<u64, String> {
    let secs = parse_secs(text)?;
    if secs == 0 || secs > max_secs {
        return Err(format!(
            "`{}` is out of range: it must be between 1s and {}",
            text.trim(),
            human(max_secs)
        ));
    }
    Ok(secs)
}

/// The largest whole unit only (`now`, `12s`, `3m`, `2h`, `4d`): for ages in narrow table
/// columns, where "about how long" is what matters.
pub fn compact(secs: u64) -> String {
    if secs == 0 {
        return "now".into();
    }
    UNITS
        .iter()
        .find(|(scale, _)| secs >= *scale)
        .map(|(scale, unit)| format!("{}{unit}", secs / scale))
        .unwrap_or_else(|| "now".into())
}

/// The two largest units (`45s`, `1m 30s`, `1h`, `2d 3h`): for uptimes and expiries, where
/// `1h` for 1 h 59 m would mislead.
pub fn human(secs: u64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let mut parts = Vec::new();
    let mut rest = secs;
    for (scale, unit) in UNITS {
        if parts.is_empty() && rest < scale {
            continue;
        }
        if parts.len() == 2 {
            break;
        }
        let n = rest / scale;
        rest %= scale;
        if n > 0 {
            parts.push(format!("{n}{unit}"));
        } else {
            // A zero in the second place ends the reading: `2h`, not `2h 0m`.
            break;
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_plain_seconds() {
        assert_eq!(parse_secs("90").unwrap(), 90);
        assert_eq!(parse_secs("30s").unwrap(), 30);
        assert_eq!(parse_secs("10m").unwrap(), 600);
        assert_eq!(parse_secs("1h").unwrap(), 3_600);
        assert_eq!(parse_secs("7d").unwrap(), 604_800);
        assert_eq!(parse_secs(" 2 h ").unwrap(), 7_200);
    }

    #[test]
    fn refuses_nonsense_with_what_to_type() {
        assert!(parse_secs("1w").unwrap_err().contains("unknown unit `w`"));
        assert!(parse_secs("h").unwrap_err().contains("not a duration"));
        assert!(parse_secs("").unwrap_err().contains("not a duration"));
        assert!(parse_secs("-5").unwrap_err().contains("not a duration"));
        assert!(parse_secs("1h30m").is_err());
        assert!(parse_secs("99999999999999999999")
            .unwrap_err()
            .contains("too long"));
        assert!(parse_secs("999999999999999999d")
            .unwrap_err()
            .contains("too long"));
    }

    #[test]
    fn bounds_are_enforced() {
        let month = 30 * 86_400;
        assert_eq!(parse_within("30d", month).unwrap(), month);
        assert_eq!(parse_within("1", month).unwrap(), 1);
        let zero = parse_within("0", month).unwrap_err();
        assert!(zero.contains("between 1s and 30d"), "{zero}");
        assert!(parse_within("0h", month).is_err());
        assert!(parse_within("31d", month).is_err());
        assert!(parse_within(&(month + 1).to_string(), month).is_err());
    }

    #[test]
    fn compact_shows_the_largest_unit() {
        assert_eq!(compact(0), "now");
        assert_eq!(compact(1), "1s");
        assert_eq!(compact(12), "12s");
        assert_eq!(compact(59), "59s");
        assert_eq!(compact(180), "3m");
        assert_eq!(compact(3_599), "59m");
        assert_eq!(compact(7_200), "2h");
        assert_eq!(compact(4 * 86_400 + 5), "4d");
    }

    #[test]
    fn human_shows_two_units_without_zeros() {
        assert_eq!(human(0), "0s");
        assert_eq!(human(45), "45s");
        assert_eq!(human(90), "1m 30s");
        assert_eq!(human(3_600), "1h");
        assert_eq!(human(5_400), "1h 30m");
        assert_eq!(human(7_205), "2h");
        assert_eq!(human(2 * 86_400 + 3 * 3_600 + 59), "2d 3h");
        assert_eq!(human(30 * 86_400), "30d");
    }
}
