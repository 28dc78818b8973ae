//! Fuzzes the record decoders: `record::decode` of every record type (readiness, tombstone,
//! phase, lock holder, stop request), their checked `decode(bytes, expected name)`, a lock's
//! fencing counter (`Counter::parse`) and the `podsignal-caller` header (`Identity`).
//!
//! Every decoder sees every input. Properties:
//! - A record that decodes came from at most `MAX_RECORD_BYTES`, has a version at most
//!   `FORMAT_VERSION`, valid names, and writer identities with a 16-hex-digit incarnation.
//! - It re-encodes (`record::encode`): one line ending in `\n`, at most `MAX_RECORD_BYTES`,
//!   decoding to an equal record and re-encoding to the same bytes; `encode` refuses only a
//!   record whose encoding is over the limit.
//! - The checked decoders accept it from the file of its own name (a readiness record only
//!   with no hold id or a 16-hex-digit one) and refuse it from any other file.
//! - Fencing counter: `Valid(t)` only for decimal digits (and one optional `\n`) spelling `t`;
//!   `t.to_counter()` reads back as `Valid(t)`; the next token is one past the highest known,
//!   or refused only for a corrupt counter with no holder record to go on.
//! - Caller header: an identity parsed from it is written back (`caller_header`) to a header
//!   that parses to the same identity, unless its hostname or source has a byte outside
//!   visible ASCII once in JSON.
#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use podsignal_proto::api::{caller_header, parse_caller_header};
use podsignal_proto::lock::{Counter, FenceError, next_token};
use podsignal_proto::record::{self, is_incarnation};
use podsignal_proto::{
    FORMAT_VERSION, FencingToken, HolderRecord, Identity, MAX_RECORD_BYTES, Name, PhaseRecord,
    ReadinessRecord, RecordError, StopRequest, TombstoneRecord,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

fuzz_target!(|data: &[u8]| {
    if let Some(r) = round_trip::<ReadinessRecord>(data) {
        assert!(r.version <= FORMAT_VERSION);
        check_identity(&r.writer);
        let hold_ok = r.hold.as_deref().is_none_or(is_incarnation);
        let own = ReadinessRecord::decode(data, &r.name);
        assert_eq!(own.is_ok(), hold_ok, "{r:?}: {own:?}");
        if hold_ok {
            assert_eq!(own.ok().as_ref(), Some(&r));
        }
        let other = ReadinessRecord::decode(data, &other_than(&r.name));
        assert!(matches!(other, Err(RecordError::Invalid(_))), "{other:?}");
    }
    if let Some(t) = round_trip::<TombstoneRecord>(data) {
        assert!(t.version <= FORMAT_VERSION);
        check_identity(&t.writer);
        let own = TombstoneRecord::decode(data, &t.name);
        assert_eq!(own.ok().as_ref(), Some(&t));
        let other = TombstoneRecord::decode(data, &other_than(&t.name));
        assert!(matches!(other, Err(RecordError::Invalid(_))), "{other:?}");
    }
    if let Some(p) = round_trip::<PhaseRecord>(data) {
        assert!(p.version <= FORMAT_VERSION);
        check_identity(&p.writer);
        assert_eq!(PhaseRecord::decode(data).ok().as_ref(), Some(&p));
    }
    if let Some(h) = round_trip::<HolderRecord>(data) {
        assert!(h.version <= FORMAT_VERSION);
        check_identity(&h.holder);
        if let Some(via) = &h.via {
            check_identity(via);
        }
        let own = HolderRecord::decode(data, &h.name);
        assert_eq!(own.ok().as_ref(), Some(&h));
        let other = HolderRecord::decode(data, &other_than(&h.name));
        assert!(matches!(other, Err(RecordError::Invalid(_))), "{other:?}");
    }
    if let Some(s) = round_trip::<StopRequest>(data) {
        assert!(s.version <= FORMAT_VERSION);
        check_identity(&s.writer);
        let own = StopRequest::decode(data, &s.name);
        assert_eq!(own.ok().as_ref(), Some(&s));
        let other = StopRequest::decode(data, &other_than(&s.name));
        assert!(matches!(other, Err(RecordError::Invalid(_))), "{other:?}");
    }
    check_counter(data);
    check_caller_header(&String::from_utf8_lossy(data));
});

/// Decodes `bytes` as a `T`; if that works, checks that it re-encodes to an equal record.
fn round_trip<T>(bytes: &[u8]) -> Option<T>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let r: T = match record::decode(bytes) {
        Ok(r) => r,
        Err(RecordError::TooLarge { size }) => {
            assert!(size > MAX_RECORD_BYTES && size == bytes.len() as u64);
            return None;
        }
        Err(_) => return None,
    };
    assert!(bytes.len() as u64 <= MAX_RECORD_BYTES);
    match record::encode(&r) {
        Ok(encoded) => {
            assert!(encoded.len() as u64 <= MAX_RECORD_BYTES);
            assert_eq!(encoded.last(), Some(&b'\n'));
            assert!(!encoded[..encoded.len() - 1].contains(&b'\n'));
            let back = record::decode::<T>(&encoded);
            let text = String::from_utf8_lossy(&encoded);
            assert_eq!(back.as_ref().ok(), Some(&r), "decoding the encoded {text}");
            let again = back.ok().map(|b| record::encode(&b).ok());
            assert_eq!(again, Some(Some(encoded)), "the encoding is not canonical");
        }
        Err(RecordError::TooLarge { size }) => assert!(size > MAX_RECORD_BYTES),
        Err(e) => panic!("{r:?} does not encode: {e}"),
    }
    Some(r)
}

fn check_identity(id: &Identity) {
    assert!(is_incarnation(&id.incarnation), "{id:?}");
    let _ = (id.label(), id.describe());
}

/// A valid name other than `name`.
fn other_than(name: &Name) -> Name {
    let other = if name.as_str() == "x" { "y" } else { "x" };
    Name::new(other).unwrap_or_else(|e| panic!("{e}"))
}

fn check_counter(bytes: &[u8]) {
    let counter = Counter::parse(Some(bytes));
    let text = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let holders = [None, Some(FencingToken(0)), Some(FencingToken(7))];
    match &counter {
        Counter::Valid(t) => {
            assert!(!text.is_empty() && text.iter().all(u8::is_ascii_digit));
            let value = std::str::from_utf8(text).ok().and_then(|s| s.parse().ok());
            assert_eq!(value, Some(t.0));
            let written = t.to_counter();
            assert_eq!(Counter::parse(Some(written.as_bytes())), counter);
            for h in holders {
                let highest = Some(*t).max(h).unwrap_or(FencingToken(0));
                let next = next_token(&counter, h);
                match highest.next() {
                    Some(n) => assert_eq!(next, Ok(n)),
                    None => assert_eq!(next, Err(FenceError::Exhausted)),
                }
            }
        }
        Counter::Corrupt(why) => {
            assert!(!why.is_empty());
            let digits = !text.is_empty() && text.iter().all(u8::is_ascii_digit);
            let value = text.iter().fold(0u128, |v, b| {
                v.saturating_mul(10)
                    .saturating_add(u128::from(b.wrapping_sub(b'0')))
            });
            assert!(
                !digits || value > u128::from(u64::MAX),
                "{text:?} is a fine counter, refused as {why:?}"
            );
            assert!(matches!(
                next_token(&counter, None),
                Err(FenceError::Corrupt(_))
            ));
            for h in holders.into_iter().flatten() {
                assert_eq!(next_token(&counter, Some(h)).ok(), h.next());
            }
        }
        Counter::Missing => panic!("Missing for a file with contents"),
    }
}

fn check_caller_header(value: &str) {
    let Some(id) = parse_caller_header(value) else {
        return;
    };
    check_identity(&id);
    let unsendable = |s: &str| s.chars().any(|c| u32::from(c) >= 0x7f);
    let expect_none = unsendable(&id.hostname) || id.source.as_deref().is_some_and(unsendable);
    match caller_header(&id) {
        Some(header) => {
            assert!(!expect_none, "{id:?} sent as {header:?}");
            assert!(header.bytes().all(|b| (0x20..0x7f).contains(&b)));
            assert_eq!(parse_caller_header(&header).as_ref(), Some(&id));
        }
        None => assert!(expect_none, "{id:?} cannot be sent"),
    }
}
