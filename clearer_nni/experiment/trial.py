"""``python -m clearer_nni.experiment.trial``: one NNI HPO trial = one whole CLEARER one-shot search.

The trial takes its fixed settings from the same flags as ``python -m clearer_nni.search`` (e.g.
``--space demo --steps 200``), asks NNI for its hyper-parameters (names are :class:`SearchConfig`
fields such as ``lambda_arch``, ``lambda_comp``, ``sigma``, ``seed``; ``lambda1`` / ``lambda2`` are
accepted as aliases of the first two, and ``lambdas: [λ1, λ2]`` sets both), which override the flags and the space file's ``search:``
defaults, and runs the search into ``$NNI_OUTPUT_DIR/search``.

It reports to NNI:

- every logged search step, an intermediate result
  ``{"default": val_psnr, "alpha_entropy": L_Arch, "step": step}``;
- at the end, a final result ``{"default": derived-network val PSNR, "supernet_psnr", "params",
  "genotype": path of genotype.json, ...}``.

The trial command channel and the parameter id are captured once, when the trial starts, and every
metric goes through that saved channel: whatever the search does to NNI's process-wide default channel
(NNI's sequential NAS engine, for one, swaps it), the metrics reach the web UI under this trial's
parameter id.

A parameter name that is not a search setting, or a bad value, prints ``error: ...`` on stderr
(``trial.stderr`` in the trial's folder) and exits with code 2: NNI marks the trial FAILED.

Run outside NNI (no ``NNI_PLATFORM``), it is an ordinary search with ``--out`` (default
``runs/trial``) and prints its metrics.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = ["ALIASES", "PAIR", "NOT_TUNABLE", "TrialReporter", "apply_parameters", "main"]

#: Parameter names accepted besides the :class:`~clearer_nni.search.SearchConfig` field names.
ALIASES = {"lambda1": "lambda_arch", "lambda2": "lambda_comp", "λ1": "lambda_arch", "λ2": "lambda_comp"}

#: A parameter holding the pair ``[lambda_arch, lambda_comp]`` (a grid of chosen pairs, as in Table 5).
PAIR = "lambdas"

#: Settings a search space may not set: the trial decides them.
NOT_TUNABLE = {"out", "overwrite", "progress"}


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
        params = record.get("parameters")
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise ValueError(f"NNI parameters must be a mapping of name to value, got {type(params).__name__}: "
                             f"{params!r}")
        self.parameter_id = record.get("parameter_id")
        self.parameters = dict(params)
        try:  # keep nni.get_current_parameter() working for code that asks
            import nni.trial

            nni.trial._params = record
        except Exception:  # pragma: no cover - private attribute of NNI
            pass
        return dict(self.parameters)

    def _send(self, kind: str, metric: dict[str, Any], sequence: int) -> None:
        if self.standalone:
            print(f"[nni {kind.lower()}] {json.dumps(metric)}", flush=True)
            return
        self.channel.send_metric(type=kind, parameter_id=self.parameter_id, trial_job_id=self.trial_id,
                                 sequence=sequence, value=metric)

    def intermediate(self, metric: dict[str, Any]) -> None:
        """Report an intermediate result (``metric["default"]`` must be a finite number)."""
        self._send("PERIODICAL", metric, self.sequence)
        self.sequence += 1

    def final(self, metric: dict[str, Any]) -> None:
        """Report the final result."""
        self._send("FINAL", metric, 0)


# -- parameters → SearchConfig ---------------------------------------------------------------------

def _coerce(name: str, value: Any, default: Any) -> Any:
    """Convert an NNI parameter value to the type of the SearchConfig field with default ``default``."""
    bad = ValueError(f"parameter {name!r}: bad value {value!r} ({type(value).__name__}); "
                     f"expected {type(default).__name__ if default is not None else 'a string'}")
    if isinstance(value, (dict, list, tuple)):
        raise ValueError(f"parameter {name!r}: nested values are not supported, got {value!r} "
                         "(use plain choice/uniform/... search-space entries)")
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise bad
    if isinstance(default, int):
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)  # quniform/randint give floats
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise bad from None
        raise bad
    if isinstance(default, float):
        if isinstance(value, bool):
            raise bad
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise bad from None
        raise bad
    # str (or optional str) fields
    if value is None and default is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # e.g. log_base 10
    raise bad


def apply_parameters(cfg: Any, explicit: set[str], params: Mapping[str, Any]) -> tuple[Any, set[str]]:
    """Return ``cfg`` with NNI's ``params`` applied (as explicit settings), and the new explicit set.

    Raises ``ValueError`` naming an unknown parameter or a bad value.
    """
    from ..search import SearchConfig

    fields = {f.name: f for f in dataclasses.fields(SearchConfig)}
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
        changes[name] = _coerce(raw_name, value, getattr(SearchConfig(), name))
    cfg = dataclasses.replace(cfg, **changes)
    return cfg, set(explicit) | (set(changes) - {"space"})


def _finite(x: Any) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _restore_home() -> None:
    """``python -m clearer_nni.experiment run`` points NNI's HOME at its work folder; give the search the
    user's own HOME back (caches, ``~/.cache/clearer_nni/data``)."""
    user_home = os.environ.get("CLEARER_USER_HOME")
    if user_home and Path(user_home).is_dir():
        os.environ["HOME"] = user_home


def _run(argv: Sequence[str] | None) -> int:
    from ..search import config_from_args, run_search

    cfg, explicit = config_from_args(argv)
    reporter = TrialReporter()  # captured now, before anything else runs
    params = reporter.receive_parameters()
    print(f"trial {reporter.trial_id} of experiment {reporter.experiment_id}: parameter id {reporter.parameter_id}, "
          f"parameters {json.dumps(params, sort_keys=True)}", flush=True)
    cfg, explicit = apply_parameters(cfg, explicit, params)

    if reporter.standalone:
        out_root = Path(cfg.out if "out" in explicit else "runs/trial")
        cfg = dataclasses.replace(cfg, out=str(out_root), progress=False)
    else:
        out_root = Path(os.environ.get("NNI_OUTPUT_DIR") or ".").resolve()
        cfg = dataclasses.replace(cfg, out=str(out_root / "search"), overwrite=True, progress=False)

    record = {"trial_id": reporter.trial_id, "experiment_id": reporter.experiment_id,
              "parameter_id": reporter.parameter_id, "parameters": params, "argv": list(argv or sys.argv[1:]),
              "config": dataclasses.asdict(cfg), "explicit": sorted(explicit), "started": time.time()}
    if not reporter.standalone:
        out_root.mkdir(parents=True, exist_ok=True)
        (out_root / "clearer_trial.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")

    def on_log(row: dict[str, float]) -> None:
        psnr = _finite(row.get("val_psnr"))
        print(f"step {int(row['step'])}: val PSNR {row.get('val_psnr'):.3f} dB, L_Arch {row.get('loss_arch'):.4f}, "
              f"{row.get('seconds')} s", flush=True)
        if psnr is None:
            print(f"warning: step {row['step']}: validation PSNR is not finite; intermediate result skipped",
                  file=sys.stderr, flush=True)
            return
        reporter.intermediate({"default": psnr, "alpha_entropy": _finite(row.get("loss_arch")),
                               "step": int(row["step"])})

    result = run_search(cfg, explicit, on_log=on_log)
    meta = result.genotype.metadata
    derived = _finite(meta.get("val_psnr_derived", result.derived_psnr))
    if derived is None:
        raise RuntimeError(f"the derived network's validation PSNR is not finite ({meta.get('val_psnr_derived')})")
    final = {"default": derived, "supernet_psnr": _finite(result.supernet_psnr),
             "params": int(meta.get("params_derived", 0)), "genotype": str(result.genotype_path.resolve()),
             "search_seconds": _finite(meta.get("search_seconds", result.seconds)),
             "lambda_arch": _finite(meta.get("lambda_arch")), "lambda_comp": _finite(meta.get("lambda_comp"))}
    reporter.final(final)
    print(f"final: derived-network val PSNR {derived:.3f} dB, {final['params']} parameters, "
          f"genotype {final['genotype']}", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    _restore_home()  # before NNI, Lightning or matplotlib are imported
    from ..cli import run_cli

    return run_cli(lambda: _run(argv))


if __name__ == "__main__":
    sys.exit(main())
