"""What training a network needs, shared by search, retrain and the benchmarks.

- :mod:`.fit` — the Lightning runs: :func:`fit_network` (retraining) and :func:`fit_supernet` (search);
- :mod:`.validation` — :class:`Validator` (validation PSNR every N steps, best state) and its batches;
- :mod:`.state` — resumable training state (checkpoints every N steps, RNG states);
- :mod:`.run` — :class:`RunFolder`: the staging folder a run writes into, resumed from, and publishes;
- :mod:`.progress` — one progress bar per run, on stderr;
- :mod:`.checkpoint` — the retrained model file (``model.ckpt``).
"""

__all__ = ["fit", "validation", "state", "run", "progress", "checkpoint"]
