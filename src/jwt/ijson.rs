//! Strict I-JSON (RFC 7493) validation of JOSE headers and JWT claims sets.
//!
//! General JSON parsers are lenient in ways that matter for tokens: most accept duplicate member
//! names (some keep the first, some the last) and many let lone surrogates through. A JOSE parser
//! that tolerates duplicate names lets two parsers of the same token see different claims: a
//! gateway, a logger and this crate could each read another `sub` or `aud` from one signed payload.
//! RFC 7515 §4 and RFC 7519 §4 allow either rejecting duplicates or keeping the last; this module
//! rejects them, and everything else that is not I-JSON, before any claim is read: at every depth,
//! including members nobody reads.
//!
//! The check is one pass over the bytes (names with escapes are decoded in a second, short one),
//! without allocation for objects of up to [`INLINE_NAMES`] members whose names have no escapes;
//! larger objects are checked in O(n log n). Nesting is limited to [`MAX_DEPTH`], which also
//! bounds the recursion.

use std::borrow::Cow;

/// Deepest nesting of arrays and objects accepted; the top-level object counts as 1.
const MAX_DEPTH: usize = 64;

/// Names an object may have before duplicate detection switches from a linear scan over a stack
/// array to sorting a `Vec`.
const INLINE_NAMES: usize = 16;

/// Checks that `text` is one JSON object that is strict I-JSON (RFC 7493) throughout.
/// Err carries a short static reason for debug logs.
pub(crate) fn validate_object(text: &str) -> Result<(), &'static str> {
    let mut parser = Parser { text, pos: 0 };
    parser.skip_whitespace();
    if parser.peek() != Some(b'{') {
        return Err("top-level value is not an object");
    }
    parser.object(1)?;
    parser.skip_whitespace();
    if parser.pos != text.len() {
        return Err("trailing characters after the object");
    }
    Ok(())
}

/// Whether `c` is one of the 66 Unicode noncharacters, which I-JSON forbids.
fn is_noncharacter(c: char) -> bool {
    let code = u32::from(c);
    (0xFDD0..=0xFDEF).contains(&code) || code & 0xFFFE == 0xFFFE
}

/// Whether a byte ends the fast scan of a string: the quote, the backslash, control characters,
/// and the lead bytes of the only UTF-8 sequences that can encode a noncharacter (0xEF for
/// U+FDD0..U+FFFF, 0xF0..=0xF4 for the planes above). A table lookup is the fastest test.
fn is_stop(&byte: &u8) -> bool {
    const STOP: [bool; 256] = {
        let mut table = [false; 256];
        let mut byte = 0;
        while byte < 256 {
            table[byte] = byte < 0x20 || byte == 0x22 || byte == 0x5C || byte >= 0xEF;
            byte += 1;
        }
        table
    };
    STOP[usize::from(byte)]
}

/// The text of a valid string's contents (quotes excluded) with its escapes decoded: a second,
/// slower pass, only for member names that have escapes.
fn unescape(raw: &str) -> Result<String, &'static str> {
    let mut cursor = Parser { text: raw, pos: 0 };
    let mut decoded = String::with_capacity(raw.len());
    while let Some(c) = raw.get(cursor.pos..).and_then(|rest| rest.chars().next()) {
        if c == '\\' {
            decoded.push(cursor.escape()?);
        } else {
            decoded.push(c);
            cursor.pos += c.len_utf8();
        }
    }
    Ok(decoded)
}

/// A cursor over the input; `pos` is a byte offset, on a UTF-8 boundary between tokens.
struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    /// The input from `pos` on.
    fn rest(&self) -> &'a [u8] {
        self.text.as_bytes().get(self.pos..).unwrap_or_default()
    }

    fn peek(&self) -> Option<u8> {
        self.rest().first().copied()
    }

    /// Consumes the next byte if it is `expected`.
    fn eat(&mut self, expected: u8) -> bool {
        let found = self.peek() == Some(expected);
        self.pos += usize::from(found);
        found
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Any value, its first byte at `pos`; `depth` is that of the enclosing container.
    fn value(&mut self, depth: usize) -> Result<(), &'static str> {
        match self.peek() {
            Some(b'{' | b'[') if depth >= MAX_DEPTH => Err("nesting too deep"),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.items(b']', |parser| parser.value(depth + 1)),
            Some(b'"') => self.string().map(drop),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err("expected a value"),
        }
    }

    /// An object whose `{` is at `pos`, nested `depth` containers deep.
    fn object(&mut self, depth: usize) -> Result<(), &'static str> {
        let mut names = Names::default();
        self.items(b'}', |parser| {
            let start = parser.pos;
            let escaped = parser.string()?;
            // The quotes are ASCII, so both ends are char boundaries.
            let raw = parser.text.get(start + 1..parser.pos - 1);
            names.insert(raw.unwrap_or_default(), escaped)?;
            parser.skip_whitespace();
            if !parser.eat(b':') {
                return Err("expected ':' after a member name");
            }
            parser.skip_whitespace();
            parser.value(depth)
        })?;
        names.finish()
    }

    /// The items of an object or array whose opening bracket is at `pos`, each read by `item`,
    /// separated by commas, up to `close`.
    fn items<F>(&mut self, close: u8, mut item: F) -> Result<(), &'static str>
    where
        F: FnMut(&mut Self) -> Result<(), &'static str>,
    {
        self.pos += 1;
        self.skip_whitespace();
        if self.eat(close) {
            return Ok(());
        }
        loop {
            item(self)?;
            self.skip_whitespace();
            if self.eat(close) {
                return Ok(());
            }
            if !self.eat(b',') {
                return Err("expected ',' or a closing bracket");
            }
            self.skip_whitespace();
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), &'static str> {
        if !self.rest().starts_with(word) {
            return Err("invalid literal");
        }
        self.pos += word.len();
        Ok(())
    }

    /// A number in exactly the RFC 8259 grammar. Numbers that overflow an `f64` are refused too:
    /// I-JSON (RFC 7493 §2.2) asks for no magnitude beyond IEEE 754 double, and common parsers
    /// (serde_json among them) fail on such numbers.
    fn number(&mut self) -> Result<(), &'static str> {
        let start = self.pos;
        self.eat(b'-');
        // A leading 0 stands alone: a digit after it ends the number and fails in the caller.
        let mut valid = self.eat(b'0') || self.digits() > 0;
        if self.eat(b'.') {
            valid &= self.digits() > 0;
        }
        let exponent = self.eat(b'e') || self.eat(b'E');
        if exponent {
            let _sign = self.eat(b'+') || self.eat(b'-');
            valid &= self.digits() > 0;
        }
        if !valid {
            return Err("invalid number");
        }
        // Up to 300 characters, a number without exponent is always finite as an `f64`.
        if exponent || self.pos - start > 300 {
            let number = self.text.get(start..self.pos).unwrap_or_default();
            if !number.parse::<f64>().is_ok_and(f64::is_finite) {
                return Err("number out of range");
            }
        }
        Ok(())
    }

    /// Skips decimal digits; returns how many.
    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A string, its opening quote at `pos`; leaves `pos` after the closing quote. Returns
    /// whether it has escapes.
    fn string(&mut self) -> Result<bool, &'static str> {
        if !self.eat(b'"') {
            return Err("expected a string");
        }
        let mut escaped = false;
        loop {
            let rest = self.rest();
            let Some(offset) = rest.iter().position(is_stop) else {
                return Err("unterminated string");
            };
            self.pos += offset;
            match rest.get(offset).copied().unwrap_or_default() {
                b'"' => {
                    self.pos += 1;
                    return Ok(escaped);
                }
                b'\\' => {
                    self.escape()?;
                    escaped = true;
                }
                0x00..=0x1F => return Err("control character in string"),
                _ => {
                    // A multi-byte sequence that may encode a noncharacter: decode just this one.
                    let c = self.text.get(self.pos..).and_then(|s| s.chars().next());
                    let c = c.ok_or("invalid UTF-8")?;
                    if is_noncharacter(c) {
                        return Err("noncharacter in string");
                    }
                    self.pos += c.len_utf8();
                }
            }
        }
    }

    /// The escape whose backslash is at `pos`; returns the character it stands for.
    fn escape(&mut self) -> Result<char, &'static str> {
        let kind = self.rest().get(1).copied();
        self.pos += 2;
        Ok(match kind {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => return self.unicode_escape(),
            _ => return Err("invalid escape"),
        })
    }

    /// The code point of a `\uXXXX` escape (its hex digits at `pos`), or of a surrogate pair.
    fn unicode_escape(&mut self) -> Result<char, &'static str> {
        let code = match self.hex4()? {
            high @ 0xD800..=0xDBFF => {
                if !self.rest().starts_with(b"\\u") {
                    return Err("unpaired high surrogate escape");
                }
                self.pos += 2;
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err("unpaired high surrogate escape");
                }
                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err("unpaired low surrogate escape"),
            code => code,
        };
        // Never a surrogate nor above U+10FFFF here, so `from_u32` only fails on noncharacters.
        let c = char::from_u32(code).filter(|&c| !is_noncharacter(c));
        c.ok_or("noncharacter in string")
    }

    fn hex4(&mut self) -> Result<u32, &'static str> {
        let digits = self.rest().get(..4).ok_or("truncated \\u escape")?;
        let code = digits.iter().try_fold(0, |code, &digit| {
            Some(code * 16 + char::from(digit).to_digit(16)?)
        });
        self.pos += 4;
        code.ok_or("invalid \\u escape")
    }
}

/// The member names of one object, unescaped, for duplicate detection.
#[derive(Default)]
struct Names<'a> {
    /// The first names, as long as none had escapes: checked by a linear scan as they come.
    inline: [&'a str; INLINE_NAMES],
    len: usize,
    /// Empty (unallocated) until a name does not fit `inline`; then every name, sorted and
    /// compared once the object ends.
    spilled: Vec<Cow<'a, str>>,
}

impl<'a> Names<'a> {
    /// Adds the name whose raw text (between the quotes) is `raw`; fails on a duplicate among
    /// the inline names.
    fn insert(&mut self, raw: &'a str, escaped: bool) -> Result<(), &'static str> {
        let (seen, free) = self.inline.split_at_mut(self.len);
        match free.first_mut() {
            Some(slot) if !escaped && self.spilled.is_empty() => {
                // The length and last byte tell most names apart without a `memcmp` call.
                let similar = |seen: &str| {
                    seen.len() == raw.len() && seen.bytes().last() == raw.bytes().last()
                };
                if seen.iter().any(|&seen| similar(seen) && seen == raw) {
                    return Err("duplicate member name");
                }
                *slot = raw;
                self.len += 1;
            }
            _ => {
                if self.spilled.is_empty() {
                    self.spilled.extend(seen.iter().copied().map(Cow::Borrowed));
                }
                let decoded = escaped.then(|| unescape(raw)).transpose()?;
                self.spilled
                    .push(decoded.map_or(Cow::Borrowed(raw), Cow::Owned));
            }
        }
        Ok(())
    }

    /// Ends the object: the inline names were already checked as they came.
    fn finish(&mut self) -> Result<(), &'static str> {
        self.spilled.sort_unstable();
        let mut pairs = self.spilled.windows(2);
        if pairs.any(|pair| matches!(pair, [a, b] if a == b)) {
            return Err("duplicate member name");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::validate_object;

    /// Tables of cases are split on whitespace, or on `|` where cases hold whitespace.
    fn check(accept: bool, cases: impl IntoIterator<Item = impl AsRef<str>>) {
        for case in cases {
            let (case, verdict) = (case.as_ref(), validate_object(case.as_ref()));
            assert_eq!(verdict.is_ok(), accept, "{case:?} gave {verdict:?}");
        }
    }

    #[test]
    fn grammar_and_whitespace() {
        const ACCEPT: &str = r#"{} {"a":{},"b":[],"c":[{},[[]]],"d":[[],{}]}
            {"t":true,"f":false,"n":null,"s":"","a":[1,"x",null,-2.5]}"#;
        const SPACED: &str = " \t\r\n{ \"a\" : [ 1 , { } ] }\r\n\t |{\n\"a\"\t:\r1}";
        const REJECT: &str = r#"[] [} x} "a" 1 null { } {}} {}{} {}x {"a":1,} {"a":[1,]} {,"a":1}
            {"a"1} {a:1} {a":1} {'a':1} {"a":} {"a":[} {"a":trUe} {"a":True} {"a":falsey} {"a":nulL}
            {"a":1}/**/ {/**/"a":1} {"a":1}//"#;
        const BAD_SPACES: &str = "| |{} {}|{\"a\":1 \"b\":2}|{\"a\":[1 2]}|{\"a\" 1}\
            |{\"a\":1 // c\n}|\u{a0}{}|{\u{a0}}|{}\u{a0}|{\"a\":\u{a0}1}\
            |\u{feff}{}|{\u{b}}|{\u{c}}|{}\u{0}";
        check(true, ACCEPT.split_whitespace());
        check(true, SPACED.split('|'));
        check(false, REJECT.split_whitespace());
        check(false, BAD_SPACES.split('|'));
    }

    #[test]
    fn numbers() {
        const ACCEPT: &str = r#"{"n":[0,-0,1,-1,10,0.5,-0.5e+10,1E3,1e-3,1.25E+2,9007199254740993]}
            {"n":1e308,"m":-1.7976931348623157e308,"tiny":1e-400}"#;
        const REJECT: &str = "01 -01 00 1. .5 - 1e 1e+ +1 1.e3 0x1 NaN Infinity --1 1.5.2 1ee3";
        check(true, ACCEPT.split_whitespace());
        check(true, [format!(r#"{{"n":{}}}"#, "9".repeat(300))]);
        let long = "9".repeat(400);
        for bad in REJECT.split_whitespace().chain(["1e400", "-1e309", &long]) {
            let (alone, nested) = (format!(r#"{{"n":{bad}}}"#), format!(r#"{{"n":[{bad}]}}"#));
            check(false, [alone, nested]);
        }
    }

    #[test]
    fn duplicate_names() {
        const ACCEPT: &str = r#"{"a":1,"b":2,"A":3,"a\t":4,"":5} {"\u0061b":1,"ab\u0020":2}
            {"a":{"a":1},"b":{"a":2},"c":[{"a":1},{"a":2}]} {"a\"":3,"a\\":4,"a":5}"#;
        const REJECT: &str = r#"{"a":1,"a":2} {"":1,"":2} {"a":1,"\u0061":2} {"\u0061":1,"a":2}
            {"\/":1,"/":2} {"é":1,"\u00e9":2} {"😀":1,"\ud83d\ude00":2} {"x":{"a":1,"b":2,"a":3}}
            {"x":[{"a":1},{"b":1,"b":2}]}"#;
        check(true, ACCEPT.split_whitespace());
        check(false, REJECT.split_whitespace());
        // Past the inline capacity, with the duplicate on either side of the switch.
        let many: Vec<String> = (0..40).map(|i| format!(r#""k{i}":{i}"#)).collect();
        let many = many.join(",");
        check(true, [format!("{{{many}}}")]);
        for dup in [r#""k3":0"#, r#""k39":0"#, r#""\u006b7":0"#] {
            check(false, [format!("{{{many},{dup}}}")]);
        }
    }

    #[test]
    fn strings_and_escapes() {
        const ACCEPT: &str = r#"{"s":"\"\\\/\b\f\n\r\t\u0000\u00e9\u00E9\uFFFD\ufdcf\ufdf0"}
            {"s":"\ud83d\ude00","t":"\uD83D\uDE00","u":"\udbff\udffd","v":"\ud83f\udffd"}"#;
        const RAW: &str = "{\"s\":\"\u{7f} \u{fdcf} \u{fdf0} \u{fffd} \u{10000} \u{10fffd} é 😀\"}";
        const REJECT: &str = r#"{"s":"\x41"} {"s":"\'"} {"s":"\u12"} {"s":"\u12g4"} {"s":"\U0041"}
            {"s":"\"} {"s":"abc} {"s":"\u {"s":"\ud83d"} {"s":"\ud83dx"} {"s":"\ud83d\u0041"}
            {"s":"\ud83d\ud83d"} {"s":"\ude00"} {"s":"\ude00\ud83d"} {"s":"\ud83d\n"}
            {"\ud800":1} {"\ud800x":1} {"s":"\ud83dxxdc00"}"#;
        const CONTROL: &str = "{\"s\":\"\u{1}\"}|{\"s\":\"a\tb\"}|{\"s\":\"a\nb\"}|{\"\u{1f}\":1}";
        check(true, ACCEPT.split_whitespace());
        check(true, [RAW]);
        check(false, REJECT.split_whitespace());
        check(false, CONTROL.split('|'));
    }

    #[test]
    fn noncharacters() {
        const REJECT: &str = r#"{"s":"\ufdd0"} {"s":"\uFDEF"} {"s":"\ufffe"} {"s":"\uffff"}
            {"s":"\ud83f\udfff"} {"s":"\ud83f\udffe"} {"s":"\udbff\udfff"} {"\ufdd0":1}"#;
        const RAW: &str = "{\"s\":\"\u{fdd0}\"} {\"s\":\"a\u{fdef}\"} {\"s\":\"\u{fffe}\"}
            {\"s\":\"\u{ffff}\"} {\"s\":\"\u{1fffe}\"} {\"s\":\"\u{10ffff}\"} {\"\u{10ffff}\":1}
            {\"a\":[\"x\u{fdd0}y\"]}";
        check(false, REJECT.split_whitespace());
        check(false, RAW.split_whitespace());
    }

    #[test]
    fn depth_limit() {
        let arrays = |n: usize| format!(r#"{{"a":{}{}}}"#, "[".repeat(n - 1), "]".repeat(n - 1));
        let objects = |n: usize| format!("{}{{}}{}", r#"{"a":"#.repeat(n - 1), "}".repeat(n - 1));
        check(true, [arrays(64), objects(64)]);
        check(false, [arrays(65), objects(65), arrays(100_000)]);
    }
}
