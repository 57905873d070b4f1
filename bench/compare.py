"""listserv against GNU Mailman 3, one sitting, the same sink, runs alternating.

    python bench/compare.py [--members 10000] [--mailman-members 10000] [--runs 3]
                            [--modes bulk verp personalize]
    python bench/compare.py --render          # bench/README.md from bench/results/

Per mode and round, in this order: listserv (``bench/fanout.py --from-250``:
a real daemon, the post over SMTP, t0 = its ``250``), Mailman 3 at its
defaults, Mailman 3 tuned to listserv's shape (``[mta] max_recipients`` =
listserv's recipients per transaction, ``[runner.out] instances`` = its
connections; t0 = the LMTP ``250``, the peer's ``bench.py``). Then the sink's
own ceiling for each shape (``sink_capacity.py``: one plain client).

Every run uses ``bench/verify_sink.py`` (the peer's raw sink plus a tally
per recipient and a 1 % sample of copies verified with dkimpy when the sink
stops) and is checked: each of the N members got exactly one copy, nothing
failed, every sampled copy verifies (Mailman 3 core does not DKIM-sign, so
its runs have no sample to verify; that is recorded, not hidden). A run
that fails a check is kept in the results with ``ok: false`` and the
sitting stops with an error after writing them.

The raw results go to ``bench/results/compare-<UTC stamp>.json`` with the
machine's facts (cores, Python, package versions, load average at start and
end). ``--render`` rebuilds the section of ``bench/README.md`` between the
``compare`` markers from every such file, so every figure there was measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import fanout  # noqa: E402  (bench/fanout.py, beside this file)

RESULTS = HERE / "results"
README = HERE / "README.md"
SINK = HERE / "verify_sink.py"
MM3 = Path("/tmp/mm3")
MM3_PY = MM3 / "venv" / "bin" / "python"
MM3_MODE = {"bulk": "default", "verp": "verp", "personalize": "personalize"}
BEGIN, END = "<!-- compare-begin -->", "<!-- compare-end -->"
PACKAGES = ("aiosmtplib", "aiosmtpd", "aiosqlite", "dkimpy", "cryptography")


# -- one sitting ---------------------------------------------------------------------


def machine(stage: str) -> dict[str, object]:
    load = os.getloadavg()
    return {f"load_{stage}": [round(x, 2) for x in load], f"at_{stage}": _now()}


def facts() -> dict[str, object]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    mm = subprocess.run([str(MM3_PY), "-c", "import importlib.metadata as m;"
                         "print(m.version('mailman'))"], capture_output=True, text=True)
    versions["mailman"] = mm.stdout.strip() or None
    commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    return {"cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions, "listserv_commit": commit,
            "mem_total_kib": _meminfo("MemTotal"),
            "shared": "2-vCPU VM shared with other sessions running test suites"}


def listserv_shape() -> tuple[int, int]:
    """Recipients per transaction and connections of a default ``[delivery]``."""
    from listserv.config import DeliveryConfig

    d = DeliveryConfig()
    return d.max_recipients_per_transaction, d.connections


def peer_copy(tuned: bool, per_txn: int, connections: int) -> Path:
    """The peer's scripts with our sink as its ``sink.py`` (and the tuning appended)."""
    target = MM3 / ("peer-tuned" if tuned else "peer-default")
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(fanout.PEERS, target)
    for f in target.iterdir():
        f.chmod(0o755)
    shutil.copy(SINK, target / "sink.py")
    if tuned:
        with (target / "mailman.cfg").open("a") as fh:
            fh.write(f"\n# compare.py: listserv's shape\n[mta]\nmax_recipients: {per_txn}\n"
                     f"\n[runner.out]\ninstances: {connections}\n")
    return target


def run_listserv(n: int, mode: str) -> dict[str, object]:
    row = fanout.run_one(n, mode, from_250=True, sink_script=SINK)
    sink = row.pop("sink")
    assert isinstance(sink, dict)
    return {"who": "listserv", "n": n, "mode": mode, "post_to_last_s": row["seconds"],
            "first_to_last_s": row["first_to_last_s"], "first_s": row["first_ms"] / 1000,
            "transactions": row["transactions"], "failed": row["failed"], "sink": sink,
            "rss_peak_mib": row["rss_peak_mib"], "pool_rss_mib": row["pool_rss_mib"],
            "cpu_s": row["cpu_s"], "signed": True}


def run_mailman(n: int, mode: str, peer: Path, label: str) -> dict[str, object]:
    results = MM3 / "results"
    before = set(results.glob("*.json")) if results.exists() else set()
    env = dict(os.environ, MM3_SINK="raw", MM3_TIMEOUT="900")
    out = subprocess.run([str(MM3_PY), str(peer / "bench.py"), str(n), MM3_MODE[mode]],
                         capture_output=True, text=True, env=env, timeout=1800)
    new = sorted(set(results.glob("*.json")) - before)
    if out.returncode != 0 or not new:
        raise SystemExit(f"mailman run failed:\n{out.stderr[-3000:]}")
    raw = json.loads(new[-1].read_text())
    sink = raw.get("sink") or {}
    if raw.get("error") or raw.get("timeout"):
        raise SystemExit(f"mailman run failed: {raw.get('error') or 'timeout'}")
    t0 = sink["last"] - raw["seconds"]  # bench.py: seconds = sink's last - LMTP 250
    return {"who": label, "n": n, "mode": mode, "post_to_last_s": round(sink["last"] - t0, 3),
            "first_to_last_s": round(sink["last"] - sink["first"], 3),
            "first_s": round(sink["first"] - t0, 3), "transactions": sink.get("msgs"),
            "failed": None, "sink": sink, "rss_peak_mib": raw.get("peak_rss_total_mib"),
            "signed": False, "mailman_raw": {k: v for k, v in raw.items() if k != "sink"}}


def check(run: dict[str, object]) -> dict[str, object]:
    """What every run must show; the reasons it does not, if any."""
    n = run["n"]
    sink = run["sink"]
    assert isinstance(sink, dict)
    problems = []
    if sink.get("distinct") != n or sink.get("rcpts") != n or sink.get("duplicates"):
        problems.append(f"copies: {sink.get('rcpts')} to {sink.get('distinct')} distinct"
                        f" members, {sink.get('duplicates')} doubled (want {n} each once)")
    if run["failed"]:
        problems.append(f"{run['failed']} failed")
    dkim = sink.get("dkim") or {}
    if run["signed"] and (not dkim.get("checked")
                          or dkim.get("verified") != dkim.get("checked")):
        problems.append(f"DKIM sample: {dkim}")
    run["ok"] = not problems
    run["problems"] = problems
    return run


def ceiling(peer: Path, msgs: int, rcpts: int) -> dict[str, object]:
    out = subprocess.run([str(MM3_PY), str(peer / "sink_capacity.py"), "--impl", "raw",
                          "--msgs", str(msgs), "--rcpts", str(rcpts), "--port",
                          str(fanout.free_port())], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def sitting(args: argparse.Namespace) -> Path:
    per_txn, connections = listserv_shape()
    sit: dict[str, object] = {"started": _now(), "machine": facts(), **machine("start"),
                              "members": args.members, "mailman_members": args.mailman_members,
                              "runs_each": args.runs,
                              "tuning": {"max_recipients": per_txn,
                                         "runner.out instances": connections,
                                         "how": "appended to the peer's mailman.cfg"},
                              "runs": [], "ceilings": []}
    peers = {"mailman-default": peer_copy(False, per_txn, connections),
             "mailman-tuned": peer_copy(True, per_txn, connections)}
    runs: list[dict[str, object]] = sit["runs"]  # type: ignore[assignment]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"compare-{stamp}.json"
    RESULTS.mkdir(exist_ok=True)
    try:
        for mode in args.modes:
            for rnd in range(args.runs):
                for who in ("listserv", *([] if args.no_mailman else peers)):
                    if who == "listserv":
                        run = run_listserv(args.members, mode)
                    else:
                        run = run_mailman(args.mailman_members, mode, peers[who], who)
                    run.update(round=rnd + 1, at=_now(), load=list(os.getloadavg()))
                    runs.append(check(run))
                    print(json.dumps({k: run[k] for k in ("who", "mode", "n", "post_to_last_s",
                                                          "first_to_last_s", "ok")}), flush=True)
                    _save(path, sit)
        shapes = set()
        for mode in args.modes:
            shapes.add((args.members // per_txn, per_txn) if mode == "bulk"
                       else (args.members, 1))
        for msgs, rcpts in sorted(shapes):
            for _ in range(args.ceiling_runs):
                cap = ceiling(peers["mailman-default"], msgs, rcpts)
                cap["at"] = _now()
                sit["ceilings"].append(cap)  # type: ignore[union-attr]
                print(json.dumps(cap), flush=True)
        first_copy: list[dict[str, object]] = []
        sit["first_copy"] = first_copy
        for _ in range(args.runs if args.first_copy else 0):
            row = fanout.run_one(args.first_copy, "bulk", from_250=True, sink_script=SINK)
            sink = row.pop("sink")
            run = check({"who": "listserv", "n": args.first_copy, "mode": "bulk",
                         "failed": row["failed"], "sink": sink, "signed": True,
                         "first_s": row["first_ms"] / 1000, "post_to_last_s": row["seconds"],
                         "rss_peak_mib": row["rss_peak_mib"], "at": _now()})
            first_copy.append(run)
            print(json.dumps({k: run[k] for k in ("n", "first_s", "rss_peak_mib", "ok")}),
                  flush=True)
            _save(path, sit)
    finally:
        sit.update(machine("end"))
        _save(path, sit)
    bad = [r for r in [*runs, *sit.get("first_copy", [])] if not r["ok"]]  # type: ignore[misc]
    if bad:
        raise SystemExit(f"{len(bad)} run(s) failed their checks: see {path}")
    return path


def _save(path: Path, sit: dict[str, object]) -> None:
    path.write_text(json.dumps(sit, indent=1) + "\n")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _meminfo(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


# -- README ---------------------------------------------------------------------------


def _spread(values: list[float]) -> str:
    if not values:
        return "–"
    med = statistics.median(values)
    return f"{med:.3f} ({min(values):.3f}–{max(values):.3f})"


def render(files: list[Path]) -> str:
    """The README section: one table per sitting, every figure from its JSON."""
    out = [BEGIN, "", "Generated by `python bench/compare.py --render` from "
           "`bench/results/compare-*.json`; do not edit by hand.", ""]
    for file in files:
        sit = json.loads(file.read_text())
        m = sit["machine"]
        with_mailman = any(r["who"] != "listserv" for r in sit["runs"])
        who = (f"listserv N = {sit['members']:,}, Mailman N = {sit['mailman_members']:,}; "
               f"{sit['runs_each']} runs each, alternating. Mailman tuned: "
               f"`[mta] max_recipients: {sit['tuning']['max_recipients']}`, `[runner.out] "
               f"instances: {sit['tuning']['runner.out instances']}` "
               f"({sit['tuning']['how']})." if with_mailman else
               f"listserv N = {sit['members']:,}, {sit['runs_each']} runs a mode, then the "
               "sink's ceiling (`--no-mailman`: no Mailman runs, so listserv's runs and the "
               "ceiling lie minutes, not half an hour, apart).")
        out += [f"### Sitting {sit['started']} (`{file.relative_to(HERE.parent)}`)", "",
                f"{m['cores']} cores ({m['shared']}), Python {m['python']}, "
                + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
                + f"; listserv at {m['listserv_commit']}. Load average (1, 5, 15 min) at start "
                f"{sit['load_start']}, at end {sit.get('load_end')}. " + who, "",
                *([f"Mailman ran at N = {sit['mailman_members']:,} (its per-copy cost makes "
                   "three rounds at listserv's N longer than the sitting): compare the *rates* "
                   "(copies/s first → last), not the seconds.", ""]
                  if with_mailman and sit["mailman_members"] != sit["members"] else []),
                "Seconds, median (min–max). *post → last*: the post's `250` to the last copy "
                "at the sink; *first → last*: the sink's first to last copy. *checked*: "
                "every run's members each got exactly one copy, 0 failed, DKIM sample "
                "verified (Mailman does not sign: n/a).", "",
                "| mode | who | N | runs | post → last | first → last | first copy | "
                "copies/s (first → last, median) | checked | DKIM sample verified |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        groups: dict[tuple[str, str], list[dict[str, object]]] = {}
        for run in sit["runs"]:
            groups.setdefault((run["mode"], run["who"]), []).append(run)
        medians: dict[tuple[str, str], float] = {}
        for (mode, who), runs in groups.items():
            f2l = [r["first_to_last_s"] for r in runs]
            p2l = [r["post_to_last_s"] for r in runs]
            first = [r["first_s"] for r in runs]
            rate = statistics.median(r["n"] / r["first_to_last_s"] for r in runs
                                     if r["first_to_last_s"])
            medians[(mode, who)] = rate
            dk = [r["sink"].get("dkim") or {} for r in runs]
            verified = (f"{sum(d.get('verified', 0) for d in dk)}/"
                        f"{sum(d.get('checked', 0) for d in dk)}" if runs[0]["signed"]
                        else "n/a")
            out.append(f"| {mode} | {who} | {runs[0]['n']:,} | {len(runs)} | {_spread(p2l)} | "
                       f"{_spread(f2l)} | {_spread(first)} | {rate:,.0f} | "
                       f"{'all' if all(r['ok'] for r in runs) else 'FAILED'} | {verified} |")
        out += ["", "Ratios of the median first → last rates. The sink's ceiling is "
                "`sink_capacity.py --impl raw` against the same sink: one plain client that "
                "waits for every reply, so a lower bound for a sink that listserv's "
                "connections share (bulk can exceed it).", "",
                "| mode | listserv / Mailman default (first → last rate) | "
                "listserv / Mailman tuned | listserv of sink ceiling (same shape) |",
                "|---|---|---|---|"]
        per_txn = sit["tuning"]["max_recipients"]
        for mode in dict.fromkeys(r["mode"] for r in sit["runs"]):
            ours = medians.get((mode, "listserv"))
            shape = ((sit["members"] // per_txn, per_txn) if mode == "bulk"
                     else (sit["members"], 1))
            cap_runs = [c["rcpt_per_s"] for c in sit["ceilings"]
                        if (c["msgs"], c["rcpts_per_msg"]) == shape]
            cap = statistics.median(cap_runs) if cap_runs else None
            cells = []
            for who in ("mailman-default", "mailman-tuned"):
                theirs = medians.get((mode, who))
                cells.append(f"{ours / theirs:.1f}×" if ours and theirs else "–")
            of_cap = (f"{ours / cap:.2f} ({ours:,.0f} / {cap:,.0f}, {shape[0]}×{shape[1]})"
                      if ours and cap else "–")
            out.append(f"| {mode} | {cells[0]} | {cells[1]} | {of_cap} |")
        out.append("")
        big = sit.get("first_copy") or []
        if big:
            out += [f"First copy at {big[0]['n']:,} members (bulk, listserv only, "
                    f"{len(big)} runs): post's `250` → first copy "
                    f"{_spread([r['first_s'] * 1000 for r in big])} ms; → last copy "
                    f"{_spread([r['post_to_last_s'] for r in big])} s; daemon peak RSS "
                    f"{_spread([r['rss_peak_mib'] for r in big])} MiB; checked: "
                    f"{'all' if all(r['ok'] for r in big) else 'FAILED'}.", ""]
    out.append(END)
    return "\n".join(out)


def write_readme() -> None:
    files = sorted(RESULTS.glob("compare-*.json"))
    text = README.read_text()
    section = render(files)
    if BEGIN in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n## listserv against Mailman 3 (`bench/compare.py`)\n\n" \
            + section + "\n"
    README.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10000)
    parser.add_argument("--mailman-members", type=int, default=None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ceiling-runs", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=["bulk", "verp", "personalize"])
    parser.add_argument("--no-mailman", action="store_true", help="listserv and ceiling only")
    parser.add_argument("--first-copy", type=int, default=0, metavar="N",
                        help="also: --runs bulk posts to N members, first copy and peak RSS")
    parser.add_argument("--render", action="store_true", help="rebuild bench/README.md only")
    args = parser.parse_args()
    if args.render:
        write_readme()
        return
    args.mailman_members = args.mailman_members or args.members
    path = sitting(args)
    write_readme()
    print(f"results: {path}")


if __name__ == "__main__":
    main()
