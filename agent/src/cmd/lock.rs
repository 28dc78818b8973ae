//! `podsignal lock NAME -- CMD`.

use podsignal_client::Client;

use crate::child::{self, ChildSpec};
use crate::cli::LockArgs;
use crate::exit::{Exit, ExitCode};

pub async fn lock(volume: &Client, args: LockArgs) -> anyhow::Result<ExitCode> {
    let acquire = async {
        if args.no_wait {
            volume.try_lock(&args.name).await
        } else {
            volume.lock(&args.name, args.timeout).await
        }
    };
    let guard = tokio::select! {
        guard = acquire => guard?,
        signo = super::termination_signal() => {
            let signo = signo?;
            return Err(Exit::with(ExitCode::from_signal(signo), format!("stopped by signal {signo} while waiting for lock {}", args.name)));
        }
    };
    tracing::info!(
        "acquired lock {} with fencing token {}",
        args.name,
        guard.token()
    );
    let env = vec![
        (
            "PODSIGNAL_FENCING_TOKEN".to_owned(),
            guard.token().to_string(),
        ),
        ("PODSIGNAL_LOCK".to_owned(), args.name.to_string()),
    ];
    let run = child::run_forwarding(ChildSpec {
        argv: &args.command,
        env,
        inherit: guard.file(),
    });
    let code = super::run_while_held(run, guard.lost(), &format!("lock {}", args.name)).await?;
    drop(guard);
    Ok(code)
}
