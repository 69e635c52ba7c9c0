"""The settings of every run, and the one place where their precedence is decided.

A command's settings come from four layers, lowest first:

1. the dataclass defaults below (the paper's settings, SPEC sections 3 and 4); a few depend on other
   settings (:data:`DEFAULTS_OF`: a ``spos`` search selects by ``rank``);
2. a run **recipe** (``recipes/*.yaml``: ``--recipe NAME``, else the one the space file names), whose
   ``search:`` / ``retrain:`` section sets any field;
3. the command-line flags the user typed;
4. NNI's hyper-parameters (trials only).

``--resume`` replaces all of them by the interrupted run's saved settings; only the :data:`RESUME_FREE`
ones (output, device, progress...) may be given again, and any other flag must equal the saved value.
:func:`resolve_search` and :func:`resolve_retrain` apply exactly that; the library functions
(``run_search(cfg)``, ``run_retrain(cfg)``) then run the finished config as it is.

The command-line parsers are generated from the fields (:func:`add_options`): a field with ``help`` in
its metadata is a flag ``--field-name``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TypeVar

from .models.fastpath import PRECISIONS

__all__ = ["opt", "RunOptions", "DataOptions", "SearchConfig", "RetrainConfig", "RESUME_FREE", "load_recipe",
           "space_recipe", "resume_clash", "default_select", "DEFAULTS_OF", "resolve_search", "resolve_retrain",
           "add_options", "field_types", "coerce_setting"]

T = TypeVar("T")
#: The degradations a run can remove (:func:`clearer_nni.data.degradation_for`).
DEGRADATIONS = ("gaussian", "correlated", "rain", "jpeg")

#: Settings that may differ between a run and its resumption (``--resume``).
RESUME_FREE = frozenset({"out", "overwrite", "progress", "resume", "workers", "device", "threads"})

#: The help text of ``--threads``.
THREADS_HELP = ("torch CPU threads; 0 = auto: $OMP_NUM_THREADS when set, else one less than the CPUs this "
                "process may use (at least 1), so that a busy neighbour never oversubscribes the cores")


def opt(default: Any, help: str | None = None, **cli: Any) -> Any:
    """A dataclass field with its command-line help (``help=None``: not a flag) and argparse extras
    (``choices``, ``flag``, ``metavar``, ``nargs``, ``const``)."""
    return field(default=default, metadata={"help": help, **cli})


class _Options:
    """Validation shared by the option mixins: each adds its checks to :meth:`checks`."""

    def checks(self) -> list[tuple[bool, str]]:
        return []

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting."""
        for ok, message in self.checks():
            if not ok:
                raise ValueError(message)


@dataclass(kw_only=True)
class RunOptions(_Options):
    """How a run runs and where it writes: shared by search and retrain."""

    out: str = opt("runs/run", "output folder (written through a hidden staging folder, renamed at the end)")
    overwrite: bool = opt(False, "replace a non-empty output folder")
    resume: bool = opt(False, "continue the interrupted run into --out from its newest complete checkpoint")
    progress: bool = opt(True, "no progress bar", flag="--no-progress")
    checkpoint_every: int = opt(1000, "save the whole training state every N steps, 0 = never")
    seed: int = opt(0, "random seed (weights, patches, noise)")
    device: str = opt("auto", "auto (a CUDA GPU if torch sees one), cpu or cuda", choices=["auto", "cpu", "cuda"])
    devices: int = opt(1, "devices; Lightning DDP when > 1 (CPU: gloo processes)")
    threads: int = opt(0, THREADS_HELP)
    workers: int = opt(0, "DataLoader worker processes, one thread each")
    precision: str = opt("32", "Lightning precision (16-mixed: CUDA only; bf16-mixed also on CPU)",
                         choices=list(PRECISIONS))
    channels_last: bool = opt(False, "fast path: NHWC memory format (faster convolutions)")
    compile: bool = opt(False, "fast path: torch.compile the network (falls back to eager with a warning)")

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [
            (bool(self.out), "out must name a folder"),
            (self.checkpoint_every >= 0, f"checkpoint_every must be >= 0 (0: never), got {self.checkpoint_every}"),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (self.device in ("auto", "cpu", "cuda", "gpu"), f"device must be auto, cpu or cuda, got {self.device!r}"),
            (self.devices >= 1, f"devices must be >= 1, got {self.devices}"),
            (self.threads >= 0, f"threads must be >= 0 (0: auto), got {self.threads}"),
            (self.workers >= 0, f"workers must be >= 0, got {self.workers}"),
            (str(self.precision) in PRECISIONS,
             f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"),
        ]


@dataclass(kw_only=True)
class DataOptions(_Options):
    """What a run trains on: images, degradation, patches. Shared by search and retrain."""

    data: str | None = opt("skimage", "training images: skimage (embedded), bsds500, bsd400, a folder (a search "
                                      "splits one: every 5th image validates α, unless --val-data), paired:FOLDER...")
    val_data: str | None = opt(None, "validation images (their 'val' split) [the 'val' split of --data]", type=str)
    data_root: str | None = opt(None, "root folder of named datasets [$CLEARER_DATA_ROOT, else a source checkout's ../shared/data, "
                                "else ~/.cache/clearer_nni/data]",
                                type=str)
    degradation: str | None = opt("gaussian", "degradation to remove (correlated: Gaussian noise filtered by a "
                                              "Gaussian kernel, --correlation-length)", choices=list(DEGRADATIONS))
    sigma: float | None = opt(50.0, "Gaussian noise level on the 0..255 scale", type=float)
    noise_clip: bool | None = opt(False, "the authors' uint8-clipped noise (default: float noise)")
    correlation_length: float | None = opt(None, "correlated noise: standard deviation (pixels) of its Gaussian "
                                                 "filter [2]", type=float)
    batch_size: int = opt(32, "batch size (the global batch, split over --devices)")
    patch_size: int = opt(64, "training patch size")
    val_patches: int = opt(64, "fixed validation patches for PSNR")

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.patch_size >= 8, f"patch_size must be >= 8, got {self.patch_size}"),
            (self.val_patches >= 1, f"val_patches must be >= 1, got {self.val_patches}"),
            (self.sigma is None or (math.isfinite(self.sigma) and self.sigma >= 0),
             f"sigma must be a finite number >= 0, got {self.sigma}"),
            (self.correlation_length is None or (math.isfinite(self.correlation_length)
                                                 and 0 <= self.correlation_length <= 64),
             f"correlation_length must be in 0..64 pixels, got {self.correlation_length}"),
            (self.correlation_length is None or self.degradation in (None, "correlated"),
             f"--correlation-length is a setting of --degradation correlated, not of {self.degradation}"),
        ]


def _global_batch(cfg: Any) -> tuple[bool, str]:
    """``batch_size`` is the global batch, split evenly over ``devices`` (DDP)."""
    return (cfg.batch_size % cfg.devices == 0,
            f"batch_size ({cfg.batch_size}) is the global batch: it must be a multiple of devices ({cfg.devices})")


@dataclass(kw_only=True)
class SearchConfig(RunOptions, DataOptions):
    """Settings of one search; the defaults are the paper's GPU budget (SPEC section 3)."""

    space: str = opt("denoise", "space file, or a shipped name: denoise, derain, demo, tiny")
    recipe: str | None = opt(None, "run recipe: a file, or a shipped name (paper, derain, demo, tiny) [the one the "
                                   "space file names]", type=str)
    out: str = opt("runs/search", "output folder (written through a hidden staging folder, renamed at the end)")
    steps: int = opt(10_000, "bilevel search steps")
    warmup_steps: int = opt(1_000, "weights-only steps first")
    lambda_arch: float = opt(0.01, "λ1, weight of L_Arch")
    lambda_comp: float = opt(0.0, "λ2, weight of L_Comp")
    cost_metric: str = opt("params", "complexity measure of L_Comp", choices=["params", "flops"])
    log_base: str = opt("e", "log in L_Arch: e (paper) or 10 (authors' code)", choices=["e", "10"])
    arch_eval_mode: bool = opt(False, "α step with BatchNorm in eval mode (authors' code)")
    mixing: str = opt("paper", "Eq. 1 (paper) or the authors' F(P(x))", choices=["paper", "authors"])
    lr: float = opt(0.025, "weights' SGD learning rate (cosine-annealed to --lr-min)")
    lr_min: float = opt(0.001, "end of the weights' cosine schedule")
    arch_lr: float = opt(3e-4, "α's Adam learning rate")
    grad_clip: float = opt(5.0, "weights' gradient-norm clip")
    log_every: int = opt(50, "log and validate every N steps")
    checkpoint_every: int = opt(100, "save the whole search state every N steps, 0 = never")
    save_supernet: bool = opt(True, "do not save supernet.pt (for retrain --init-from-supernet)",
                              flag="--no-supernet")
    # A search that decides at short budgets (clearer_nni/nas/schedules.py); the defaults are the paper's recipe.
    arch_lr_schedule: str = opt("fixed", "scaled: --arch-lr x 9000 / α steps, the paper's logit travel in any budget",
                                choices=["fixed", "scaled"])
    anneal_fraction: float = opt(0.0, "anneal the softmax temperature over this last fraction of the search, 0 = never")
    temperature_min: float = opt(0.01, "softmax temperature reached at the last step (with --anneal-fraction)")
    lambda_arch_schedule: str = opt("constant", "λ1 constant (paper) or linear from 0 over the α steps",
                                    choices=["constant", "linear"])
    strategy: str = opt("darts", "super-network: darts (the paper's mixture), spos (one uniformly drawn candidate per "
                                 "column per step, no α step: chosen by --select rank) or gumbel (GDAS, hard "
                                 "Gumbel-softmax, straight-through) or fair (FairNAS: like spos, every candidate "
                                 "trained once per step); docs/SEARCH.md", choices=["darts", "spos", "fair", "gumbel"])
    select: str = opt("argmax", "derive by argmax of α (paper), by perturbation (Wang et al. 2021) or by rank: every "
                                "architecture scored with the super-network's weights into OUT/ranking/, the best "
                                "chosen (--strategy spos's default: it trains no α)",
                      choices=["argmax", "perturbation", "rank"])
    rank_max_params: int | None = opt(None, "--select rank: the best with at most N parameters [none]", type=int,
                                      metavar="N")
    rank_max_flops: int | None = opt(None, "--select rank: the best with at most N FLOPs at 64x64 [none]", type=int,
                                     metavar="N")
    finetune_steps: int = opt(0, "fine-tune the derived network this many steps to estimate its quality (the "
                                 "trial metric), 0 = no")
    finetune_lr: float = opt(1e-3, "Adam learning rate of that fine-tune")

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [
            (self.data is not None, "data must name the training images"),
            (self.degradation is not None and self.sigma is not None and self.noise_clip is not None,
             "degradation, sigma and noise_clip must be set for a search"),
            (self.steps >= 1, f"steps must be >= 1, got {self.steps}"),
            (self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}"),
            (self.warmup_steps < self.steps,
             f"warmup_steps ({self.warmup_steps}) must be < steps ({self.steps}): α would never be trained"),
            (math.isfinite(self.lambda_arch) and self.lambda_arch >= 0,
             f"lambda_arch must be a finite number >= 0, got {self.lambda_arch}"),
            (math.isfinite(self.lambda_comp) and self.lambda_comp >= 0,
             f"lambda_comp must be a finite number >= 0, got {self.lambda_comp}"),
            (self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}"),
            _global_batch(self),
            (math.isfinite(self.anneal_fraction) and 0 <= self.anneal_fraction <= 1,
             f"anneal_fraction must be in [0, 1], got {self.anneal_fraction}"),
            (math.isfinite(self.temperature_min) and 0 < self.temperature_min <= 1,
             f"temperature_min must be in (0, 1], got {self.temperature_min}"),
            # spos trains single paths only: the α-mixture perturbation scores is a network it never trained
            (not (self.strategy in ("spos", "fair") and self.select == "perturbation"),
             "select perturbation scores the α-mixed super-network, which --strategy spos never trains: use "
             "--select rank (spos's default)"),
            *[(v is None or v >= 1, f"{name} must be >= 1, got {v}")
              for name, v in (("rank_max_params", self.rank_max_params), ("rank_max_flops", self.rank_max_flops))],
            (self.select == "rank" or (self.rank_max_params is None and self.rank_max_flops is None),
             f"rank_max_params and rank_max_flops choose among ranked architectures: they need --select rank, "
             f"not {self.select}"),
            (self.finetune_steps >= 0, f"finetune_steps must be >= 0 (0: no fine-tune estimate), got {self.finetune_steps}"),
            (math.isfinite(self.finetune_lr) and self.finetune_lr > 0,
             f"finetune_lr must be a finite number > 0, got {self.finetune_lr}"),
        ]


@dataclass(kw_only=True)
class RetrainConfig(RunOptions, DataOptions):
    """Settings of one retraining; the defaults are SPEC section 4 (paper and authors' code).

    ``None`` for ``data``, ``degradation``, ``sigma`` or ``noise_clip`` means "as recorded in the genotype
    by its search" (else ``skimage``, ``gaussian``, 50, float noise).
    """

    genotype: str = opt("", "genotype.json written by a search (required unless --resume)")
    recipe: str | None = opt(None, "run recipe whose retrain: section sets defaults (a file or a shipped name)",
                             type=str)
    out: str = opt("runs/retrain", "output folder (written through a hidden staging folder, renamed at the end)")
    data: str | None = opt(None, "training images: skimage, bsds500, bsd400, a folder... [the search's, "
                                 "else skimage]", type=str)
    degradation: str | None = opt(None, "degradation to remove [the search's, else gaussian]",
                                  choices=list(DEGRADATIONS))
    sigma: float | None = opt(None, "Gaussian noise level on the 0..255 scale [the search's, else 50]", type=float)
    noise_clip: bool | None = opt(None, "the authors' uint8-clipped noise (--no-noise-clip: float noise) "
                                        "[the search's, else float]")
    steps: int = opt(100_000, "training steps")
    lr: float = opt(0.01, "Adam learning rate, cosine-annealed to 0")
    grad_clip: float = opt(5.0, "gradient-norm clip, 0 for none")
    val_every: int = opt(1000, "validate every N steps (and at the last) [1000; steps/10 for fewer than 10,000 "
                               "steps]")
    val_images: int = opt(0, "validate on the first N whole val images instead of patches (0: patches)")
    init_from_supernet: str | None = opt(None, "start from the search's super-network weights (no value: "
                                               "supernet.pt next to the genotype)", nargs="?", const="auto",
                                         metavar="SUPERNET_PT", type=str)

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [
            (bool(self.genotype), "genotype is required (a genotype.json written by a search)"),
            (self.steps >= 1, f"steps must be >= 1, got {self.steps}"),
            (math.isfinite(self.lr) and self.lr > 0, f"lr must be a finite number > 0, got {self.lr}"),
            (math.isfinite(self.grad_clip) and self.grad_clip >= 0,
             f"grad_clip must be a finite number >= 0 (0: no clipping), got {self.grad_clip}"),
            (self.val_every >= 1, f"val_every must be >= 1, got {self.val_every}"),
            (self.val_images >= 0, f"val_images must be >= 0 (0: use patches), got {self.val_images}"),
            _global_batch(self),
        ]


# -- recipes ------------------------------------------------------------------------------------

def space_recipe(space: str) -> str | None:
    """The recipe a space file names (its ``recipe:`` key), or None."""
    from .archs.space import read_yaml
    from .bundled import space_path

    doc = read_yaml(space_path(space), "space")
    recipe = doc.get("recipe")
    return str(recipe) if recipe is not None else None


def load_recipe(recipe: str, section: str, cls: type) -> dict[str, Any]:
    """The ``section`` (``search`` or ``retrain``) of a recipe, checked against ``cls``'s fields."""
    from .archs.space import SpaceFileError, read_yaml
    from .bundled import recipe_path

    path = recipe_path(recipe)
    doc = read_yaml(path, "recipe")
    unknown = sorted(set(doc) - {"description", "search", "retrain"})
    if unknown:
        raise SpaceFileError(f"{path}: unknown top-level key(s) {unknown}; known: description, search, retrain")
    settings = doc.get(section) or {}
    if not isinstance(settings, dict):
        raise SpaceFileError(f"{path}: '{section}:' must be a mapping")
    known = set(field_types(cls)) - {"out", "overwrite", "resume", "recipe", "space", "genotype"}
    bad = sorted(set(settings) - known)
    if bad:
        raise SpaceFileError(f"{path}: unknown {section} setting(s) {bad}; known: {sorted(known)}")
    return {k: coerce_setting(cls, k, v, f"{path}: {section}.{k}") for k, v in settings.items()}


# -- resolution ---------------------------------------------------------------------------------

def coerce_setting(cls: type, name: str, value: Any, source: str) -> Any:
    """``value`` (from a YAML recipe or an NNI search space) as the type of the field ``name`` of ``cls``:
    ``1e4`` → ``10000`` for an int, ``"true"`` → ``True``, ``10`` → ``"10"`` for a string; ``None`` stays
    ``None`` where the field allows it. Raises ``ValueError`` naming ``source`` on anything else."""
    hint = field_types(cls)[name]
    if value is None and type(None) in typing.get_args(hint):
        return None
    kind = _base_type(hint)
    bad = ValueError(f"{source}: bad value {value!r} ({type(value).__name__}); expected {kind.__name__}")
    if isinstance(value, (dict, list, tuple)):
        raise ValueError(f"{source}: nested values are not supported, got {value!r} "
                         "(use plain choice/uniform/... search-space entries)")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise bad
    if kind is int:
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
    if kind is float:
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
    # str fields
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # e.g. log_base 10
    raise bad


def field_types(cls: type) -> dict[str, Any]:
    """Field name → its type hint (``int``, ``str | None``...), for the fields of a config dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _build(cls: type[T], settings: Mapping[str, Any], source: str) -> T:
    known = set(field_types(cls))
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"{source}: unknown setting(s) {unknown}")
    try:
        return cls(**settings)
    except TypeError as exc:
        raise ValueError(f"{source}: {exc}") from None


def resume_clash(cfg: Any, saved: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Setting → (``cfg``'s, saved) for every setting but the :data:`RESUME_FREE` ones in which ``cfg``
    differs from the settings an interrupted run saved: a checkpoint only continues the same run."""
    ours = dataclasses.asdict(cfg)
    return {k: (ours[k], v) for k, v in sorted(saved.items()) if k in ours and k not in RESUME_FREE and ours[k] != v}


def _resumed(cls: type[T], given: Mapping[str, Any], fmt: str, what: str) -> T:
    """The interrupted run's saved settings, with the free ones of ``given`` applied."""
    from .runtime import staging_dir
    from .training.state import CheckpointStore

    out = Path(given.get("out", cls().out))  # type: ignore[call-arg]
    folder = staging_dir(out) / "checkpoints"
    found = CheckpointStore(folder, fmt).latest(mmap=True)
    if found is None:
        raise ValueError(f"nothing to resume for {out}: no complete checkpoint in {folder}")
    _path, state = found
    known = set(field_types(cls))
    saved = _build(cls, {k: v for k, v in state["config"].items() if k in known}, f"{folder}: saved settings")
    clash = {k: (v, getattr(saved, k)) for k, v in sorted(given.items())
             if k not in RESUME_FREE and v != getattr(saved, k)}
    if clash:
        raise ValueError(f"--resume continues with the interrupted {what}'s settings; these flags differ "
                         f"(given, saved): {clash}")
    return dataclasses.replace(saved, **{**{k: v for k, v in given.items() if k in RESUME_FREE}, "resume": True})


def default_select(settings: Mapping[str, Any]) -> str:
    """``select`` when no layer sets it: ``rank`` for ``spos`` (it trains no α, whose argmax would be its random
    start), else the paper's ``argmax``."""
    return "rank" if settings.get("strategy", SearchConfig.strategy) in ("spos", "fair") else SearchConfig.select


#: Search settings whose default depends on others (applied where no layer sets them, before ``auto``).
DEFAULTS_OF: dict[str, Callable[[dict[str, Any]], Any]] = {"select": default_select}


def resolve_search(flags: Mapping[str, Any], params: Mapping[str, Any] | None = None, *,
                   auto: Mapping[str, Callable[[dict[str, Any]], Any]] | None = None) -> SearchConfig:
    """The finished settings of a search (see the module docstring for the precedence).

    Parameters
    ----------
    flags
        The settings the user gave (command-line flags), by field name.
    params
        NNI's hyper-parameters, by field name (already converted to the fields' types).
    auto
        For settings no layer sets: a function of the merged settings giving the value (e.g. a trial's
        checkpoint interval from its number of steps).
    """
    from .training.state import SEARCH_STATE

    given = {**flags, **(params or {})}
    if given.get("resume"):
        cfg = _resumed(SearchConfig, given, SEARCH_STATE, "search")
    else:
        space = given.get("space", SearchConfig.space)
        recipe = given.get("recipe") or space_recipe(space)
        settings = {**(load_recipe(recipe, "search", SearchConfig) if recipe else {}), **given, "recipe": recipe}
        for name, value_of in {**DEFAULTS_OF, **(auto or {})}.items():
            settings.setdefault(name, value_of(settings))
        cfg = _build(SearchConfig, settings, "search settings")
    cfg.validate()
    return cfg


def resolve_retrain(flags: Mapping[str, Any]) -> RetrainConfig:
    """The finished settings of a retraining: defaults < ``--recipe``'s ``retrain:`` < flags; or ``--resume``.

    Without an interval from the recipe or the flags, a run of fewer than 10 x 1,000 steps validates
    every ``steps / 10`` steps (ten points on its curve).
    """
    from .training.state import RETRAIN_STATE

    if flags.get("resume"):
        cfg = _resumed(RetrainConfig, flags, RETRAIN_STATE, "retraining")
    else:
        recipe = flags.get("recipe")
        settings = {**(load_recipe(recipe, "retrain", RetrainConfig) if recipe else {}), **flags}
        # a short run that sets no interval: ten validation points, not one
        settings.setdefault("val_every", min(RetrainConfig.val_every,
                                             max(1, math.ceil(settings.get("steps", RetrainConfig.steps) / 10))))
        cfg = _build(RetrainConfig, settings, "retrain settings")
    cfg.validate()
    return cfg


# -- command line -------------------------------------------------------------------------------

def _base_type(hint: Any) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def add_options(parser: argparse.ArgumentParser, cls: type, *, defaults: Any = None,
                skip: Iterable[str] = ()) -> argparse.ArgumentParser:
    """Add a flag for every field of ``cls`` that has help text; only flags the user gives are set.

    ``defaults`` (an instance) gives the values shown in the help, e.g. a config resolved with the
    default recipe.
    """
    defaults = defaults if defaults is not None else cls()
    skip = set(skip)
    own = set(vars(cls).get("__annotations__", {}))
    # the command's own settings first, then the data's, then how it runs
    ordered = sorted(dataclasses.fields(cls), key=lambda f: (f.name not in own, f.name in field_types(RunOptions)))
    for f in ordered:
        meta = dict(f.metadata)
        help_text = meta.pop("help", None)
        if help_text is None or f.name in skip:
            continue
        flag = meta.pop("flag", "--" + f.name.replace("_", "-"))
        hint = field_types(cls)[f.name]
        value = getattr(defaults, f.name)
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        if hint is bool and flag.startswith("--no-"):
            parser.add_argument(flag, action="store_false", help=help_text, **kw)
        elif hint is bool:
            parser.add_argument(flag, action="store_true", help=help_text, **kw)
        elif _base_type(hint) is bool:  # optional bool: --x / --no-x, unset = "as recorded"
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text, **kw)
        else:
            shown = "" if "[" in help_text else f" [{value}]"
            kw["type"] = meta.pop("type", _base_type(hint))
            parser.add_argument(flag, help=help_text + shown, **kw, **meta)
    return parser
