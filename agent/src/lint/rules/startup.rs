//! Startup ordering: polling loops, unordered localhost calls, dangling and cyclic
//! `--wait-for`, init containers waiting for what only starts after them, native sidecars
//! waited on without a startupProbe.

use podsignal_proto::Condition;

use super::on;
use crate::lint::Hit;
use crate::lint::pod::{Container, Kind, Pod, local_port};
use crate::lint::shell;

/// Commands that probe a dependency when they sit in a loop's condition or body.
const PROBES: &[&str] = &[
    "curl",
    "wget",
    "nc",
    "ncat",
    "pg_isready",
    "psql",
    "mysql",
    "mysqladmin",
    "nslookup",
    "getent",
    "redis-cli",
    "grpc_health_probe",
    "kubectl",
];

/// Tools whose whole job is to wait for a dependency.
const WAIT_TOOLS: &[&str] = &["wait-for-it", "dockerize", "wait4x", "wait-for"];

/// The probe command among `words` (`curl`, `test -f`, `[ ! -f`, `/dev/tcp`, ...), if any.
fn probe_in(words: &[String]) -> Option<String> {
    for (i, w) in words.iter().enumerate() {
        let base = w.rsplit('/').next().unwrap_or(w);
        if PROBES.contains(&base) {
            return Some(base.to_string());
        }
        if w.starts_with("/dev/tcp/") || w.starts_with("/dev/udp/") {
            return Some("/dev/tcp".to_string());
        }
        if matches!(base, "test" | "[" | "[[") {
            let operand = words[i + 1..].iter().find(|f| *f != "!");
            if let Some(f) = operand.filter(|f| matches!(f.as_str(), "-f" | "-e" | "-S" | "-s")) {
                return Some(format!("{base} {f}"));
            }
        }
    }
    None
}

/// What in `text` waits for a dependency by polling, in a few words.
fn polling(text: &str) -> Option<String> {
    let words = shell::words(text);
    for (i, w) in words.iter().enumerate() {
        if !matches!(w.as_str(), "while" | "until" | "for") {
            continue;
        }
        let Some(at_do) = words[i..].iter().position(|t| t == "do").map(|p| p + i) else {
            continue;
        };
        let mut depth = 1;
        let mut end = at_do + 1;
        while end < words.len() {
            match words[end].as_str() {
                "do" => depth += 1,
                "done" => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                break;
            }
            end += 1;
        }
        let condition = &words[i + 1..at_do];
        let body = &words[at_do + 1..end.min(words.len())];
        if !body.iter().any(|t| t == "sleep" || t == "usleep") {
            continue;
        }
        if w != "for"
            && let Some(probe) = probe_in(condition)
        {
            return Some(format!("`{w} {probe} ...; do ... sleep`"));
        }
        if body.iter().any(|t| t == "break")
            && let Some(probe) = probe_in(body)
        {
            return Some(format!("`{w} ...; do {probe} ... && break; sleep`"));
        }
    }
    if let Some(tool) = words.iter().find(|w| {
        let base = w.rsplit('/').next().unwrap_or(w);
        let base = base.strip_suffix(".sh").unwrap_or(base);
        WAIT_TOOLS.contains(&base)
    }) {
        return Some(format!("`{tool}`"));
    }
    for (tool, flag) in [("curl", "--retry"), ("wget", "--tries")] {
        let retries = words
            .iter()
            .skip_while(|w| !w.ends_with(tool))
            .take_while(|w| *w != ";")
            .any(|w| w.starts_with(flag) || (tool == "wget" && w == "-t"));
        if retries {
            return Some(format!("`{tool} {flag}`"));
        }
    }
    None
}

/// The condition that replaces what `found` polls with: a database client's protocol probe
/// (it asks the server, as the client did, and not only its port), else any condition.
fn replacement(found: &str) -> &'static str {
    let client = |names: &[&str]| names.iter().any(|n| found.contains(&format!(" {n} ")));
    if client(&["pg_isready", "psql"]) {
        "postgres://HOST[:PORT]"
    } else if client(&["mysql", "mysqladmin"]) {
        "mysql://HOST[:PORT]"
    } else if client(&["redis-cli"]) {
        "redis://HOST[:PORT]"
    } else {
        "COND"
    }
}

/// `shell-polling-loop`.
pub fn polling_loops(pod: &Pod) -> Vec<Hit> {
    pod.containers
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let found = polling(&c.argv.join(" "))?;
            let cond = replacement(&found);
            Some(on(
                i,
                c,
                format!(
                    "{found} polls for a dependency (late by up to the sleep, and it never gives up): use `podsignal run --wait-for {cond} --timeout DUR` (or `podsignal wait {cond}`)"
                ),
            ))
        })
        .collect()
}

/// Every `127.0.0.1:PORT` and `localhost:PORT` in `text`.
fn localhost_ports(text: &str) -> Vec<u16> {
    let mut ports = Vec::new();
    for host in ["127.0.0.1:", "localhost:"] {
        for part in text.split(host).skip(1) {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(p) = digits.parse::<u16>()
                && !ports.contains(&p)
            {
                ports.push(p);
            }
        }
    }
    ports
}

/// Whether `waiter` waits for `target` to serve before it starts: a `--wait-for` (or a
/// script's `podsignal wait`) on its readiness (one that says more than "started") or on any
/// port it serves (waiting on an admin port counts for the others), or a native sidecar
/// gated by a startupProbe.
fn waits_for(waiter: &Container, target: &Container) -> bool {
    if target.kind == Kind::Native
        && target.value.get("startupProbe").is_some()
        && waiter.kind == Kind::Regular
    {
        return true;
    }
    let names = target.publishes_past_start();
    let ports = target.serves();
    waits(waiter).iter().any(|(_, c)| match c {
        Condition::Ready(n) => names.iter().any(|p| p == n.as_str()),
        other => local_port(other).is_some_and(|p| ports.contains(&p)),
    })
}

/// What a container waits for before it starts, with the flag that says so: its `run
/// --wait-for`, and the conditions of the `podsignal wait` in its scripts (those with a
/// shell variable are left out).
fn waits(c: &Container) -> Vec<(&'static str, Condition)> {
    let flags = c
        .run
        .iter()
        .flat_map(|r| r.wait_for.iter().cloned().map(|w| ("--wait-for", w)));
    let scripts = c
        .calls
        .iter()
        // `wait --unready` waits for the opposite: nothing it names has to serve first.
        .filter(|call| call.subcommand == "wait" && call.value("unready").is_none())
        .flat_map(|call| &call.positional)
        .filter(|w| !w.contains('$'))
        .filter_map(|w| Condition::parse(w).ok())
        .map(|w| ("podsignal wait", w));
    flags.chain(scripts).collect()
}

/// `localhost-port-without-ordering`.
pub fn unordered_localhost(pod: &Pod) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (ai, a) in pod.long_running() {
        let own = a.serves();
        for port in localhost_ports(&a.text()) {
            if own.contains(&port) {
                continue;
            }
            let server = pod
                .long_running()
                .find(|(bi, b)| *bi != ai && b.serves().contains(&port));
            let Some((_, b)) = server else { continue };
            if waits_for(a, b) {
                continue;
            }
            let cond = b
                .publishes_past_start()
                .first()
                .cloned()
                .unwrap_or(format!("tcp:{port}"));
            let fix = if a.run.is_some() {
                format!("add `--wait-for {cond}` to its `podsignal run`")
            } else {
                format!(
                    "run it as `podsignal run --wait-for {cond} -- ...` (`podsignal inject --sidecar {}` writes both sides)",
                    b.name
                )
            };
            let started_only = b.publishes().into_iter().find(|n| {
                waits(a)
                    .iter()
                    .any(|(_, c)| matches!(c, Condition::Ready(w) if w.as_str() == n))
            });
            let message = match started_only {
                Some(n) => format!(
                    "calls localhost:{port}, served by container {0:?}, and waits for {n}, which is ready once started (no --ready-when), not once it listens: its first calls race the server's start; give {0} `--ready-when tcp:{port}`, or {fix}",
                    b.name
                ),
                None => format!(
                    "calls localhost:{port}, served by container {:?}, with nothing making it wait: its first calls race the server's start; {fix}",
                    b.name
                ),
            };
            hits.push(on(ai, a, message));
        }
    }
    hits
}

/// The containers that satisfy a readiness or exit condition.
fn satisfied_by(pod: &Pod, c: &Condition) -> Option<Vec<usize>> {
    match c {
        Condition::Ready(n) => Some(
            pod.containers
                .iter()
                .enumerate()
                .filter(|(_, c)| c.publishes().iter().any(|p| p == n.as_str()))
                .map(|(i, _)| i)
                .collect(),
        ),
        Condition::Exit { name, .. } => Some(
            pod.containers
                .iter()
                .enumerate()
                .filter(|(_, c)| c.run_name() == Some(name.as_str()))
                .map(|(i, _)| i)
                .collect(),
        ),
        _ => None,
    }
}

/// Every readiness or exit condition a container waits for or acts on, with its flag:
/// `--wait-for`, `--exit-with`, `--stop-after` and a script's `podsignal wait`.
fn conditions(c: &Container) -> Vec<(&'static str, Condition)> {
    let mut all = waits(c);
    if let Some(run) = &c.run {
        all.extend(run.exit_with.iter().cloned().map(|w| ("--exit-with", w)));
        all.extend(run.stop_after.iter().cloned().map(|w| ("--stop-after", w)));
    }
    all
}

/// `wait-for-dangling`.
pub fn dangling_wait_for(pod: &Pod) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, c) in pod.containers.iter().enumerate() {
        for (flag, cond) in conditions(c) {
            if satisfied_by(pod, &cond).is_some_and(|by| by.is_empty()) {
                let what = match &cond {
                    Condition::Exit { name, .. } => format!(
                        "runs `podsignal run --name {name}`, so no exit record is ever written"
                    ),
                    _ => "publishes it (`run --name` without `--ready-when never`, `podsignal ready`)"
                        .to_string(),
                };
                hits.push(on(
                    i,
                    c,
                    format!(
                        "{flag} {cond}: no container of this Pod {what}, and it waits until --timeout (or forever): fix the name, or add the publisher (`podsignal inject` wraps every container in `podsignal run --name NAME`)"
                    ),
                ));
            }
        }
    }
    hits
}

/// `init-waits-for-later`: an init container (or a native sidecar with a startupProbe)
/// waits for what only a later init container or a regular container provides; those
/// start only after it has completed (or started), so it never does.
pub fn init_waits_for_later(pod: &Pod) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, c) in pod.containers.iter().enumerate() {
        let blocks = match c.kind {
            Kind::Init => true,
            Kind::Native => c.value.get("startupProbe").is_some(),
            Kind::Regular => false,
        };
        if !blocks {
            continue;
        }
        for (flag, cond) in waits(c) {
            let Some(by) = satisfied_by(pod, &cond) else {
                continue;
            };
            if by.is_empty() || by.iter().any(|&b| b <= i) {
                continue;
            }
            let names: Vec<&str> = by
                .iter()
                .map(|&b| pod.containers[b].name.as_str())
                .collect();
            let gate = if c.kind == Kind::Init {
                "the containers after an init container start only once it has completed"
            } else {
                "the containers after a native sidecar with a startupProbe start only once the probe passes"
            };
            hits.push(on(
                i,
                c,
                format!(
                    "{flag} {cond}: only {} provides it, and {gate}: the Pod never starts; move the wait into a later container, or make the provider an earlier (native sidecar) init container",
                    names.join(", ")
                ),
            ));
        }
    }
    hits
}

/// Who each long-running container waits for (`--wait-for` readiness and exits).
fn wait_edges(pod: &Pod) -> Vec<Vec<usize>> {
    pod.containers
        .iter()
        .map(|c| {
            if c.kind == Kind::Init {
                return Vec::new();
            }
            let mut to: Vec<usize> = waits(c)
                .iter()
                .filter_map(|(_, cond)| satisfied_by(pod, cond))
                .flatten()
                .filter(|t| pod.containers[*t].kind != Kind::Init)
                .collect();
            to.sort_unstable();
            to.dedup();
            to
        })
        .collect()
}

/// The containers on a cycle through `start`, after `start` in wait order; `None` when
/// `start` is on no cycle. One search, each container visited once.
fn cycle_through(edges: &[Vec<usize>], start: usize) -> Option<Vec<usize>> {
    let mut parent: Vec<Option<usize>> = vec![None; edges.len()];
    let mut stack = vec![start];
    while let Some(at) = stack.pop() {
        for &next in &edges[at] {
            if next == start {
                let mut path = vec![];
                let mut node = at;
                while node != start {
                    path.push(node);
                    node = parent[node]?;
                }
                path.reverse();
                return Some(path);
            }
            if parent[next].is_none() {
                parent[next] = Some(at);
                stack.push(next);
            }
        }
    }
    None
}

/// `wait-for-cycle`.
pub fn wait_for_cycle(pod: &Pod) -> Vec<Hit> {
    let edges = wait_edges(pod);
    let mut hits = Vec::new();
    for start in 0..edges.len() {
        let Some(path) = cycle_through(&edges, start) else {
            continue;
        };
        // Report each cycle once, at its first container.
        if path.iter().any(|p| *p < start) {
            continue;
        }
        let names: Vec<&str> = std::iter::once(start)
            .chain(path.iter().copied())
            .chain(std::iter::once(start))
            .map(|i| pod.containers[i].name.as_str())
            .collect();
        let c = &pod.containers[start];
        hits.push(on(
            start,
            c,
            format!(
                "--wait-for cycle {}: each waits for the next, none ever starts; break the cycle (one side waits for a port or a file the other creates later, not for its readiness)",
                names.join(" -> ")
            ),
        ));
    }
    hits
}

/// `native-sidecar-without-startup-probe`.
pub fn native_without_startup_probe(pod: &Pod) -> Vec<Hit> {
    let edges = wait_edges(pod);
    pod.containers
        .iter()
        .enumerate()
        .filter(|(i, c)| {
            c.kind == Kind::Native
                && c.value.get("startupProbe").is_none()
                && edges.iter().any(|to| to.contains(i))
        })
        .map(|(i, c)| {
            on(
                i,
                c,
                "others --wait-for this native sidecar but it has no startupProbe: the kubelet counts it started at once and starts the next containers; add `startupProbe: {exec: {command: [podsignal, wait, NAME, --timeout=1s]}}`",
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_that_probe_and_sleep_are_polling_and_work_loops_are_not() {
        for script in [
            "until curl -fsS http://db:8080/; do sleep 1; done; exec ./app",
            "while ! nc -z db 5432\ndo\n  sleep 0.5\ndone",
            "for i in $(seq 30); do pg_isready -h db && break; sleep 1; done",
            "while true; do [ -f /shared/ready ] && break; sleep 1; done",
            "./wait-for-it.sh db:5432 -- ./app",
            "curl --retry 10 --retry-connrefused http://db/ && ./app",
            // Red-team misses: negated and bash tests, database clients, /dev/tcp, wget
            // retries, wait4x, usleep.
            "while [ ! -f /shared/ready ]; do sleep 1; done",
            "until [[ -f /shared/ready ]]; do sleep 1; done",
            "until psql -h db -c 'select 1'; do sleep 2; done",
            "until mysql -h db -e \"select 1\"; do sleep 1; done",
            "until redis-cli -h cache ping; do sleep 1; done",
            "until echo > /dev/tcp/db/5432; do sleep 1; done; exec ./app",
            "wget --tries=30 --retry-connrefused -qO- http://db:8080/ && exec ./app",
            "wait4x tcp db:5432 -- ./app",
            "until nc -z db 5432; do usleep 500000; done",
        ] {
            assert!(polling(script).is_some(), "{script}");
        }
        for script in [
            "while [ $stop = 0 ]; do adapt; sleep 0.2 & wait $!; done",
            "while :; do podsignal wait flaky --timeout=60s || continue; curl -fsS http://127.0.0.1:8080/; done",
            "for f in *.sql; do psql -f $f; done",
            "curl -fsS http://db/ && sleep 1",
            "exec podsignal run --wait-for=db --ready-when=file:/tmp/wait-for-x -- ./app",
        ] {
            assert_eq!(polling(script), None, "{script}");
        }
    }

    #[test]
    fn a_protocol_probe_of_a_loopback_server_waits_for_its_port() {
        // `--wait-for postgres://127.0.0.1` orders a container after the one serving 5432.
        let port = |s: &str| local_port(&Condition::parse(s).unwrap());
        assert_eq!(port("postgres://127.0.0.1"), Some(5432));
        assert_eq!(port("redis://localhost:6380"), Some(6380));
        assert_eq!(port("mysql://[::1]"), Some(3306));
        assert_eq!(port("mysql://db"), None);
    }

    #[test]
    fn a_database_client_in_a_loop_is_replaced_by_its_protocol_probe() {
        for (script, cond) in [
            (
                "for i in $(seq 30); do pg_isready -h db && break; sleep 1; done",
                "postgres://HOST[:PORT]",
            ),
            (
                "until psql -h db -c 'select 1'; do sleep 2; done",
                "postgres://HOST[:PORT]",
            ),
            (
                "until mysqladmin ping -h db; do sleep 1; done",
                "mysql://HOST[:PORT]",
            ),
            (
                "until redis-cli -h cache ping; do sleep 1; done",
                "redis://HOST[:PORT]",
            ),
            ("until nc -z db 5432; do sleep 1; done", "COND"),
        ] {
            let found = polling(script).unwrap();
            assert_eq!(replacement(&found), cond, "{script}: {found}");
            // The suggestion parses, once its placeholders are filled in.
            if cond != "COND" {
                let filled = cond.replace("HOST[:PORT]", "db");
                assert!(Condition::parse(&filled).is_ok(), "{filled}");
            }
        }
    }

    #[test]
    fn a_cycle_is_found_through_its_start_only() {
        // 0 -> 1 -> 2 -> 0, and 3 -> 0 (waits on the cycle, not part of it).
        let edges = vec![vec![1], vec![2], vec![0], vec![0]];
        assert_eq!(cycle_through(&edges, 0), Some(vec![1, 2]));
        assert_eq!(cycle_through(&edges, 3), None);
        assert_eq!(cycle_through(&[vec![0]], 0), Some(vec![]));
    }

    #[test]
    fn localhost_ports_are_found_in_urls_and_host_ports() {
        assert_eq!(
            localhost_ports("--db=127.0.0.1:5432 http://localhost:8080/x 127.0.0.1:5432"),
            [5432, 8080]
        );
        assert!(localhost_ports("127.0.0.1 5432 localhost").is_empty());
    }
}
