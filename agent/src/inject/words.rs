//! An entrypoint given on the command line or in an annotation: a JSON array
//! (`["nginx", "-g", "daemon off;"]`) or words with shell quoting (`nginx -g 'daemon off;'`).
//! No expansion of any kind: what is written is what runs.

/// Splits `text` into words.
pub fn split(text: &str) -> Result<Vec<String>, String> {
    let text = text.trim();
    if text.starts_with('[') {
        return serde_json::from_str::<Vec<String>>(text)
            .map_err(|e| format!("not a JSON array of strings: {e}"))
            .and_then(non_empty);
    }
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("unclosed ' quote".into()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err("unclosed \" quote".into()),
                        },
                        Some(c) => w.push(c),
                        None => return Err("unclosed \" quote".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err("a trailing \\ escapes nothing".into()),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    non_empty(words)
}

fn non_empty(words: Vec<String>) -> Result<Vec<String>, String> {
    if words.is_empty() {
        Err("an empty command".into())
    } else {
        Ok(words)
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn words_follow_shell_quoting_without_expansion() {
        assert_eq!(
            split("nginx -g 'daemon off;'"),
            Ok(vec!["nginx".into(), "-g".into(), "daemon off;".into()])
        );
        assert_eq!(
            split(r#"a "b \"c\" $X" d\ e ''"#),
            Ok(vec![
                "a".into(),
                r#"b "c" $X"#.into(),
                "d e".into(),
                "".into()
            ])
        );
        assert_eq!(
            split(r#"["/bin/app", "--x=1 2"]"#),
            Ok(vec!["/bin/app".into(), "--x=1 2".into()])
        );
        assert!(split("'open").is_err());
        assert!(split("  ").is_err());
        assert!(split("[1]").is_err());
    }
}
