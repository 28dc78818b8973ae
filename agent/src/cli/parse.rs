//! Value parsers for clap: each error is the one-line message clap prints with exit 2.

use std::time::Duration;

use podsignal_proto::{Condition, HttpCheck, Name, ReadyProbe};

pub(super) fn parse_name(s: &str) -> Result<Name, String> {
    Name::new(s).map_err(|e| e.to_string())
}

pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    podsignal_proto::parse_duration(s).map_err(|e| e.to_string())
}

pub(super) fn parse_condition(s: &str) -> Result<Condition, String> {
    Condition::parse(s).map_err(|e| e.to_string())
}

pub(super) fn parse_probe(s: &str) -> Result<ReadyProbe, String> {
    ReadyProbe::parse(s).map_err(|e| e.to_string())
}

pub(super) fn parse_http(s: &str) -> Result<HttpCheck, String> {
    HttpCheck::parse(s).map_err(|e| e.as_in(podsignal_proto::Grammar::Url).to_string())
}

pub(super) fn parse_signal(s: &str) -> Result<i32, String> {
    crate::signals::parse(s)
}

pub(super) fn parse_caught_signal(s: &str) -> Result<i32, String> {
    crate::signals::parse_caught(s)
}

pub(super) fn parse_termination_log(
    s: &str,
) -> Result<crate::supervisor::termination_log::TerminationLog, String> {
    crate::supervisor::termination_log::TerminationLog::parse(s)
}

pub(super) fn parse_remap(s: &str) -> Result<(u8, u8), String> {
    let (from, to) = s.split_once(':').ok_or("expected FROM:TO, e.g. 143:0")?;
    let code = |c: &str| {
        c.parse::<u8>()
            .map_err(|_| format!("{c:?} is not an exit code 0-255"))
    };
    Ok((code(from)?, code(to)?))
}

pub(super) fn parse_json(s: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(s).map_err(|e| format!("not valid JSON: {e}"))
}

pub(super) fn parse_time_arg(s: &str) -> Result<crate::timeline::TimeArg, String> {
    crate::timeline::TimeArg::parse(s)
}
