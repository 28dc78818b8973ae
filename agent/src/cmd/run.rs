//! `podsignal run [OPTIONS] -- CMD`: the container entrypoint. This module is the outline
//! (wait, spawn, supervise, record the exit); `supervisor/` does the supervising.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use podsignal_client::identity::now_ms;
use podsignal_client::{Coordinator, WaitMode};
use podsignal_proto::condition::Service;
use podsignal_proto::{Condition, FORMAT_VERSION, Name, ReadyProbe, TombstoneRecord};
use tokio::time::Instant;

use crate::child;
use crate::cli::{ExitCodePolicy, GlobalOpts, RunArgs};
use crate::condition::{self, ProbeTiming};
use crate::exit::{Exit, ExitCode};
use crate::reaper::Reaper;
use crate::signals::{self, SignalStream};
use crate::supervisor::notify::{self, NotifySocket};
use crate::supervisor::ready_fd::ReadyPipe;
use crate::supervisor::shutdown::{self, PreStop};
use crate::supervisor::termination_log;
use crate::supervisor::{self as sup, Plan};

/// Set to `1` to exec CMD directly, skipping everything `run` adds (it says what).
const DISABLED_ENV: &str = "PODSIGNAL_DISABLED";

/// `PODSIGNAL_DISABLED=1`: `run` execs CMD and does nothing else.
pub fn disabled() -> bool {
    std::env::var(DISABLED_ENV).is_ok_and(|v| v == "1")
}

/// How long the bookkeeping after the child exited (tombstone, exit event) may take when
/// nothing bounds it more tightly.
const EXIT_BOOKKEEPING: Duration = Duration::from_secs(5);

pub async fn run<C: Coordinator>(
    c: &C,
    global: &GlobalOpts,
    args: RunArgs,
    mut signals: SignalStream,
) -> anyhow::Result<ExitCode> {
    validate(&args)?;
    let reaper = Reaper::start()?;
    let timing = args.probe.timing(global.rescan)?;
    if let Some(name) = &args.name {
        // This container is running now: it has not exited, and earlier stop requests were
        // for an earlier run.
        c.starting(name).await?;
    }
    wait_for(c, &args, timing, &mut signals).await?;

    let plan = plan(&args, timing);
    if let (Some(name), None) = (&args.name, &args.ready_when) {
        tracing::info!(
            "{name} will be published ready once the command has started (no --ready-when; --ready-when never opts out)"
        );
    }
    let notify = match &plan.ready_when {
        Some(ReadyProbe::Notify) => Some(NotifySocket::bind(args.notify_socket.clone())?),
        _ => None,
    };
    let ready_pipe = match &plan.ready_when {
        Some(ReadyProbe::Fd(n)) => Some(ReadyPipe::new(*n)?),
        _ => None,
    };
    let mut env = Vec::new();
    if let Some(name) = &args.name {
        env.push(("PODSIGNAL_NAME".to_owned(), name.to_string()));
    }
    let mut argv = args.command.clone();
    if let Some(n) = &notify {
        env.push(("NOTIFY_SOCKET".to_owned(), n.env_value.clone()));
        if let Some(w) = args.watchdog {
            env.push(("WATCHDOG_USEC".to_owned(), w.as_micros().to_string()));
            argv = notify::through_watchdog_exec(&args.command);
        }
    }
    let started_ms = now_ms();
    let spawned = sup::spawn_child(&argv, env, &reaper, notify.as_ref(), ready_pipe.as_ref()).await;
    let child = match spawned {
        Ok(child) => child,
        Err(e) => {
            // Waiters on exit:NAME must learn that this container is done, even so.
            let code = crate::exit::code_of(&e);
            let why = format!("{e:#}");
            let exit = Exited {
                started_ms,
                code,
                status: None,
                why: &why,
                stopped: false,
            };
            record_exit(c, &args, &exit, Instant::now() + EXIT_BOOKKEEPING).await;
            return Err(e);
        }
    };
    let pid = child.pid().as_raw_nonzero().get();
    tracing::info!("started {} as pid {pid}", command_line(&args.command));
    let ready_fd = ready_pipe.map(ReadyPipe::watch).transpose()?;
    if let Some(name) = &args.name {
        // In the background, bounded: a neighbour holding the events lock must not delay
        // the supervision (signals, stop requests) that starts now.
        let data = serde_json::json!({
            "name": name, "pid": pid, "incarnation": podsignal_client::identity::incarnation(),
        });
        sup::spawn_bookkeeping(c, "start", data, sup::BOOKKEEPING_BOUND);
    }
    let mut outcome =
        sup::supervise(c, &plan, child, &mut signals, &reaper, notify, ready_fd).await?;
    // Stopped on purpose: leftovers get what remains of --grace; else a --grace of their own.
    let deadline = outcome.stop_deadline.map_or_else(
        || podsignal_client::deadline_after(Instant::now(), plan.grace),
        |d| d.max(Instant::now()),
    );
    crate::leftovers::stop(&reaper, deadline, outcome.group.take()).await;
    let bookkeeping = outcome
        .stop_deadline
        .map_or(Instant::now() + EXIT_BOOKKEEPING, |d| {
            d.max(Instant::now() + Duration::from_secs(1))
        });
    finish(c, &args, started_ms, &outcome, bookkeeping).await
}

fn validate(args: &RunArgs) -> anyhow::Result<()> {
    let usage = |m: &str| Err(crate::exit::usage(m));
    if args.ready_when.is_some() && args.name.is_none() {
        return usage("--ready-when needs --name (whose readiness to publish)");
    }
    if args.watchdog.is_some() && args.ready_when != Some(ReadyProbe::Notify) {
        return usage("--watchdog needs --ready-when notify");
    }
    if args.notify_socket.is_some() && args.ready_when != Some(ReadyProbe::Notify) {
        return usage("--notify-socket needs --ready-when notify");
    }
    if args.stable.is_some() && args.wait_for.is_empty() {
        return usage("--stable needs --wait-for (the conditions that must hold that long)");
    }
    if args.probe_interval.is_some() && args.ready_when.is_none() {
        return usage("--probe-interval needs --ready-when (the probe it repeats)");
    }
    if let Some(ReadyProbe::Fd(n)) = &args.ready_when {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        if limit.is_some_and(|l| u64::try_from(*n).unwrap_or(u64::MAX) >= l) {
            return usage(&format!(
                "--ready-when fd:{n}: descriptors go up to {} here (ulimit -n): take a smaller N, e.g. fd:3",
                limit.unwrap_or_default().saturating_sub(1)
            ));
        }
    }
    // A probe repeated for the container's whole life against a remote MySQL would get this
    // pod blocked: the server counts each one (a connection closed after its handshake)
    // toward max_connect_errors, 100 by default, for every host but loopback.
    if let Some(ReadyProbe::Check(Condition::Service(s))) = &args.ready_when
        && s.service == Service::Mysql
        && !s.target.is_local()
    {
        return usage(&format!(
            "--ready-when {s}: MySQL counts every probe from another host toward max_connect_errors (100 by default) and then blocks that host, this pod included; probe tcp:{}:{} or an HTTP health endpoint instead (--wait-for {s} is fine: it stops at the first answer)",
            s.target.host, s.target.port
        ));
    }
    if let Some(t) = args.stop_timeout.filter(|t| *t > args.grace) {
        return usage(&format!(
            "--stop-timeout {} is longer than --grace {} (the whole stop, SIGKILL included)",
            podsignal_proto::format_duration(t),
            podsignal_proto::format_duration(args.grace)
        ));
    }
    let mut all: Vec<Condition> = args.wait_for.clone();
    all.extend(args.exit_with.iter().cloned());
    all.extend(args.stop_after.iter().cloned());
    if let Some(ReadyProbe::Check(c)) = &args.ready_when {
        all.push(c.clone());
    }
    if let Some(h) = &args.pre_stop_http {
        all.push(Condition::Http(h.clone()));
    }
    condition::check_supported(&all)
}

fn plan(args: &RunArgs, timing: ProbeTiming) -> Plan {
    let drain = args.drain || args.drain_delay.is_some() || !args.drain_ports.is_empty();
    Plan {
        name: args.name.clone(),
        ready_when: ready_probe(args),
        probe_interval: args.probe_interval,
        exit_with: args.exit_with.clone(),
        stop_on: args.stop_on.clone(),
        stop_signal: args.stop_signal,
        grace: args.grace,
        stop_timeout: args
            .stop_timeout
            .unwrap_or_else(|| shutdown::default_stop_timeout(args.grace)),
        drain,
        on_term_phase: args.on_term_phase,
        pgroup: args.pgroup,
        pre_stop: PreStop {
            drain_delay: args.drain_delay,
            drain_ports: args.drain_ports.clone(),
            stop_after: args.stop_after.clone(),
            command: args.pre_stop.clone(),
            http: args.pre_stop_http.clone(),
        },
        timing,
        watchdog: args.watchdog,
    }
}

/// What publishes `--name`'s readiness: `--ready-when`, else `started` (Kubernetes' rule for
/// a container without a readinessProbe); nothing without `--name`, or with `never`.
fn ready_probe(args: &RunArgs) -> Option<ReadyProbe> {
    args.name.as_ref()?;
    match &args.ready_when {
        None => Some(ReadyProbe::Started),
        Some(ReadyProbe::Never) => None,
        Some(p) => Some(p.clone()),
    }
}

/// `--wait-for`, ended at once by a `--stop-on` signal N (128+N: 143 for SIGTERM).
async fn wait_for<C: Coordinator>(
    volume: &C,
    args: &RunArgs,
    timing: ProbeTiming,
    signals: &mut SignalStream,
) -> anyhow::Result<()> {
    if args.wait_for.is_empty() {
        return Ok(());
    }
    if let Some(name) = &args.name {
        // Who waits on whom, for the timeline: published in order before `start`.
        let data = serde_json::json!({
            "name": name, "for": join(&args.wait_for, if args.any { " or " } else { ", " }),
            "incarnation": podsignal_client::identity::incarnation(),
        });
        sup::spawn_bookkeeping(volume, "waiting", data, sup::BOOKKEEPING_BOUND);
    }
    let mode = if args.any {
        WaitMode::Any
    } else {
        WaitMode::All
    };
    let plan = condition::WaitPlan {
        mode,
        timeout: args.timeout,
        stable: args.stable,
        timing,
        reminders: Some(condition::Reminders::from_env()),
    };
    let waited = condition::wait_until(volume, &args.wait_for, &plan);
    tokio::pin!(waited);
    loop {
        tokio::select! {
            r = &mut waited => return condition::on_timeout(r, args.on_timeout),
            Some(signo) = signals.recv() => {
                if args.stop_on.contains(&signo) {
                    return Err(Exit::with(
                        ExitCode::from_signal(signo),
                        format!("{} while waiting for {}: not starting {}", signals::name(signo), join(&args.wait_for, ", "), command_line(&args.command)),
                    ));
                }
                tracing::debug!("ignoring {} while waiting (no command to forward it to)", signals::name(signo));
            }
        }
    }
}

/// How the child ended, for the tombstone, the event and the termination log.
struct Exited<'a> {
    started_ms: u64,
    code: ExitCode,
    status: Option<&'a ExitStatus>,
    why: &'a str,
    stopped: bool,
}

/// Records the exit (tombstone, event, termination log) and picks `run`'s exit code.
async fn finish<C: Coordinator>(
    c: &C,
    args: &RunArgs,
    started_ms: u64,
    outcome: &sup::Outcome,
    deadline: Instant,
) -> anyhow::Result<ExitCode> {
    let (status, stopped) = (&outcome.status, &outcome.stopped);
    let child_code = child::exit_code_of(*status);
    let mut what = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(s)) => format!("killed by {} (exit {})", signals::name(s), child_code.0),
        _ => format!("ended with {status}"),
    };
    if let Some(said) = &outcome.said {
        what = format!("{what} ({said})");
    }
    let why = match &stopped {
        Some(t) => format!("stopped by podsignal, {t}: {what}"),
        None => what,
    };
    tracing::info!("{why}");
    let exit = Exited {
        started_ms,
        code: child_code,
        status: Some(status),
        why: &why,
        stopped: stopped.is_some(),
    };
    record_exit(c, args, &exit, deadline).await;
    let mut code = child_code;
    if let Some((_, to)) = args.remap_exit.iter().find(|(from, _)| *from == code.0) {
        code = ExitCode(*to);
    }
    Ok(match args.exit_code {
        ExitCodePolicy::Child => code,
        ExitCodePolicy::Zero => ExitCode::SUCCESS,
        ExitCodePolicy::OnStopZero if stopped.is_some() => ExitCode::SUCCESS,
        ExitCodePolicy::OnStopZero => code,
    })
}

/// The termination log, then the tombstone, then the exit event: each best-effort, all
/// given up at `deadline`.
async fn record_exit<C: Coordinator>(c: &C, args: &RunArgs, exit: &Exited<'_>, deadline: Instant) {
    termination_log::write(args.termination_log.as_ref(), exit.why);
    let Some(name) = &args.name else { return };
    let identity = match &args.name {
        Some(n) => podsignal_proto::Identity {
            source: Some(n.to_string()),
            ..podsignal_client::identity::current()
        },
        None => podsignal_client::identity::current(),
    };
    let (code, signal) = match exit.status {
        Some(s) => (s.code(), s.signal()),
        None => (None, None),
    };
    let tombstone = TombstoneRecord {
        version: FORMAT_VERSION,
        name: name.clone(),
        exit_code: exit.code.0,
        code,
        signal,
        stopped: exit.stopped,
        reason: exit.why.to_owned(),
        started_ms: exit.started_ms,
        exited_ms: now_ms(),
        // Stamped by whoever writes it (the volume, or the agent's): the generation then.
        generation: None,
        writer: identity,
    };
    let data = serde_json::json!({
        "name": name, "exit_code": exit.code.0, "code": code, "signal": signal,
        "stopped": exit.stopped, "reason": exit.why,
        "incarnation": podsignal_client::identity::incarnation(),
    });
    let work = async {
        if let Err(e) = c.write_tombstone(&tombstone).await {
            tracing::warn!(
                "writing the tombstone of {name}: {}",
                podsignal_client::error_chain(&e)
            );
        }
        if let Err(e) = c.publish(&kind("exit"), Some(data)).await {
            tracing::warn!(
                "publishing the exit event of {name}: {}",
                podsignal_client::error_chain(&e)
            );
        }
    };
    if tokio::time::timeout_at(deadline, work).await.is_err() {
        tracing::warn!(
            "recording the exit of {name}: gave up (is the events lock held, or the agent gone?)"
        );
    }
}

/// `PODSIGNAL_DISABLED=1`: exec CMD in place of podsignal, after saying what is skipped.
pub fn exec_disabled(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let mut skipped = vec!["signal forwarding and zombie reaping".to_owned()];
    if !args.wait_for.is_empty() {
        skipped.push(format!("--wait-for {}", join(&args.wait_for, ",")));
    }
    // The kill switch runs CMD whatever happens here: a descriptor that cannot be made is
    // said, not fatal.
    let (fd, null) = match &args.ready_when {
        Some(p @ ReadyProbe::Fd(n)) => {
            let null = match crate::supervisor::ready_fd::null_for_exec(*n) {
                Ok(true) => format!(" (descriptor {n} is /dev/null)"),
                Ok(false) => String::new(),
                Err(e) => format!(" (descriptor {n} left closed: {e})"),
            };
            (Some(p.clone()), null)
        }
        _ => (None, String::new()),
    };
    if let Some(p) = ready_probe(args).or(fd) {
        skipped.push(format!("--ready-when {p}{null}"));
    }
    if let Some(n) = &args.name {
        skipped.push(format!(
            "the tombstone exits/{n}.json and exit event (exit:{n} will never hold)"
        ));
        skipped.push(format!("stop requests for {n}"));
    }
    if !args.exit_with.is_empty() {
        skipped.push(format!("--exit-with {}", join(&args.exit_with, ",")));
    }
    if !args.stop_after.is_empty() {
        skipped.push(format!("--stop-after {}", join(&args.stop_after, ",")));
    }
    if args.drain
        || args.drain_delay.is_some()
        || !args.drain_ports.is_empty()
        || args.pre_stop.is_some()
        || args.pre_stop_http.is_some()
    {
        skipped.push("drain and pre-stop steps".to_owned());
    }
    say!(
        "podsignal: {DISABLED_ENV}=1: running {} directly; skipping {}",
        command_line(&args.command),
        skipped.join("; ")
    );
    let program = args
        .command
        .first()
        .ok_or_else(|| crate::exit::usage("no command given after --"))?;
    let e = std::process::Command::new(program)
        .args(&args.command[1..])
        .exec();
    let code = match e.kind() {
        std::io::ErrorKind::NotFound => ExitCode::NOT_FOUND,
        _ => ExitCode::CANNOT_EXECUTE,
    };
    Err(Exit::with(
        code,
        format!("cannot run {}: {e}", PathBuf::from(program).display()),
    ))
}

/// A command as a shell would read it back, on one line: `./server --port 80`,
/// `sh -c 'exit 3'`, and a multi-line script as `sh -c $'echo a\necho b'` (a log line must
/// stay one line in `kubectl logs`).
fn command_line(argv: &[std::ffi::OsString]) -> String {
    argv.iter()
        .map(|w| shell_word(&w.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One word of [`command_line`]: bare if nothing in it is special to a shell, `'...'` if
/// it prints, else bash's `$'...'` with escapes.
fn shell_word(w: &str) -> String {
    let plain = !w.is_empty()
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        return w.to_owned();
    }
    if !w.chars().any(char::is_control) {
        return format!("'{}'", w.replace('\'', r"'\''"));
    }
    let mut out = String::from("$'");
    for c in w.chars() {
        match c {
            '\n' => out.push_str(r"\n"),
            '\t' => out.push_str(r"\t"),
            '\r' => out.push_str(r"\r"),
            '\\' => out.push_str(r"\\"),
            '\'' => out.push_str(r"\'"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c) & 0xff)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn join(c: &[Condition], separator: &str) -> String {
    c.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(separator)
}

fn kind(k: &str) -> Name {
    Name::new(k).unwrap_or_else(|_| unreachable!("{k:?} is a valid name"))
}

#[cfg(test)]
mod tests {

    #[test]
    fn commands_are_logged_on_one_line_as_a_shell_reads_them() {
        let argv = |w: &[&str]| w.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(
            command_line(&argv(&["./server", "--port", "80"])),
            "./server --port 80"
        );
        assert_eq!(
            command_line(&argv(&["sh", "-c", "exit 3"])),
            "sh -c 'exit 3'"
        );
        assert_eq!(command_line(&argv(&["echo", "it's"])), r"echo 'it'\''s'");
        assert_eq!(
            command_line(&argv(&["sh", "-c", "echo 'a'\necho\tb\\"])),
            r"sh -c $'echo \'a\'\necho\tb\\'"
        );
        assert_eq!(command_line(&argv(&["x", "\u{1b}[0m"])), r"x $'\x1b[0m'");
    }

    use super::*;

    #[test]
    fn a_command_is_shown_as_a_shell_would_read_it() {
        let argv = |words: &[&str]| words.iter().map(|w| w.into()).collect::<Vec<_>>();
        assert_eq!(
            command_line(&argv(&["./server", "--port=80"])),
            "./server --port=80"
        );
        assert_eq!(
            command_line(&argv(&["sh", "-c", "echo it's done", ""])),
            r"sh -c 'echo it'\''s done' ''"
        );
    }
}
