//! Text that a plugin controls (names, versions, error details, log messages),
//! made safe before enginehost prints or logs it: control characters escaped, so
//! that it cannot forge lines or send terminal escapes, and its length bounded.

/// `text` with control characters escaped (`\n`, `\u{1b}`, ...) and at most `max`
/// characters (then `…`).
pub fn shown(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The lines of `text`, each made safe with [`shown`] (tabs kept), at most
/// `max_lines` of them (the last says how many more there were).
pub fn lines(text: &str, max_chars: usize, max_lines: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let all: Vec<&str> = text.split('\n').collect();
    for line in all.iter().take(max_lines) {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let safe: String = line
            .split('\t')
            .map(|part| shown(part, max_chars))
            .collect::<Vec<_>>()
            .join("\t");
        out.push(safe);
    }
    if all.len() > max_lines {
        out.push(format!("… and {} more lines", all.len() - max_lines));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_length_bounded() {
        assert_eq!(shown("a\nb\u{1b}[31mc", 100), "a\\nb\\u{1b}[31mc");
        assert_eq!(shown("abcdef", 3), "abc…");
        assert_eq!(shown("ok", 3), "ok");
    }

    #[test]
    fn lines_are_split_and_bounded() {
        assert_eq!(lines("one\r\ntwo\tx\u{7}", 10, 5), vec!["one", "two\tx\\u{7}"]);
        assert_eq!(lines("a\nb\nc", 10, 2), vec!["a", "b", "… and 1 more lines"]);
    }
}
