//! The gate that keeps the ledger true about grants of a killed agent: see [`Gate`].

use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rustix::fs::{FlockOperation, flock};

use super::append;
use crate::harness::{alive, eventually, kill9};

/// Keeps the ledger true about grants of a killed agent.
///
/// A grant can leave the agent an instant before the harness kills it. Its holder would then
/// write `enter` after the `agent-killed` line, as if the next agent had granted it, while the
/// lock it stands for is already gone, and [`super::check`] excuses the stale writes of a
/// holder through the agent only when it entered before the kill. So the agent has a
/// *generation* (how many times it was killed) in a file: the killer bumps it, writes
/// `agent-killed` and kills under an exclusive `flock` of the file ([`Gate::kill_agent`]); a
/// holder through the agent reads the generation before it asks for the lock, and writes
/// `enter` under a shared `flock` only if the generation is still that one ([`Gate::enter`],
/// or [`super::ENTER`] in `sh`). A grant of an agent killed since is left unused (its holder
/// releases it).
#[derive(Debug, Clone)]
pub struct Gate {
    path: PathBuf,
}

impl Gate {
    /// A gate at `path` (a scratch file), at generation 0.
    pub fn create(path: PathBuf) -> std::io::Result<Gate> {
        std::fs::write(&path, "0")?;
        Ok(Gate { path })
    }

    /// The generation now: read it before asking the agent for a grant. Read under the
    /// shared lock, so never in the middle of a kill (`u64::MAX`, which no check accepts, if
    /// it cannot be read).
    pub fn generation(&self) -> u64 {
        self.locked(FlockOperation::LockShared)
            .ok()
            .and_then(|(_, generation)| generation)
            .unwrap_or(u64::MAX)
    }

    /// Writes `worker TOKEN enter` for a grant asked for in generation `asked_in`, unless the
    /// agent was killed since; true if it entered.
    pub fn enter(&self, ledger: &Path, asked_in: u64, worker: &str, token: u64) -> bool {
        let Ok((_shared, Some(now))) = self.locked(FlockOperation::LockShared) else {
            return false;
        };
        now == asked_in && append(ledger, worker, Some(token), "enter").is_ok()
    }

    /// Sets `GATE` and `GEN` for [`super::ENTER`] (and so [`super::SECTION`]) in `cmd`, for a
    /// grant asked for in generation `asked_in`.
    pub fn env(&self, cmd: &mut Command, asked_in: u64) {
        cmd.env("GATE", &self.path).env("GEN", asked_in.to_string());
    }

    /// The killer's side: the next generation, `harness - agent-killed` in the ledger, and
    /// `kill -9` of the agent `pid`, all under the exclusive lock, held until the agent is
    /// dead (a zombie at most) or 5 s passed. Ok(false): it was still alive then. An error:
    /// the gate or the ledger failed, and nothing was killed.
    pub fn kill_agent(&self, ledger: &Path, pid: u32) -> std::io::Result<bool> {
        let (file, generation) = self.locked(FlockOperation::LockExclusive)?;
        let next = generation.map_or(0, |g| g + 1);
        file.set_len(0)?;
        file.write_all_at(next.to_string().as_bytes(), 0)?;
        append(ledger, "harness", None, "agent-killed")?;
        kill9(pid);
        Ok(eventually(Duration::from_secs(5), || !alive(pid)))
    }

    /// The gate file, locked as `how` (unlocked when it is dropped), and the generation it
    /// holds (`None` if it holds no number).
    fn locked(&self, how: FlockOperation) -> std::io::Result<(File, Option<u64>)> {
        let mut file = File::options().read(true).write(true).open(&self.path)?;
        flock(&file, how)?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        Ok((file, text.trim().parse().ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{REFUSED, SECTION};
    use super::*;

    /// A gate and a ledger path in a scratch directory (removed when it is dropped).
    fn scratch() -> std::io::Result<(tempfile::TempDir, Gate, PathBuf)> {
        let dir = tempfile::tempdir()?;
        let gate = Gate::create(dir.path().join("gate"))?;
        let ledger = dir.path().join("ledger");
        Ok((dir, gate, ledger))
    }

    #[test]
    fn a_grant_asked_for_before_a_kill_is_left_unused() -> std::io::Result<()> {
        let (_dir, gate, ledger) = scratch()?;
        let asked = gate.generation();
        assert!(gate.enter(&ledger, asked, "hold1", 3));
        let mut agent = Command::new("sleep").arg("30").spawn()?;
        assert!(gate.kill_agent(&ledger, agent.id())?);
        agent.wait()?;
        assert_eq!(gate.generation(), asked + 1);
        assert!(!gate.enter(&ledger, asked, "hold2", 4));
        let text = std::fs::read_to_string(&ledger)?;
        assert_eq!(text, "hold1 3 enter\nharness - agent-killed\n");
        Ok(())
    }

    #[test]
    fn the_sh_section_enters_only_in_its_generation() -> std::io::Result<()> {
        let (_dir, gate, ledger) = scratch()?;
        let run = |w: &str, asked: Option<u64>| {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", SECTION, "section"])
                .env_remove("GATE")
                .env("W", w)
                .env("LEDGER", &ledger)
                .env("WORK", "1")
                .env("PODSIGNAL_FENCING_TOKEN", "7");
            if let Some(asked) = asked {
                gate.env(&mut cmd, asked);
            }
            cmd.output()
        };
        assert!(run("a", None)?.status.success());
        assert!(run("b", Some(0))?.status.success());
        let out = run("c", Some(1))?;
        assert_eq!(out.status.code(), Some(REFUSED));
        assert!(String::from_utf8_lossy(&out.stderr).contains("agent killed since the grant"));
        let text = std::fs::read_to_string(&ledger)?;
        let want = "a 7 enter\na 7 work\na 7 exit\nb 7 enter\nb 7 work\nb 7 exit\n";
        assert_eq!(text, want);
        Ok(())
    }
}
