//! Shared by the integration tests: a fresh shared directory per test, the real binary,
//! background processes that are killed when the test ends, and polling with a deadline.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A fresh scratch directory with a shared directory inside, removed at the end.
pub struct Pod {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
    children: Vec<Child>,
}

impl Pod {
    pub fn new() -> Pod {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("shared");
        Pod {
            tmp,
            dir,
            children: Vec::new(),
        }
    }

    /// `podsignal ARGS` against this pod's directory.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_podsignal"));
        c.args(args)
            .env("PODSIGNAL_DIR", &self.dir)
            .env_remove("PODSIGNAL_AGENT")
            .env_remove("PODSIGNAL_NAME");
        c
    }

    /// Runs to completion, capturing output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("run podsignal")
    }

    /// Starts in the background; killed (SIGKILL) when the Pod is dropped.
    pub fn spawn(&mut self, args: &[&str]) -> u32 {
        let child = self
            .cmd(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn podsignal");
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Takes a background child out of the Pod's care, to wait on it.
    pub fn take(&mut self, pid: u32) -> Child {
        let i = self
            .children
            .iter()
            .position(|c| c.id() == pid)
            .expect("no such child");
        self.children.remove(i)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `f` every 5 ms until it returns true or `limit` passes; returns whether it did.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::park_timeout(Duration::from_millis(5));
    }
}

/// Waits for a child to exit, at most `limit`; returns its code (128+N for signals).
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    let mut status = None;
    eventually(limit, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    status.map(|s| s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)))
}

/// True if `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next())
            .is_some_and(|st| st != "Z"),
        Err(_) => false,
    }
}

/// Sends signal `sig` (e.g. "TERM") to `pid`.
pub fn signal(pid: u32, sig: &str) {
    Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("kill");
}

/// `run --name NAME OPTS -- sh -c SCRIPT` in the background, its command announcing its pid
/// after SCRIPT's leading traps; returns run's pid and the command's pid once it has started.
pub fn start_run(pod: &mut Pod, name: &str, opts: &[&str], script: &str) -> (u32, u32) {
    let pidfile = pod.path(&format!("{name}.pid"));
    let script = announce_after_traps(script, &pidfile);
    let mut args = vec!["run", "--name", name];
    args.extend_from_slice(opts);
    args.extend_from_slice(&["--", "sh", "-c", &script]);
    let run = pod.spawn(&args);
    assert!(
        eventually(Duration::from_secs(5), || read_pid(&pidfile).is_some()),
        "{name} never started"
    );
    (run, read_pid(&pidfile).expect("pid file"))
}

pub fn kill9(pid: u32) {
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
}

pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `SCRIPT` with `echo $$ >PIDFILE` inserted after its leading `trap '...' SIGS;` statements:
/// a test that waits for the pid file then signals the shell must not race its traps.
pub fn announce_after_traps(script: &str, pidfile: &Path) -> String {
    let mut rest = script.trim_start();
    let mut traps = String::new();
    while let Some(after) = rest.strip_prefix("trap '") {
        let Some(close) = after.find('\'') else { break };
        let Some(end) = after[close..].find(';') else {
            break;
        };
        let statement = &rest[..6 + close + end + 1];
        traps.push_str(statement);
        traps.push(' ');
        rest = rest[statement.len()..].trim_start();
    }
    format!("{traps}echo $$ >{}; {rest}", pidfile.display())
}

#[test]
fn announce_after_traps_puts_the_pid_after_the_traps() {
    let p = Path::new("/p");
    assert_eq!(announce_after_traps("exit 3", p), "echo $$ >/p; exit 3");
    assert_eq!(
        announce_after_traps("trap 'exit 0' TERM; sleep 1", p),
        "trap 'exit 0' TERM; echo $$ >/p; sleep 1"
    );
    assert_eq!(
        announce_after_traps("trap '' TERM; trap 'x; y' INT; z", p),
        "trap '' TERM; trap 'x; y' INT; echo $$ >/p; z"
    );
}

/// Kills (SIGKILL) the listed pids when dropped: for processes a test starts indirectly (a
/// grandchild left behind on purpose by the bug under test) that no `Pod` owns.
#[derive(Default)]
pub struct KillOnDrop(pub Vec<u32>);

impl KillOnDrop {
    pub fn add(&mut self, pid: u32) {
        self.0.push(pid);
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if alive(pid) {
                kill9(pid);
            }
        }
    }
}

impl Pod {
    /// Runs to completion like [`Pod::run`], but panics (after killing it) if it has not
    /// exited after `limit`: a hang is a failure, not a stuck test.
    pub fn run_within(&self, args: &[&str], limit: Duration) -> Output {
        run_cmd_within(
            self.cmd(args).stdin(Stdio::null()),
            limit,
            &format!("{args:?}"),
        )
    }

    /// `podsignal ARGS` with stdout and stderr to files (not pipes), waited at most `limit`:
    /// for commands that may leave a descendant behind that would hold a pipe open forever.
    /// Returns the exit code (None if still running after `limit`, then killed) and stderr.
    pub fn run_detached(&self, args: &[&str], limit: Duration) -> (Option<i32>, String) {
        let err = tempfile::NamedTempFile::new_in(self.tmp.path()).expect("stderr file");
        let mut child = self
            .cmd(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err.reopen().expect("reopen"))
            .spawn()
            .expect("spawn podsignal");
        let code = wait_exit(&mut child, limit);
        if code.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        (
            code,
            std::fs::read_to_string(err.path()).unwrap_or_default(),
        )
    }
}

/// Runs `cmd` with captured output; panics (after killing it) if it is still running after
/// `limit`.
pub fn run_cmd_within(cmd: &mut Command, limit: Duration, what: &str) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            kill9(pid);
            panic!("{what} still running after {limit:?}");
        }
    }
}

/// A numeric field of /proc/PID/status (e.g. "Threads", "VmHWM" in kB); None once gone.
pub fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// True once `pid` has an inotify instance open: a podsignal waiter is then watching.
pub fn watching(pid: u32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().contains("inotify"))
        })
    })
}

/// Panics unless `tool` runs (`tool ARG` exits 0): the CI image has it, so a missing tool is
/// a broken environment to report, never a reason to skip.
pub fn require_tool(tool: &str, arg: &str) {
    let ok = Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "this test needs `{tool}` (`{tool} {arg}` failed): install it"
    );
}

/// A background process that no `Pod` started (flock(1), curl, a CLI on another transport);
/// killed (SIGKILL) and reaped when dropped.
pub struct Bg(pub Child);

impl Bg {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The workspace root (tests/, examples/ and docs/ are under it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `podsignal ARGS` from the workspace root with `stdin` as its input and no podsignal
/// environment (for the manifest tools, `inject` and `lint`, which read no shared directory).
pub fn podsignal_with_stdin(args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_podsignal"))
        .args(args)
        .current_dir(workspace_root())
        .env_remove("PODSIGNAL_IMAGE")
        .env_remove("PODSIGNAL_NAME")
        .env_remove("PODSIGNAL_LISTEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn podsignal");
    let mut input = child.stdin.take().expect("stdin");
    // A command refused before it reads its input may be gone already: that is its answer.
    if let Err(e) = input.write_all(stdin.unwrap_or("").as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    drop(input);
    child.wait_with_output().expect("podsignal runs")
}

/// Writes `DIR/sd-notify`, a sender of sd_notify messages (`python3 DIR/sd-notify READY=1
/// STATUS=up`) that, like systemd-notify from systemd 254 on, stays until `run` answers its
/// `BARRIER=1`: its message is read while it lives, so its ancestry can be checked. (The
/// systemd-notify of Debian 12 exits at once, and a loaded machine can reap it before `run`
/// reads its datagram; outside PID 1 `run` then rightly refuses it.) Returns its path.
pub fn sd_notify_sender(dir: &Path) -> String {
    let script = r#"import array, os, socket, sys
addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto("\n".join(sys.argv[1:]).encode(), addr)
r, w = os.pipe()
fds = array.array("i", [w])
s.sendmsg([b"BARRIER=1"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())], 0, addr)
os.close(w)
os.read(r, 1)
"#;
    let path = dir.join("sd-notify");
    std::fs::write(&path, script).expect("write sd-notify");
    path.display().to_string()
}

/// A child's stderr, line by line as it writes them (read on a thread of its own, so the
/// child never blocks on a full pipe).
pub struct StderrLines {
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl StderrLines {
    /// Takes `child`'s stderr, which must be piped.
    pub fn of(child: &mut Child) -> StderrLines {
        use std::io::BufRead;
        let stderr = child.stderr.take().expect("stderr is not piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        StderrLines {
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line for which `want` holds, skipping the others; panics after `limit`,
    /// listing every line seen.
    pub fn until(&mut self, limit: Duration, what: &str, want: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no line {what} within {limit:?}; seen: {:#?}", self.seen),
            }
        }
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}
