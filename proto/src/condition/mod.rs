//! Conditions: what `podsignal wait` and `run --wait-for` wait for, and what `run --ready-when`
//! probes. One grammar for both, parsed here and evaluated by the agent.
//!
//! ```text
//! NAME                    the readiness record NAME is ready
//! exit:NAME               the container running `run --name NAME` has exited (its tombstone)
//! exit:NAME=CODE          ... with exit code CODE (128+N for a death by signal N)
//! phase:PHASE             the pod phase is PHASE or later
//! file:PATH               a file (or anything) exists at PATH
//! tcp:HOST:PORT           something listens at HOST:PORT (tcp:PORT means 127.0.0.1)
//! http://HOST:PORT/PATH   a GET answers 2xx; `#status=503&body=ok&header=x-a:b` to match more
//! unix:PATH               a unix stream socket at PATH accepts a connection
//! postgres://HOST[:PORT]  the server answers PostgreSQL's hello (also redis://, mysql://)
//! ```
//!
//! `--ready-when` also takes `exec:CMD` (CMD exits 0), `notify` (the sd_notify protocol) and
//! `fd:N` (CMD writes a newline to its descriptor N, s6's notification-fd).
//! [`Condition`]'s `Display` prints the spelling [`Condition::parse`] reads back.
//! `tcp` holds the address forms, `http` the HTTP check and its `#options`, `service` the
//! protocol probes.

use std::fmt;
use std::str::FromStr;

use crate::name::Name;
use crate::phase::Phase;

mod http;
mod service;
mod tcp;

pub use http::{HttpCheck, StatusMatch};
pub use service::{Service, ServiceCheck};
use tcp::split_host_port;
pub use tcp::{
    TcpTarget, is_loopback_host, is_loopback_ip, is_loopback_name, is_loopback_or_wildcard,
    loopback_addresses,
};

/// One condition of the grammar in the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `NAME`: the readiness record is ready.
    Ready(Name),
    /// `exit:NAME[=CODE]`: a tombstone exists (with that exit code).
    Exit {
        /// The container's `--name`.
        name: Name,
        /// The exit code it must have exited with; `None` for any.
        code: Option<u8>,
    },
    /// `phase:PHASE`: the pod phase is at least this.
    Phase(Phase),
    /// `file:PATH`: PATH exists.
    File(String),
    /// `tcp:HOST:PORT`: something listens there.
    Tcp(TcpTarget),
    /// `http://...` or `https://...`: a GET answers as expected.
    Http(HttpCheck),
    /// `unix:PATH`: a stream socket at PATH accepts.
    Unix(String),
    /// `postgres://`, `redis://` or `mysql://`: the server answers its protocol's hello.
    Service(ServiceCheck),
}

/// The condition forms, listed once: [`Grammar::Condition`] lists them, [`Grammar::Probe`]
/// adds its own two.
macro_rules! condition_forms {
    () => {
        "NAME, exit:NAME[=CODE], phase:PHASE, file:PATH, tcp:HOST:PORT, http://..., unix:PATH, postgres|redis|mysql://HOST[:PORT]"
    };
}

/// Which grammar rejected an input: its error names it and lists the forms it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grammar {
    /// A condition ([`Condition::parse`]: `wait`, `--wait-for`, `--exit-with`, ...).
    Condition,
    /// A readiness probe ([`ReadyProbe::parse`], `--ready-when`): a condition, `exec:CMD`,
    /// `notify` or `fd:N`.
    Probe,
    /// An HTTP URL on its own ([`HttpCheck::parse`] outside a condition, `--pre-stop-http`).
    Url,
}

impl Grammar {
    /// What the input was meant to be, for the message.
    pub fn noun(self) -> &'static str {
        match self {
            Grammar::Condition => "condition",
            Grammar::Probe => "probe",
            Grammar::Url => "URL",
        }
    }

    /// Every form this grammar accepts.
    pub fn forms(self) -> &'static str {
        match self {
            Grammar::Condition => condition_forms!(),
            Grammar::Probe => concat!(condition_forms!(), ", exec:CMD, notify, fd:N"),
            Grammar::Url => "http://HOST[:PORT]/PATH, https://...",
        }
    }
}

/// Why a string is not a condition (or a probe, or a URL: [`ConditionError::grammar`]).
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {} {input:?}: {why} (forms: {})", .grammar.noun(), .grammar.forms())]
pub struct ConditionError {
    /// The rejected input.
    pub input: String,
    /// What is wrong with it.
    pub why: String,
    /// What the input was parsed as.
    pub grammar: Grammar,
}
crate::debug_is_display!(ConditionError);

impl ConditionError {
    fn new(input: &str, why: impl Into<String>) -> ConditionError {
        ConditionError {
            input: input.to_owned(),
            why: why.into(),
            grammar: Grammar::Condition,
        }
    }

    /// The same error, told as one in `grammar` (which accepts more, or other, forms).
    pub fn as_in(self, grammar: Grammar) -> ConditionError {
        ConditionError { grammar, ..self }
    }
}

impl Condition {
    /// Parses one condition.
    pub fn parse(input: &str) -> Result<Condition, ConditionError> {
        let err = |why: String| ConditionError::new(input, why);
        if input.starts_with("http://") || input.starts_with("https://") {
            return HttpCheck::parse(input).map(Condition::Http);
        }
        if ServiceCheck::scheme_of(input).is_some() {
            return ServiceCheck::parse(input).map(Condition::Service);
        }
        let Some((kind, rest)) = input.split_once(':') else {
            return Name::new(input)
                .map(Condition::Ready)
                .map_err(|e| err(e.to_string()));
        };
        match kind {
            "exit" => {
                let (name, code) = match rest.split_once('=') {
                    Some((n, c)) => {
                        let c = c
                            .parse::<u8>()
                            .map_err(|_| err(format!("exit code {c:?} is not 0-255")))?;
                        (n, Some(c))
                    }
                    None => (rest, None),
                };
                let name = Name::new(name).map_err(|e| err(e.to_string()))?;
                Ok(Condition::Exit { name, code })
            }
            "phase" => rest
                .parse::<Phase>()
                .map(Condition::Phase)
                .map_err(|e| err(e.to_string())),
            "file" | "unix" => {
                if rest.is_empty() || rest.contains('\0') {
                    return Err(err(format!("{kind}: needs a path")));
                }
                Ok(if kind == "file" {
                    Condition::File(rest.to_owned())
                } else {
                    Condition::Unix(rest.to_owned())
                })
            }
            "tcp" => {
                let (host, port) =
                    if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
                        split_host_port(&format!("127.0.0.1:{rest}"), None)
                    } else {
                        split_host_port(rest, None)
                    }
                    .map_err(|w| err(w.to_owned()))?;
                Ok(Condition::Tcp(TcpTarget { host, port }))
            }
            _ => Err(err(format!("unknown kind {kind:?}"))),
        }
    }
}

impl FromStr for Condition {
    type Err = ConditionError;
    fn from_str(s: &str) -> Result<Condition, ConditionError> {
        Condition::parse(s)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Ready(n) => write!(f, "{n}"),
            Condition::Exit { name, code: None } => write!(f, "exit:{name}"),
            Condition::Exit {
                name,
                code: Some(c),
            } => write!(f, "exit:{name}={c}"),
            Condition::Phase(p) => write!(f, "phase:{p}"),
            Condition::File(p) => write!(f, "file:{p}"),
            Condition::Tcp(t) => write!(f, "tcp:{t}"),
            Condition::Http(h) => write!(f, "{h}"),
            Condition::Unix(p) => write!(f, "unix:{p}"),
            Condition::Service(s) => write!(f, "{s}"),
        }
    }
}

/// What `run --ready-when` probes: any condition, a command, or the sd_notify protocol; or
/// the keywords `started` and `never`. The keywords `notify`, `started` and `never` are
/// probes, never readiness names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadyProbe {
    /// A condition (`tcp:PORT`, `http://...`, `file:PATH`, `unix:PATH`, ...).
    Check(Condition),
    /// `exec:CMD`: `sh -c CMD` exits 0.
    Exec(String),
    /// `notify`: the child sends `READY=1` on `$NOTIFY_SOCKET`.
    Notify,
    /// `fd:N`: the child writes a newline to its descriptor N (3 or more), the write end of
    /// a pipe `run` reads (s6's notification-fd).
    Fd(i32),
    /// `started`: ready once the command has started (Kubernetes' rule for a container
    /// without a readinessProbe; `run --name`'s default).
    Started,
    /// `never`: the readiness is not published.
    Never,
}

impl ReadyProbe {
    /// Parses a probe.
    pub fn parse(input: &str) -> Result<ReadyProbe, ConditionError> {
        match input {
            "notify" => return Ok(ReadyProbe::Notify),
            "started" => return Ok(ReadyProbe::Started),
            "never" => return Ok(ReadyProbe::Never),
            _ => {}
        }
        if let Some(n) = input.strip_prefix("fd:") {
            let err = |why: &str| ConditionError::new(input, why).as_in(Grammar::Probe);
            let n: i32 = n
                .parse()
                .ok()
                .filter(|_| n.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| err("fd: needs a descriptor number, e.g. fd:3"))?;
            if n < 3 {
                return Err(err(
                    "fd: takes 3 or more (0, 1 and 2 are the command's stdin, stdout and stderr)",
                ));
            }
            return Ok(ReadyProbe::Fd(n));
        }
        if let Some(cmd) = input.strip_prefix("exec:") {
            if cmd.trim().is_empty() {
                return Err(
                    ConditionError::new(input, "exec: needs a command").as_in(Grammar::Probe)
                );
            }
            return Ok(ReadyProbe::Exec(cmd.to_owned()));
        }
        Condition::parse(input)
            .map(ReadyProbe::Check)
            .map_err(|e| e.as_in(Grammar::Probe))
    }
}

impl fmt::Display for ReadyProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadyProbe::Check(c) => write!(f, "{c}"),
            ReadyProbe::Exec(cmd) => write!(f, "exec:{cmd}"),
            ReadyProbe::Notify => f.write_str("notify"),
            ReadyProbe::Fd(n) => write!(f, "fd:{n}"),
            ReadyProbe::Started => f.write_str("started"),
            ReadyProbe::Never => f.write_str("never"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Condition {
        Condition::parse(s).unwrap()
    }

    #[test]
    fn loopback_names_resolve_without_a_resolver() {
        let v4: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let v6: std::net::IpAddr = "::1".parse().unwrap();
        assert_eq!(loopback_addresses("localhost"), Some(vec![v4, v6]));
        assert_eq!(loopback_addresses("LocalHost."), Some(vec![v4, v6]));
        assert_eq!(loopback_addresses("ip6-localhost"), Some(vec![v6]));
        assert_eq!(loopback_addresses("ip6-loopback"), Some(vec![v6]));
        assert_eq!(loopback_addresses("localhost.example"), None);
        assert_eq!(loopback_addresses("db"), None);
    }

    #[test]
    fn loopback_hosts_are_this_network_namespace() {
        for local in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
            "::",
            "localhost",
            "LOCALHOST.",
            "ip6-loopback",
        ] {
            assert!(is_loopback_host(local), "{local}");
        }
        for remote in [
            "10.0.0.1",
            "::ffff:10.0.0.1",
            "fe80::1",
            "db",
            "127.example",
        ] {
            assert!(!is_loopback_host(remote), "{remote}");
        }
    }

    #[test]
    fn parses_every_documented_form() {
        assert_eq!(p("db"), Condition::Ready(Name::new("db").unwrap()));
        assert_eq!(
            p("exit:app=0"),
            Condition::Exit {
                name: Name::new("app").unwrap(),
                code: Some(0)
            }
        );
        assert_eq!(p("phase:draining"), Condition::Phase(Phase::Draining));
        assert_eq!(p("file:/tmp/x"), Condition::File("/tmp/x".into()));
        assert_eq!(p("unix:/run/s.sock"), Condition::Unix("/run/s.sock".into()));
        assert_eq!(
            p("tcp:8080"),
            Condition::Tcp(TcpTarget {
                host: "127.0.0.1".into(),
                port: 8080
            })
        );
        assert_eq!(
            p("tcp:[::1]:53"),
            Condition::Tcp(TcpTarget {
                host: "::1".into(),
                port: 53
            })
        );
        let Condition::Http(h) =
            p("http://localhost:8080/healthz?x=1#status=503&body=up%26running&header=X-Ready:yes")
        else {
            panic!()
        };
        assert_eq!(
            (h.host.as_str(), h.port, h.path.as_str()),
            ("localhost", 8080, "/healthz?x=1")
        );
        assert_eq!(h.status, StatusMatch::Exact(503));
        assert_eq!(h.body.as_deref(), Some("up&running"));
        assert_eq!(h.header, Some(("x-ready".into(), "yes".into())));
        for (url, service, host, port) in [
            ("postgres://db", Service::Postgres, "db", 5432),
            ("redis://127.0.0.1:6380/", Service::Redis, "127.0.0.1", 6380),
            ("mysql://[::1]", Service::Mysql, "::1", 3306),
            ("postgresql://db:6432", Service::Postgres, "db", 6432),
        ] {
            let want = ServiceCheck {
                service,
                target: TcpTarget {
                    host: host.into(),
                    port,
                },
            };
            assert_eq!(p(url), Condition::Service(want), "{url}");
        }
        assert_eq!(p("mysql://[::1]").to_string(), "mysql://[::1]:3306");
        let Condition::Http(h) = p("https://example.com") else {
            panic!()
        };
        assert_eq!((h.tls, h.port, h.path.as_str()), (true, 443, "/"));
    }

    #[test]
    fn rejects_malformed_conditions_with_the_input_named() {
        for bad in [
            "",
            "Bad",
            "exit:",
            "exit:app=300",
            "phase:paused",
            "tcp:host",
            "tcp:h:0",
            "tcp:h:99999",
            "tcp:::1:80",
            "file:",
            "what:x",
            "http://",
            "http://h:x/",
            "http://h/#status=9",
            "http://h/#nope=1",
            "http://u@h/",
            "postgres://",
            "postgres://u:pw@db",
            "postgres://db/app",
            "redis://db:0",
            "redis://db?x=1",
            "mysql://db:port",
        ] {
            let e = Condition::parse(bad).expect_err(bad).to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn status_matching() {
        assert!(StatusMatch::Success.matches(204) && !StatusMatch::Success.matches(301));
        assert!(StatusMatch::Class(5).matches(503) && StatusMatch::Exact(418).matches(418));
    }

    #[test]
    fn ready_probes() {
        assert_eq!(ReadyProbe::parse("notify").unwrap(), ReadyProbe::Notify);
        assert_eq!(ReadyProbe::parse("started").unwrap(), ReadyProbe::Started);
        assert_eq!(ReadyProbe::parse("never").unwrap(), ReadyProbe::Never);
        for keyword in ["notify", "started", "never"] {
            let p = ReadyProbe::parse(keyword).unwrap();
            assert_eq!(p.to_string(), keyword);
        }
        assert_eq!(
            ReadyProbe::parse("exec:test -f /x").unwrap(),
            ReadyProbe::Exec("test -f /x".into())
        );
        assert!(matches!(
            ReadyProbe::parse("tcp:8080").unwrap(),
            ReadyProbe::Check(Condition::Tcp(_))
        ));
        assert!(ReadyProbe::parse("exec:").is_err());
        assert_eq!(ReadyProbe::parse("fd:3").unwrap(), ReadyProbe::Fd(3));
        assert_eq!(ReadyProbe::parse("fd:3").unwrap().to_string(), "fd:3");
        for bad in [
            "fd:0",
            "fd:2",
            "fd:",
            "fd:-3",
            "fd:+3",
            "fd:x",
            "fd:99999999999",
        ] {
            let e = ReadyProbe::parse(bad).unwrap_err();
            assert_eq!(e.grammar, Grammar::Probe, "{bad}");
        }
        let e = ReadyProbe::parse("fd:1").unwrap_err().to_string();
        assert!(e.contains("3 or more") && e.contains("fd:N"), "{e}");
        // The error lists every form a probe takes, the two of its own included.
        let e = ReadyProbe::parse("bogus:1").unwrap_err().to_string();
        assert!(
            e.starts_with("invalid probe \"bogus:1\": unknown kind"),
            "{e}"
        );
        for form in [
            "exec:CMD",
            "notify",
            "fd:N",
            "tcp:HOST:PORT",
            "http://",
            "file:PATH",
        ] {
            assert!(e.contains(form), "{form} missing: {e}");
        }
        let e = Condition::parse("bogus:1").unwrap_err().to_string();
        assert!(!e.contains("exec:") && !e.contains("notify"), "{e}");
    }

    fn arb_condition() -> impl Strategy<Value = Condition> {
        let name = "[a-z0-9]([a-z0-9._-]{0,10}[a-z0-9])?".prop_map(|s| Name::new(&s).unwrap());
        let host = prop_oneof![
            "[a-z][a-z0-9.-]{0,12}".prop_map(String::from),
            Just("::1".to_owned()),
            Just("127.0.0.1".to_owned())
        ];
        prop_oneof![
            name.clone().prop_map(Condition::Ready),
            (name, proptest::option::of(any::<u8>()))
                .prop_map(|(name, code)| Condition::Exit { name, code }),
            proptest::sample::select(Phase::ALL.to_vec()).prop_map(Condition::Phase),
            "/[^\0]{0,20}".prop_map(Condition::File),
            "/[^\0]{0,20}".prop_map(Condition::Unix),
            (host.clone(), 1u16..)
                .prop_map(|(host, port)| Condition::Tcp(TcpTarget { host, port })),
            (
                proptest::sample::select(Service::ALL.to_vec()),
                host.clone(),
                1u16..
            )
                .prop_map(|(service, host, port)| Condition::Service(ServiceCheck {
                    service,
                    target: TcpTarget { host, port }
                })),
            (
                any::<bool>(),
                host,
                1u16..,
                "/[a-z0-9/?=&.-]{0,12}",
                prop_oneof![
                    Just(StatusMatch::Success),
                    (100u16..600).prop_map(StatusMatch::Exact),
                    (1u8..6).prop_map(StatusMatch::Class)
                ],
                proptest::option::of(".{0,10}"),
                proptest::option::of(
                    ("[a-z-]{1,8}", "[ -~]{0,8}")
                        .prop_map(|(n, v): (String, String)| (n, v.trim().to_owned()))
                )
            )
                .prop_map(|(tls, host, port, path, status, body, header)| {
                    Condition::Http(HttpCheck {
                        tls,
                        host,
                        port,
                        path,
                        status,
                        body,
                        header,
                    })
                }),
        ]
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(c in arb_condition()) {
            prop_assert_eq!(Condition::parse(&c.to_string()).unwrap(), c);
        }

        #[test]
        fn arbitrary_input_never_panics(s in ".*") {
            let _ = Condition::parse(&s);
            let _ = ReadyProbe::parse(&s);
        }
    }
}
