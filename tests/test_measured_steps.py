"""``netadapt estimate`` and the jobs' memory check time the steps the jobs take, never a copy of them."""

from __future__ import annotations

import pytest
import torch

from netadapt.config import SearchConfig, TrainConfig
from netadapt.engine.train import DetectorTrainStep
from netadapt.jobs.preflight import StepSpec, build_step
from netadapt.search.step import SearchStep

TINY = {"input_size": 64, "batch_size": 2}


def _spy(monkeypatch: pytest.MonkeyPatch, cls: type, name: str) -> list[object]:
    """Record each call of ``cls.name`` (then run it): the measured step must be the job's own."""
    calls: list[object] = []
    real = getattr(cls, name)

    def spied(self, *args, **kwargs):
        calls.append(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, spied)
    return calls


def test_the_search_phases_run_the_search_step_with_its_clipping(monkeypatch: pytest.MonkeyPatch) -> None:
    weight_calls = _spy(monkeypatch, SearchStep, "weight_step")
    alpha_calls = _spy(monkeypatch, SearchStep, "alpha_step")
    clipped: list[float] = []
    real_clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda parameters, limit, *a, **k: clipped.append(limit) or real_clip(parameters, limit, *a, **k))
    config = SearchConfig(**TINY, grad_clip=7.0, alpha_grad_clip=3.0, cost_lambda=0.5)
    step, before = build_step(StepSpec("search α step", config, num_classes=3), 2, torch.device("cpu"))
    before()
    step()
    assert len(weight_calls) == 2 and len(alpha_calls) == 1 and weight_calls[0] is alpha_calls[0]
    assert 7.0 in clipped and 3.0 in clipped  # the weights' clip and α's (search.grad_clip, search.alpha_grad_clip)


def test_the_train_phase_runs_the_detector_train_step(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _spy(monkeypatch, DetectorTrainStep, "__call__")
    step, before = build_step(StepSpec("train step", TrainConfig(**TINY), num_classes=3), 2, torch.device("cpu"))
    assert before is None
    step()
    step()
    assert len(calls) == 2 and calls[0] is calls[1]
    assert calls[0].schedule.last_epoch == 2  # the real step steps its schedule per iteration
