"""What benchmarks/gpu_bundle.sh and benchmarks/gpu.sh do in Python: the bundle's contents, the CPU mimic of
the GPU machine, the stage guard, and the summary.

The GPU machine (see ``gpu_machine_packages.txt``) has torch, Lightning, scikit-image, pandas... but not nni,
and only 64 MiB of working tree travels with a run. So:

- ``missing``: the distributions nni 3.0 needs (its requirements, followed through every distribution that
  the machine lacks, never into one it has) that the machine lacks, as ``name==version`` pins of what is
  installed here, the versions the tests ran with;
- ``strip-nni WHEEL DIR``: nni's wheel (61 MB) without ``nni_node`` (the web UI and a node binary, 175 MB
  unpacked, not needed by a one-shot search), repacked as the pure-Python wheel it then is (~1 MB);
- ``mimic ENV``: a fresh virtual environment whose site-packages links, from this environment, only the
  distributions the GPU machine has: nni, its extra dependencies and this project are absent, as there;
- ``stage ...``: run one stage of gpu.sh under its time budget (skipped when too little is left, killed
  at its limit), and record it in the stage table;
- ``predict WORK STEPS``: the variant whose measured rate would finish a STEPS-step search soonest, and when;
- ``summary WORK``: summary.md from what the stages wrote.

Runs with the Python of the environment it inspects (``missing``, ``mimic``: this project's venv; the rest,
standard library only: the one gpu.sh runs with).
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import signal
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path
from typing import Sequence

__all__ = ["machine_packages", "missing_requirements", "strip_nni", "make_mimic", "run_stage", "search_rate", "predict",
           "retrain_rate", "summary"]

HERE = Path(__file__).resolve().parent
MACHINE_LIST = HERE / "gpu_machine_packages.txt"
#: Paper's search length (SPEC: 10,000 bilevel steps), for the extrapolated search time.
PAPER_STEPS = 10_000
#: gpu.sh's search variants (its search_<name> folders).
VARIANTS = ("fp32", "fast", "fast_compile")


def _norm(name: str) -> str:
    """A distribution name as PyPI compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def machine_packages(path: Path = MACHINE_LIST) -> set[str]:
    """Normalised names of the distributions the GPU machine has."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return {_norm(s.strip()) for s in lines if s.strip() and not s.startswith("#")}


def missing_requirements(root: str = "nni", machine: set[str] | None = None) -> dict[str, str]:
    """``{name: installed version}`` of ``root`` and what it needs that the machine lacks.

    Requirements are followed from ``root`` through distributions the machine lacks only: a distribution
    the machine has brings its own dependencies there.
    """
    import importlib.metadata as md

    from packaging.requirements import Requirement

    machine = machine_packages() if machine is None else machine
    found: dict[str, str] = {}
    todo = [root]
    while todo:
        name = _norm(todo.pop())
        if name in found or name in machine:
            continue
        dist = md.distribution(name)
        found[name] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return found


def strip_nni(wheel: Path, out_dir: Path) -> Path:
    """Write ``wheel`` without ``nni_node/`` into ``out_dir`` as ``nni-<version>-py3-none-any.whl``.

    The RECORD and top_level.txt lose their nni_node lines, the WHEEL file its platform tag (what is left
    is pure Python); METADATA is kept as it is.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as src:
        info = [i for i in src.infolist() if not i.filename.startswith("nni_node/")]
        dist_info = next(i.filename.split("/")[0] for i in info if i.filename.endswith(".dist-info/METADATA"))
        version = dist_info[len("nni-"):-len(".dist-info")]
        target = out_dir / f"nni-{version}-py3-none-any.whl"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
            for i in info:
                data = src.read(i)
                if i.filename in (f"{dist_info}/RECORD", f"{dist_info}/top_level.txt"):
                    data = b"".join(l for l in data.splitlines(keepends=True) if not l.startswith(b"nni_node"))
                elif i.filename == f"{dist_info}/WHEEL":
                    data = re.sub(rb"(?m)^Tag: .*$", b"Tag: py3-none-any", data)
                    data = data.replace(b"Root-Is-Purelib: false", b"Root-Is-Purelib: true")
                dst.writestr(i, data)
    return target


def make_mimic(env: Path, machine: set[str] | None = None) -> Path:
    """A fresh venv at ``env`` whose site-packages links only the machine's distributions from this one.

    Each distribution installed here whose name is on the machine's list is linked entry by entry (its
    top-level packages, modules, ``.libs`` folders, ``.pth`` files and dist-info, from its RECORD); the
    rest (nni and what only nni needs, this project) is not there. Returns the new Python.
    """
    import importlib.metadata as md
    import sysconfig

    machine = machine_packages() if machine is None else machine
    venv.EnvBuilder(clear=True, with_pip=False, symlinks=True).create(env)
    here = Path(sysconfig.get_paths()["purelib"])
    py = env / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    linked = set()
    for dist in md.distributions(path=[str(here)]):
        if _norm(dist.metadata["Name"]) not in machine:
            continue
        for f in dist.files or []:
            top = f.parts[0]
            if top in ("..", "__pycache__") or top in linked or not (here / top).exists():
                continue
            (site / top).symlink_to(here / top)
            linked.add(top)
    return py


def _left(deadline: float) -> int:
    return int(deadline - time.time())


def run_stage(name: str, budget: int, minimum: int, deadline: float, table: Path, log: Path,
              cmd: Sequence[str], note: str = "") -> int:
    """Run ``cmd`` for at most ``min(budget, time left)`` seconds, appending its row to ``table``.

    Skipped (row ``skipped``) when less than ``minimum`` seconds are left before ``deadline``; killed with
    its whole process group at its limit (row ``killed at limit``). Output goes to ``log``. Returns the exit
    status (0 for a skipped stage: skipping is the guard working, not a failure). ``note`` says why a
    stage is skipped (instead of the time left).
    """
    left = _left(deadline)
    limit = min(budget, left)
    if limit < minimum:
        note = note or f"{left} s left, needs {minimum}"
        _row(table, name, "skipped", 0.0, budget, note)
        print(f"stage {name}: skipped ({note})", flush=True)
        return 0
    print(f"stage {name}: limit {limit} s ({left} s left)", flush=True)
    start = time.time()
    with log.open("ab") as out:
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=limit)
            state = "ok" if rc == 0 else f"failed (exit {rc})"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            rc, state = 124, "killed at limit"
    try:  # what a killed stage left running in its group (workers) goes too
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    took = time.time() - start
    _row(table, name, state, took, limit, "")
    print(f"stage {name}: {state} in {took:.0f} s", flush=True)
    return rc


def _row(table: Path, name: str, state: str, took: float, limit: int, note: str) -> None:
    new = not table.exists()
    with table.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["stage", "state", "seconds", "limit_s", "note"])
        w.writerow([name, state, f"{took:.0f}", limit, note])


def search_rate(run: Path) -> tuple[float, int, float] | None:
    """(steps/s, step and seconds of the second logged row) of a search, from its ``search_log.csv``.

    The rate is taken from the second logged row to the last, so start-up and most of compiling are out; a
    search killed at its limit is read from its staging folder.
    """
    rows = _csv(run / "search_log.csv") or _csv(run.parent / f".{run.name}.partial" / "search_log.csv")
    if len(rows) < 3:
        return None
    a, b = rows[1], rows[-1]
    rate = (int(b["step"]) - int(a["step"])) / (float(b["seconds"]) - float(a["seconds"]))
    return rate, int(a["step"]), float(a["seconds"])


def predict(work: Path, steps: int, variants: Sequence[str] = VARIANTS) -> tuple[str, float] | None:
    """(variant, seconds) of the measured variant that would run a ``steps``-step search soonest.

    Per variant: its stage's wall time outside the logged steps (start-up, data, the final derivation and
    writing: from ``stages.csv``), its time to the second logged row (compiling included), and the rest of
    the steps at its rate. None when no variant has a rate.
    """
    walls = {r["stage"]: float(r["seconds"]) for r in _csv(work / "stages.csv")}
    best = None
    for v in variants:
        r = search_rate(work / f"search_{v}")
        rows = _csv(work / f"search_{v}" / "search_log.csv")
        if r and rows and v in walls:
            outside = max(walls[v] - float(rows[-1]["seconds"]), 0.0)
            need = outside + r[2] + max(steps - r[1], 0) / r[0]
            best = min(best or (v, need), (v, need), key=lambda x: x[1])
    return best


def retrain_rate(run: Path) -> float | None:
    """Steps/s of a retraining between its first and last validations (``metrics.csv``)."""
    rows = [r for r in _csv(run / "metrics.csv") if r.get("step") and r.get("seconds")]
    if len(rows) < 2:
        return None
    a, b = rows[0], rows[-1]
    return (int(b["step"]) - int(a["step"])) / (float(b["seconds"]) - float(a["seconds"]))


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open())) if path.is_file() else []


def _architecture(log: Path) -> str:
    """The searched architecture as the search printed it (``cellN: F P ...`` lines), on one line."""
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    return "; ".join(l.strip() for l in lines if re.match(r"cell\d+: [FP]( [FP])*$", l.strip())) or "?"


def summary(work: Path, variants: Sequence[str] = VARIANTS) -> str:
    """summary.md from gpu.sh's work folder: device, stages, rates, full search, retraining, scores."""
    device = work / "device.txt"
    parts = ["# GPU benchmark (benchmarks/gpu.sh)", device.read_text().strip() if device.is_file() else "device: unknown"]
    parts.append("## Stages\n\n| stage | state | seconds | limit (s) | note |\n|---|---|---|---|---|\n" + "\n".join(
        f"| {r['stage']} | {r['state']} | {r['seconds']} | {r['limit_s']} | {r['note']} |"
        for r in _csv(work / "stages.csv")))
    lines = ["## Search steps/s at the setting\n", "Rate from the second logged step to the last (start-up and "
             "most compiling excluded).\n", f"| variant | steps/s | {PAPER_STEPS:,}-step search (min, extrapolated) "
             "| start-up to 2nd log (s) |", "|---|---|---|---|"]
    for v in variants:
        r = search_rate(work / f"search_{v}")
        lines.append(f"| {v} | {r[0]:.2f} | {PAPER_STEPS / r[0] / 60:.1f} | {r[2]:.0f} |" if r
                     else f"| {v} | - (failed, skipped or too short) | - | - |")
    parts.append("\n".join(lines))
    overhead = work / "overhead.log"
    text = overhead.read_text() if overhead.is_file() else ""
    if "\nSetting" in text:  # the table the benchmark prints last
        parts.append("## Lightning + NNI against plain PyTorch (benchmarks/search_overhead.py)\n\n"
                     + text[text.index("\nSetting"):].strip())
    full = work / "search_full"
    rows = _csv(full / "search_log.csv") or _csv(work / ".search_full.partial" / "search_log.csv")
    if rows:
        r = search_rate(full)
        done = (f"architecture `{_architecture(work / 'full.log')}`" if (full / "genotype.json").is_file()
                else "stopped before the end (see the stage table)")
        parts.append(f"## Full search\n\n{rows[-1]['step']} steps in {float(rows[-1]['seconds']) / 60:.1f} min"
                     + (f" ({r[0]:.2f} steps/s)" if r else "") + f"; {done}")
    r = retrain_rate(work / "retrain")
    parts.append("## Retraining (bf16-mixed)\n\n" + (f"{r:.2f} steps/s" if r else "no rate (failed or skipped)"))
    for f in sorted(work.glob("eval*/summary.csv")):
        parts.append(f"## {f.parent.name}: the short retraining scored (not the paper's budget)\n\n```\n"
                     f"{f.read_text().strip()}\n```")
    q = work / "quality_summary.log"
    if q.is_file():
        parts.append("## Search quality (benchmarks/quality.py)\n\n" + q.read_text().strip())
    return "\n\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("missing")
    s = sub.add_parser("strip-nni")
    s.add_argument("wheel", type=Path)
    s.add_argument("out_dir", type=Path)
    s = sub.add_parser("mimic")
    s.add_argument("env", type=Path)
    s = sub.add_parser("stage")
    s.add_argument("--note", default="", help="why the stage is skipped")
    for a in ("name", "budget", "minimum", "deadline", "table", "log"):
        s.add_argument(a)
    s.add_argument("command", nargs=argparse.REMAINDER)
    s = sub.add_parser("predict")
    s.add_argument("work", type=Path)
    s.add_argument("steps", type=int)
    s.add_argument("--variants", default=",".join(VARIANTS))
    s = sub.add_parser("summary")
    s.add_argument("work", type=Path)
    s.add_argument("--variants", default=",".join(VARIANTS))
    a = p.parse_args(argv)
    if a.cmd == "missing":
        print("\n".join(f"{n}=={v}" for n, v in sorted(missing_requirements().items())))
    elif a.cmd == "strip-nni":
        print(strip_nni(a.wheel, a.out_dir))
    elif a.cmd == "mimic":
        print(make_mimic(a.env))
    elif a.cmd == "stage":
        cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
        return run_stage(a.name, int(a.budget), int(a.minimum), float(a.deadline), Path(a.table), Path(a.log), cmd,
                         a.note)
    elif a.cmd == "predict":
        best = predict(a.work, a.steps, a.variants.split(","))
        print(f"{best[0]} {best[1]:.0f}" if best else "none 0")
    else:
        print(summary(a.work, a.variants.split(",")), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
