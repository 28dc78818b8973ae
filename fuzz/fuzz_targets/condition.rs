//! Fuzzes the condition grammar of `wait`, `run --wait-for` and `run --ready-when`:
//! `Condition::parse` (with `HttpCheck::parse` and the `tcp:` host/port forms) and
//! `ReadyProbe::parse`.
//!
//! Properties checked on every input (bytes read as UTF-8, lossily):
//! - A condition that parses prints (`Display`) a spelling that parses back to an equal
//!   condition, and printing is canonical: the reparsed condition prints the same text.
//! - What was parsed is well-formed: names pass `Name::new`, ports are not 0, hosts are
//!   non-empty and unbracketed, an HTTP path starts with `/` and has no space or control
//!   byte, a header name is lowercase, a status is 100-599 or a class 1xx-5xx, paths of
//!   `file:` and `unix:` are non-empty and have no NUL; a protocol probe (`postgres://`,
//!   `redis://`, `mysql://`) prints with its scheme and an explicit port.
//! - An HTTP check's `url()` (the check without its options) parses to the same request with
//!   the default options.
//! - `FromStr` agrees with `parse`; a refusal names the whole input.
//! - The same for `ReadyProbe` (`exec:CMD`, `notify`, `fd:N` with N >= 3, `started`,
//!   `never`, or a condition).
#![no_main]

use libfuzzer_sys::fuzz_target;
use podsignal_proto::condition::{Condition, HttpCheck, ReadyProbe, StatusMatch};
use podsignal_proto::{Name, loopback_addresses};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let s = s.as_ref();
    check_condition(s);
    check_probe(s);
});

fn check_condition(s: &str) {
    let parsed = Condition::parse(s);
    assert_eq!(s.parse::<Condition>(), parsed, "FromStr disagrees on {s:?}");
    let c = match parsed {
        Ok(c) => c,
        Err(e) => {
            assert_eq!(e.input, s);
            assert!(e.to_string().contains(&format!("{s:?}")), "{e}");
            return;
        }
    };
    well_formed(&c);
    let shown = c.to_string();
    let again = Condition::parse(&shown);
    assert_eq!(
        again.as_ref(),
        Ok(&c),
        "{s:?} parsed to {c:?}, shown as {shown:?}"
    );
    if let Ok(again) = again {
        assert_eq!(again.to_string(), shown, "printing is not canonical");
    }
    if let Condition::Http(h) = &c {
        let url = h.url();
        let plain = HttpCheck {
            status: StatusMatch::Success,
            body: None,
            header: None,
            ..h.clone()
        };
        assert_eq!(
            Condition::parse(&url),
            Ok(Condition::Http(plain)),
            "url() of {h:?} is {url:?}"
        );
    }
}

fn well_formed(c: &Condition) {
    match c {
        Condition::Ready(n) | Condition::Exit { name: n, .. } => {
            assert_eq!(Name::new(n.as_str()).as_ref(), Ok(n));
        }
        Condition::Phase(p) => assert_eq!(p.as_str().parse().ok(), Some(*p)),
        Condition::File(p) | Condition::Unix(p) => {
            assert!(!p.is_empty() && !p.contains('\0'), "{p:?}");
        }
        Condition::Service(check) => {
            good_host(&check.target.host);
            assert_ne!(check.target.port, 0);
            let shown = check.to_string();
            assert!(
                shown.starts_with(&format!("{}://", check.service.scheme())),
                "{shown:?}"
            );
            assert!(
                shown.ends_with(&format!(":{}", check.target.port)),
                "{shown:?}"
            );
        }
        Condition::Tcp(t) => {
            good_host(&t.host);
            assert_ne!(t.port, 0);
            let _ = t.is_local();
        }
        Condition::Http(h) => {
            good_host(&h.host);
            assert_ne!(h.port, 0);
            assert!(h.path.starts_with('/'), "{:?}", h.path);
            assert!(!h.path.contains('#'), "{:?}", h.path);
            assert!(
                !h.path.bytes().any(|b| b <= b' ' || b == 0x7f),
                "{:?}",
                h.path
            );
            match h.status {
                StatusMatch::Success => {}
                StatusMatch::Exact(code) => assert!((100..=599).contains(&code)),
                StatusMatch::Class(class) => assert!((1..=5).contains(&class)),
            }
            if let Some((name, _)) = &h.header {
                assert!(!name.is_empty());
                assert!(name.bytes().all(|b| b.is_ascii_graphic()), "{name:?}");
                assert_eq!(*name, name.to_ascii_lowercase());
                assert!(!name.contains(':'), "{name:?}");
            }
        }
    }
}

fn good_host(host: &str) {
    assert!(!host.is_empty());
    assert!(!host.contains(['[', ']', '/', '@', '#']), "{host:?}");
    if let Some(addrs) = loopback_addresses(host) {
        assert!(
            addrs.iter().all(std::net::IpAddr::is_loopback),
            "{host:?}: {addrs:?}"
        );
    }
}

fn check_probe(s: &str) {
    let parsed = ReadyProbe::parse(s);
    let p = match parsed {
        Ok(p) => p,
        Err(e) => {
            assert_eq!(e.input, s);
            return;
        }
    };
    match &p {
        ReadyProbe::Notify => assert_eq!(s, "notify"),
        ReadyProbe::Started => assert_eq!(s, "started"),
        ReadyProbe::Never => assert_eq!(s, "never"),
        ReadyProbe::Exec(cmd) => {
            assert_eq!(s.strip_prefix("exec:"), Some(cmd.as_str()));
            assert!(!cmd.trim().is_empty());
        }
        ReadyProbe::Fd(n) => {
            assert!(*n >= 3, "{s:?}: fd {n} is stdin, stdout or stderr");
            let digits = s.strip_prefix("fd:").unwrap_or_default();
            assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{s:?}");
            assert_eq!(digits.parse::<i32>().ok(), Some(*n));
        }
        ReadyProbe::Check(c) => assert_eq!(Condition::parse(s).as_ref(), Ok(c)),
    }
    let shown = p.to_string();
    assert_eq!(
        ReadyProbe::parse(&shown).as_ref(),
        Ok(&p),
        "{s:?} parsed to {p:?}, shown as {shown:?}"
    );
}
