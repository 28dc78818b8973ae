//! `podsignal lock NAME -- CMD`.

use podsignal_client::{Coordinator, LockHold, Scope, Wait};

use super::hold::{self, Holding};
use crate::cli::LockArgs;
use crate::exit::{Exit, ExitCode};
use crate::signals::SignalStream;

pub async fn lock<C: Coordinator>(
    c: &C,
    args: LockArgs,
    mut signals: SignalStream,
) -> anyhow::Result<ExitCode> {
    let wait = if args.no_wait {
        Wait::TryOnce
    } else {
        args.timeout.into()
    };
    let held = tokio::select! {
        held = c.acquire(Scope::Lock, &args.name, wait) => held?,
        signo = signals.termination() => {
            return Err(Exit::with(ExitCode::from_signal(signo), format!("stopped by {} while waiting for lock {}", crate::signals::name(signo), args.name)));
        }
    };
    tracing::info!(
        "acquired lock {} with fencing token {}",
        args.name,
        held.token()
    );
    let env = vec![
        (
            "PODSIGNAL_FENCING_TOKEN".to_owned(),
            held.token().to_string(),
        ),
        ("PODSIGNAL_LOCK".to_owned(), args.name.to_string()),
    ];
    let how = Holding {
        what: format!("lock {}", args.name),
        command: &args.command,
        env,
        grace: args.grace,
    };
    hold::run_told(c, "lock", &args.name, held, how, &mut signals).await
}
