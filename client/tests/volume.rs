//! The client crate's volume API, as app code uses it: guards, waits, streams, rotation.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use std::time::Duration;

use futures_util::StreamExt;
use podsignal_client::{
    Coordinator, Error, LockHold, Name, Phase, ReadinessHold, Scope, Volume, VolumeOptions,
    WaitMode,
};

fn name(s: &str) -> Name {
    s.parse().unwrap()
}

async fn open(dir: &std::path::Path) -> Volume {
    // An hour-long rescan: every wake-up in these tests must come from inotify.
    let options = VolumeOptions {
        rescan: Duration::from_secs(3600),
        ..VolumeOptions::default()
    };
    Volume::open(dir, options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_readiness_guard_retracts_and_wakes_waiters() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (open(tmp.path()).await, open(tmp.path()).await);
    let guard = a.hold_ready(&name("web"), Some("serving")).await.unwrap();
    b.wait_ready(&[name("web")], WaitMode::All, Some(Duration::from_secs(5)))
        .await
        .unwrap();
    let waiter = tokio::spawn(async move {
        b.wait_unready(&[name("web")], WaitMode::All, Some(Duration::from_secs(10)))
            .await
    });
    guard.set(false, Some("draining")).await.unwrap();
    waiter.await.unwrap().unwrap();
    let r = a.readiness(&name("web")).await.unwrap();
    assert!(!r.ready && r.why.contains("draining"), "{r:?}");
    drop(guard);
    let r = a.readiness(&name("web")).await.unwrap();
    assert!(r.why.contains("holder released it"), "{r:?}");
}

/// A volume that does not create (a reader: `status`, `wait`) leaves a missing directory
/// missing, reads it as empty, and its waits end once a writer creates it and writes: by
/// inotify (the rescan is an hour), even two levels of it made by `mkdir -p`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_does_not_create_the_directory_and_waits_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("later/shared");
    let reader = Volume::open(
        &dir,
        VolumeOptions {
            create: false,
            rescan: Duration::from_secs(3600),
            ..VolumeOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(!dir.exists());
    assert!(reader.list_readiness().await.unwrap().is_empty());
    assert!(!reader.readiness(&name("db")).await.unwrap().ready);
    assert_eq!(
        reader.describe(),
        format!("{}, which does not exist", dir.display())
    );
    assert!(!tmp.path().join("later").exists(), "reading created it");
    let mut waiter = {
        let reader = reader.clone();
        tokio::spawn(async move {
            reader
                .wait_ready(&[name("db")], WaitMode::All, Some(Duration::from_secs(20)))
                .await
        })
    };
    // Parked (nothing can release it yet), so what releases it below is an event.
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut waiter)
            .await
            .is_err()
    );
    let writer = open(&dir).await;
    writer.set_ready(&name("db"), None).await.unwrap();
    let woke = tokio::time::timeout(Duration::from_secs(10), waiter).await;
    woke.expect("not woken by the directory's creation")
        .unwrap()
        .unwrap();
    assert!(
        reader.set_ready(&name("x"), None).await.is_ok(),
        "once the directory exists, writing works"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_timeout_lists_each_missing_name() {
    let tmp = tempfile::tempdir().unwrap();
    let v = open(tmp.path()).await;
    v.set_ready(&name("a"), None).await.unwrap();
    let err = v
        .wait_ready(
            &[name("a"), name("b")],
            WaitMode::All,
            Some(Duration::from_millis(50)),
        )
        .await
        .unwrap_err();
    match err {
        Error::Timeout { pending, .. } => assert_eq!(
            pending,
            [format!("b: no record in {}", tmp.path().display())]
        ),
        other => panic!("{other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_guard_releases_on_drop_and_tokens_increase() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (open(tmp.path()).await, open(tmp.path()).await);
    let g1 = a.lock(&name("m"), None).await.unwrap();
    assert!(matches!(
        b.try_lock(&name("m")).await,
        Err(Error::LockBusy { .. })
    ));
    let status = b.lock_status(Scope::Lock, &name("m")).await.unwrap();
    assert!(
        status.held
            && status
                .holder
                .as_ref()
                .is_some_and(|h| h.token == g1.token())
    );
    let t1 = g1.token();
    let waiter = tokio::spawn(async move {
        b.lock(&name("m"), Some(Duration::from_secs(10)))
            .await
            .map(|g| g.token())
    });
    drop(g1);
    let t2 = waiter.await.unwrap().unwrap();
    assert!(t2 > t1);
    assert!(
        !a.lock_status(Scope::Lock, &name("m")).await.unwrap().held,
        "the waiter's guard was dropped with its task"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_lock_wait_does_not_keep_the_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (open(tmp.path()).await, open(tmp.path()).await);
    let g = a.lock(&name("m"), None).await.unwrap();
    assert!(matches!(
        b.lock(&name("m"), Some(Duration::from_millis(50))).await,
        Err(Error::Timeout { .. })
    ));
    drop(g);
    // The abandoned wait's thread may get the flock for an instant; it must let it go.
    let again = a
        .lock(&name("m"), Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(again.token().0 >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_see_leadership_change_hands() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, follower) = (
        open(tmp.path()).await,
        open(tmp.path()).await,
        open(tmp.path()).await,
    );
    let lead = a.campaign(&name("sched"), None).await.unwrap();
    let first = follower.leader(&name("sched")).await.unwrap().unwrap();
    assert_eq!(first.token, lead.token());
    let contender = tokio::spawn(async move {
        b.campaign(&name("sched"), None)
            .await
            .map(|l| (l.token(), l))
    });
    drop(lead); // resign
    let next = follower
        .wait_leader_change(
            &name("sched"),
            Some(first.token),
            Some(Duration::from_secs(10)),
        )
        .await
        .unwrap();
    let (token, _held) = contender.await.unwrap().unwrap();
    // The follower sees either the hand-over gap (no leader) or the new leader.
    if let Some(n) = next {
        assert_eq!(n.token, token);
    }
    assert!(token > first.token);
}

async fn next(s: &mut podsignal_client::EventStream) -> podsignal_client::Event {
    tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_resumes_after_a_sequence_number_and_follows() {
    let tmp = tempfile::tempdir().unwrap();
    let v = open(tmp.path()).await;
    for i in 0..5 {
        v.publish(&name("tick"), Some(serde_json::json!(i)))
            .await
            .unwrap();
    }
    let mut stream = v.watch_events(Some(3)).await.unwrap();
    assert_eq!(next(&mut stream).await.seq, 4);
    assert_eq!(next(&mut stream).await.seq, 5);
    v.set_phase(Phase::Running, Some("up"), false)
        .await
        .unwrap();
    let e = next(&mut stream).await;
    assert_eq!((e.seq, e.kind.as_str()), (6, "phase"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_log_is_bounded_and_says_when_events_were_rotated_away() {
    let tmp = tempfile::tempdir().unwrap();
    let v = open(tmp.path()).await;
    let big = "x".repeat(15 * 1024);
    for i in 0..400 {
        v.publish(&name("big"), Some(serde_json::json!({"i": i, "pad": big})))
            .await
            .unwrap();
    }
    let segments: Vec<_> = std::fs::read_dir(tmp.path().join("events"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
        .collect();
    assert!(segments.len() <= 4, "{} segments", segments.len());
    let total: u64 = segments.iter().map(|e| e.metadata().unwrap().len()).sum();
    assert!(total < 5 * 1024 * 1024, "{total} bytes");
    assert_eq!(v.last_event_seq().await.unwrap(), 400);
    // "After 5": events 6 and on were rotated away.
    assert!(matches!(
        v.read_events(5, 10, true).await,
        Err(Error::EventsRotated { wanted: 6, .. })
    ));
    // "After 0" means from the oldest kept: nothing was asked for before it.
    let kept = v.read_events(0, 1000, true).await.unwrap();
    assert_eq!(kept.last().unwrap().seq, 400);
    assert!(
        kept.windows(2).all(|w| w[1].seq == w[0].seq + 1),
        "kept events are dense"
    );
    let mut stream = v.watch_events(Some(5)).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .unwrap()
        .unwrap();
    match first {
        Err(Error::EventsRotated { wanted, available }) => {
            assert_eq!(wanted, 6);
            assert_eq!(available, kept[0].seq, "the loss ends where the log starts");
        }
        other => panic!("expected the loss first, got {other:?}"),
    }
    let after = next(&mut stream).await;
    assert_eq!(after.seq, kept[0].seq, "and the stream goes on after it");
}
