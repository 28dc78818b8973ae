//! `run --ready-when notify`: the sd_notify protocol with real datagrams, from the child,
//! from a grandchild shell script (an sd_notify sender that waits for its BARRIER, as
//! systemd-notify does from systemd 254 on), and from an unrelated process.

// Helpers outside #[test] fns unwrap too: in a test, a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use common::*;

fn record(pod: &Pod, name: &str) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(pod.dir.join(format!("ready/{name}.json"))).ok()?;
    serde_json::from_str(&text).ok()
}

fn has(pod: &Pod, name: &str, state: &str, reason: &str) -> bool {
    record(pod, name).is_some_and(|r| r["state"] == state && r["reason"] == reason)
}

/// A script that sends each step's message with an sd_notify sender once the file STEP
/// exists; run as `sh -c 'sh SCRIPT'`, so the sender is a great-grandchild of the command.
fn stepper(dir: &Path) -> String {
    let d = dir.display();
    let n = format!("python3 {}", sd_notify_sender(dir));
    let script = format!(
        "step() {{ while [ ! -e {d}/$1 ]; do sleep 0.01; done; }}\n\
         {n} READY=1 STATUS=up\n\
         step s2; {n} RELOADING=1 STATUS=reloading\n\
         step s3; {n} READY=1 STATUS=reloaded\n\
         step s4; {n} STATUS=after-intruder\n\
         step s5; {n} STOPPING=1 STATUS=bye\n\
         step s6\n"
    );
    let path = dir.join("notify.sh");
    std::fs::write(&path, script).unwrap();
    path.display().to_string()
}

#[test]
fn notify_from_a_grandchild_script_drives_readiness_and_strangers_are_ignored() {
    require_tool("python3", "--version");
    let mut pod = Pod::new();
    let sock = pod.path("notify.sock");
    let script = stepper(pod.tmp.path());
    let tmp = pod.tmp.path().to_owned();
    let step = |s: &str| std::fs::write(tmp.join(s), "").unwrap();
    let long = Duration::from_secs(5);
    let run = pod.spawn(&[
        "run",
        "--name",
        "api",
        "--ready-when",
        "notify",
        "--notify-socket",
        sock.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        &format!("sh {script}"),
    ]);
    assert!(
        eventually(long, || has(&pod, "api", "ready", "up")),
        "READY=1 STATUS=up: {:?}",
        record(&pod, "api")
    );
    step("s2");
    assert!(
        eventually(long, || has(&pod, "api", "unready", "reloading")),
        "RELOADING=1: {:?}",
        record(&pod, "api")
    );
    step("s3");
    assert!(
        eventually(long, || has(&pod, "api", "ready", "reloaded")),
        "READY=1 after reload: {:?}",
        record(&pod, "api")
    );
    // An unrelated process (this test) says STOPPING=1: ignored. The child's next message,
    // sent after it, shows the intruder's was handled (in order) without effect.
    UnixDatagram::unbound()
        .unwrap()
        .send_to(b"STOPPING=1\nSTATUS=intruder", &sock)
        .unwrap();
    step("s4");
    assert!(
        eventually(long, || has(&pod, "api", "ready", "after-intruder")),
        "a stranger's datagram counted: {:?}",
        record(&pod, "api")
    );
    step("s5");
    assert!(
        eventually(long, || has(&pod, "api", "unready", "bye")),
        "STOPPING=1: {:?}",
        record(&pod, "api")
    );
    step("s6");
    assert_eq!(wait_exit(&mut pod.take(run), long), Some(0));
}

#[test]
fn notify_ready_from_the_child_itself_on_the_default_abstract_socket() {
    let mut pod = Pod::new();
    // python3 sends from the command's own process, to the abstract address in NOTIFY_SOCKET.
    let py = "import os,socket,time\n\
              a=os.environ['NOTIFY_SOCKET']\n\
              a='\\0'+a[1:] if a.startswith('@') else a\n\
              s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\n\
              s.sendto(b'READY=1\\nSTATUS=serving',a)\n\
              time.sleep(30)\n";
    let run = pod.spawn(&[
        "run",
        "--name",
        "py",
        "--ready-when",
        "notify",
        "--",
        "python3",
        "-c",
        py,
    ]);
    assert!(
        eventually(Duration::from_secs(10), || has(
            &pod, "py", "ready", "serving"
        )),
        "{:?}",
        record(&pod, "py")
    );
    kill9(run);
}
