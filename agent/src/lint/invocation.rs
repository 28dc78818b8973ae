//! A `podsignal` command line as words: `podsignal [GLOBAL] SUBCOMMAND [FLAGS] [NAMES] [-- CMD]`.
//! One flag parser for every subcommand lint reads (`run`, `stop`, `wait`, `ready`, `agent`).

use super::shell;

/// A parsed `podsignal` command line.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// The subcommand (`run`, `install`, `agent`, ...).
    pub subcommand: String,
    /// Every `--flag value` / `--flag=value` (bare flags have an empty value), in order.
    pub flags: Vec<(String, String)>,
    /// Words that are not flags, after the subcommand (`stop`'s and `ready`'s NAME,
    /// `wait`'s conditions), before or after the flags.
    pub positional: Vec<String>,
}

/// Flags of podsignal's subcommands that take no value.
const BARE_FLAGS: &[&str] = &[
    "any",
    "drain",
    "pgroup",
    "durable",
    "hold",
    "allow-remote",
    "wait",
    "json",
    "generate-token",
    "unready",
    "no-wait",
    "uninject",
    "reset",
    "dry-run",
    "job",
    "native-sidecar",
    "list-rules",
    "help",
    "version",
];

/// `podsignal` or a path ending in `/podsignal`.
pub fn is_podsignal_binary(word: &str) -> bool {
    word == "podsignal" || word.ends_with("/podsignal")
}

impl Invocation {
    /// Parses the words after the binary.
    pub fn parse(words: &[String]) -> Invocation {
        let mut inv = Invocation::default();
        let mut words = words.iter();
        while let Some(word) = words.next() {
            if word == "--" {
                break;
            }
            if let Some(flag) = word.strip_prefix("--") {
                let (name, value) = match flag.split_once('=') {
                    Some((n, v)) => (n.to_string(), v.to_string()),
                    None if BARE_FLAGS.contains(&flag) => (flag.to_string(), String::new()),
                    None => (flag.to_string(), words.next().cloned().unwrap_or_default()),
                };
                inv.flags.push((name, value));
            } else if word.starts_with('-') && word.len() > 1 {
                // A short flag (-h, -V): bare.
                inv.flags
                    .push((word.trim_start_matches('-').to_string(), String::new()));
            } else if inv.subcommand.is_empty() {
                inv.subcommand = word.clone();
            } else {
                inv.positional.push(word.clone());
            }
        }
        inv
    }

    /// Every `podsignal` command line in a container's argv: the argv itself when its
    /// program is podsignal, and each podsignal command of its `sh -c` scripts.
    pub fn all_in(argv: &[String]) -> Vec<Invocation> {
        shell::commands(argv)
            .iter()
            .map(|c| shell::program(c))
            .filter(|p| p.first().is_some_and(|w| is_podsignal_binary(w)))
            .map(|p| Invocation::parse(&p[1..]))
            .collect()
    }

    /// Every value of `--name` (repeated flags, comma lists split).
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.flags
            .iter()
            .filter(move |(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    /// The last value of `--name`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn flags_are_read_in_both_spellings() {
        let inv = Invocation::parse(&words(
            "--access group run --name app --wait-for=a,b --wait-for c --drain --grace 5s -- ./x --y",
        ));
        assert_eq!(inv.subcommand, "run");
        assert_eq!(inv.values("wait-for").collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(inv.value("access"), Some("group"));
        assert_eq!(inv.value("drain"), Some(""));
        assert_eq!(inv.value("grace"), Some("5s"));
        assert!(inv.positional.is_empty());
    }

    #[test]
    fn names_are_found_before_between_and_after_flags() {
        for line in [
            "stop --reason done --wait --timeout 30s proxy",
            "stop proxy --reason done --wait",
            "stop --wait proxy --timeout=30s",
        ] {
            let inv = Invocation::parse(&words(line));
            assert_eq!(inv.subcommand, "stop", "{line}");
            assert_eq!(inv.positional, ["proxy"], "{line}");
        }
    }

    #[test]
    fn podsignal_commands_are_found_in_scripts_by_position_only() {
        let argv: Vec<String> = [
            "/bin/sh",
            "-c",
            "mkdir -p /run/podsignal; export X=1\nexec /shared/podsignal run --name=proxy --ready-when=tcp:3128 -- /proxy; rc=$?; podsignal stop --wait proxy; exit $rc",
        ]
        .map(String::from)
        .to_vec();
        let found: Vec<(String, Vec<String>)> = Invocation::all_in(&argv)
            .into_iter()
            .map(|i| (i.subcommand, i.positional))
            .collect();
        assert_eq!(
            found,
            [
                ("run".to_string(), vec![]),
                ("stop".to_string(), vec!["proxy".to_string()])
            ]
        );
    }
}
