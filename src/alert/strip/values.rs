//! Kibana's ECS value validators
//! (`.../rule_types/factories/utils/ecs_types_validators/is_valid_*_type.ts`),
//! with the JavaScript they rest on: `Number(string)`, ipaddr.js and
//! `new Date(value)`. A value passes or fails here exactly when it passes or
//! fails in Kibana, so "123" is a valid long and "24 " is not (a space), but
//! "24 " is a valid float.

use std::net::Ipv6Addr;

use serde_json::Value;

use super::js_date;

/// `isValidNumericType`: a JSON number, or a string `Number()` does not
/// turn into `NaN` (so `""`, `" 12 "`, `"0x1f"`, `"1e3"` and `"Infinity"`
/// pass).
pub fn is_valid_numeric(value: &Value) -> bool {
    match value {
        Value::Number(_) => true,
        Value::String(s) => js_number_is_number(s),
        _ => false,
    }
}

/// `isValidLongType`: numeric, and a string must not contain a space
/// (U+0020 only: `"\t12"` passes).
pub fn is_valid_long(value: &Value) -> bool {
    if let Value::String(s) = value {
        if s.contains(' ') {
            return false;
        }
    }
    is_valid_numeric(value)
}

/// `isValidBooleanType`: `true`, `false`, `"true"`, `"false"` or `""`.
pub fn is_valid_boolean(value: &Value) -> bool {
    match value {
        Value::Bool(_) => true,
        Value::String(s) => matches!(s.as_str(), "true" | "false" | ""),
        _ => false,
    }
}

/// `isValidIpType`: a string that ipaddr.js takes for an address
/// (`ipaddr.isValid`) or a CIDR block (`IPv4.parseCIDR` / `IPv6.parseCIDR`).
pub fn is_valid_ip(value: &Value) -> bool {
    let Value::String(s) = value else {
        return false;
    };
    is_ipaddr(s) || is_cidr(s)
}

/// `isValidDateType`: a string or number `new Date()` does not turn into
/// an invalid date.
pub fn is_valid_date(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.as_f64().is_some_and(js_date::time_clip_ok),
        Value::String(s) => js_date::parse(s).is_some(),
        _ => false,
    }
}

/// JavaScript's `StrWhiteSpaceChar`: WhiteSpace (TAB, VT, FF, ZWNBSP and
/// every `Zs` character) and LineTerminator (LF, CR, LS, PS).
pub(super) fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\u{9}'
            | '\u{b}'
            | '\u{c}'
            | '\u{feff}'
            | '\u{a}'
            | '\u{d}'
            | '\u{2028}'
            | '\u{2029}'
            | ' '
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
    )
}

/// Whether `Number(s)` is not `NaN` (ECMAScript StringToNumber): trimmed
/// of JavaScript white space, empty, or a `StrNumericLiteral` (signed
/// decimal or `Infinity`, or unsigned `0b` / `0o` / `0x` integer; no `_`
/// separators).
fn js_number_is_number(s: &str) -> bool {
    let t = s.trim_matches(is_js_space);
    if t.is_empty() {
        return true;
    }
    let b = t.as_bytes();
    if b.len() > 2 && b[0] == b'0' {
        let digits = &t[2..];
        let radix = match b[1] {
            b'b' | b'B' => Some(2),
            b'o' | b'O' => Some(8),
            b'x' | b'X' => Some(16),
            _ => None,
        };
        if let Some(radix) = radix {
            return digits.chars().all(|c| c.is_digit(radix));
        }
    }
    let unsigned = t.strip_prefix(['+', '-']).unwrap_or(t);
    if unsigned == "Infinity" {
        return true;
    }
    is_unsigned_decimal(unsigned)
}

/// `StrUnsignedDecimalLiteral` without `Infinity`: `digits[.digits][exp]`,
/// `.digits[exp]` or `digits.[exp]`.
fn is_unsigned_decimal(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |x: &str| x.bytes().all(|c| c.is_ascii_digit());
    let mantissa_ok = all_digits(int)
        && frac.is_none_or(all_digits)
        && (!int.is_empty() || frac.is_some_and(|f| !f.is_empty()));
    let exponent_ok = exponent.is_none_or(|e| {
        let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
        !digits.is_empty() && all_digits(digits)
    });
    mantissa_ok && exponent_ok
}

/// `ipaddr.isValid`: IPv6 (tried first, only when there is a `:`) or IPv4.
fn is_ipaddr(s: &str) -> bool {
    (s.contains(':') && parse_ipv6(s)) || parse_ipv4(s).is_some()
}

/// `IPv4.parseCIDR` or `IPv6.parseCIDR`: `/^(.+)\/(\d+)$/` with a mask of
/// at most 32 / 128 (`parseInt`, so leading zeros are fine).
fn is_cidr(s: &str) -> bool {
    let Some((addr, mask)) = s.rsplit_once('/') else {
        return false;
    };
    if addr.is_empty() || addr.contains(['\n', '\r', '\u{2028}', '\u{2029}']) {
        return false;
    }
    if mask.is_empty() || !mask.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let mask = mask.trim_start_matches('0');
    let mask: u32 = if mask.is_empty() {
        0
    } else if mask.len() > 3 {
        return false;
    } else {
        mask.parse().unwrap_or(u32::MAX)
    };
    (mask <= 32 && parse_ipv4(addr).is_some()) || (mask <= 128 && parse_ipv6(addr))
}

/// ipaddr.js's IPv4 parser: four, three or two dot-separated parts or one
/// number, each part decimal, octal (`0` then octal digits) or hex (`0x`),
/// the last part filling the remaining bytes; every byte at most 255.
fn parse_ipv4(s: &str) -> Option<[u32; 4]> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 || !parts.iter().all(|p| is_ipv4_part(p)) {
        return None;
    }
    let values: Vec<u64> = parts
        .iter()
        .map(|p| parse_int_auto(p))
        .collect::<Option<_>>()?;
    let (last, leading) = values.split_last()?;
    let rest_bytes = 4 - leading.len() as u32;
    if *last >= 1u64 << (8 * rest_bytes) {
        return None;
    }
    let mut octets = [0u32; 4];
    for (i, v) in leading.iter().enumerate() {
        if *v > 255 {
            return None;
        }
        octets[i] = *v as u32;
    }
    for i in 0..rest_bytes {
        octets[leading.len() + i as usize] = ((last >> (8 * (rest_bytes - 1 - i))) & 0xff) as u32;
    }
    Some(octets)
}

/// `(0?\d+|0x[a-f0-9]+)`, case-insensitively.
fn is_ipv4_part(p: &str) -> bool {
    if let Some(hex) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
        return !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
}

/// ipaddr.js `parseIntAuto`: hex, octal (a leading `0` followed by a
/// digit; only octal digits allowed then), else decimal. Values past `u64`
/// are out of every range anyway.
fn parse_int_auto(p: &str) -> Option<u64> {
    if let Some(hex) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
        return Some(u64::from_str_radix(hex, 16).unwrap_or(u64::MAX));
    }
    if p.len() > 1 && p.starts_with('0') {
        if p.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Some(u64::from_str_radix(p, 8).unwrap_or(u64::MAX));
        }
        return None;
    }
    Some(p.parse::<u64>().unwrap_or(u64::MAX))
}

/// IPv6 with an optional `%zone` (`[0-9a-z]+`, as ipaddr.js's zone index).
/// Groups may have leading zeros past four digits (ipaddr.js reads each
/// with `parseInt(group, 16)` and checks the value); the rest is read by
/// the standard library parser, which takes the forms ipaddr.js takes
/// (`::` once, an embedded IPv4 address at the end).
fn parse_ipv6(s: &str) -> bool {
    let addr = match s.split_once('%') {
        Some((addr, zone)) => {
            if zone.is_empty() || !zone.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return false;
            }
            addr
        }
        None => s,
    };
    let groups: Vec<&str> = addr
        .split(':')
        .map(|g| {
            if g.len() > 4 && !g.contains('.') {
                let trimmed = g.trim_start_matches('0');
                if trimmed.is_empty() {
                    "0"
                } else {
                    trimmed
                }
            } else {
                g
            }
        })
        .collect();
    groups.join(":").parse::<Ipv6Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_as_javascript_reads_them() {
        for ok in [
            "1234",
            "45.3",
            "-667.23",
            "",
            "  12\t",
            "0x1F",
            "0b101",
            "0o17",
            "1e3",
            ".5",
            "5.",
            "+5",
            "-Infinity",
            "Infinity",
            "\u{a0}7\u{feff}",
        ] {
            assert!(is_valid_numeric(&json!(ok)), "{ok:?}");
        }
        for bad in [
            "non-valid",
            "1_000",
            "-0x10",
            "0x",
            "e5",
            ".",
            "1e",
            "infinity",
            "12abc",
            "NaN",
            "\u{85}1",
        ] {
            assert!(!is_valid_numeric(&json!(bad)), "{bad:?}");
        }
        assert!(is_valid_numeric(&json!(1.5)));
        assert!(!is_valid_numeric(&json!(true)));
        assert!(!is_valid_numeric(&Value::Null));
        assert!(!is_valid_numeric(&json!([1])));
    }

    #[test]
    fn long_refuses_a_space_only() {
        assert!(is_valid_long(&json!("123")));
        assert!(is_valid_long(&json!(-5)));
        assert!(!is_valid_long(&json!("24 ")));
        assert!(is_valid_long(&json!("\t24")));
        assert!(!is_valid_long(&json!("abc")));
    }

    #[test]
    fn booleans_as_kibana_lists_them() {
        for ok in [
            json!(true),
            json!(false),
            json!("true"),
            json!("false"),
            json!(""),
        ] {
            assert!(is_valid_boolean(&ok), "{ok}");
        }
        for bad in [
            json!("True"),
            json!("False"),
            json!(1),
            json!("ee"),
            Value::Null,
        ] {
            assert!(!is_valid_boolean(&bad), "{bad}");
        }
    }

    #[test]
    fn ips_as_ipaddr_js_reads_them() {
        for ok in [
            "127.0.0.1",
            "192.168.0.0",
            "10.0.0.0/8",
            "10.0.0.0/08",
            "::1",
            "fe80::1%eth0",
            "::ffff:1.2.3.4",
            "2001:db8::/32",
            "0x7f.0.0.1",
            "0177.0.0.1",
            "127.1",
            "127.0.1",
            "2130706433",
        ] {
            assert!(is_valid_ip(&json!(ok)), "{ok}");
        }
        for bad in [
            "invalid-ip",
            "256.0.0.1",
            "1.2.3.4.5",
            "08.0.0.1",
            "1.2.3.4/33",
            "::1/129",
            "4294967296",
            "127.16777216",
            "",
            "1.2.3.",
            "fe80::1%",
        ] {
            assert!(!is_valid_ip(&json!(bad)), "{bad}");
        }
        assert!(!is_valid_ip(&json!(2130706433)));
    }

    #[test]
    fn dates_as_javascript_reads_them() {
        for ok in [
            json!("2020-12-12"),
            json!("2022-10-12"),
            json!("2024-05-01T10:00:00.000Z"),
            json!(2345562),
            json!(-1),
        ] {
            assert!(is_valid_date(&ok), "{ok}");
        }
        for bad in [
            json!(true),
            json!("non-valid"),
            json!(""),
            json!(8.64e15 + 1.0),
            Value::Null,
        ] {
            assert!(!is_valid_date(&bad), "{bad}");
        }
    }

    /// Node.js's verdicts (scripts/fieldmap/js_vectors.js): every string of
    /// the corpus must get the same answer here.
    #[test]
    fn same_verdicts_as_nodejs() {
        let vectors: Value = serde_json::from_str(include_str!("js_vectors.json")).unwrap();
        let mut mismatches = Vec::new();
        for (kind, check) in [
            ("date", is_valid_date as fn(&Value) -> bool),
            ("number", is_valid_numeric),
            ("ip", is_valid_ip),
        ] {
            let cases = vectors[kind].as_array().unwrap();
            assert!(cases.len() > 1000, "{kind}: {} cases", cases.len());
            for case in cases {
                let (input, expected) = (&case[0], case[1].as_bool().unwrap());
                if check(input) != expected {
                    mismatches.push(format!("{kind} {input}: node says {expected}"));
                }
            }
        }
        assert!(
            mismatches.is_empty(),
            "{} mismatches:\n{}",
            mismatches.len(),
            mismatches.join("\n")
        );
    }
}
