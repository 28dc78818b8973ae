//! Commands as words, without a shell parser: how lint reads `command`/`args` and the
//! scripts of `sh -c` inside them. One splitter for every rule that looks into scripts.

/// A script as words: `;`, newlines, `&`, `|` and parentheses become `;` (a command
/// boundary), quotes around words are dropped.
pub fn words(text: &str) -> Vec<String> {
    text.replace(['\n', ';', '&', '|', '(', ')'], " ; ")
        .split_whitespace()
        .map(|w| w.trim_matches(|c| c == '"' || c == '\'').to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Whether an argv element is a shell's `-c` (`-c`, `-ec`, `-xc`, ...): the next one is a
/// script of its own.
fn is_script_flag(word: &str) -> bool {
    word.strip_prefix('-').is_some_and(|f| {
        f.ends_with('c') && f.len() <= 4 && f.chars().all(|c| c.is_ascii_alphabetic())
    })
}

/// The simple commands of a container's argv: a `sh -c` script and the command after
/// `--` start commands of their own.
pub fn commands(argv: &[String]) -> Vec<Vec<String>> {
    let mut text = String::new();
    for (i, word) in argv.iter().enumerate() {
        let script = i > 0 && is_script_flag(&argv[i - 1]);
        if word == "--" || script {
            text.push_str(" ; ");
        }
        if word != "--" {
            text.push_str(word);
        }
        text.push_str(if script { " ; " } else { " " });
    }
    words(&text)
        .split(|w| w == ";")
        .filter(|c| !c.is_empty())
        .map(<[String]>::to_vec)
        .collect()
}

/// Words that may come before a command's program without being it (`exec podsignal run`,
/// `if podsignal wait`, `timeout 60 podsignal wait`, `FOO=1 podsignal ready`).
fn is_prefix(word: &str) -> bool {
    matches!(
        word,
        "exec"
            | "command"
            | "env"
            | "nohup"
            | "time"
            | "timeout"
            | "if"
            | "then"
            | "else"
            | "elif"
            | "do"
            | "while"
            | "until"
            | "!"
            | "{"
    ) || word.starts_with(|c: char| c.is_ascii_digit())
        || word
            .split_once('=')
            .is_some_and(|(k, _)| !k.is_empty() && !k.starts_with('-'))
}

/// The program of a simple command and its arguments: the command less its prefixes.
pub fn program(command: &[String]) -> &[String] {
    let start = command
        .iter()
        .position(|w| !is_prefix(w))
        .unwrap_or(command.len());
    &command[start..]
}

/// A `sleep` argument in whole seconds (`20`, `1.5`, `20s`, `1m`, `2h`, `1d`, GNU's
/// suffixes); `None` for anything else (`$((20))`, `infinity`). Never overflows.
pub fn sleep_seconds(word: &str) -> Option<u64> {
    let (number, unit) = match word.char_indices().last()? {
        (i, c @ ('s' | 'm' | 'h' | 'd')) => (&word[..i], c),
        _ => (word, 's'),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        // More digits than u64 holds: as long as any grace period.
        whole.parse().unwrap_or(u64::MAX)
    };
    let seconds = whole.saturating_mul(match unit {
        'm' => 60,
        'h' => 3600,
        'd' => 86400,
        _ => 1,
    });
    let partial = fraction.chars().any(|c| c != '0');
    Some(if partial {
        seconds.saturating_add(1)
    } else {
        seconds
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn scripts_and_the_command_after_dashes_are_commands_of_their_own() {
        let cmds = commands(&argv(&[
            "podsignal",
            "run",
            "--name=x",
            "--",
            "sh",
            "-ec",
            "export A=$(cat f)\nexec podsignal run --name=p -- /p",
        ]));
        let programs: Vec<&str> = cmds
            .iter()
            .filter_map(|c| program(c).first().map(String::as_str))
            .collect();
        assert_eq!(programs, ["podsignal", "sh", "export", "cat", "podsignal"]);
        assert_eq!(program(&cmds[4])[1], "run");
    }

    #[test]
    fn sleeps_are_read_with_units_and_never_overflow() {
        assert_eq!(sleep_seconds("20"), Some(20));
        assert_eq!(sleep_seconds("1m"), Some(60));
        assert_eq!(sleep_seconds("0.5"), Some(1));
        assert_eq!(sleep_seconds("2.0s"), Some(2));
        assert_eq!(sleep_seconds("18446744073709551615"), Some(u64::MAX));
        assert_eq!(sleep_seconds("99999999999999999999999d"), Some(u64::MAX));
        assert_eq!(sleep_seconds("$((20))"), None);
        assert_eq!(sleep_seconds("s"), None);
        assert_eq!(sleep_seconds("infinity"), None);
    }
}
