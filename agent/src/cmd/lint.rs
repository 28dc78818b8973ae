//! `podsignal lint`: manifests in, findings out.

use crate::cli::{LintArgs, LintFormat};
use crate::exit::ExitCode;
use crate::lint::{self, report};
use crate::manifest;

/// Lints every input: findings on stdout (plain, JSON or SARIF), with plain a one-line
/// summary on stderr; exit 1 when one is at or above `--fail-on`, 2 on bad input.
pub fn lint(args: LintArgs) -> anyhow::Result<ExitCode> {
    if args.list_rules {
        manifest::write_stdout(&report::rules_list())?;
        return Ok(ExitCode::SUCCESS);
    }
    let documents = manifest::read_inputs(&args.inputs)
        .map_err(|e| crate::exit::usage(manifest::printable(&e.to_string())))?;
    let findings =
        lint::lint(&documents).map_err(|m| crate::exit::usage(manifest::printable(&m)))?;
    let out = match args.format {
        LintFormat::Plain => report::plain(&findings),
        LintFormat::Json => report::json(&findings),
        LintFormat::Sarif => report::sarif(&findings),
    };
    manifest::write_stdout(&out)?;
    if args.format == LintFormat::Plain {
        say!("{}", report::summary(&findings, documents.len()));
    }
    let fails = findings.iter().any(|f| f.rule.severity >= args.fail_on);
    Ok(if fails {
        ExitCode::ERROR
    } else {
        ExitCode::SUCCESS
    })
}
