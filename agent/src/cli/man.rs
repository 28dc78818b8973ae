//! docs/man/*.1: man pages rendered from the clap definitions (clap_mangen, a
//! dev-dependency: the generator is not in the binary). `podsignal.1` for the command,
//! `podsignal-SUB.1` (and `podsignal-SUB-SUBSUB.1`) for each visible subcommand, as git
//! does. The test fails when a committed page differs from what the definitions render;
//! `UPDATE_GOLDEN=1 cargo test -p podsignal-agent --bin podsignal man_pages` rewrites them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::CommandFactory;

use super::Cli;

/// Every page, file name to roff text.
fn render_all() -> BTreeMap<String, String> {
    fn walk(cmd: &clap::Command, pages: &mut BTreeMap<String, String>) {
        let mut page = cmd.clone();
        if page.find_subcommand("help").is_some() {
            // clap's `help` subcommand is `--help` again: listed on no page, given none.
            page = page.mut_subcommand("help", |help| help.hide(true));
        }
        let man = clap_mangen::Man::new(page).manual("podsignal manual");
        let mut out = Vec::new();
        man.render(&mut out).expect("render to memory");
        pages.insert(
            man.get_filename(),
            String::from_utf8(out).expect("roff is UTF-8"),
        );
        for sub in cmd.get_subcommands() {
            // Hidden subcommands (`guard`) are internal.
            if !sub.is_hide_set() && sub.get_name() != "help" {
                walk(sub, pages);
            }
        }
    }
    let mut cmd = Cli::command();
    // Propagates the global options and names subcommands `podsignal-SUB`.
    cmd.build();
    let mut pages = BTreeMap::new();
    walk(&cmd, &mut pages);
    pages
}

fn man_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/man")
}

#[test]
fn man_pages_match_the_command_line() {
    let pages = render_all();
    assert!(pages.contains_key("podsignal.1"), "{:?}", pages.keys());
    assert!(pages.contains_key("podsignal-run.1"), "{:?}", pages.keys());
    assert!(
        pages.contains_key("podsignal-phase-wait.1"),
        "{:?}",
        pages.keys()
    );
    assert!(
        !pages
            .keys()
            .any(|p| p.contains("guard") || p.contains("help"))
    );
    let dir = man_dir();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(&dir).expect("create docs/man");
        for entry in std::fs::read_dir(&dir).expect("docs/man") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "1") {
                std::fs::remove_file(&path).expect("remove a stale page");
            }
        }
        for (name, text) in &pages {
            std::fs::write(dir.join(name), text).expect("write a page");
        }
    }
    let mut committed: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}: UPDATE_GOLDEN=1 writes it", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".1"))
        .collect();
    committed.sort();
    let rendered: Vec<String> = pages.keys().cloned().collect();
    assert_eq!(
        committed, rendered,
        "docs/man/ has other pages than the subcommands: rerun with UPDATE_GOLDEN=1"
    );
    for (name, text) in &pages {
        let on_disk = std::fs::read_to_string(dir.join(name)).expect("read a page");
        assert!(
            &on_disk == text,
            "docs/man/{name} is out of date with the command line: rerun with UPDATE_GOLDEN=1 \
             cargo test -p podsignal-agent --bin podsignal man_pages"
        );
    }
}
