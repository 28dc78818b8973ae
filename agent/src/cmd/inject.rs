//! `podsignal inject`: manifests in, injected YAML (or a summary) out.

use crate::cli::InjectArgs;
use crate::exit::ExitCode;
use crate::inject::{self, Key, Options, settings};
use crate::manifest;

/// Reads every input, injects (or uninjects) every document, and writes them all, or
/// nothing if one is refused.
pub fn inject(args: InjectArgs) -> anyhow::Result<ExitCode> {
    let opts = options(&args).map_err(|m| crate::exit::usage(manifest::printable(&m)))?;
    let mut documents = manifest::read_inputs(&args.inputs)
        .map_err(|e| crate::exit::usage(manifest::printable(&e.to_string())))?;
    let mut changes = Vec::new();
    for doc in &mut documents {
        let done = if args.uninject {
            inject::uninject(doc)
        } else {
            inject::inject(doc, &opts)
        };
        changes.extend(done.map_err(|e| crate::exit::usage(manifest::printable(&e.to_string())))?);
    }
    if args.dry_run {
        let mut out = String::new();
        for c in &changes {
            out.push_str(&manifest::printable(&format!("{}: {}", c.target, c.what)));
            out.push('\n');
        }
        if changes.is_empty() {
            out.push_str("no workload found: nothing to inject\n");
        }
        manifest::write_stdout(&out)?;
        return Ok(ExitCode::SUCCESS);
    }
    for c in changes
        .iter()
        .filter(|c| !c.changed && c.what.starts_with("left as is"))
    {
        say!(
            "podsignal inject: {}",
            manifest::printable(&format!("{}: {}", c.target, c.what))
        );
    }
    if changes.is_empty() && !documents.is_empty() {
        say!(
            "podsignal inject: no workload (Pod, Deployment, Job, ...) in the input: written unchanged"
        );
    }
    let values: Vec<_> = documents.into_iter().map(|d| d.value).collect();
    manifest::write_stdout(&manifest::to_yaml(&values))?;
    Ok(ExitCode::SUCCESS)
}

fn options(args: &InjectArgs) -> Result<Options, String> {
    let mut opts = Options {
        image: args.image.clone(),
        sidecars: (!args.sidecar.is_empty()).then(|| args.sidecar.clone()),
        containers: (!args.containers.is_empty()).then(|| args.containers.clone()),
        job: args.job,
        native_sidecars: args.native_sidecar,
        ..Options::default()
    };
    let per_container = [
        (Key::WaitFor, &args.wait_for),
        (Key::ReadyWhen, &args.ready_when),
        (Key::ExitWith, &args.exit_with),
        (Key::StopAfter, &args.stop_after),
        (Key::Drain, &args.drain),
        (Key::Grace, &args.grace),
        (Key::ExitCode, &args.exit_code),
        (Key::Entrypoint, &args.entrypoint),
    ];
    for (key, values) in per_container {
        for value in values {
            let flag = key.as_str();
            let (container, v) = value
                .split_once('=')
                .ok_or_else(|| format!("--{flag} {value:?}: expected CONTAINER=VALUE"))?;
            let setting =
                settings::check(key, v).map_err(|e| format!("--{flag} {container}=...: {e}"))?;
            opts.settings.insert((container.to_string(), key), setting);
        }
    }
    Ok(opts)
}
