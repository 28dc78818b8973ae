#!/usr/bin/env python3
"""Turn the JSON results of podsignal-bench into BENCHMARKS.md and PNG plots (bench/run.sh)."""
import argparse, datetime, glob, json, math, os

ORDER = ["waiters", "readiness", "cli", "locks", "events", "cost"]

MISSING = """\
## Not measured yet

- **SSE readiness wake**: readiness changes publish no event, so the SSE row times a
  published event (`POST /v1/events` → `/v1/events/stream`), not a readiness change.
- **Events over HTTP** (`/v1/events/stream` SSE, `?wait=` long-polls): the events rows above
  use the library on the shared directory.
- **Startup ordering** beyond the probe wake (`podsignal run --wait-for NAME` of a chain of
  containers).
"""

HOW = """\
## How these were measured

Every figure comes from real processes on one machine, and every floor was measured in the
same run. A floor is the least any implementation can do here: a rename seen by a raw
inotify waiter in another process, a raw `flock(2)` hand-off, a minimal axum server
(`podsignal-bench floor-server`: tokio + hyper + axum with a `tokio::sync::watch`, two
worker threads like the agent), spawning a tiny static program. *ratio* is podsignal ÷ floor
(for req/s, higher is better; everywhere else lower is). The machine is shared and has 2
cores, so the numbers are noisy: compare a row with its own floor, not with another run.

- Long-lived waiters stamp their wake-up with `CLOCK_MONOTONIC`; the writer stamps just
  before its first syscall. Before each trial the harness waits until the waiter is armed
  (5-10 ms, jittered; for locks, until `/proc/locks` shows it blocked).
- Per-trial processes (CLI rows) are timed from just before the writer process is spawned to
  the waiter's exit, after the waiter shows an inotify watch in `/proc/PID/fdinfo`. That
  includes spawning the writer and the waiter's exit (closing an inotify instance costs the
  kernel several ms, which is why `inotifywait` is far above the spawn floor too).
- Polling baselines: the writer acts at a uniformly random phase of the poll period.
- Many waiters: N raw-TCP HTTP/1.1 clients (one tokio task each) long-poll
  `GET /v1/readiness/db?wait=60s`; RSS is `VmRSS` once the server reports all N waiting, CPU is
  `utime+stime` (10 ms ticks) over 10 s of everyone waiting (quick: 5 s); the agent is made ready by the
  `podsignal ready db` process, the floor by one `POST`, and the time runs from just before
  that to the last client's response head.
"""


def fmt(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def ratio(r):
    f, p = r.get("floor"), r.get("podsignal")
    if f is None or p is None or f == 0:
        return "—"
    return f"{p / f:.2f}×"


def plots(reports, outdir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(outdir, exist_ok=True)
    by_plot = {}
    for rep in reports:
        for s in rep["series"]:
            by_plot.setdefault(s["plot"], []).append(s)
    made = []
    for plot, series in by_plot.items():
        fig, ax = plt.subplots(figsize=(8, 4.5))
        if series[0]["x"]:
            for s in series:
                ax.plot(s["x"], s["values"], marker="o", label=s["label"])
            ax.set_xscale("log")
            ax.set_xlabel(series[0].get("x_label") or "waiters")
            ax.set_ylabel(series[0].get("y_label") or ("MiB" if "rss" in plot else "ms"))
        else:
            for s in series:
                v = sorted(x for x in s["values"] if x > 0)
                if not v:
                    continue
                y = [(i + 1) / len(v) for i in range(len(v))]
                ax.step(v, y, where="post", label=f'{s["label"]} (n={len(v)})')
            ax.set_xscale("log")
            ax.set_xlabel("latency, ms (log)")
            ax.set_ylabel("fraction of trials ≤ x")
        ax.set_title(plot)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = os.path.join(outdir, f"bench-{plot}.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        made.append(path)
    return made


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--machine", required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--markdown", required=True)
    ap.add_argument("--plots")
    a = ap.parse_args()

    reports = []
    for name in ORDER:
        path = os.path.join(a.results, f"{name}.json")
        if os.path.exists(path):
            with open(path) as f:
                reports.append(json.load(f))
    probes = ""
    if os.path.exists(os.path.join(a.results, "probes.txt")):
        with open(os.path.join(a.results, "probes.txt")) as f:
            probes = f.read().strip()

    images = plots(reports, a.plots) if a.plots else []
    md_dir = os.path.dirname(os.path.abspath(a.markdown))

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{a.command}` on {now}; machine: {a.machine}. "
        "Every row is from that one run; rerun the command to refresh the whole file.",
        "",
        "Run it: `bash bench/run.sh` (the full suite, ~12 min on 2 cores), `--quick` (~2 min), "
        "`--no-write` (CI's smoke run: leaves this file alone). One benchmark alone: "
        "`cargo build --release --bin podsignal --bin podsignal-bench && ulimit -n $(ulimit -Hn) && "
        "target/release/podsignal-bench waiters --n 10000 --podsignal target/release/podsignal` "
        "(`podsignal-bench --help` lists them: waiters, readiness, cli, locks, events, cost). "
        "Not measured yet: see the end of this file.",
        "",
        "| figure | unit | floor | podsignal | baselines | ratio | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for rep in reports:
        for r in rep["rows"]:
            base = "; ".join(f"{n}: {fmt(v)}" for n, v in r["baselines"]) or "—"
            note = r["note"].replace("|", "\\|")
            lines.append(
                f'| {r["figure"]} | {r["unit"]} | {fmt(r["floor"])} | {fmt(r["podsignal"])} '
                f'| {base} | {ratio(r)} | {note} |'
            )
    if probes:
        lines += [
            "",
            "## Probes: `run --wait-for tcp:` / `http://` (bench/wait-latency.sh)",
            "",
            "How long after a real server starts listening the wrapped command starts "
            "(loopback targets are probed every `--local-interval`, 10 ms; 503 → 200 and the 10,000-connection CPU figures: `bench/probes.sh`, docs/conditions.md, Probe timing):",
            "",
            "```",
            probes,
            "```",
        ]
    if images:
        lines += ["", "## Plots", ""]
        for p in images:
            rel = os.path.relpath(p, md_dir)
            lines.append(f"![{os.path.basename(p)}]({rel})")
            lines.append("")
    lines += ["", HOW, MISSING]
    with open(a.markdown, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")


if __name__ == "__main__":
    main()
