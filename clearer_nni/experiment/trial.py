"""``python -m clearer_nni.experiment.trial``: one NNI HPO trial = one whole CLEARER one-shot search.

The trial takes its fixed settings from the same flags as ``python -m clearer_nni.search`` (e.g.
``--space demo --steps 200``), asks NNI for its hyper-parameters (names are :class:`SearchConfig`
fields such as ``lambda_arch``, ``lambda_comp``, ``sigma``, ``seed``; ``lambda1`` / ``lambda2`` are
accepted as aliases of the first two, and ``lambdas: [λ1, λ2]`` sets both), which override the flags and the space file's ``search:``
defaults, and runs the search into a folder of the experiment named after the trial's parameter id,
``<experiment dir>/clearer-searches/param-<parameter id>`` (``search`` in the trial's own folder links
to it; :func:`search_folder`), checkpointing as it goes.

A trial that NNI runs again with the same parameter id (``nnictl resume`` re-runs the trials its database
still lists as WAITING or RUNNING: those of a stopped or crashed experiment) continues that search from
its newest complete checkpoint (the same genotype as an uninterrupted search), or, when the search had
already finished, reports its final result again without searching (:func:`plan_search`).

It reports to NNI:

- every logged search step, an intermediate result
  ``{"default": val_psnr, "alpha_entropy": L_Arch, "step": step}``;
- at the end, a final result ``{"default": ..., "supernet_psnr", "derived_inherited_psnr", "input_psnr",
  "params", "decided_columns", "genotype": path of genotype.json, ...}``: ``default`` is the derived network's
  val PSNR after the search's fine-tune estimate (``finetune_steps`` > 0, :mod:`clearer_nni.nas.estimate`),
  else with inherited weights; with ``--select rank`` (a ``spos`` search's default) the derived network is
  the best-ranked architecture, and the result adds ``architecture``, ``ranked_architectures``,
  ``rank_method`` and α's argmax (``argmax_architecture``, ``argmax_inherited_psnr``) for comparison. The
  intermediate ``default`` is the super-network's PSNR: the final result carries the same quantity as
  ``supernet_psnr``.

The trial command channel and the parameter id are captured once, when the trial starts, and every
metric goes through that saved channel: whatever the search does to NNI's process-wide default channel
(NNI's sequential NAS engine, for one, swaps it), the metrics reach the web UI under this trial's
parameter id.

A parameter name that is not a search setting, or a bad value, prints ``error: ...`` on stderr
(``trial.stderr`` in the trial's folder) and exits with code 2: NNI marks the trial FAILED.

With ``--devices N`` the trial's search runs on N devices (Lightning DDP, docs/SCALE.md): only rank 0
talks to NNI; the other ranks Lightning starts get its resolved settings (:data:`RANK_CONFIG`).

Run outside NNI (no ``NNI_PLATFORM``), it is an ordinary search with ``--out`` (default
``runs/trial``) and prints its metrics.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from .export import GENOTYPE_JSON, finite_or_none, recorded_parameters

__all__ = ["ALIASES", "PAIR", "NOT_TUNABLE", "SEARCHES", "TrialReporter", "parameter_settings", "experiment_dir", "tensorboard_button",
           "search_folder", "SearchPlan", "plan_search", "default_checkpoint_every", "final_metric", "main"]

#: Parameter names accepted besides the :class:`~clearer_nni.search.SearchConfig` field names.
ALIASES = {"lambda1": "lambda_arch", "lambda2": "lambda_comp", "λ1": "lambda_arch", "λ2": "lambda_comp"}

#: A parameter holding the pair ``[lambda_arch, lambda_comp]`` (a grid of chosen pairs, as in Table 5).
PAIR = "lambdas"

#: Settings a search space may not set: the trial decides them.
NOT_TUNABLE = {"out", "overwrite", "progress", "resume"}

#: The environment variable giving a trial's settings to the other ranks of its DDP search (``--devices``).
RANK_CONFIG = "CLEARER_TRIAL_SEARCH_CONFIG"

#: The folder of an experiment holding its trials' searches, one ``param-<parameter id>`` each.
SEARCHES = "clearer-searches"


class TrialReporter:
    """Sends a trial's metrics through the trial command channel captured when it was created.

    Parameters
    ----------
    channel
        A :class:`nni.runtime.trial_command_channel.TrialCommandChannel`; default: NNI's default channel
        for this process (HTTP channel under an NNI experiment, standalone outside one).
    """

    def __init__(self, channel: Any = None) -> None:
        from nni.runtime.env_vars import trial_env_vars
        from nni.runtime.trial_command_channel import get_default_trial_command_channel

        self.channel = channel if channel is not None else get_default_trial_command_channel()
        self.platform = trial_env_vars.NNI_PLATFORM
        self.trial_id = trial_env_vars.NNI_TRIAL_JOB_ID or "STANDALONE"
        self.experiment_id = trial_env_vars.NNI_EXP_ID or "STANDALONE"
        self.parameter_id: int | None = None
        self.parameters: dict[str, Any] = {}
        self.sequence = 0

    @property
    def standalone(self) -> bool:
        return self.platform in (None, "", "unittest")

    def receive_parameters(self) -> dict[str, Any]:
        """Ask NNI for this trial's parameters (once); remember the parameter id."""
        if self.standalone:  # NNI's standalone channel only warns and returns {}
            record: Any = {"parameter_id": None, "parameters": {}}
        else:
            record = self.channel.receive_parameter()
        if record is None:
            raise RuntimeError("NNI sent no parameters for this trial (its trial command channel is closed)")
        if not self.standalone:
            record = self._own_parameters(record)
        params = record.get("parameters")
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise ValueError(f"NNI parameters must be a mapping of name to value, got {type(params).__name__}: "
                             f"{params!r}")
        self.parameter_id = record.get("parameter_id")
        self.parameters = dict(params)
        from ..compat import set_trial_record

        set_trial_record(record)  # keep nni.get_current_parameter() working for code that asks
        return dict(self.parameters)

    def _own_parameters(self, record: Any) -> Any:
        """The parameters NNI's manager recorded for this trial, when the channel handed it another's.

        NNI 3.0's local training service queues parameters and gives them to whichever trial asks first
        (``training_service/v3/compat.js``): with several trials at once, trial A may receive B's while the
        web UI lists A with its own. Running the recorded ones (each trial's, so each once) keeps the web
        UI, the tuner and the trial's folder in agreement."""
        expdir = experiment_dir(os.environ.get("NNI_OUTPUT_DIR"), self.experiment_id)
        own = recorded_parameters(expdir, self.trial_id, wait=10.0) if isinstance(record, Mapping) else None
        if own is None or str(own.get("parameter_id")) == str(record.get("parameter_id")):
            return record
        print(f"note: NNI handed this trial the parameters of id {record.get('parameter_id')}, recorded for "
              f"another trial; it runs the ones recorded for it (id {own.get('parameter_id')}), which the web UI "
              "shows (NNI 3.0, several trials at once)", flush=True)
        return own

    def _send(self, kind: str, metric: dict[str, Any], sequence: int) -> None:
        if self.standalone:
            print(f"[nni {kind.lower()}] {json.dumps(metric)}", flush=True)
            return
        try:
            self.channel.send_metric(type=kind, parameter_id=self.parameter_id, trial_job_id=self.trial_id,
                                     sequence=sequence, value=metric)
        except OSError as exc:  # requests' errors are OSErrors
            raise RuntimeError(f"cannot report to the NNI manager: the experiment was stopped or its manager "
                               f"died ({type(exc).__name__}); the search's checkpoints are kept for `nnictl resume`"
                               ) from None

    def intermediate(self, metric: dict[str, Any]) -> None:
        """Report an intermediate result (``metric["default"]`` must be a finite number)."""
        self._send("PERIODICAL", metric, self.sequence)
        self.sequence += 1

    def resend(self, metric: dict[str, Any], sequence: int) -> None:
        """Report an intermediate result again under its own ``sequence`` (one NNI did not store)."""
        self._send("PERIODICAL", metric, sequence)

    def final(self, metric: dict[str, Any]) -> None:
        """Report the final result."""
        self._send("FINAL", metric, 0)


# -- parameters → SearchConfig ---------------------------------------------------------------------

def parameter_settings(params: Mapping[str, Any]) -> dict[str, Any]:
    """NNI's ``params`` as search settings: names (aliases, the ``lambdas`` pair) and types of
    :class:`~clearer_nni.config.SearchConfig` fields.

    Raises ``ValueError`` naming an unknown parameter or a bad value.
    """
    from ..config import SearchConfig, coerce_setting, field_types

    fields = field_types(SearchConfig)
    tunable = sorted(set(fields) - NOT_TUNABLE)
    changes: dict[str, Any] = {}
    items = []
    for raw_name, value in params.items():
        if raw_name == PAIR:  # "lambdas": [λ1, λ2], one grid point of the paper's Table 5
            if not (isinstance(value, (list, tuple)) and len(value) == 2):
                raise ValueError(f"parameter {PAIR!r} must be a pair [lambda_arch, lambda_comp], got {value!r}")
            items += [("lambda_arch", value[0]), ("lambda_comp", value[1])]
        else:
            items.append((raw_name, value))
    for raw_name, value in items:
        name = ALIASES.get(raw_name, str(raw_name).replace("-", "_"))
        if name in NOT_TUNABLE:
            raise ValueError(f"parameter {raw_name!r} cannot be set from a search space (the trial sets it)")
        if name not in fields:
            raise ValueError(f"unknown parameter name {raw_name!r} in the search space; known names: "
                             f"{', '.join(tunable)} (aliases: {', '.join(ALIASES)}; pair: {PAIR})")
        if name in changes:
            raise ValueError(f"parameter {name!r} given twice (directly and through an alias or {PAIR!r})")
        changes[name] = coerce_setting(SearchConfig, name, value, f"parameter {raw_name!r}")
    return changes


def _restore_home() -> None:
    """``python -m clearer_nni.experiment run`` points NNI's HOME at its work folder; give the search the
    user's own HOME back (caches, ``~/.cache/clearer_nni/data``)."""
    user_home = os.environ.get("CLEARER_USER_HOME")
    if user_home and Path(user_home).is_dir():
        os.environ["HOME"] = user_home


# -- where a trial searches, and what it finds there ----------------------------------------------

def experiment_dir(output_dir: str | Path | None, experiment_id: str | None) -> Path | None:
    """The experiment's folder: the nearest ancestor of the trial's ``NNI_OUTPUT_DIR`` named after the
    experiment id (NNI 3.0: ``<experiment dir>/environments/<env>/trials/<trial id>``); None if none is."""
    if not output_dir or not experiment_id:
        return None
    folder = Path(output_dir).resolve()
    return next((p for p in (folder, *folder.parents) if p.name == experiment_id), None)


def tensorboard_button(output_dir: str | Path | None, experiment_id: str | None, trial_id: str | None) -> Path | None:
    """Where NNI 3.0's web UI "TensorBoard" button reads a trial's events (``<experiment dir>/trials/<trial
    id>/output/tensorboard``), or None outside an experiment folder. The trial hands it down to the search in
    ``$CLEARER_NNI_TENSORBOARD`` (:mod:`clearer_nni.tensorboard`)."""
    from ..tensorboard import FOLDER

    expdir = experiment_dir(output_dir, experiment_id)
    return None if expdir is None or not trial_id else expdir / "trials" / trial_id / "output" / FOLDER


def search_folder(output_dir: str | Path, experiment_id: str | None, parameter_id: Any) -> tuple[Path, bool]:
    """Where a trial under NNI searches, and whether a later run of the same parameters finds it there.

    ``<experiment dir>/clearer-searches/param-<parameter id>``: NNI runs a trial again under the same
    parameter id (``nnictl resume``), but not always under the same trial id or in the same trial folder
    (a trial that cannot be re-created where it ran gets new ones). Without an experiment folder above
    ``output_dir`` or without a parameter id: ``output_dir/search``, found by no other run.
    """
    out_root = Path(output_dir).resolve()
    expdir = experiment_dir(out_root, experiment_id)
    if expdir is None or parameter_id is None or isinstance(parameter_id, bool):
        return out_root / "search", False
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(parameter_id))
    return expdir / SEARCHES / f"param-{name}", True


def default_checkpoint_every(steps: int) -> int:
    """Checkpoint interval of a trial that was given none: about ten a search, at most every 100 steps."""
    return max(1, min(100, int(steps) // 10))


@dataclasses.dataclass
class SearchPlan:
    """What a trial does with its search folder: ``fresh`` (search from step 0, replacing what is there),
    ``resume`` (continue from the checkpoint of ``step``) or ``published`` (the search had finished:
    report its result)."""

    action: str
    step: int | None = None
    checkpoint: Path | None = None
    note: str = ""
    #: log rows (intermediate results) the checkpoint holds
    rows: int = 0
    #: those rows themselves (step, val_psnr, loss_arch...)
    log: list = dataclasses.field(default_factory=list)


def plan_search(out: Path, cfg: Any) -> SearchPlan:
    """Look at a trial's search folder ``out`` (and its staging folder ``.<out>.partial``): a published
    result whose recorded settings are ``cfg``'s → ``published``; else a complete checkpoint saved with
    ``cfg``'s settings (but the free ones: output, device...) → ``resume``; else ``fresh``. Never raises on
    what it finds (a torn checkpoint is skipped with a warning, an unreadable genotype means searching again)."""
    from ..config import resume_clash
    from ..nas.genotype import Genotype
    from ..runtime import staging_dir
    from ..search import RECORDED_SETTINGS
    from ..training.state import SEARCH_STATE, CheckpointStore

    genotype = Path(out) / "genotype.json"
    if genotype.is_file():
        try:
            meta = dict(Genotype.load(genotype).metadata or {})
            clash = [k for k in RECORDED_SETTINGS if k in meta and meta[k] != getattr(cfg, k)]
        except (OSError, ValueError) as exc:
            meta, clash = {}, [f"unreadable: {exc}"]
        if not clash and finite_or_none(meta.get("val_psnr_derived")) is not None:
            return SearchPlan("published", note=f"{genotype} exists")
        note = f"{genotype} is not this trial's result ({', '.join(clash) or 'no derived PSNR'}): searching again"
    else:
        note = ""
    found = CheckpointStore(staging_dir(out) / "checkpoints", SEARCH_STATE).latest()
    if found is not None:
        path, state = found
        clash = sorted(resume_clash(cfg, state.get("config") or {}))
        if not clash:
            log = list(state.get("log") or [])
            return SearchPlan("resume", int(state["step"]), path, note, len(log), log)
        note = (note + "; " if note else "") + f"{path} was saved with other settings {clash}: searching again"
    return SearchPlan("fresh", note=note)


def recorded_steps(expdir: Path | None, trial_id: str) -> set[int] | None:
    """The steps of the intermediate results NNI's manager recorded for ``trial_id`` (its database,
    ``<experiment>/db/nni.sqlite``, read-only), or None where it cannot be read."""
    import sqlite3

    db = expdir / "db" / "nni.sqlite" if expdir is not None else None
    if db is None or not db.is_file():
        return None
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            rows = con.execute("SELECT data FROM MetricData WHERE trialJobId=? AND type='PERIODICAL'",
                               (trial_id,)).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return None
    steps = set()
    for (data,) in rows:
        try:
            value = json.loads(data)
            value = json.loads(value) if isinstance(value, str) else value
            steps.add(int(value["step"]))
        except (ValueError, TypeError, KeyError):
            continue
    return steps


def intermediate_metric(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """The intermediate result a log row reports (None when its validation PSNR is not finite)."""
    psnr = finite_or_none(row.get("val_psnr"))
    if psnr is None:
        return None
    return {"default": psnr, "alpha_entropy": finite_or_none(row.get("loss_arch")), "step": int(row["step"])}


def final_metric(meta: Mapping[str, Any], genotype_path: Path, document: Mapping[str, Any] | None = None
                 ) -> dict[str, Any]:
    """The final result a trial reports, from its genotype's metadata; with ``document`` (the whole
    genotype), also ``genotype_json``: ``export`` then needs no file of a trial that ran on another machine."""
    key = "val_psnr_finetuned" if meta.get("val_psnr_finetuned") is not None else "val_psnr_derived"
    derived = finite_or_none(meta.get(key))
    if derived is None:
        raise RuntimeError(f"the derived network's validation PSNR is not finite ({key} {meta.get(key)})")
    decided = (meta.get("decidedness") or {}).get("decided")
    rank = meta.get("rank") or {}  # --select rank: the chosen architecture is the ranking's best
    ranked = {"architecture": rank["best"]["code"], "ranked_architectures": rank.get("ranked"),
              "rank_method": rank.get("method"), "argmax_architecture": meta.get("argmax_code"),
              "argmax_inherited_psnr": finite_or_none(meta.get("val_psnr_argmax"))} if rank.get("best") else {}
    return {"default": derived, "select": meta.get("select"), "strategy": meta.get("strategy"), **ranked,
            "supernet_psnr": finite_or_none(meta.get("val_psnr_supernet")),
            "derived_inherited_psnr": finite_or_none(meta.get("val_psnr_derived")),
            "input_psnr": finite_or_none(meta.get("val_psnr_input")), "decided_columns": decided,
            "params": int(meta.get("params_derived", 0)), "genotype": str(Path(genotype_path).resolve()),
            "search_seconds": finite_or_none(meta.get("search_seconds")),
            "lambda_arch": finite_or_none(meta.get("lambda_arch")), "lambda_comp": finite_or_none(meta.get("lambda_comp")),
            **({GENOTYPE_JSON: json.dumps(document, separators=(",", ":"))} if document is not None else {})}


def _link_search(out_root: Path, target: Path) -> None:
    """``out_root/search`` → ``target`` (a relative symbolic link), replacing an older link; best effort."""
    link = out_root / "search"
    try:
        if link.is_symlink():
            link.unlink()
        elif link.exists():
            return  # a real folder (an older trial layout): leave it
        link.symlink_to(os.path.relpath(target, out_root), target_is_directory=True)
    except OSError as exc:
        print(f"warning: could not link {link} to {target} ({exc}); clearer_trial.json says where the search is",
              file=sys.stderr, flush=True)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _run(argv: Sequence[str] | None) -> int:
    from ..config import SearchConfig, resolve_search
    from ..runtime import atomic_write_text
    from ..search import run_search, search_parser
    from ..training.ranks import is_primary_process

    flags = vars(search_parser("clearer-nni experiment trial").parse_args(argv))
    flags.pop("resume", None)  # the trial decides (plan_search)
    if not is_primary_process():  # another DDP rank of this trial's search: only rank 0 talks to NNI
        run_search(SearchConfig(**json.loads(os.environ[RANK_CONFIG])))
        return 0
    reporter = TrialReporter()  # captured now, before anything else runs
    params = reporter.receive_parameters()
    print(f"trial {reporter.trial_id} of experiment {reporter.experiment_id}: parameter id {reporter.parameter_id}, "
          f"parameters {json.dumps(params, sort_keys=True)}", flush=True)
    settings = parameter_settings(params)

    plan = SearchPlan("fresh")
    out_root = None
    if reporter.standalone:
        cfg = resolve_search({**flags, "out": flags.get("out", "runs/trial"), "progress": False}, settings)
        out = Path(cfg.out)
    else:
        out_root = Path(os.environ.get("NNI_OUTPUT_DIR") or ".").resolve()
        out, shared = search_folder(out_root, reporter.experiment_id, reporter.parameter_id)
        # the recipe's checkpoint interval, else about ten a search
        cfg = resolve_search({**flags, "out": str(out), "overwrite": True, "progress": False}, settings,
                             auto={"checkpoint_every": lambda s: default_checkpoint_every(s.get("steps", 1000))})
        if shared:
            plan = plan_search(out, cfg)
        if plan.note:
            print(f"note: {plan.note}", flush=True)
        if plan.action == "resume":
            print(f"resuming the search of parameter id {reporter.parameter_id} from step {plan.step} "
                  f"({plan.checkpoint})", flush=True)
            cfg = dataclasses.replace(cfg, resume=True)
            # a crash of NNI's manager loses the results it had not stored yet: send those of the checkpoint's
            # log again (the manager's database says which it holds), then go on where that log ends
            held = recorded_steps(experiment_dir(out_root, reporter.experiment_id), reporter.trial_id)
            if held is not None:
                for i, row in enumerate(plan.log):
                    metric = intermediate_metric(row)
                    if metric is not None and metric["step"] not in held:
                        reporter.resend(metric, i)
                        print(f"reported step {metric['step']}'s intermediate result again (NNI had not stored it)",
                              flush=True)
            reporter.sequence = plan.rows

    record: dict[str, Any] = {
        "trial_id": reporter.trial_id, "experiment_id": reporter.experiment_id,
        "parameter_id": reporter.parameter_id, "parameters": params, "argv": list(argv or sys.argv[1:]),
        "config": dataclasses.asdict(cfg), "flags": sorted(flags), "started": time.time(),
        "search_dir": str(out), "action": plan.action, "resumed_from_step": plan.step}
    if out_root is not None:
        from ..tensorboard import BUTTON_ENV

        button = tensorboard_button(out_root, reporter.experiment_id, reporter.trial_id)
        if button is not None:
            os.environ[BUTTON_ENV] = str(button)
        expdir = experiment_dir(out_root, reporter.experiment_id)
        if expdir is not None and Path(out).is_relative_to(expdir):
            record["search_dir_in_experiment"] = Path(out).relative_to(expdir).as_posix()
        out_root.mkdir(parents=True, exist_ok=True)
        earlier = _read_json(out_root / "clearer_trial.json")
        record["earlier_runs"] = [*earlier.pop("earlier_runs", []), earlier] if earlier else []
        atomic_write_text(out_root / "clearer_trial.json", json.dumps(record, indent=2) + "\n")
        if Path(out) != out_root / "search":
            _link_search(out_root, Path(out))

    if plan.action == "published":
        from ..nas.genotype import Genotype

        genotype_path = Path(out) / "genotype.json"
        genotype = Genotype.load(genotype_path)
        final = final_metric(genotype.metadata, genotype_path, genotype.to_dict())
        print(f"this parameter id's search had already finished ({genotype_path}): reporting its result again, "
              "not searching", flush=True)
    else:
        def on_log(row: dict[str, float]) -> None:
            print(f"step {int(row['step'])}: val PSNR {row.get('val_psnr'):.3f} dB, L_Arch {row.get('loss_arch'):.4f}, "
                  f"{row.get('seconds')} s", flush=True)
            metric = intermediate_metric(row)
            if metric is None:
                print(f"warning: step {row['step']}: validation PSNR is not finite; intermediate result skipped",
                      file=sys.stderr, flush=True)
                return
            reporter.intermediate(metric)

        os.environ[RANK_CONFIG] = json.dumps(dataclasses.asdict(cfg))  # for the DDP ranks Lightning starts
        result = run_search(cfg, on_log=on_log)
        meta = {"val_psnr_derived": result.derived_psnr, "val_psnr_supernet": result.supernet_psnr,
                "search_seconds": result.seconds, **result.genotype.metadata}
        final = final_metric(meta, result.genotype_path, result.genotype.to_dict())
    reporter.final(final)
    print(f"final: derived-network val PSNR {final['default']:.3f} dB, {final['params']} parameters, "
          f"genotype {final['genotype']}", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    _restore_home()  # before NNI, Lightning or matplotlib are imported
    from ..cli import run_cli

    return run_cli(lambda: _run(argv))


if __name__ == "__main__":
    sys.exit(main())
