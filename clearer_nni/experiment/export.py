"""``clearer-nni export``: the genotype of an NNI experiment's best trial (or of a named trial).

::

    clearer-nni export EXPERIMENT_ID_OR_DIR [--trial ID] [-o genotype.json] [--workdir DIR]

Reads the experiment's folder on disk, so it works on stopped experiments and without the web UI:
``<dir>/db/nni.sqlite`` (tables ``TrialJobEvent``: trial id, status events, parameters, trial folder;
``MetricData``: ``PERIODICAL`` / ``FINAL`` metrics, JSON encoded twice) and the trial folders
``<dir>/environments/<env>/trials/<trial id>/search/genotype.json`` (NNI 3.0's local training service;
the older ``<dir>/trials/<trial id>/`` is looked at too; ``search`` links to the trial's search folder
``<dir>/clearer-searches/param-<parameter id>``, which its ``clearer_trial.json`` names too). The best
trial is the one with the largest final ``default`` metric (the derived network's validation PSNR).
A trial that ran on another machine (NNI's remote or Kubernetes training services) left its folders
there: its final result carries the whole genotype (``genotype_json``), which is used when no file is
found here.

An experiment id is looked for in ``--workdir``/nni-experiments (default ``runs/nni``, where
``python -m clearer_nni.experiment run`` puts experiments), then in ``~/nni-experiments``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .. import outlock

__all__ = ["GENOTYPE_JSON", "TrialRecord", "ExperimentNotFound", "finite_or_none", "find_experiment_dir", "load_trials",
           "best_trial", "export_genotype", "main"]

DEFAULT_WORKDIR = "runs/nni"

#: The final result's key holding the whole genotype (JSON text), for trials run on other machines.
GENOTYPE_JSON = "genotype_json"


def finite_or_none(x: Any) -> float | None:
    """``x`` as a float when it is a finite number (metrics as NNI stores them), else None."""
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class ExperimentNotFound(FileNotFoundError):
    """No experiment folder for an id or path."""


@dataclass
class TrialRecord:
    """What an experiment recorded about one trial."""

    trial_id: str
    sequence_id: int | None = None
    status: str | None = None
    #: the parameters the trial actually ran with (see :func:`load_trials`)
    parameter_id: Any = None
    parameters: dict[str, Any] = field(default_factory=dict)
    #: the parameters NNI's manager recorded for the trial (shown in the web UI)
    nni_parameter_id: Any = None
    nni_parameters: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None
    final: dict[str, Any] | None = None
    intermediate: list[dict[str, Any]] = field(default_factory=list)
    genotype_path: Path | None = None

    @property
    def swapped(self) -> bool:
        """Whether the trial ran with other parameters than NNI recorded for it (NNI 3.0, local
        training service, trialConcurrency > 1: parameters go to trials first come, first served)."""
        return self.nni_parameter_id is not None and self.parameter_id is not None and \
            str(self.nni_parameter_id) != str(self.parameter_id)

    @property
    def genotype_document(self) -> dict[str, Any] | None:
        """The genotype the trial reported in its final result (``genotype_json``), if any."""
        text = self.final.get(GENOTYPE_JSON) if self.final else None
        try:
            doc = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    def genotype(self) -> Any:
        """The trial's :class:`~clearer_nni.nas.genotype.Genotype`: its file here, else its final result's."""
        from ..nas.genotype import Genotype

        if self.genotype_path is not None:
            return Genotype.load(self.genotype_path)
        doc = self.genotype_document
        if doc is None:
            raise ValueError(f"trial {self.trial_id} ({self.status}) has no search/genotype.json"
                             + (f" in {self.folder}" if self.folder else "") + " and no genotype in its final result")
        return Genotype.from_dict(doc, source=f"final result of trial {self.trial_id}")

    @property
    def has_genotype(self) -> bool:
        return self.genotype_path is not None or self.genotype_document is not None

    @property
    def score(self) -> float | None:
        """The final ``default`` metric, when finite."""
        return finite_or_none(self.final.get("default")) if self.final else None


def _candidates(id_or_dir: str, workdir: str | Path | None) -> list[Path]:
    homes = []
    if workdir is not None:
        homes.append(Path(workdir).expanduser())
    homes.append(Path.home())
    if os.environ.get("CLEARER_USER_HOME"):
        homes.append(Path(os.environ["CLEARER_USER_HOME"]))
    out = []
    for home in homes:
        out.append(home / "nni-experiments" / id_or_dir)
        out.append(home / id_or_dir)  # --workdir given as the nni-experiments folder itself
    return out


def find_experiment_dir(id_or_dir: str | Path, workdir: str | Path | None = DEFAULT_WORKDIR) -> Path:
    """The folder of an experiment, from a path or an experiment id."""
    path = Path(id_or_dir).expanduser()
    if path.is_dir():
        if (path / "db" / "nni.sqlite").is_file():
            return path
        raise ExperimentNotFound(f"{path} is not an NNI experiment folder (no db/nni.sqlite in it)")
    if path.is_file():
        raise ExperimentNotFound(f"{path} is a file: give an experiment id or an experiment folder")
    tried = _candidates(str(id_or_dir), workdir)
    for cand in tried:
        if (cand / "db" / "nni.sqlite").is_file():
            return cand
    raise ExperimentNotFound(f"experiment {id_or_dir!r} not found; looked in: "
                             + ", ".join(str(c) for c in tried[::2]) + " (pass the folder, or --workdir)")


def _decode(data: Any) -> Any:
    """NNI stores metrics JSON-encoded twice (a JSON string holding the JSON of the value)."""
    for _ in range(3):
        if not isinstance(data, str):
            break
        try:
            data = json.loads(data)
        except ValueError:
            break
    return data


def recorded_parameters(expdir: Path | None, trial_id: str, wait: float = 0.0) -> dict[str, Any] | None:
    """The parameter record (``parameter_id``, ``parameters``, ...) NNI's manager stored for ``trial_id``
    when it created the trial: what the web UI shows for it. None where the database has none (yet)
    or cannot be read; with ``wait``, retried for that many seconds (the manager stores it asynchronously)."""
    import time

    db = Path(expdir) / "db" / "nni.sqlite" if expdir is not None else None
    deadline = time.monotonic() + wait
    while db is not None and db.is_file():
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
            try:
                rows = con.execute("SELECT data FROM TrialJobEvent WHERE trialJobId=? AND data IS NOT NULL "
                                   "ORDER BY timestamp, rowid", (trial_id,)).fetchall()
            finally:
                con.close()
        except sqlite3.Error:
            rows = []
        for (data,) in reversed(rows):
            hp = _decode(data)
            if isinstance(hp, dict) and "parameters" in hp:
                return hp
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    return None


def _as_metric(value: Any) -> dict[str, Any] | None:
    value = _decode(value)
    if isinstance(value, dict):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"default": value}
    return None


def _trial_folder(expdir: Path, trial_id: str, log_path: str | None) -> Path | None:
    candidates = []
    if log_path:
        lp = log_path[len("file://"):] if log_path.startswith("file://") else log_path
        candidates.append(Path(lp))
        # the experiment folder may have moved: keep the part below the experiment folder
        parts = Path(lp).parts
        if expdir.name in parts:
            candidates.append(expdir.joinpath(*parts[parts.index(expdir.name) + 1:]))
    candidates += sorted(expdir.glob(f"environments/*/trials/{trial_id}")) + [expdir / "trials" / trial_id]
    for cand in candidates:
        if cand.is_dir() and cand.name == trial_id:
            return cand
    return None


def load_trials(expdir: str | Path) -> list[TrialRecord]:
    """Read every trial of an experiment folder (sorted by sequence id).

    A trial's ``parameters`` are those it actually ran with: from its ``clearer_trial.json`` (written by
    the trial entry), else those of the parameter id its metrics carry. They can differ from what NNI
    recorded for it (``nni_parameters``, shown in the web UI): NNI 3.0's local training service hands
    queued parameters to whichever trial asks first when several run at once.
    """
    expdir = Path(expdir)
    db = expdir / "db" / "nni.sqlite"
    if not db.is_file():
        raise ExperimentNotFound(f"{expdir} is not an NNI experiment folder (no db/nni.sqlite in it)")
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = {"TrialJobEvent", "MetricData"} - tables
        if missing:
            raise ValueError(f"{db}: missing table(s) {sorted(missing)}; is this an NNI experiment database?")
        trials: dict[str, TrialRecord] = {}
        by_parameter_id: dict[str, dict[str, Any]] = {}
        metric_pid: dict[str, Any] = {}
        events = con.execute("SELECT timestamp, trialJobId, event, data, logPath, sequenceId FROM TrialJobEvent "
                             "ORDER BY timestamp, rowid").fetchall()
        for _ts, tid, event, data, log_path, seq in events:
            if tid is None:
                continue
            rec = trials.setdefault(tid, TrialRecord(tid))
            if seq is not None:
                rec.sequence_id = int(seq)
            if event:
                rec.status = event
            hp = _decode(data) if data else None
            if isinstance(hp, dict) and "parameters" in hp:
                rec.nni_parameters = dict(hp.get("parameters") or {})
                rec.nni_parameter_id = hp.get("parameter_id", rec.nni_parameter_id)
                by_parameter_id[str(rec.nni_parameter_id)] = rec.nni_parameters
            if log_path:
                rec.folder = _trial_folder(expdir, tid, log_path) or rec.folder
        for _ts, tid, pid, kind, seq, data in con.execute(
                "SELECT timestamp, trialJobId, parameterId, type, sequence, data FROM MetricData "
                "ORDER BY timestamp, rowid"):
            rec = trials.setdefault(tid, TrialRecord(tid))
            metric = _as_metric(data)
            if metric is None:
                continue
            if pid is not None and pid != "":
                metric_pid[tid] = pid
            if kind == "FINAL":
                rec.final = metric
            elif kind == "PERIODICAL":
                rec.intermediate.append(metric)
    finally:
        con.close()
    for rec in trials.values():
        if rec.folder is None:
            rec.folder = _trial_folder(expdir, rec.trial_id, None)
        rec.genotype_path = _genotype_of(rec, expdir)
        rec.parameter_id, rec.parameters = rec.nni_parameter_id, dict(rec.nni_parameters)
        own = _own_record(rec.folder)
        if own is not None:
            rec.parameter_id, rec.parameters = own.get("parameter_id"), dict(own.get("parameters") or {})
        elif rec.trial_id in metric_pid:
            pid = metric_pid[rec.trial_id]
            rec.parameter_id = _int_or(pid)
            rec.parameters = dict(by_parameter_id.get(str(pid), rec.parameters))
    return sorted(trials.values(), key=lambda r: (r.sequence_id is None, r.sequence_id or 0, r.trial_id))


def _int_or(value: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def _own_record(folder: Path | None) -> dict[str, Any] | None:
    """The trial entry's own record of what it ran (``clearer_trial.json``)."""
    if folder is None or not (folder / "clearer_trial.json").is_file():
        return None
    try:
        doc = json.loads((folder / "clearer_trial.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("parameters"), dict) else None


def _genotype_of(rec: TrialRecord, expdir: Path | None = None) -> Path | None:
    """The trial's ``search/genotype.json`` (a link to ``<experiment>/clearer-searches/param-<id>`` since
    trials search per parameter id), else where its ``clearer_trial.json`` or its final result says."""
    if rec.folder is not None and (rec.folder / "search" / "genotype.json").is_file():
        return rec.folder / "search" / "genotype.json"
    own = _own_record(rec.folder) or {}
    candidates = []
    if expdir is not None and isinstance(own.get("search_dir_in_experiment"), str):
        candidates.append(expdir / own["search_dir_in_experiment"])  # also when the experiment folder moved
    if isinstance(own.get("search_dir"), str):
        candidates.append(Path(own["search_dir"]))
    for cand in candidates:
        if (cand / "genotype.json").is_file():
            return cand / "genotype.json"
    if rec.final and isinstance(rec.final.get("genotype"), str) and Path(rec.final["genotype"]).is_file():
        return Path(rec.final["genotype"])
    return None


def best_trial(trials: Sequence[TrialRecord]) -> TrialRecord:
    """The trial with the largest final ``default`` metric that has a genotype."""
    ranked = [t for t in trials if t.score is not None and t.has_genotype]
    if not ranked:
        states = ", ".join(f"{t.trial_id}: {t.status}" for t in trials) or "no trials"
        raise ValueError(f"no trial has both a final result and a genotype.json ({states})")
    return max(ranked, key=lambda t: t.score)


def export_genotype(id_or_dir: str | Path, output: str | Path, trial: str | None = None,
                    workdir: str | Path | None = DEFAULT_WORKDIR, overwrite: bool = False) -> tuple[Path, TrialRecord]:
    """Write the best (or the named) trial's genotype to ``output``, with the trial recorded in its metadata."""
    expdir = find_experiment_dir(id_or_dir, workdir)
    trials = load_trials(expdir)
    if trial is not None:
        chosen = next((t for t in trials if t.trial_id == trial), None)
        if chosen is None:
            raise ValueError(f"no trial {trial!r} in {expdir}; trials: {', '.join(t.trial_id for t in trials) or 'none'}")
    else:
        chosen = best_trial(trials)
    output = Path(output)
    if output.exists() and not overwrite:
        raise ValueError(f"{output} exists (pass --overwrite to replace it)")
    geno = chosen.genotype()
    geno.metadata = dict(geno.metadata)
    geno.metadata["nni"] = {"experiment_id": expdir.name, "experiment_dir": str(expdir.resolve()),
                            "trial_id": chosen.trial_id, "sequence_id": chosen.sequence_id,
                            "parameter_id": chosen.parameter_id, "parameters": chosen.parameters,
                            **({"nni_recorded_parameters": chosen.nni_parameters} if chosen.swapped else {}),
                            "final_metric": {k: v for k, v in (chosen.final or {}).items() if k != GENOTYPE_JSON} or None,
                            "source": str(chosen.genotype_path or f"final result of trial {chosen.trial_id}")}
    if output.parent != Path(""):
        output.parent.mkdir(parents=True, exist_ok=True)
    outlock.acquire(output)  # a second export into the same file is refused at once
    try:
        geno.save(output)
    finally:
        outlock.release(output)
    return output, chosen


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clearer-nni export",
                                description="Write the genotype of an NNI experiment's best trial (largest final "
                                            "'default' = derived-network validation PSNR), or of --trial.")
    add_experiment_arguments(p)
    p.add_argument("--trial", help="this trial's genotype instead of the best one")
    p.add_argument("-o", "--output", default="genotype.json", help="output file [%(default)s]")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return p


def add_experiment_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments naming an experiment (``export``, ``report``): its id or folder, and ``--workdir``."""
    p.add_argument("experiment", help="experiment id, or its folder (the one holding db/nni.sqlite)")
    p.add_argument("--workdir", default=DEFAULT_WORKDIR,
                   help="where an experiment id is looked for first: WORKDIR/nni-experiments/ID [%(default)s]")


def main(argv: Sequence[str] | None = None) -> int:
    from ..cli import run_cli

    def _run() -> int:
        ns = _parser().parse_args(argv)
        out, rec = export_genotype(ns.experiment, ns.output, ns.trial, ns.workdir, ns.overwrite)
        params = rec.final.get("params") if rec.final else None
        print(f"trial {rec.trial_id} (#{rec.sequence_id}, {rec.status}): parameters {json.dumps(rec.parameters)}, "
              f"derived val PSNR {rec.score if rec.score is None else round(rec.score, 3)} dB"
              + (f", {params} parameters" if params is not None else ""))
        if rec.swapped:
            print(f"note: NNI recorded parameters {json.dumps(rec.nni_parameters)} for this trial (and shows them in "
                  "the web UI), but it ran with the ones above (NNI 3.0, several trials at once)")
        print(f"wrote {out}")
        return 0

    return run_cli(_run)


if __name__ == "__main__":
    sys.exit(main())
