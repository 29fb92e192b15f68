//! The 16 EQL functions Elasticsearch supports, with its null handling.
//!
//! Each function takes already-evaluated arguments. A null input gives a
//! null result (except `concat`, null if any argument is null, and
//! `cidrMatch`, null only for a null address). Where Elasticsearch would fail
//! the whole search at run time (overflow, division by zero, an unparsable
//! `number`), the result here is null: one odd event must not abort a rule.
//! String positions count UTF-16 code units in Java; here they count
//! characters, which agrees for all text outside the astral planes.

use std::net::IpAddr;
use std::sync::Arc;

use super::value::Value;

/// A resolved function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Func {
    Add,
    Between,
    CidrMatch,
    Concat,
    Divide,
    EndsWith,
    IndexOf,
    Length,
    Modulo,
    Multiply,
    Number,
    StartsWith,
    String,
    StringContains,
    Substring,
    Subtract,
}

/// What a function returns, for compile-time checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReturnKind {
    Bool,
    Number,
    Str,
}

impl Func {
    /// Looks a function up by name, ignoring case as Elasticsearch does.
    pub fn resolve(name: &str) -> Option<Func> {
        Some(match name.to_ascii_lowercase().as_str() {
            "add" => Func::Add,
            "between" => Func::Between,
            "cidrmatch" => Func::CidrMatch,
            "concat" => Func::Concat,
            "divide" => Func::Divide,
            "endswith" => Func::EndsWith,
            "indexof" => Func::IndexOf,
            "length" => Func::Length,
            "modulo" => Func::Modulo,
            "multiply" => Func::Multiply,
            "number" => Func::Number,
            "startswith" => Func::StartsWith,
            "string" => Func::String,
            "stringcontains" => Func::StringContains,
            "substring" => Func::Substring,
            "subtract" => Func::Subtract,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Func::Add => "add",
            Func::Between => "between",
            Func::CidrMatch => "cidrMatch",
            Func::Concat => "concat",
            Func::Divide => "divide",
            Func::EndsWith => "endsWith",
            Func::IndexOf => "indexOf",
            Func::Length => "length",
            Func::Modulo => "modulo",
            Func::Multiply => "multiply",
            Func::Number => "number",
            Func::StartsWith => "startsWith",
            Func::String => "string",
            Func::StringContains => "stringContains",
            Func::Substring => "substring",
            Func::Subtract => "subtract",
        }
    }

    /// Allowed argument counts (min, max; `usize::MAX` = variadic).
    pub fn arity(self) -> (usize, usize) {
        match self {
            Func::Add | Func::Divide | Func::Modulo | Func::Multiply | Func::Subtract => (2, 2),
            Func::Between => (3, 4),
            Func::CidrMatch => (2, usize::MAX),
            Func::Concat => (1, usize::MAX),
            Func::EndsWith | Func::StartsWith | Func::StringContains => (2, 2),
            Func::IndexOf => (2, 3),
            Func::Length | Func::String => (1, 1),
            Func::Number => (1, 2),
            Func::Substring => (2, 3),
        }
    }

    /// Whether `fn~(...)` exists for this function.
    pub fn has_insensitive(self) -> bool {
        matches!(
            self,
            Func::Between
                | Func::EndsWith
                | Func::IndexOf
                | Func::StartsWith
                | Func::StringContains
        )
    }

    pub fn returns(self) -> ReturnKind {
        match self {
            Func::CidrMatch | Func::EndsWith | Func::StartsWith | Func::StringContains => {
                ReturnKind::Bool
            }
            Func::Add
            | Func::Divide
            | Func::Modulo
            | Func::Multiply
            | Func::Subtract
            | Func::IndexOf
            | Func::Length
            | Func::Number => ReturnKind::Number,
            Func::Between | Func::Concat | Func::String | Func::Substring => ReturnKind::Str,
        }
    }

    /// Applies the function to evaluated arguments.
    pub fn call(self, args: &[Value], insensitive: bool) -> Value {
        let arg = |i: usize| args.get(i).unwrap_or(&Value::Null);
        match self {
            Func::Add => arith(ArithKind::Add, arg(0), arg(1)),
            Func::Subtract => arith(ArithKind::Sub, arg(0), arg(1)),
            Func::Multiply => arith(ArithKind::Mul, arg(0), arg(1)),
            Func::Divide => arith(ArithKind::Div, arg(0), arg(1)),
            Func::Modulo => arith(ArithKind::Mod, arg(0), arg(1)),
            Func::Between => {
                let greedy = match args.get(3) {
                    None => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => return Value::Null,
                };
                match (text(arg(0)), text(arg(1)), text(arg(2))) {
                    (Some(s), Some(l), Some(r)) => {
                        Value::str(&between(&s, &l, &r, greedy, insensitive))
                    }
                    _ => Value::Null,
                }
            }
            Func::CidrMatch => cidr_match(arg(0), &args[1.min(args.len())..]),
            Func::Concat => {
                let mut out = String::new();
                for a in args {
                    match a {
                        Value::Null => return Value::Null,
                        v => out.push_str(&v.to_string()),
                    }
                }
                Value::Str(Arc::from(out))
            }
            Func::StartsWith | Func::EndsWith | Func::StringContains => {
                match (text(arg(0)), text(arg(1))) {
                    (Some(s), Some(p)) => {
                        let (s, p) = fold_pair(&s, &p, insensitive);
                        Value::Bool(match self {
                            Func::StartsWith => s.starts_with(p.as_ref()),
                            Func::EndsWith => s.ends_with(p.as_ref()),
                            _ => s.contains(p.as_ref()),
                        })
                    }
                    _ => Value::Null,
                }
            }
            Func::IndexOf => {
                let (Some(s), Some(sub)) = (text(arg(0)), text(arg(1))) else {
                    return Value::Null;
                };
                let start = match arg(2) {
                    Value::Null => 0,
                    Value::Long(n) => *n,
                    Value::Double(d) => *d as i64,
                    _ => return Value::Null,
                };
                let (s, sub) = fold_pair(&s, &sub, insensitive);
                index_of(&s, &sub, start).map_or(Value::Null, Value::Long)
            }
            Func::Length => match text(arg(0)) {
                Some(s) => Value::Long(s.chars().count() as i64),
                None => Value::Null,
            },
            Func::Number => number(arg(0), arg(1)),
            Func::String => match arg(0) {
                Value::Null => Value::Null,
                Value::Str(s) => Value::Str(s.clone()),
                v => Value::str(&v.to_string()),
            },
            Func::Substring => {
                let Some(s) = text(arg(0)) else {
                    return Value::Null;
                };
                let start = match arg(1) {
                    Value::Long(n) => *n,
                    Value::Null => 0,
                    _ => return Value::Null,
                };
                let end = match arg(2) {
                    Value::Long(n) => Some(*n),
                    Value::Null => None,
                    _ => return Value::Null,
                };
                Value::str(&substring(&s, start, end))
            }
        }
    }
}

/// The text of a string-like value; ips and versions print as text.
fn text(v: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match v {
        Value::Str(s) | Value::Version(s) => Some(std::borrow::Cow::Borrowed(s)),
        Value::Ip(_) => Some(std::borrow::Cow::Owned(v.to_string())),
        _ => None,
    }
}

fn fold_pair<'a>(
    s: &'a str,
    p: &'a str,
    insensitive: bool,
) -> (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>) {
    if insensitive {
        (s.to_lowercase().into(), p.to_lowercase().into())
    } else {
        (s.into(), p.into())
    }
}

/// Java's `indexOf(sub, from)` in characters: a negative start counts as 0,
/// not found is `None`.
fn index_of(s: &str, sub: &str, start: i64) -> Option<i64> {
    let start = start.max(0) as usize;
    let byte_start = match s.char_indices().nth(start) {
        Some((b, _)) => b,
        None if start == s.chars().count() => s.len(),
        None => return None,
    };
    let found = s[byte_start..].find(sub)? + byte_start;
    Some(s[..found].chars().count() as i64)
}

/// Python-style slicing: negative positions count from the end, out of range
/// positions clamp.
pub fn substring(s: &str, start: i64, end: Option<i64>) -> String {
    let chars: Vec<char> = s.chars().collect();
    let len = chars.len() as i64;
    let mut start = if start < 0 { start + len } else { start };
    start = start.clamp(0, len);
    let mut end = end.unwrap_or(len);
    if end < 0 {
        end += len;
    }
    end = end.clamp(0, len);
    if start >= end {
        return String::new();
    }
    chars[start as usize..end as usize].iter().collect()
}

/// The text between the first `left` and the next (or, greedy, the last)
/// `right`; empty when either is missing.
pub fn between(s: &str, left: &str, right: &str, greedy: bool, insensitive: bool) -> String {
    let (hay, l, r) = if insensitive {
        (s.to_lowercase(), left.to_lowercase(), right.to_lowercase())
    } else {
        (s.to_string(), left.to_string(), right.to_string())
    };
    // Lower-casing can change byte offsets outside ASCII; work in characters.
    let Some(lb) = hay.find(&l) else {
        return String::new();
    };
    let start = lb + l.len();
    let end = if greedy {
        match hay.rfind(&r) {
            Some(e) => e,
            None => return String::new(),
        }
    } else {
        match hay[start..].find(&r) {
            Some(e) => e + start,
            None => return String::new(),
        }
    };
    if end < start {
        return String::new();
    }
    if hay.len() == s.len() {
        s.get(start..end).unwrap_or_default().to_string()
    } else {
        let cs = hay[..start].chars().count();
        let ce = hay[..end].chars().count();
        s.chars().skip(cs).take(ce - cs).collect()
    }
}

/// `number(s [, base])`: base 10 accepts decimals, other bases integers
/// only; a `0x` prefix means base 16 when no base is given.
fn number(v: &Value, base: &Value) -> Value {
    let Some(s) = v.as_str() else {
        return Value::Null;
    };
    let hex_prefix = s.starts_with("0x");
    let radix = match base {
        Value::Null => {
            if hex_prefix {
                16
            } else {
                10
            }
        }
        Value::Long(b) if (2..=36).contains(b) => *b as u32,
        _ => return Value::Null,
    };
    let digits = if hex_prefix && radix == 16 {
        &s[2..]
    } else {
        s
    };
    if radix == 10 {
        if let Ok(n) = digits.parse::<i64>() {
            return Value::Long(n);
        }
        let valid = !digits.is_empty()
            && digits
                .strip_prefix('-')
                .unwrap_or(digits)
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.');
        return match digits.parse::<f64>() {
            Ok(d) if valid => Value::Double(d),
            _ => Value::Null,
        };
    }
    // Java's Integer.parseInt: 32-bit signed.
    match i32::from_str_radix(digits, radix) {
        Ok(n) => Value::Long(n as i64),
        Err(_) => Value::Null,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithKind {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

/// Arithmetic with Java's numeric promotion: long op long stays long
/// (integer division), otherwise double. Overflow and division by zero give
/// null.
pub fn arith(op: ArithKind, a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Long(x), Value::Long(y)) => {
            let r = match op {
                ArithKind::Add => x.checked_add(*y),
                ArithKind::Sub => x.checked_sub(*y),
                ArithKind::Mul => x.checked_mul(*y),
                ArithKind::Div => x.checked_div(*y),
                ArithKind::Mod => x.checked_rem(*y),
            };
            r.map_or(Value::Null, Value::Long)
        }
        _ => {
            let (Some(x), Some(y)) = (num(a), num(b)) else {
                return Value::Null;
            };
            let r = match op {
                ArithKind::Add => x + y,
                ArithKind::Sub => x - y,
                ArithKind::Mul => x * y,
                ArithKind::Div => {
                    if y == 0.0 {
                        return Value::Null;
                    }
                    x / y
                }
                ArithKind::Mod => {
                    if y == 0.0 {
                        return Value::Null;
                    }
                    x % y
                }
            };
            if r.is_finite() {
                Value::Double(r)
            } else {
                Value::Null
            }
        }
    }
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Long(n) => Some(*n as f64),
        Value::Double(d) => Some(*d),
        _ => None,
    }
}

/// A parsed CIDR block (or a single address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: u128,
    prefix: u32,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (ip, prefix) = match s.trim().split_once('/') {
            Some((ip, p)) => (ip, Some(p.parse::<u32>().ok()?)),
            None => (s.trim(), None),
        };
        let ip: IpAddr = ip.parse().ok()?;
        let (addr, max, offset) = match ip {
            IpAddr::V4(v4) => (v4.to_ipv6_mapped().into(), 32, 96),
            IpAddr::V6(v6) => (u128::from(v6), 128, 0),
        };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return None;
        }
        Some(Cidr {
            addr,
            prefix: prefix + offset,
        })
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        let x: u128 = match ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().into(),
            IpAddr::V6(v6) => u128::from(*v6),
        };
        if self.prefix == 0 {
            return true;
        }
        let mask = u128::MAX << (128 - self.prefix.min(128));
        (x & mask) == (self.addr & mask)
    }
}

fn cidr_match(ip: &Value, cidrs: &[Value]) -> Value {
    let addr = match ip {
        Value::Null => return Value::Null,
        Value::Ip(a) => *a,
        Value::Str(s) => match s.parse::<IpAddr>() {
            Ok(a) => a,
            Err(_) => return Value::Bool(false),
        },
        _ => return Value::Null,
    };
    Value::Bool(cidrs.iter().any(|c| {
        c.as_str()
            .and_then(Cidr::parse)
            .is_some_and(|c| c.contains(&addr))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    #[test]
    fn substring_slices_like_python() {
        assert_eq!(substring("explorer.exe", 0, Some(4)), "expl");
        assert_eq!(substring("explorer.exe", -4, None), ".exe");
        assert_eq!(substring("explorer.exe", -4, Some(-1)), ".ex");
        assert_eq!(substring("abc", 5, None), "");
        assert_eq!(substring("abc", -10, Some(2)), "ab");
        assert_eq!(substring("abc", 2, Some(1)), "");
    }

    #[test]
    fn between_greedy_and_insensitive() {
        let p = "System Idle Process";
        assert_eq!(between(p, "S", "e", true, false), "ystem Idle Proc");
        assert_eq!(between(p, "s", "e", false, false), "t");
        assert_eq!(between(p, "s", "E", false, true), "yst");
        assert_eq!(between(p, "g", "z", false, false), "");
        assert_eq!(
            between("a\\dev\\x.json", "dev", ".json", false, false),
            "\\x"
        );
        assert_eq!(
            Func::Between.call(&[Value::Null, s("a"), s("b")], false),
            Value::Null
        );
    }

    #[test]
    fn index_of_returns_null_when_absent() {
        assert_eq!(
            Func::IndexOf.call(&[s("explorer"), s("plore")], false),
            Value::Long(2)
        );
        assert_eq!(
            Func::IndexOf.call(&[s("explorer"), s("PLORE")], true),
            Value::Long(2)
        );
        assert_eq!(
            Func::IndexOf.call(&[s("explorer"), s("PLORE")], false),
            Value::Null
        );
        assert_eq!(
            Func::IndexOf.call(&[s("explorer"), s("plore"), Value::Long(3)], false),
            Value::Null
        );
        assert_eq!(
            Func::IndexOf.call(&[s("abc"), s(""), Value::Long(-5)], false),
            Value::Long(0)
        );
        assert_eq!(
            Func::IndexOf.call(&[Value::Null, s("a")], false),
            Value::Null
        );
    }

    #[test]
    fn arithmetic_uses_integer_rules_and_nulls_errors() {
        assert_eq!(
            arith(ArithKind::Div, &Value::Long(7), &Value::Long(2)),
            Value::Long(3)
        );
        assert_eq!(
            arith(ArithKind::Mod, &Value::Long(-7), &Value::Long(2)),
            Value::Long(-1)
        );
        assert_eq!(
            arith(ArithKind::Div, &Value::Long(1), &Value::Long(0)),
            Value::Null
        );
        assert_eq!(
            arith(ArithKind::Add, &Value::Long(i64::MAX), &Value::Long(1)),
            Value::Null
        );
        assert_eq!(
            arith(ArithKind::Div, &Value::Double(66.0), &Value::Long(66)),
            Value::Double(1.0)
        );
        assert_eq!(
            Func::Add.call(&[Value::Null, Value::Long(4)], false),
            Value::Null
        );
        assert_eq!(
            Func::Multiply.call(&[Value::Long(4), Value::Double(0.5)], false),
            Value::Double(2.0)
        );
    }

    #[test]
    fn number_parses_bases() {
        assert_eq!(Func::Number.call(&[s("5")], false), Value::Long(5));
        assert_eq!(
            Func::Number.call(&[s("0x32"), Value::Long(16)], false),
            Value::Long(50)
        );
        assert_eq!(Func::Number.call(&[s("0x32")], false), Value::Long(50));
        assert_eq!(
            Func::Number.call(&[s("32"), Value::Long(16)], false),
            Value::Long(50)
        );
        assert_eq!(
            Func::Number.call(&[s("31"), Value::Long(13)], false),
            Value::Long(40)
        );
        assert_eq!(Func::Number.call(&[s("1.5")], false), Value::Double(1.5));
        assert_eq!(Func::Number.call(&[s("abc")], false), Value::Null);
        assert_eq!(Func::Number.call(&[Value::Null], false), Value::Null);
    }

    #[test]
    fn string_functions_and_nulls() {
        assert_eq!(
            Func::StartsWith.call(&[s("Cmd.exe"), s("cmd")], false),
            Value::Bool(false)
        );
        assert_eq!(
            Func::StartsWith.call(&[s("Cmd.exe"), s("cmd")], true),
            Value::Bool(true)
        );
        assert_eq!(
            Func::EndsWith.call(&[s("cmd.EXE"), s(".exe")], true),
            Value::Bool(true)
        );
        assert_eq!(
            Func::StringContains.call(&[s("abc"), s("b")], false),
            Value::Bool(true)
        );
        assert_eq!(
            Func::StringContains.call(&[Value::Null, s("b")], false),
            Value::Null
        );
        assert_eq!(Func::Length.call(&[s("héllo")], false), Value::Long(5));
        assert_eq!(Func::Length.call(&[Value::Null], false), Value::Null);
        assert_eq!(Func::Concat.call(&[s("a"), Value::Long(1)], false), s("a1"));
        assert_eq!(
            Func::Concat.call(&[s("a"), Value::Null], false),
            Value::Null
        );
        assert_eq!(Func::String.call(&[Value::Long(17)], false), s("17"));
        assert_eq!(Func::String.call(&[Value::Null], false), Value::Null);
    }

    #[test]
    fn cidr_match_v4_v6_and_several_blocks() {
        let ip = Value::Ip("10.6.48.157".parse().unwrap());
        assert_eq!(cidr_match(&ip, &[s("10.6.48.157/8")]), Value::Bool(true));
        assert_eq!(cidr_match(&ip, &[s("192.168.0.0/16")]), Value::Bool(false));
        assert_eq!(
            cidr_match(&ip, &[s("192.168.0.0/16"), s("10.6.48.0/24")]),
            Value::Bool(true)
        );
        assert_eq!(cidr_match(&ip, &[s("10.6.48.157")]), Value::Bool(true));
        let v6 = Value::Ip("2001:db8::1".parse().unwrap());
        assert_eq!(cidr_match(&v6, &[s("2001:db8::/32")]), Value::Bool(true));
        assert_eq!(cidr_match(&v6, &[s("10.0.0.0/8")]), Value::Bool(false));
        assert_eq!(cidr_match(&Value::Null, &[s("10.0.0.0/8")]), Value::Null);
        assert_eq!(
            cidr_match(&s("10.1.2.3"), &[s("0.0.0.0/0")]),
            Value::Bool(true)
        );
    }
}
