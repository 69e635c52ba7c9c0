"""The fast-path flags (channels_last, torch.compile, precision): the CPU side of each."""

from __future__ import annotations

import copy
import sys
import warnings

import pytest
import torch
import torch.nn as nn

import clearer_nni.search as search
from clearer_nni.archs import ClearerSpace, SpaceConfig
from clearer_nni.models.fastpath import apply_fast_path, check_precision, to_channels_last
from clearer_nni.nas import ClearerDARTS, Genotype, candidate_costs, normalise_costs
from clearer_nni.search import main
from conftest import REPO

TINY = str(REPO / "search_spaces" / "tiny.yaml")


def _argv(out, *extra: str) -> list[str]:
    return ["--space", TINY, "--steps", "6", "--warmup-steps", "2", "--log-every", "1000", "--no-progress",
            "--no-supernet", "--out", str(out), *extra]


def _supernet(cfg: SpaceConfig) -> nn.Module:
    return ClearerDARTS(costs=normalise_costs(candidate_costs(cfg))).mutate_model(ClearerSpace(cfg))


# -- helpers -----------------------------------------------------------------------------------------

def test_to_channels_last_converts_4d_tensors_inside_batches():
    x, y = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    out = to_channels_last({"train": (x, y), "val": [x, torch.ones(3)]})
    assert out["train"][0].is_contiguous(memory_format=torch.channels_last)
    assert isinstance(out["train"], tuple) and isinstance(out["val"], list)
    assert out["val"][1].shape == (3,) and torch.equal(out["train"][1], y)


def test_check_precision():
    assert check_precision("32", "cpu") == "32" and check_precision(32, "cpu") == "32"
    assert check_precision("bf16-mixed", "cpu") == "bf16-mixed"
    assert check_precision("16-mixed", "gpu") == "16-mixed"
    with pytest.raises(ValueError, match="16-mixed needs a CUDA GPU"):
        check_precision("16-mixed", "cpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        check_precision("64", "cpu")


def test_channels_last_supernet_has_the_same_numerics(tiny_space):
    torch.manual_seed(0)
    a = _supernet(tiny_space)
    b = apply_fast_path(copy.deepcopy(a), channels_last=True)
    x = torch.rand(4, 1, 32, 32)
    ya, yb = a(x), b(x)
    assert any(p.dim() == 4 and p.shape[1] > 1 and p.is_contiguous(memory_format=torch.channels_last)
               and not p.is_contiguous() for p in b.parameters())
    torch.testing.assert_close(yb, ya, rtol=1e-4, atol=1e-6)
    ya.square().mean().backward()
    yb.square().mean().backward()
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-3, atol=1e-3 * float(p.grad.abs().max()) + 1e-12,
                                       msg=name)


# -- compile ----------------------------------------------------------------------------------------

@pytest.mark.slow  # a subprocess or seconds of work: make test-fast leaves it out
def test_compile_runs_or_falls_back_and_keeps_the_module():
    torch.manual_seed(0)
    m = nn.Conv2d(1, 2, 3)
    keys = list(m.state_dict())
    x = torch.rand(1, 1, 8, 8)
    expected = m(x)
    assert apply_fast_path(m, compile=True) is m and list(m.state_dict()) == keys
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no C++ compiler: the documented fallback
        torch.testing.assert_close(m(x), expected)


def test_compile_failure_falls_back_to_eager_with_one_warning(monkeypatch):
    def broken(fn):
        def call(*args, **kwargs):
            raise RuntimeError("no compiler here\nmore detail")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    m = apply_fast_path(nn.Linear(3, 2), compile=True)
    x = torch.rand(4, 3)
    with pytest.warns(RuntimeWarning, match="torch.compile failed, running eagerly instead: RuntimeError: no compiler"):
        y = m(x)
    torch.testing.assert_close(y, x @ m.weight.T + m.bias)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        m(x)


# -- through the search CLI -------------------------------------------------------------------------

def test_channels_last_search_runs_and_agrees_with_nchw(tmp_path):
    assert main(_argv(tmp_path / "nchw")) == 0
    assert main(_argv(tmp_path / "nhwc", "--channels-last")) == 0
    a, b = (Genotype.load(tmp_path / x / "genotype.json") for x in ("nchw", "nhwc"))
    assert b.metadata["channels_last"] is True and a.metadata["channels_last"] is False
    # Same numerics up to float rounding: after a few steps the architecture weights still agree.
    for label, probs in a.alpha.items():
        for name, p in probs.items():
            assert b.alpha[label][name] == pytest.approx(p, abs=1e-3), (label, name)


def test_compile_flag_reaches_the_supernet(tmp_path, monkeypatch):
    compiled = []

    def fake_compile(fn):  # the real one takes minutes on 2 cores; its fallback is tested above
        compiled.append(fn)
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    assert main(_argv(tmp_path / "c", "--compile")) == 0
    assert len(compiled) == 1 and getattr(compiled[0], "__self__", None).__class__.__name__ == "ClearerSpace"
    assert Genotype.load(tmp_path / "c" / "genotype.json").metadata["compile"] is True


def test_bf16_mixed_search_runs_on_cpu(tmp_path):
    assert main(_argv(tmp_path / "bf16", "--precision", "bf16-mixed")) == 0
    g = Genotype.load(tmp_path / "bf16" / "genotype.json")
    assert g.metadata["precision"] == "bf16-mixed"
    assert g.metadata["val_psnr_supernet"] > 0


def test_16_mixed_on_cpu_is_refused_with_one_clear_error(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_argv(out, "--device", "cpu", "--precision", "16-mixed")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: precision 16-mixed needs a CUDA GPU; on CPU use bf16-mixed or 32"]
    assert not out.exists() and not list(tmp_path.glob(".out*"))


# -- no host sync in the step ------------------------------------------------------------------------

def test_search_step_reads_no_tensor_values_between_log_steps(tmp_path, monkeypatch):
    """Between logged steps nothing in the step (or the logger) turns a tensor into a Python value."""
    import pytorch_lightning as pl

    reads: list[tuple[int, str]] = []
    state = {"step": None}

    class Window(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            state["step"] = pl_module.search_step + 1

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            state["step"] = None  # runs after the SearchLogger (later in the callback list)

    for method in ("item", "tolist", "numpy", "__float__", "__int__", "__bool__"):
        original = getattr(torch.Tensor, method)

        def spy(self, *args, _original=original, _method=method, **kwargs):
            if state["step"] is not None:
                caller = sys._getframe(1).f_code
                # Adam's step counter lives on the host even for GPU parameters: reading it is no sync.
                if not (caller.co_name == "_get_value" and "optim" in caller.co_filename):
                    reads.append((state["step"], f"{_method} in {caller.co_name} ({caller.co_filename})"))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, method, spy)

    import clearer_nni.training.fit as fitting

    fit = fitting.fit_supernet
    monkeypatch.setattr(fitting, "fit_supernet",
                        lambda *a, callbacks=(), **kw: fit(*a, callbacks=[*callbacks, Window()], **kw))
    assert main(_argv(tmp_path / "s", "--log-every", "3")) == 0
    # Steps 1, 3 and 6 (the last) are logged: reading values there is the logger's job.
    assert {step for step, _ in reads} <= {1, 3, 6}, reads
