//! The one signal path: which signals are caught, and the thread that turns them into a
//! stream.
//!
//! Every subcommand that must act on a signal (`run`, `lock`, `leader`, `ready --hold`,
//! `event watch`, `agent`) installs [`SignalStream`] first thing in `main`, before anything
//! else happens, and reads every signal from it for its whole life: while it waits for a
//! lock, while its command runs (forwarding), while it stops. There is no second handler to
//! swallow a signal between two phases, and a signal that arrives during start-up waits in
//! the stream instead of being lost.

use signal_hook::consts::*;
use tokio::sync::mpsc;

const PWR: i32 = rustix::process::Signal::POWER.as_raw();
const STKFLT: i32 = rustix::process::Signal::STKFLT.as_raw();

/// Every catchable signal forwarded to a child, except SIGCHLD (the reaper's), SIGPIPE,
/// and the synchronous faults (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS).
pub const FORWARDED: [i32; 20] = [
    SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGURG, SIGALRM, SIGVTALRM,
    SIGPROF, SIGIO, PWR, SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU, SIGXCPU, SIGXFSZ, STKFLT,
];

/// True for the signals that start a graceful shutdown (drain, stop-after, grace) by default;
/// `run --stop-on` chooses its own.
pub fn is_termination(signo: i32) -> bool {
    DEFAULT_STOP_ON.contains(&signo)
}

/// The signals that stop `run` gracefully unless `--stop-on` says otherwise.
pub const DEFAULT_STOP_ON: [i32; 2] = [SIGTERM, SIGINT];

/// Signals as they arrive. Dropping it restores nothing (the process is ending).
#[derive(Debug)]
pub struct SignalStream {
    rx: mpsc::UnboundedReceiver<i32>,
}

impl SignalStream {
    /// Installs handlers for [`FORWARDED`] and starts the thread feeding the stream.
    pub fn install() -> std::io::Result<SignalStream> {
        let mut signals = signal_hook::iterator::Signals::new(FORWARDED)?;
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("podsignal-signals".into())
            .spawn(move || {
                for signo in signals.forever() {
                    if tx.send(signo).is_err() {
                        return;
                    }
                }
            })?;
        Ok(SignalStream { rx })
    }

    /// The next signal.
    pub async fn recv(&mut self) -> Option<i32> {
        self.rx.recv().await
    }

    /// The next SIGTERM or SIGINT; other signals are dropped (logged), for a process with no
    /// child to forward them to.
    pub async fn termination(&mut self) -> i32 {
        loop {
            match self.rx.recv().await {
                Some(s) if is_termination(s) => return s,
                Some(s) => tracing::debug!("ignoring {}", name(s)),
                None => return std::future::pending().await,
            }
        }
    }
}

/// The name of a signal, e.g. `SIGTERM`.
pub fn name(signo: i32) -> String {
    signal_hook::low_level::signal_name(signo)
        .map_or_else(|| format!("signal {signo}"), str::to_owned)
}

/// Parses `TERM`, `SIGTERM` or `15`.
pub fn parse(s: &str) -> Result<i32, String> {
    if let Ok(n) = s.parse::<i32>() {
        return rustix::process::Signal::from_named_raw(n)
            .map(|_| n)
            .ok_or_else(|| format!("{n} is not a signal number"));
    }
    let upper = s.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    (1..65)
        .find(|n| signal_hook::low_level::signal_name(*n) == Some(full.as_str()))
        .ok_or_else(|| format!("unknown signal {s:?} (e.g. TERM, INT, QUIT, 15)"))
}

/// Parses a signal that the signal stream catches ([`FORWARDED`]): a stop signal must reach
/// `run` as a signal it can act on (SIGKILL and SIGSTOP cannot be caught; SIGCHLD is the
/// reaper's).
pub fn parse_caught(s: &str) -> Result<i32, String> {
    let signo = parse(s)?;
    if FORWARDED.contains(&signo) {
        return Ok(signo);
    }
    Err(format!(
        "{} is not a signal podsignal catches (SIGKILL and SIGSTOP cannot be caught; SIGCHLD, \
         SIGPIPE, the fault signals and real-time signals are not forwarded)",
        name(signo)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_numbers() {
        assert_eq!(parse("TERM"), Ok(SIGTERM));
        assert_eq!(parse("sigquit"), Ok(SIGQUIT));
        assert_eq!(parse("9"), Ok(SIGKILL));
        assert!(parse("NOPE").is_err());
        assert_eq!(name(SIGTERM), "SIGTERM");
    }

    #[test]
    fn only_caught_signals_can_stop() {
        assert_eq!(parse_caught("SIGQUIT"), Ok(SIGQUIT));
        assert_eq!(parse_caught("usr1"), Ok(SIGUSR1));
        let kill = parse_caught("KILL").unwrap_err();
        assert!(
            kill.starts_with("SIGKILL is not a signal podsignal catches"),
            "{kill}"
        );
        assert!(parse_caught("CHLD").is_err());
        assert!(parse_caught("NOPE").is_err());
    }
}
