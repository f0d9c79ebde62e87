//! Values taken from a message and repeated in an error sentence: every one is escaped (control
//! and format characters, quotes and backslashes as `\u{..}`-style escapes) and cut to
//! [`MAX_ECHO_BYTES`], so that a refusal can never carry more than a few hundred bytes of the
//! sender's text into a log line or the failure table, however large or strange the message was.

use std::fmt;

/// The most bytes of one echoed value that an error sentence repeats.
pub const MAX_ECHO_BYTES: usize = 256;

/// A value from the message, for an error sentence: escaped and bounded when displayed.
#[derive(Clone, Copy)]
pub struct Echo<'a>(pub &'a str);

impl fmt::Display for Echo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut written = 0usize;
        let mut buf = [0u8; 16];
        for (i, c) in self.0.char_indices() {
            let piece: &str = if c.is_control() || matches!(c, '"' | '\\') || is_format_or_mark(c) {
                let s = c.escape_default().to_string();
                let n = s.len().min(buf.len());
                buf[..n].copy_from_slice(&s.as_bytes()[..n]);
                // escape_default yields ASCII only.
                std::str::from_utf8(&buf[..n]).unwrap_or("?")
            } else {
                c.encode_utf8(&mut buf)
            };
            if written + piece.len() > MAX_ECHO_BYTES {
                return write!(f, "…[{} more bytes]", self.0.len() - i);
            }
            f.write_str(piece)?;
            written += piece.len();
        }
        Ok(())
    }
}

/// Characters that change how the text around them looks (bidi controls, zero-width characters,
/// combining marks): shown escaped so a log line reads as what it is.
fn is_format_or_mark(c: char) -> bool {
    matches!(c as u32,
        0x0300..=0x036F          // combining diacritical marks
        | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F
        | 0x200B..=0x200F        // zero-width, LRM, RLM
        | 0x202A..=0x202E        // bidi embeddings and overrides
        | 0x2060..=0x2069        // word joiner, bidi isolates
        | 0xFEFF)
}

/// A list of values from the message: at most four shown, each an [`Echo`].
pub struct EchoList<'a>(pub &'a [String]);

impl fmt::Display for EchoList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, v) in self.0.iter().take(4).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "\"{}\"", Echo(v))?;
        }
        if self.0.len() > 4 {
            write!(f, ", … {} more", self.0.len() - 4)?;
        }
        f.write_str("]")
    }
}

/// `s` escaped and bounded, as an owned string (for values kept in a struct).
pub fn echo(s: &str) -> String {
    Echo(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_and_say_how_much() {
        let long = "a".repeat(10_000);
        let e = echo(&long);
        assert!(e.starts_with(&"a".repeat(MAX_ECHO_BYTES)));
        assert!(e.ends_with(&format!("…[{} more bytes]", 10_000 - MAX_ECHO_BYTES)));
        assert!(e.len() < MAX_ECHO_BYTES + 40);
    }

    #[test]
    fn controls_quotes_and_marks_are_escaped() {
        assert_eq!(echo("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(echo("x\u{202e}y"), "x\\u{202e}y");
        // 130,000 combining marks make a short sentence, not a megabyte.
        let marks = "\u{0301}".repeat(130_000);
        assert!(echo(&marks).len() < MAX_ECHO_BYTES + 40);
        assert_eq!(echo("Ödön 名前"), "Ödön 名前");
    }

    #[test]
    fn lists_show_four() {
        let v: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        assert_eq!(
            EchoList(&v).to_string(),
            "[\"0\", \"1\", \"2\", \"3\", … 6 more]"
        );
    }
}
