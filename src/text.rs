//! Bounded text. Every string kept, shown or written that came from
//! outside (an API's answer, a host name, an error) or may grow without
//! bound is cut here, by one rule: at most `max` bytes in all, cut on a
//! character boundary, the cut marked with `...`. Bytes, because what
//! limits us counts bytes (Event notes, status fields, log lines).

/// `text` if it fits in `max` bytes; else its longest prefix that leaves
/// room for `...`, cut on a character boundary, and `...`.
///
/// ```
/// use offer_cancel_operator::text::clip;
/// assert_eq!(clip("short", 10), "short");
/// assert_eq!(clip("abcdefghij", 8), "abcde...");
/// assert_eq!(clip("ééééé", 8), "éé..."); // 7 bytes: a third é would split
/// ```
pub fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut cut = max.saturating_sub(MARK.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{MARK}", &text[..cut])
}

const MARK: &str = "...";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clipped_text_never_exceeds_its_bound_and_stays_valid_utf8() {
        for text in [
            "",
            "a",
            "é",
            "日本語のテキスト",
            "mixed é 日 a",
            &"x".repeat(100),
        ] {
            for max in 0..40 {
                let cut = clip(text, max);
                assert!(cut.len() <= max.max(MARK.len()), "{text:?} {max}: {cut:?}");
                if text.len() <= max {
                    assert_eq!(cut, text);
                } else {
                    assert!(cut.ends_with(MARK), "{cut:?}");
                    assert!(text.starts_with(cut.trim_end_matches(MARK)));
                }
            }
        }
    }
}
