"""Shared fixtures: tiny spaces, synthetic data, and a HOME that NNI cannot litter."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module.*")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

#: Test modules that run NNI experiments, subprocesses, servers or the wheel end to end: all ``slow``, so
#: ``make test-fast`` (``-m "not slow"``) is the edit-test loop and ``make test`` runs everything.
END_TO_END = {"test_experiment", "test_quickstart", "test_remote", "test_wheel", "test_gpu_dryrun",
              "test_search_ddp", "test_tensorboard", "test_reliability", "test_resume", "test_rank_select",
              "test_readme"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] in END_TO_END:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    # NNI writes ~/nni-experiments: keep every test's HOME temporary.
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    # The tests' tensors are tiny: one intra-op thread is as fast, and two OpenMP threads spin-wait
    # at every op barrier when the 2 cores are busy (4-5x slower, same results).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_space():
    from clearer_nni.archs import SpaceConfig

    return SpaceConfig(channels=(4, 8, 16), columns=(2, 2), stem="paper")


def synthetic_batches(n: int, batch: int = 2, size: int = 16, channels: int = 1, seed: int = 0):
    """(noisy, clean) batches of smooth random images."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        clean = torch.nn.functional.avg_pool2d(torch.rand(batch, channels, size + 4, size + 4, generator=g), 5, 1)
        out.append((clean + 0.2 * torch.randn(clean.shape, generator=g), clean))
    return out
