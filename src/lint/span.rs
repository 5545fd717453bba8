//! Spans of text inside one statement the raw parser already accepted: where
//! a CHECK's expression, a USING clause or an index definition begins and
//! ends. PostgreSQL's parse nodes carry start locations only; the ends are
//! found here by walking tokens the way PostgreSQL's scanner separates them
//! (quoted identifiers, strings with their escapes, dollar quotes, nested
//! comments), so a parenthesis inside a string is never counted. Pure.

/// Past whitespace and comments (`--` to end of line, nested `/* */`).
pub fn skip_trivia(text: &str, mut pos: usize) -> usize {
    let b = text.as_bytes();
    loop {
        while pos < b.len() && b[pos].is_ascii_whitespace() {
            pos += 1;
        }
        if b[pos..].starts_with(b"--") {
            while pos < b.len() && b[pos] != b'\n' {
                pos += 1;
            }
        } else if b[pos..].starts_with(b"/*") {
            let mut depth = 0;
            while pos < b.len() {
                if b[pos..].starts_with(b"/*") {
                    depth += 1;
                    pos += 2;
                } else if b[pos..].starts_with(b"*/") {
                    depth -= 1;
                    pos += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    pos += 1;
                }
            }
        } else {
            return pos.min(b.len());
        }
    }
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// The token starting at or after `pos`: (start, end), or None at the end.
pub fn next_token(text: &str, pos: usize) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let start = skip_trivia(text, pos);
    if start >= b.len() {
        return None;
    }
    let c = b[start];
    let end = if c == b'"' {
        quoted_end(b, start, b'"', false)
    } else if c == b'\'' {
        quoted_end(b, start, b'\'', false)
    } else if (c == b'E' || c == b'e') && b.get(start + 1) == Some(&b'\'') {
        quoted_end(b, start + 1, b'\'', true)
    } else if c == b'$' {
        dollar_end(text, start).unwrap_or(start + 1)
    } else if is_ident_byte(c) {
        let mut e = start;
        while e < b.len() && is_ident_byte(b[e]) {
            e += 1;
        }
        e
    } else {
        start + 1
    };
    Some((start, end.min(b.len())))
}

fn quoted_end(b: &[u8], open: usize, q: u8, backslash: bool) -> usize {
    let mut i = open + 1;
    while i < b.len() {
        if backslash && b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == q {
            if b.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    b.len()
}

/// `$tag$ ... $tag$` (or a positional parameter `$1`, which is not a quote).
fn dollar_end(text: &str, start: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = start + 1;
    while i < b.len() && b[i] != b'$' && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80) {
        i += 1;
    }
    if i >= b.len() || b[i] != b'$' || b.get(start + 1).is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    let tag = &text[start..=i];
    text[i + 1..].find(tag).map(|p| i + 1 + p + tag.len()).or(Some(b.len()))
}

/// The inside of the first parenthesised group at or after `pos`, before `limit`.
pub fn parenthesised(text: &str, pos: usize, limit: usize) -> Option<(usize, usize)> {
    let mut at = pos;
    let mut open = None;
    let mut depth = 0;
    while let Some((s, e)) = next_token(text, at) {
        if s >= limit {
            break;
        }
        match &text[s..e] {
            "(" => {
                if depth == 0 && open.is_none() {
                    open = Some(e);
                }
                depth += 1;
            }
            ")" => {
                depth -= 1;
                if depth == 0 {
                    if let Some(o) = open {
                        return Some((o, s));
                    }
                }
            }
            _ => {}
        }
        at = e;
    }
    None
}

/// Past a possibly qualified, possibly quoted name (`a`, `s."T"`) at `pos`.
pub fn skip_name(text: &str, pos: usize) -> usize {
    let mut at = pos;
    loop {
        let Some((_, e)) = next_token(text, at) else { return at };
        at = e;
        match next_token(text, at) {
            Some((s2, e2)) if &text[s2..e2] == "." => at = e2,
            _ => return at,
        }
    }
}

/// The first token equal to `keyword` (case-insensitive) at parenthesis depth
/// 0 in `from..limit`: its (start, end).
pub fn find_keyword(text: &str, from: usize, limit: usize, keyword: &str) -> Option<(usize, usize)> {
    let mut at = from;
    let mut depth = 0i32;
    while let Some((s, e)) = next_token(text, at) {
        if s >= limit {
            return None;
        }
        let tok = &text[s..e];
        match tok {
            "(" => depth += 1,
            ")" => depth -= 1,
            _ if depth == 0 && tok.eq_ignore_ascii_case(keyword) => return Some((s, e)),
            _ => {}
        }
        at = e;
    }
    None
}

/// The end of the clause starting at `from`: the first comma at depth 0, or `limit`.
pub fn clause_end(text: &str, from: usize, limit: usize) -> usize {
    let mut at = from;
    let mut depth = 0i32;
    let mut last_end = from;
    while let Some((s, e)) = next_token(text, at) {
        if s >= limit {
            break;
        }
        match &text[s..e] {
            "(" => depth += 1,
            ")" => depth -= 1,
            "," | ";" if depth == 0 => return last_end,
            _ => {}
        }
        last_end = e;
        at = e;
    }
    last_end
}

/// 1-based line of byte offset `pos`.
pub fn line_of(text: &str, pos: usize) -> i32 {
    1 + text.as_bytes()[..pos.min(text.len())]
        .iter()
        .filter(|&&c| c == b'\n')
        .count() as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parentheses_inside_strings_and_comments_do_not_count() {
        let t = "CHECK (a <> ')' /* ( */ AND b = $x$)$x$ AND \"c)\" > 0) NOT VALID";
        let (s, e) = parenthesised(t, 0, t.len()).unwrap();
        assert_eq!(&t[s..e], "a <> ')' /* ( */ AND b = $x$)$x$ AND \"c)\" > 0");
    }

    #[test]
    fn names_keywords_and_clauses() {
        let t = "ON public.\"My T\" USING btree (a, (lower(b))) WHERE x = 'a,b'";
        let after = skip_name(t, 3);
        assert_eq!(t[after..].trim_start(), "USING btree (a, (lower(b))) WHERE x = 'a,b'");
        let (k, _) = find_keyword(t, 0, t.len(), "where").unwrap();
        assert_eq!(&t[k..], "WHERE x = 'a,b'");
        let u = "TYPE int USING a::int, ADD COLUMN b int";
        assert_eq!(&u[..clause_end(u, 0, u.len())], "TYPE int USING a::int");
        assert_eq!(skip_trivia("  -- c\n /* a /* b */ */ SELECT", 0), 24);
        assert_eq!(line_of("a\nb\nc", 4), 3);
        assert_eq!(next_token("E'it\\'s' x", 0), Some((0, 8)));
    }
}
