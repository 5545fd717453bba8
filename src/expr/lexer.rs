//! Column references measured in the expression's text as PostgreSQL's lexer
//! reads identifiers: the analysed tree gives where a reference starts, not
//! where it ends.

/// Length of the column reference starting `text`: `name`, `"Name"`,
/// `tbl.name` or `schema.tbl.name`, as the lexer reads identifiers.
pub fn column_ref_len(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = ident_len(b, 0)?;
    loop {
        let mut j = i;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if j < b.len() && b[j] == b'.' {
            j += 1;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            match ident_len(b, j) {
                Some(end) => i = end,
                None => return Some(i),
            }
        } else {
            return Some(i);
        }
    }
}

/// End of the identifier starting at `i`, if there is one.
fn ident_len(b: &[u8], i: usize) -> Option<usize> {
    if i >= b.len() {
        return None;
    }
    if b[i] == b'"' {
        let mut j = i + 1;
        while j < b.len() {
            if b[j] == b'"' {
                if j + 1 < b.len() && b[j + 1] == b'"' {
                    j += 2;
                    continue;
                }
                return Some(j + 1);
            }
            j += 1;
        }
        return None;
    }
    let start_ok = b[i].is_ascii_alphabetic() || b[i] == b'_' || b[i] >= 0x80;
    if !start_ok {
        return None;
    }
    let mut j = i + 1;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'$' || b[j] >= 0x80) {
        j += 1;
    }
    Some(j)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_references_are_measured_like_the_lexer() {
        assert_eq!(column_ref_len("amount::numeric"), Some(6));
        assert_eq!(column_ref_len("\"Big \"\"X\"\"\" + 1"), Some(11));
        assert_eq!(column_ref_len("users.amount * 2"), Some(12));
        assert_eq!(column_ref_len("public . users . amount)"), Some(23));
        assert_eq!(column_ref_len("prénom || 'x'"), Some(7));
        assert_eq!(column_ref_len("1 + a"), None);
        assert_eq!(column_ref_len("\"unterminated"), None);
    }
}
