//! Text for the terminal. Message text, names, titles and file names come
//! from other people over the network; printed raw, a control sequence in
//! them could set the window title, recolour or overwrite lines and fake a
//! sender (finding L1 of 2026-11-30). [`say!`] prints through [`safe`].

use std::borrow::Cow;

/// Control characters (C0 but tab and line feed, DEL, C1) shown as visible
/// escapes (`^[`, `^M`, `\u{85}`), and bidirectional-override characters as
/// `<U+202E>`, so that what the terminal shows is what was sent.
pub fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        let n = u32::from(c);
        match c {
            '\n' | '\t' => out.push(c),
            _ if n < 0x20 => {
                out.push('^');
                out.push(char::from(b'@' + n as u8));
            }
            '\u{7f}' => out.push_str("^?"),
            _ if (0x80..=0x9f).contains(&n) => out.push_str(&format!("\\u{{{n:x}}}")),
            _ if is_bidi_control(c) => out.push_str(&format!("<U+{n:04X}>")),
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    let n = u32::from(c);
    (n < 0x20 && c != '\n' && c != '\t') || (0x7f..=0x9f).contains(&n) || is_bidi_control(c)
}

/// Unicode's explicit directional formatting characters (UAX #9) and marks.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// Writes `text` to standard output. Output cut short (`wardline … | head`)
/// ends the command quietly, as for any Unix tool, instead of the panic of
/// `print!` on a closed pipe. (SIGPIPE stays ignored: a socket write must
/// never kill a client.)
pub fn put(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing the output: {e}");
        std::process::exit(1);
    }
}

/// `println!` for anything that may hold text from the network: control
/// characters made visible ([`safe`]), a closed pipe ends quietly ([`put`]).
macro_rules! say {
    () => {
        $crate::term::put("\n")
    };
    ($($arg:tt)*) => {
        $crate::term::put(&format!("{}\n", $crate::term::safe(&format!($($arg)*))))
    };
}
pub(crate) use say;

#[cfg(test)]
mod tests {
    use super::safe;

    #[test]
    fn escapes_what_would_drive_the_terminal() {
        assert_eq!(
            safe("plain text\nline two\ttab"),
            "plain text\nline two\ttab"
        );
        assert_eq!(
            safe("from v1 esc \x1b]0;PWNED-TITLE\x07\x1b[31mRED TEXT\x1b[0m"),
            "from v1 esc ^[]0;PWNED-TITLE^G^[[31mRED TEXT^[[0m"
        );
        assert_eq!(safe("over\rwrite\x1b[2K"), "over^Mwrite^[[2K");
        assert_eq!(safe("c1 \u{9b}31m"), "c1 \\u{9b}31m");
        assert_eq!(safe("invoice\u{202e}fdp.exe"), "invoice<U+202E>fdp.exe");
        assert_eq!(safe("del\u{7f}"), "del^?");
        assert_eq!(safe("Ça, ß, 🛑"), "Ça, ß, 🛑");
    }
}
