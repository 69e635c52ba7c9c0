"""NNI experiments of CLEARER searches: each NNI (HPO) trial runs one whole one-shot search.

- :mod:`.trial` — the trial entry, ``python -m clearer_nni.experiment.trial``;
- :mod:`.launch` — ``clearer-nni experiment run|resume|view|stop|status`` (``nnictl`` with the web UI on
  127.0.0.1 only, via ``loopback.js``, and NNI's files under a chosen folder);
- :mod:`.export` — ``clearer-nni export``: the best trial's genotype;
- :mod:`.report` — ``clearer-nni report``: a Table-5-style table and a Pareto plot.

See ``docs/EXPERIMENTS.md``.
"""

__all__ = ["trial", "launch", "export", "report"]
