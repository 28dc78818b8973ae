//! What the operator reads matches the binary: every subcommand's `--help` teaches with an
//! example, every `PODSIGNAL_*` variable in the code is in docs/cli.md's environment table
//! (and nothing else is), the example pods use only images examples/README.md names, and
//! `podsignal completions SHELL` prints a script the shell accepts. (The man pages in
//! docs/man/ are compared with the clap definitions by a unit test in agent/src/cli/man.rs.)

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;
use common::{stderr, stdout, workspace_root};

/// `podsignal ARGS` with no podsignal environment, captured.
fn podsignal(args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_podsignal"));
    c.args(args).stdin(Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PODSIGNAL_") {
            c.env_remove(k);
        }
    }
    c.output().expect("run podsignal")
}

fn ok(args: &[&str]) -> String {
    let out = podsignal(args);
    assert!(
        out.status.success(),
        "podsignal {args:?}: {:?}: {}",
        out.status,
        stderr(&out)
    );
    stdout(&out)
}

/// The subcommands a `--help` lists under "Commands:" (clap's own `help` left out).
fn subcommands_in(help: &str) -> Vec<String> {
    let Some(list) = help.split("\nCommands:\n").nth(1) else {
        return vec![];
    };
    list.lines()
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

/// Every visible subcommand path, nested ones included (`event publish`, `phase wait`).
fn every_subcommand() -> Vec<Vec<String>> {
    let mut found = vec![];
    let mut todo: Vec<Vec<String>> = vec![vec![]];
    while let Some(path) = todo.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        for sub in subcommands_in(&ok(&args)) {
            let mut p = path.clone();
            p.push(sub);
            found.push(p.clone());
            todo.push(p);
        }
    }
    found.sort();
    found
}

#[test]
fn every_subcommand_help_has_an_example() {
    let all = every_subcommand();
    assert!(all.len() >= 20, "too few subcommands found: {all:?}");
    let mut missing = vec![];
    for path in &all {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = ok(&args);
        let wanted = format!("$ podsignal {}", path.join(" "));
        if !help.lines().any(|l| l.trim_start().starts_with(&wanted)) {
            missing.push(path.join(" "));
        }
    }
    assert!(
        missing.is_empty(),
        "no `$ podsignal ...` example of the command itself in --help: {missing:?}"
    );
}

#[test]
fn wait_help_offers_no_https() {
    // https:// is refused (no TLS in this build): the help must not offer it.
    let help = ok(&["wait", "--help"]);
    assert!(
        !help.contains("http(s)") && !help.contains("https://..."),
        "{help}"
    );
    let out = podsignal(&["wait", "https://127.0.0.1:1/", "--timeout", "1ms"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("https:// is not supported"));
}

/// Every `PODSIGNAL_[A-Z_]+` in `text`.
fn env_names(text: &str, into: &mut BTreeSet<String>) {
    let mut rest = text;
    while let Some(at) = rest.find("PODSIGNAL_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let name = tail[..end].trim_end_matches('_');
        if name.len() > "PODSIGNAL_".len() {
            into.insert(name.to_owned());
        }
        rest = &tail[end..];
    }
}

fn rust_sources(dir: &Path, into: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_sources(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// The `PODSIGNAL_*` names in the first column of docs/cli.md's "## Environment" tables.
fn documented_env() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(workspace_root().join("docs/cli.md")).expect("docs/cli.md");
    let section = doc
        .split("\n## Environment\n")
        .nth(1)
        .expect("docs/cli.md has a `## Environment` section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut names = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let first = row.split('|').nth(1).unwrap_or("");
        env_names(first, &mut names);
    }
    names
}

#[test]
fn every_env_var_in_the_code_is_in_the_environment_table() {
    // The shipped crates: what the binary and the client library read or export.
    let root = workspace_root();
    let mut files = vec![];
    for krate in ["agent/src", "client/src", "proto/src"] {
        rust_sources(&root.join(krate), &mut files);
    }
    let mut in_code = BTreeSet::new();
    for f in &files {
        env_names(&std::fs::read_to_string(f).expect("read"), &mut in_code);
    }
    assert!(in_code.len() >= 15, "{in_code:?}");
    let documented = documented_env();
    let undocumented: Vec<_> = in_code.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&in_code).collect();
    assert!(
        undocumented.is_empty(),
        "in the code but not in docs/cli.md's environment table: {undocumented:?}"
    );
    assert!(
        stale.is_empty(),
        "in docs/cli.md's environment table but nowhere in the code: {stale:?}"
    );
}

#[test]
fn example_pods_use_only_the_images_the_examples_readme_names() {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("examples/README.md")).expect("README");
    let mut images = BTreeSet::new();
    for dir in std::fs::read_dir(root.join("examples")).expect("examples") {
        let dir = dir.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir).expect("example dir") {
            let file = file.expect("entry").path();
            if file.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&file).expect("read");
            for line in text.lines() {
                if let Some(image) = line.trim().strip_prefix("image:") {
                    images.insert(image.trim().trim_matches('"').to_owned());
                }
            }
        }
    }
    assert!(images.len() >= 2, "{images:?}");
    let unnamed: Vec<_> = images
        .iter()
        .filter(|i| !readme.contains(&format!("`{i}`")))
        .collect();
    assert!(
        unnamed.is_empty(),
        "examples/README.md does not name these images the pods use: {unnamed:?}"
    );
}

// ---- shell completions, from the real binary ----

fn top_level_subcommands() -> Vec<String> {
    let subs = subcommands_in(&ok(&["--help"]));
    assert!(subs.len() >= 15, "{subs:?}");
    subs
}

fn completions(shell: &str) -> String {
    let script = ok(&["completions", shell]);
    assert!(!script.trim().is_empty(), "{shell}: empty");
    for sub in top_level_subcommands() {
        assert!(script.contains(&sub), "{shell} completions lack {sub}");
    }
    assert!(
        !script.contains("guard"),
        "{shell}: the internal guard subcommand is completed"
    );
    script
}

/// Whether `tool` can be run at all (zsh and fish are optional: checked where installed).
fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `shell ARGS FILE` on the script and expects exit 0.
fn shell_accepts(shell: &str, args: &[&str], script: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("completion");
    std::fs::write(&file, script).expect("write");
    let out = Command::new(shell)
        .args(args)
        .arg(&file)
        .output()
        .expect("run shell");
    assert!(
        out.status.success(),
        "{shell} {args:?} rejects the script: {}",
        stderr(&out)
    );
}

#[test]
fn bash_completions_parse_and_complete_subcommands() {
    common::require_tool("bash", "--version");
    let script = completions("bash");
    shell_accepts("bash", &["-n"], &script);
    // Loaded into a real bash, the function completes `podsignal ph` to `phase`.
    let probe = format!(
        "{script}\nCOMP_WORDS=(podsignal ph); COMP_CWORD=1; COMP_LINE='podsignal ph'; \
         COMP_POINT=${{#COMP_LINE}}; _podsignal podsignal ph podsignal; echo \"${{COMPREPLY[@]}}\""
    );
    let out = Command::new("bash")
        .args(["--norc", "-c", &probe])
        .output()
        .expect("bash");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "phase", "{}", stderr(&out));
}

#[test]
fn zsh_completions_name_every_subcommand() {
    let script = completions("zsh");
    assert!(script.starts_with("#compdef podsignal"), "{script}");
    if installed("zsh") {
        shell_accepts("zsh", &["-n"], &script);
    }
}

#[test]
fn fish_completions_name_every_subcommand() {
    let script = completions("fish");
    assert!(script.contains("complete -c podsignal"), "{script}");
    if installed("fish") {
        shell_accepts("fish", &["--no-execute"], &script);
    }
}

#[test]
fn completions_for_an_unknown_shell_is_a_usage_error() {
    let out = podsignal(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
}

#[test]
fn debug_readme_mounts_the_pods_shared_volume() {
    use k8s_openapi::api::core::v1::{Pod, VolumeMount};
    let root = workspace_root();
    let readme =
        std::fs::read_to_string(root.join("examples/debug/README.md")).expect("debug README");
    // The partial container spec the README writes for `kubectl debug --custom`.
    let custom = readme
        .split("cat > podsignal-mount.yaml <<'EOF'\n")
        .nth(1)
        .and_then(|rest| rest.split("\nEOF\n").next())
        .expect("the README writes podsignal-mount.yaml with a heredoc");
    assert!(readme.contains("--custom=podsignal-mount.yaml -- podsignal status"));
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Partial {
        volume_mounts: Vec<VolumeMount>,
    }
    let partial: Partial = serde_saphyr::from_str(custom).expect("a partial container spec");
    let pod: Pod = serde_saphyr::from_str(
        &std::fs::read_to_string(root.join("examples/debug/pod.yaml")).expect("pod.yaml"),
    )
    .expect("pod.yaml is a Pod");
    let spec = pod.spec.expect("spec");
    let volumes: Vec<&str> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    let mounted: Vec<(&str, &str)> = spec
        .containers
        .iter()
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .map(|m| (m.name.as_str(), m.mount_path.as_str()))
        .collect();
    for m in &partial.volume_mounts {
        assert!(
            volumes.contains(&m.name.as_str()),
            "{} is not a volume of the pod",
            m.name
        );
        assert!(
            mounted.contains(&(m.name.as_str(), m.mount_path.as_str())),
            "the containers mount {} elsewhere than {}",
            m.name,
            m.mount_path
        );
    }
    assert_eq!(partial.volume_mounts.len(), 1);
}
