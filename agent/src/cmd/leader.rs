//! `podsignal leader NAME -- CMD` and `podsignal leader show NAME`.

use podsignal_client::{Coordinator, LockHold, Name, Scope};

use super::hold::{self, Holding};
use crate::cli::{LeaderArgs, LeaderCommand};
use crate::exit::{Exit, ExitCode};
use crate::signals::SignalStream;

pub async fn leader<C: Coordinator>(
    c: &C,
    args: LeaderArgs,
    signals: Option<SignalStream>,
) -> anyhow::Result<ExitCode> {
    if let Some(LeaderCommand::Show { name, json }) = args.show {
        return show(c, &name, json).await;
    }
    let mut signals = super::stream(signals)?;
    let name = args
        .name
        .ok_or_else(|| crate::exit::usage("leader needs a NAME"))?;
    let held = tokio::select! {
        l = c.acquire(Scope::Leader, &name, args.timeout.into()) => l?,
        signo = signals.termination() => {
            return Err(Exit::with(ExitCode::from_signal(signo), format!("stopped by {} while campaigning for {name}", crate::signals::name(signo))));
        }
    };
    tracing::info!("leading {name} with fencing token {}", held.token());
    let env = vec![
        (
            "PODSIGNAL_FENCING_TOKEN".to_owned(),
            held.token().to_string(),
        ),
        ("PODSIGNAL_LEADER".to_owned(), name.to_string()),
    ];
    let how = Holding {
        what: format!("leadership of {name}"),
        command: &args.command,
        env,
        grace: args.grace,
    };
    hold::run_told(c, "leader", &name, held, how, &mut signals).await
}

async fn show<C: Coordinator>(c: &C, name: &Name, json: bool) -> anyhow::Result<ExitCode> {
    let status = c.lock_status(Scope::Leader, name).await?;
    let leader = status.current_holder();
    if let Some(problem) = &status.problem {
        say!(
            "podsignal: {name}: {}",
            crate::cmd::status::terminal_safe(problem)
        );
    }
    if json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({ "name": name, "leader": leader }))?
        );
    } else if let Some(h) = &leader {
        println!(
            "{name}: led by {}, fencing token {}",
            crate::cmd::status::terminal_safe(&h.holder.describe()),
            h.token
        );
    }
    match leader {
        Some(_) => Ok(ExitCode::SUCCESS),
        None => Err(Exit::with(
            ExitCode::ERROR,
            if json {
                String::new()
            } else {
                format!("{name}: no leader")
            },
        )),
    }
}
