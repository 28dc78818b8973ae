//! `podsignal leader NAME -- CMD` and `podsignal leader show NAME`.

use podsignal_client::Client;

use crate::child::{self, ChildSpec};
use crate::cli::{LeaderArgs, LeaderCommand};
use crate::exit::{Exit, ExitCode};

pub async fn leader(volume: &Client, args: LeaderArgs) -> anyhow::Result<ExitCode> {
    if let Some(LeaderCommand::Show { name, json }) = args.show {
        return show(volume, &name, json).await;
    }
    let name = args
        .name
        .ok_or_else(|| Exit::with(ExitCode::USAGE, "leader needs a NAME"))?;
    let leadership = tokio::select! {
        l = volume.campaign(&name, args.timeout) => l?,
        signo = super::termination_signal() => {
            let signo = signo?;
            return Err(Exit::with(ExitCode::from_signal(signo), format!("stopped by signal {signo} while campaigning for {name}")));
        }
    };
    tracing::info!("leading {name} with fencing token {}", leadership.token());
    let env = vec![
        (
            "PODSIGNAL_FENCING_TOKEN".to_owned(),
            leadership.token().to_string(),
        ),
        ("PODSIGNAL_LEADER".to_owned(), name.to_string()),
    ];
    let run = child::run_forwarding(ChildSpec {
        argv: &args.command,
        env,
        inherit: leadership.file(),
    });
    let code =
        super::run_while_held(run, leadership.lost(), &format!("leadership of {name}")).await?;
    leadership.release();
    Ok(code)
}

async fn show(
    volume: &Client,
    name: &podsignal_client::Name,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let leader = volume.leader(name).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({ "name": name, "leader": leader }))?
        );
    } else if let Some(h) = &leader {
        println!(
            "{name}: led by {} (pid {} on {}), fencing token {}",
            h.holder.label(),
            h.holder.pid,
            h.holder.hostname,
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
