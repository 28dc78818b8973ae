//! `podsignal install DEST`: copy this binary into a shared volume.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use anyhow::Context;

use crate::cli::InstallArgs;
use crate::exit::ExitCode;

pub fn install(args: InstallArgs) -> anyhow::Result<ExitCode> {
    let dest = if args.dest.is_dir() {
        args.dest.join("podsignal")
    } else {
        args.dest.clone()
    };
    let file_name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "podsignal".into());
    let tmp: PathBuf = dest.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    // /proc/self/exe is this very binary, even if its path was replaced or deleted since.
    let copied = std::fs::copy("/proc/self/exe", &tmp)
        .with_context(|| format!("cannot copy podsignal to {}", tmp.display()))
        .and_then(|_| {
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("cannot chmod {}", tmp.display()))
        })
        .and_then(|()| {
            std::fs::rename(&tmp, &dest)
                .with_context(|| format!("cannot rename into {}", dest.display()))
        });
    if copied.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    copied?;
    say!("installed {}", dest.display());
    Ok(ExitCode::SUCCESS)
}
