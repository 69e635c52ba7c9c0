"""The private NNI and Lightning internals we use (clearer_nni.compat) exist in the pinned versions."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from clearer_nni import compat
from clearer_nni.archs import ClearerSpace
from clearer_nni.nas.strategy import ClearerDARTS


def test_installed_versions_are_the_pinned_ones():
    # compat.py was read against these: a different NNI or Lightning must be checked again before use
    assert compat.version_mismatches() == {}, (
        f"installed versions differ from clearer_nni.compat.PINNED {compat.PINNED}: check every accessor in "
        "clearer_nni/compat.py against the new version, then update PINNED")


def test_mixed_layer_internals(tiny_space):
    supernet = ClearerDARTS(costs={}, max_steps=1).mutate_model(ClearerSpace(tiny_space))
    mixed = [m for m in supernet.modules() if hasattr(m, "_arch_alpha")]
    assert mixed, "NNI's DARTS mixed layers no longer hold _arch_alpha"
    alpha = compat.arch_alpha(mixed[0])
    assert isinstance(alpha, torch.nn.Parameter) and alpha.shape == (2,)
    probs = compat.mixed_softmax(mixed[0], alpha)
    assert torch.allclose(probs, torch.softmax(alpha, -1)) and probs.requires_grad


def test_trial_record_reaches_nni_get_current_parameter():
    import nni

    compat.set_trial_record({"parameter_id": 7, "parameters": {"seed": 3}})
    assert nni.get_current_parameter() == {"seed": 3}


def test_optimizer_step_counter_sets_global_step():
    trainer = pl.Trainer(max_steps=5, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    compat.set_optimizer_steps(trainer, 3)
    assert trainer.global_step == 3
