//! `podsignal agent`: serve the shared directory over HTTP until SIGTERM/SIGINT.

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use podsignal_client::{Volume, VolumeOptions};
use tokio_util::sync::CancellationToken;

use crate::cli::{AccessArg, AgentArgs, GlobalOpts};
use crate::exit::{ExitCode, usage};
use crate::http::{self, AppState, Config, Listener};
use crate::signals::SignalStream;

/// Where `--listen` points.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ListenAddr {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

pub async fn agent(
    global: &GlobalOpts,
    args: AgentArgs,
    signals: SignalStream,
) -> anyhow::Result<ExitCode> {
    if global.agent.is_some() {
        return Err(usage(
            "agent serves the shared directory itself; --agent (PODSIGNAL_AGENT) makes no sense here",
        ));
    }
    let addr = parse_listen(&args.listen)?;
    let token = match &global.token_file {
        Some(path) if args.generate_token => Some(generate_token(path)?),
        Some(path) => Some(read_token(path)?),
        None => None,
    };
    if let ListenAddr::Tcp(a) = &addr
        && !a.ip().is_loopback()
    {
        if !args.allow_remote {
            return Err(usage(format!(
                "refusing to listen on {a}: not a loopback address (use --allow-remote with --token-file to serve beyond this pod's containers)"
            )));
        }
        if token.is_none() {
            return Err(usage(
                "--allow-remote needs --token-file: a remote listener without a token would let anyone take locks",
            ));
        }
    }
    let budget = http::Budget::of_this_process();
    let max_waiters = args.max_waiters.unwrap_or(budget.waiters);
    // Callers choose lock names, and a blocking wait's thread lives until its lock is free:
    // --max-waiters bounds those threads too.
    let options = VolumeOptions {
        max_lock_waits: Some(max_waiters),
        ..crate::transport::volume_options(global, None)
    };
    let volume = Volume::open(&global.dir, options).await?;
    let config = Config {
        max_body: args.max_body,
        max_connections: args.max_connections.unwrap_or(budget.connections).max(1),
        header_timeout: args
            .header_timeout
            .max(std::time::Duration::from_millis(10)),
        max_waiters,
        max_streams: args.max_streams,
        max_wait: args.max_wait,
        request_timeout: args.request_timeout,
        heartbeat: args.heartbeat,
        token,
        check_host: !args.allow_remote,
    };
    let listener = bind(&addr, global.access).await?;
    let shutdown = CancellationToken::new();
    // The state holds the agent's own token: `POST /quitquitquit` stops the agent with it.
    let state = AppState::new(volume, config, shutdown.clone());
    tokio::spawn(watch_signals(signals, shutdown.clone()));
    tracing::info!(
        "serving {} on {} (token: {})",
        global.dir.display(),
        args.listen,
        if global.token_file.is_some() {
            "required"
        } else {
            "none"
        }
    );
    let server = http::run(listener, state.clone(), shutdown.child_token());
    let drain = async {
        shutdown.cancelled().await;
        tokio::time::sleep(args.drain_timeout).await;
    };
    let result = tokio::select! {
        r = server => r.context("serving HTTP"),
        () = drain => {
            tracing::warn!("connections still open {} after shutdown began; exiting anyway", podsignal_proto::format_duration(args.drain_timeout));
            state.release_all();
            Ok(())
        }
    };
    if let ListenAddr::Unix(path) = &addr {
        let _ = std::fs::remove_file(path);
    }
    result?;
    tracing::info!("agent stopped");
    Ok(ExitCode::SUCCESS)
}

/// The first SIGTERM/SIGINT starts a graceful shutdown; a second one exits at once.
async fn watch_signals(mut signals: SignalStream, shutdown: CancellationToken) {
    let signo = signals.termination().await;
    tracing::info!(
        "{}: shutting down (a second signal exits at once)",
        crate::signals::name(signo)
    );
    shutdown.cancel();
    let signo = signals.termination().await;
    say!(
        "podsignal: {} again: exiting without draining",
        crate::signals::name(signo)
    );
    std::process::exit(i32::from(ExitCode::from_signal(signo).0));
}

fn parse_listen(s: &str) -> anyhow::Result<ListenAddr> {
    if let Some(path) = s.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(usage(
                "--listen unix: needs a path, e.g. unix:/run/podsignal/agent.sock",
            ));
        }
        return Ok(ListenAddr::Unix(PathBuf::from(path)));
    }
    let s = match s.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}"),
        None => s.to_owned(),
    };
    s.parse().map(ListenAddr::Tcp).map_err(|e| {
        usage(format!(
            "--listen {s:?}: expected HOST:PORT (an IP address) or unix:PATH: {e}"
        ))
    })
}

async fn bind(addr: &ListenAddr, access: AccessArg) -> anyhow::Result<Listener> {
    match addr {
        ListenAddr::Tcp(a) => Ok(Listener::Tcp(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("cannot listen on {a}"))?,
        )),
        ListenAddr::Unix(path) => {
            remove_stale_socket(path).await?;
            let listener = tokio::net::UnixListener::bind(path)
                .with_context(|| format!("cannot listen on {}", path.display()))?;
            // Connecting needs write permission on the socket: its mode is the access control.
            let mode = socket_mode(access);
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("cannot chmod {} to {mode:o}", path.display()))?;
            Ok(Listener::Unix(listener))
        }
    }
}

/// The unix socket's mode for `--access`: who may connect (write permission) to the agent.
fn socket_mode(access: AccessArg) -> u32 {
    match access {
        AccessArg::Owner => 0o600,
        AccessArg::Group => 0o660,
        AccessArg::All => 0o666,
    }
}

/// Removes a socket left by an agent that died; refuses if an agent still answers on it.
async fn remove_stale_socket(path: &Path) -> anyhow::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        bail!(
            "{} exists and is not a socket; refusing to replace it",
            path.display()
        );
    }
    if tokio::net::UnixStream::connect(path).await.is_ok() {
        bail!("{}: another agent is listening there", path.display());
    }
    std::fs::remove_file(path)
        .with_context(|| format!("cannot remove stale socket {}", path.display()))
}

/// Reads a bearer token: the file's contents, trimmed; never logged. A file that is missing
/// or holds no token is bad input (exit 2), found before anything is served or sent.
pub fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(usage(format!(
                "token file {} does not exist (`podsignal agent --token-file {} --generate-token` creates it)",
                path.display(),
                path.display()
            )));
        }
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read token file {}", path.display()));
        }
    };
    let token = text.trim();
    if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(usage(format!(
            "token file {} must hold one token with no spaces",
            path.display()
        )));
    }
    Ok(token.to_owned())
}

/// Creates `path` with a random token, mode 0640, unless it exists; returns the token.
fn generate_token(path: &Path) -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    podsignal_client::identity::fill_random(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(path)
    {
        Ok(mut f) => {
            f.write_all(format!("{token}\n").as_bytes())
                .with_context(|| format!("cannot write token file {}", path.display()))?;
            tracing::info!("created token file {}", path.display());
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_token(path),
        Err(e) => Err(e).with_context(|| format!("cannot create token file {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_parse() {
        assert_eq!(
            parse_listen("127.0.0.1:7781").unwrap(),
            ListenAddr::Tcp("127.0.0.1:7781".parse().unwrap())
        );
        assert_eq!(
            parse_listen("localhost:9").unwrap(),
            ListenAddr::Tcp("127.0.0.1:9".parse().unwrap())
        );
        assert_eq!(
            parse_listen("unix:/run/a.sock").unwrap(),
            ListenAddr::Unix("/run/a.sock".into())
        );
        assert!(parse_listen("unix:").is_err());
        assert!(parse_listen("nonsense").is_err());
    }

    #[test]
    fn generated_tokens_are_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let t1 = generate_token(&path).unwrap();
        assert_eq!(t1.len(), 64);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o007, 0, "token file is world-accessible: {mode:o}");
        assert_eq!(generate_token(&path).unwrap(), t1);
        assert_eq!(read_token(&path).unwrap(), t1);
    }
}
