//! Protocol probes: `postgres://HOST[:PORT]`, `redis://HOST[:PORT]`, `mysql://HOST[:PORT]`.
//! The server must answer its own protocol's hello, not merely accept a connection; no
//! credentials are sent, so no user, password or database is taken.

use std::fmt;

use super::ConditionError;
use super::tcp::{TcpTarget, split_host_port};

/// A server whose protocol a condition speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// PostgreSQL (`postgres://`, port 5432).
    Postgres,
    /// Redis, or a server speaking its protocol (`redis://`, port 6379).
    Redis,
    /// MySQL or MariaDB (`mysql://`, port 3306).
    Mysql,
}

impl Service {
    /// Every service, in the order the grammar lists them.
    pub const ALL: [Service; 3] = [Service::Postgres, Service::Redis, Service::Mysql];

    /// The URL scheme, without `://`.
    pub fn scheme(self) -> &'static str {
        match self {
            Service::Postgres => "postgres",
            Service::Redis => "redis",
            Service::Mysql => "mysql",
        }
    }

    /// The port a URL without one means.
    pub fn default_port(self) -> u16 {
        match self {
            Service::Postgres => 5432,
            Service::Redis => 6379,
            Service::Mysql => 3306,
        }
    }

    /// The protocol's name, for messages.
    pub fn protocol(self) -> &'static str {
        match self {
            Service::Postgres => "PostgreSQL",
            Service::Redis => "Redis",
            Service::Mysql => "MySQL",
        }
    }
}

/// `SCHEME://HOST[:PORT]`: the server at the target answers `service`'s hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCheck {
    /// Which protocol.
    pub service: Service,
    /// Where (the scheme's default port when the URL has none).
    pub target: TcpTarget,
}

impl ServiceCheck {
    /// The service whose scheme `input` starts with, and the rest after `://`; libpq's
    /// `postgresql://` is read as `postgres://`.
    pub fn scheme_of(input: &str) -> Option<(Service, &str)> {
        let (scheme, rest) = input.split_once("://")?;
        let service = match scheme {
            "postgresql" => Service::Postgres,
            _ => Service::ALL.into_iter().find(|s| s.scheme() == scheme)?,
        };
        Some((service, rest))
    }

    /// Parses `SCHEME://HOST[:PORT]` (a trailing `/` allowed).
    pub fn parse(input: &str) -> Result<ServiceCheck, ConditionError> {
        let err = |why: &str| ConditionError::new(input, why);
        let (service, rest) =
            ServiceCheck::scheme_of(input).ok_or_else(|| err("unknown scheme"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('@') {
            return Err(err(
                "no credentials: the probe sends none (it checks the server answers, not a login)",
            ));
        }
        if rest.contains(['/', '?', '#']) {
            return Err(err(
                "no database, path or options: the probe checks the server, not a database",
            ));
        }
        let (host, port) = split_host_port(rest, Some(service.default_port())).map_err(err)?;
        Ok(ServiceCheck {
            service,
            target: TcpTarget { host, port },
        })
    }
}

impl fmt::Display for ServiceCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.service.scheme(), self.target)
    }
}
