"""The progress line keeps the progress: bar, count, ETA and loss first, a long field on a line of its own."""

from __future__ import annotations

import pytest
from rich.console import Console

from netadapt.engine.progress import TrainingProgress

ARCH = " ".join(["k3e3", "k5e6", "k7e3", "skip"] * 5)  # a search's twenty searched layers


@pytest.mark.parametrize("width", [80, 120])
def test_the_bar_line_shows_count_eta_and_loss_first(width: int) -> None:
    console = Console(width=width, record=True, color_system=None)
    bar = TrainingProgress(total=400, description="search", console=console)
    bar.update(200, epoch=1, loss=13.2234, cost="48.24M MAdds", arch=ARCH)
    console.print(bar.progress)
    first, second = console.export_text().splitlines()
    assert first.startswith("search ") and "200/400" in first and "ETA" in first and "loss 13.22" in first
    assert first.index("200/400") < first.index("ETA") < first.index("loss") < first.index("epoch 1")
    assert "k3e3" not in first and second.startswith("arch k3e3 k5e6")
    assert max(len(first), len(second)) <= width


def test_a_quiet_bar_draws_nothing() -> None:
    console = Console(width=80, record=True)
    with TrainingProgress(total=10, enabled=False, console=console) as bar:
        bar.update(5, loss=1.0)
    assert console.export_text() == ""


def test_quiet_reaches_the_demo_base_pretraining(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from netadapt import jobs
    from netadapt.jobs import common

    seen = []
    pretrain = importlib.import_module("netadapt.jobs.pretrain")  # the module: ``jobs.pretrain`` is the job
    monkeypatch.setattr(pretrain, "pretrained_demo_base", lambda base, *, announce, progress: seen.append(progress) or "demo.pth")
    monkeypatch.setattr(common, "read_weights", lambda path, *, base_name: path)
    assert jobs.base_weights(None, base="mobilenetv2", data=jobs.Data(), progress=False) == "demo.pth"
    assert seen == [False]
