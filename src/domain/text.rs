//! The one rule for every text a user gives Berth: names, descriptions,
//! labels, token names, node names, commands, query parameters. A text
//! ends up in `Content-Disposition` headers, log lines, terminals, the web
//! UI and the audit log, so none may hold a control character (C0, DEL,
//! C1: a CR/LF splits a header or a log line, an ESC drives a terminal, a
//! NUL cuts a C string) nor a Unicode bidirectional embedding, override or
//! isolate (U+202A–U+202E, U+2066–U+2069: text that reads otherwise than
//! it is, "Trojan Source"), and each has a bound on its length.
//!
//! The HTTP layer applies it to every string of every request (JSON
//! bodies, query and path parameters) before a handler runs, each field
//! with the [`Shape`] and bound its wire type declares; the domain's own
//! checks (`validate_name`, `validate_text`) use it too, for what the CLI
//! writes directly.

/// What a text may hold besides printable characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One line: nothing else.
    Line,
    /// Several lines: line feeds and tabs (never a carriage return).
    Multiline,
    /// A PEM document (certificates, keys): line feeds, ASCII only.
    Pem,
}

impl Shape {
    /// The spelling wire schemas declare a shape with (`x-berth-text`);
    /// a string without one is a [`Shape::Line`].
    pub const SCHEMA_KEY: &'static str = "x-berth-text";

    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Line => "line",
            Shape::Multiline => "multiline",
            Shape::Pem => "pem",
        }
    }

    pub fn parse(s: &str) -> Option<Shape> {
        [Shape::Line, Shape::Multiline, Shape::Pem]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// The bound of a text whose type declares none, in characters.
pub const DEFAULT_MAX: usize = 256;

/// Whether `c` is a bidirectional embedding, override or isolate.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Checks `value`, the text of `field`, under the rule: the error says
/// which field, what was found and where (never the text itself: it may be
/// a password).
pub fn check(field: &str, value: &str, shape: Shape, max: usize) -> Result<(), String> {
    let mut count = 0usize;
    for (i, c) in value.chars().enumerate() {
        count += 1;
        let allowed = match shape {
            Shape::Line => false,
            Shape::Multiline => c == '\n' || c == '\t',
            Shape::Pem => c == '\n',
        };
        if c.is_control() && !allowed {
            let hint = match (c, shape) {
                ('\r', Shape::Multiline | Shape::Pem) => " (use line feeds alone, not CR/LF)",
                ('\n' | '\t', Shape::Line) => " (it is one line)",
                _ => "",
            };
            return Err(format!(
                "{field} must not contain control characters: U+{:04X} at character {}{hint}",
                c as u32,
                i + 1
            ));
        }
        if is_bidi_control(c) {
            return Err(format!(
                "{field} must not contain Unicode bidirectional controls: U+{:04X} at character {}",
                c as u32,
                i + 1
            ));
        }
        if shape == Shape::Pem && !c.is_ascii() {
            return Err(format!(
                "{field} must be a PEM document (ASCII): U+{:04X} at character {}",
                c as u32,
                i + 1
            ));
        }
    }
    if count > max {
        return Err(format!(
            "{field} must be at most {max} characters (got {count})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_control_character_is_refused_in_a_line() {
        for c in (0u32..0x20).chain(0x7f..0xa0) {
            let c = char::from_u32(c).unwrap();
            let e = check("name", &format!("a{c}b"), Shape::Line, 100).unwrap_err();
            assert!(e.starts_with("name must not contain control"), "{e}");
            assert!(e.contains("at character 2"), "{e}");
        }
        check("name", "ordinary text, ünïcödé, 日本語", Shape::Line, 100).unwrap();
    }

    #[test]
    fn line_feeds_and_tabs_only_where_the_shape_allows() {
        check("d", "two\nlines\tand a tab", Shape::Multiline, 100).unwrap();
        assert!(check("d", "a\r\nb", Shape::Multiline, 100)
            .unwrap_err()
            .contains("not CR/LF"));
        assert!(check("d", "a\nb", Shape::Line, 100)
            .unwrap_err()
            .contains("one line"));
        check(
            "ca",
            "-----BEGIN X-----\nAAAA\n-----END X-----\n",
            Shape::Pem,
            100,
        )
        .unwrap();
        assert!(check("ca", "a\tb", Shape::Pem, 100).is_err());
        assert!(check("ca", "a\r\nb", Shape::Pem, 100).is_err());
        assert!(check("ca", "é", Shape::Pem, 100).is_err());
        for shape in [Shape::Line, Shape::Multiline, Shape::Pem] {
            assert!(check("x", "\u{0}", shape, 100).is_err());
            assert!(check("x", "\u{1b}[31m", shape, 100).is_err());
            assert!(check("x", "\u{85}", shape, 100).is_err(), "NEL is C1");
        }
    }

    #[test]
    fn bidirectional_controls_are_refused_everywhere() {
        for c in ['\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}'] {
            for shape in [Shape::Line, Shape::Multiline] {
                let e = check("name", &format!("abc{c}gpj.exe"), shape, 100).unwrap_err();
                assert!(
                    e.contains("bidirectional") && e.contains("character 4"),
                    "{e}"
                );
            }
        }
        for c in ['\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}'] {
            assert!(check("name", &c.to_string(), Shape::Line, 100).is_err());
        }
        // Marks are not overrides: Arabic and Hebrew text needs them.
        check("name", "שלום\u{200F}", Shape::Line, 100).unwrap();
    }

    #[test]
    fn lengths_count_characters_and_the_value_is_never_echoed() {
        check("name", &"é".repeat(100), Shape::Line, 100).unwrap();
        let e = check("password", &"secret".repeat(50), Shape::Line, 100).unwrap_err();
        assert_eq!(e, "password must be at most 100 characters (got 300)");
        let e = check("password", "hunter2\u{0}", Shape::Line, 100).unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn shapes_round_trip_through_their_spelling() {
        for s in [Shape::Line, Shape::Multiline, Shape::Pem] {
            assert_eq!(Shape::parse(s.as_str()), Some(s));
        }
        assert_eq!(Shape::parse("bogus"), None);
    }
}
