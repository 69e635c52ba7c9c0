"""``python -m clearer_nni.quickstart``: the whole flow on the embedded images, sized for a CPU.

1. an NNI experiment (``experiments/denoise.yml``: each trial one CLEARER search, the tuner choosing
   λ1, λ2, σ...), watched in NNI's web UI on 127.0.0.1;
2. the best trial's genotype exported, and the trials' table and Pareto plot written;
3. the genotype retrained briefly from scratch;
4. the retrained network evaluated on the embedded test images (standard protocol).

Everything goes under ``--out`` (default ``runs/quickstart``). The budgets are demo-sized: the
numbers show the flow works, not the paper's quality (see docs/RESULTS.md for that).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

__all__ = ["main"]

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clearer-nni demo", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default="denoise", help="NNI experiment file, or a shipped name")
    p.add_argument("--out", default="runs/quickstart", help="output folder")
    p.add_argument("--port", type=int, default=None, help="web UI port (default: 8080, or a free one)")
    p.add_argument("--timeout", type=float, default=2400,
                   help="stop the experiment after this many seconds and go on with the trials that finished")
    p.add_argument("--retrain-steps", type=int, default=300, help="retraining steps (paper: 100,000)")
    p.add_argument("--sigma", type=float, default=50.0, help="noise level of the evaluation")
    return p


def _step(n: int, text: str) -> None:
    print(f"\n== {n}. {text} ==", flush=True)


def _decision(genotype_path: Path) -> str:
    """What the search decided and how sure it is (softmax(α) at temperature 1, :meth:`Genotype.decidedness`)."""
    from .nas.genotype import Genotype

    g = Genotype.load(genotype_path)
    decided = g.decidedness()
    meta = g.metadata
    lines = [f"the search decided {g.code()} (P = parallel, F = fusion; select {meta.get('select', 'argmax')}): "
             f"{decided.line()}"]
    if meta.get("val_psnr_finetuned") is not None:
        lines.append(f"trial metric: the derived network after its {meta['finetune']['steps']}-step fine-tune estimate "
                     f"{meta['val_psnr_finetuned']:.2f} dB (super-network {meta['val_psnr_supernet']:.2f} dB, "
                     f"noisy input {meta['val_psnr_input']:.2f} dB)")
    if decided.warning():
        lines.append(f"warning: {decided.warning()}")
    from .bench import where

    standing = where(g)  # only when a ground-truth table covers the space and task
    if standing:
        lines.append(standing)
    return "\n".join(lines)


def _ended_early(port: int, timed_out: bool, timeout: float) -> str:
    """How many trials finished and, when fewer than the experiment planned, why (its duration or trial limit,
    or the demo's ``--timeout``). Raises ``RuntimeError`` when no trial succeeded."""
    from .experiment.rest import rest_get

    trials = rest_get(port, "/trial-jobs") or []
    params = (rest_get(port, "/experiment") or {}).get("params", {})
    planned = params.get("maxTrialNumber")
    succeeded = sum(t.get("status") == "SUCCEEDED" for t in trials)
    if timed_out:
        why = f"the demo's --timeout of {timeout:.0f} s ended the experiment"
    elif planned is not None and len(trials) < int(planned):
        why = f"the experiment's maxExperimentDuration ({params.get('maxExperimentDuration')}) ended it"
    else:
        why = ""
    states = ", ".join(f"{t.get('trialJobId')}: {t.get('status')}" for t in trials) or "none started"
    if not succeeded:
        raise RuntimeError(f"no trial of the experiment succeeded ({states})" + (f": {why}" if why else ""))
    line = f"{succeeded} of {planned if planned is not None else len(trials)} trials succeeded"
    return line + (f" ({why}); going on with the trials that finished" if why or succeeded < len(trials) else "")


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import run_cli

    def _run() -> int:
        ns = _parser().parse_args(argv)
        from .evaluate import EvalConfig, format_summary, run_evaluate
        from .experiment.export import export_genotype
        from .bundled import experiment_path
        from .experiment.nnictl import create_experiment, stop_experiment
        from .experiment.rest import TERMINAL_TRIAL_STATUSES, pick_port, rest_get, trial_metric, wait_for_experiment
        from .experiment.report import write_report
        from .retrain import RetrainConfig, run_retrain
        from .runtime import free_cpus

        from . import outlock

        out = Path(ns.out)
        out.mkdir(parents=True, exist_ok=True)
        outlock.acquire(out)  # one quick start per folder (run_cli releases it)
        workdir = out / "nni"
        start = time.time()
        stages: list[tuple[str, float]] = []

        def stage_done(name: str, since: float) -> float:
            now = time.time()
            stages.append((name, now - since))
            return now

        _step(1, f"NNI experiment {ns.config}")
        port = pick_port(ns.port)
        exp_id = create_experiment(experiment_path(ns.config), port, workdir)
        print(f"experiment {exp_id}: web UI http://127.0.0.1:{port}/oview (trials: /detail) while it runs",
              flush=True)
        try:
            seen: dict[str, object] = {"done": set()}

            def on_poll(state: dict) -> None:
                status = state.get("status")
                if seen.get("status") != status:
                    seen["status"] = status
                    print(f"[{time.strftime('%H:%M:%S')}] experiment {status}", flush=True)
                try:  # one line per finished trial
                    trials = rest_get(port, "/trial-jobs")
                except (OSError, ValueError):
                    return
                for t in trials:
                    if t.get("status") in TERMINAL_TRIAL_STATUSES and t["trialJobId"] not in seen["done"]:
                        seen["done"].add(t["trialJobId"])
                        psnr = trial_metric(t)
                        print(f"[{time.strftime('%H:%M:%S')}] trial {t['trialJobId']} {t['status']} "
                              f"({len(seen['done'])} done)"
                              + (f": trial metric (derived network) {psnr:.2f} dB" if isinstance(psnr, float) else ""),
                              flush=True)

            timed_out = False
            try:
                state = wait_for_experiment(port, ns.timeout, on_poll=on_poll)
            except TimeoutError:
                timed_out, state = True, {}
            if state.get("status") == "ERROR":
                raise RuntimeError(f"the NNI experiment failed: {state.get('errors')}")
            print(_ended_early(port, timed_out, ns.timeout), flush=True)
        finally:
            stop_experiment(exp_id, workdir)
        t = stage_done("NNI experiment (search trials)", start)

        _step(2, "best genotype and the trials' table")
        genotype_path, best = export_genotype(exp_id, out / "genotype.json", workdir=workdir, overwrite=True)
        report = write_report(exp_id, out / "report", workdir=workdir)
        print(Path(report["md"]).read_text(encoding="utf-8"))
        print(f"best trial: {best.trial_id} {best.parameters}")
        print(f"wrote {genotype_path} and {', '.join(str(p) for p in report.values())}")
        print(_decision(genotype_path))
        t = stage_done("export and report", t)

        _step(3, f"retrain the best genotype from scratch ({ns.retrain_steps} steps)")
        # the experiment has ended: the retraining may use every CPU that is idle now
        retrained = run_retrain(RetrainConfig(genotype=str(genotype_path), out=str(out / "retrain"),
                                              steps=ns.retrain_steps, batch_size=16, patch_size=48,
                                              val_every=max(1, ns.retrain_steps // 5), overwrite=True,
                                              threads=free_cpus()))
        print(f"best validation PSNR {retrained.best_val_psnr:.2f} dB at step {retrained.best_step}")
        t = stage_done(f"retrain ({ns.retrain_steps} steps)", t)

        _step(4, f"evaluate on the embedded test images (standard protocol, sigma {ns.sigma:g})")
        result = run_evaluate(EvalConfig(model=str(retrained.checkpoint), data="skimage", split="test",
                                         sigma=ns.sigma, out=str(out / "eval"), overwrite=True))
        print(format_summary(result.summary))
        stage_done("evaluate", t)
        print("\ntime per stage: " + "; ".join(f"{name} {sec / 60:.1f} min" for name, sec in stages))
        print(f"quick start done in {(time.time() - start) / 60:.1f} min; everything is in {out}/")
        return 0

    return run_cli(_run)


if __name__ == "__main__":
    sys.exit(main())
