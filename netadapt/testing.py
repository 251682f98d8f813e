"""A kit for testing a netadapt plugin package: tiny data, tiny configs, equivalence, remap and cost
assertions, registration (docs/writing-a-plugin.md, "Testing a plugin"; after pytest's ``pytester``).

It is a pytest plugin too, loaded through the ``pytest11`` entry point wherever netadapt is installed,
so that a plugin package's tests need no ``conftest.py``:

- ``netadapt_cache`` (session, autouse): caches (demo data, cost tables) go to a folder of the test
  session unless ``NETADAPT_CACHE`` names one; subprocesses inherit it;
- ``tiny_data`` (session): the demo detection dataset, 8 train and 4 val images of 96 pixels;
- ``tiny_search_config`` / ``tiny_train_config``: a search and a training that take seconds on a CPU
  (:data:`TINY_SEARCH`, :data:`TINY_TRAIN`); :func:`config_flags` turns one into ``--set`` flags;
- ``register_plugin``: registers a plugin module for one test, see :func:`registered`;
- ``offline_hub``: torch hub without network, for a base's ``imagenet_state_dict``;
- the ``slow`` marker (tests over 10 s: netadapt's default run leaves them out).

The assertions raise ``AssertionError`` with the offending key, layer or stage.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from netadapt import plugins
from netadapt.config import SearchConfig, TrainConfig
from netadapt.contracts import BaseNetwork
from netadapt.cost.breakdown import CostBreakdown, genotype_cost
from netadapt.genotype import SKIP, Genotype, Op
from netadapt.remap import RemapReport, remap_network

__all__ = [
    "TINY_SEARCH", "TINY_TRAIN", "assert_costs", "assert_detector_works", "assert_remap_fills", "assert_remaps", "assert_same_network",
    "assert_supernet_is_source", "config_flags", "demo_dataset", "grown_kernels", "random_targets", "randomize_batchnorm", "registered",
    "run_netadapt",
]

# With tiny_data (8 training images) and batch 4: one weight step and one α step per epoch.
TINY_SEARCH: dict[str, Any] = {
    "input_size": 64, "batch_size": 4, "epochs": 1, "alpha_start_epoch": 1, "workers": 0, "warmup_iterations": 1,
    "lr_milestones": [], "checkpoint_every": 10, "log_every": 1,
}
# Two iterations per epoch on tiny_data.
TINY_TRAIN: dict[str, Any] = {
    "input_size": 64, "batch_size": 4, "epochs": 1, "workers": 0, "warmup_iterations": 1, "eval_batch_size": 4,
}
IMAGES_SEED = 1
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def demo_dataset(out: str | Path, *, train: int = 8, val: int = 4, image_size: int = 96, seed: int = 5) -> Path:
    """The demo detection dataset (COCO format, the ``demo`` dataset's images) in ``out``: a folder to pass as ``--data``."""
    from netadapt.data.demo import generate_demo_dataset

    return generate_demo_dataset(out, num_train=train, num_val=val, image_size=image_size, seed=seed)


def config_flags(config: SearchConfig | TrainConfig) -> list[str]:
    """``--set section.key=value`` for every key of ``config`` that differs from its default."""
    section = "search" if isinstance(config, SearchConfig) else "train"
    default = type(config)()
    return [
        arg
        for field in dataclasses.fields(config)
        if getattr(config, field.name) != getattr(default, field.name)
        for arg in ("--set", f"{section}.{field.name}={json.dumps(getattr(config, field.name))}")
    ]


def run_netadapt(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """The ``netadapt`` command of the running Python's environment as a user runs it, in a process of its own (one
    thread; ``env`` adds variables); stdout and stderr as text."""
    script = Path(sys.executable).with_name("netadapt")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "netadapt"]
    environment = os.environ | {"OMP_NUM_THREADS": "1"} | (env or {})
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout, env=environment)


@contextmanager
def registered(plugin: object, name: str | None = None) -> Iterator[str]:
    """Register a plugin module (or object) for the ``with`` block; yields its name.

    Works whether or not the package is installed: a plugin already registered (through its entry
    point) stays as it is, under its entry-point name, instead of pluggy's "already registered under
    a different name"; one registered here is unregistered at the end.
    """
    manager = plugins.get_plugin_manager()
    if manager.is_registered(plugin):
        yield manager.get_name(plugin)
        return
    name = name or getattr(plugin, "__name__", repr(plugin))
    manager.register(plugin, name=name)
    try:
        yield name
    finally:
        manager.unregister(name=name)


def randomize_batchnorm(network: nn.Module, *, seed: int = 0) -> nn.Module:
    """Give every BatchNorm random statistics and affine parameters (fresh ones are 0/1: an equality test could not
    fail on them); returns ``network``."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, BATCHNORMS) and module.running_mean is not None:
                size = module.num_features
                module.running_mean.copy_(torch.rand(size, generator=generator) - 0.5)
                module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
                if module.affine:
                    module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                    module.bias.copy_(torch.rand(size, generator=generator) - 0.5)
    return network


def _images(input_size: int) -> torch.Tensor:
    return torch.randn(2, 3, input_size, input_size, generator=torch.Generator().manual_seed(IMAGES_SEED))


def _outputs(network: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        outputs = {"logits": network(images)}
        if getattr(network, "tap_channels", None):
            outputs |= network.forward_taps(images)
    return outputs


def _assert_close(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor], *, rtol: float, what: str) -> None:
    for name in theirs:
        scale = theirs[name].abs().max().clamp_min(1.0)
        difference = ((ours[name] - theirs[name]).abs().max() / scale).item()
        assert difference <= rtol, f"{what}: {name} differs by {difference:.3g} of its largest value (allowed {rtol:g})"


def assert_same_network(ours: nn.Module, reference: nn.Module, *, input_size: int = 96, rtol: float = 0.0) -> None:
    """``ours`` is ``reference`` (e.g. torchvision's model) key for key: the same state-dict keys in the same order,
    the same shapes, a strict load of ``reference``'s weights (BatchNorm statistics randomised first) and then the
    same logits on random images, within ``rtol`` of the largest value (0: bit for bit)."""
    keys, expected = list(ours.state_dict()), list(reference.state_dict())
    first = next(((i, a, b) for i, (a, b) in enumerate(zip(keys, expected)) if a != b), None)
    assert keys == expected, f"state-dict keys differ: at {first}" if first else f"{len(keys)} keys, the reference has {len(expected)}"
    for key, tensor in reference.state_dict().items():
        assert ours.state_dict()[key].shape == tensor.shape, f"{key}: {tuple(ours.state_dict()[key].shape)} vs {tuple(tensor.shape)}"
    randomize_batchnorm(reference)
    ours.load_state_dict(reference.state_dict(), strict=True)
    images = _images(input_size)
    with torch.no_grad():
        _assert_close({"logits": ours.eval()(images)}, {"logits": reference.eval()(images)}, rtol=rtol, what="outputs")


def random_targets(count: int, *, size: int, num_classes: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Training targets of ``count`` images of ``size`` pixels: three boxes each, 10 to 60 % of the side, labels in
    1..num_classes-1 (0 is the background)."""
    generator = torch.Generator().manual_seed(seed)
    targets = []
    for _ in range(count):
        sides = size * torch.tensor([0.1, 0.3, 0.6])
        centres = size / 2 + (torch.rand(3, 2, generator=generator) - 0.5) * (size - sides[:, None])
        boxes = torch.cat([centres - sides[:, None] / 2, centres + sides[:, None] / 2], dim=1)
        targets.append({"boxes": boxes, "labels": torch.randint(1, num_classes, (3,), generator=generator)})
    return targets


def assert_detector_works(model: nn.Module, *, num_classes: int, input_size: int = 96) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
    """A detector model (what a ``Detector.build`` gives) trains and detects, as netadapt's jobs call it: in train mode
    ``model(images, targets)`` gives finite losses whose gradient reaches every parameter; in eval mode ``model(images)``
    gives per image ``boxes`` inside it, ``scores`` and ``labels`` in 1..num_classes-1 (never the background). Images: one
    of ``input_size``² and one of another shape. Returns (losses, detections) for the detector's own checks."""
    generator = torch.Generator().manual_seed(0)
    images = [torch.rand(3, input_size, input_size, generator=generator), torch.rand(3, input_size * 5 // 6, input_size * 7 // 6, generator=generator)]
    model.train()
    losses = model(images, random_targets(2, size=input_size, num_classes=num_classes))
    assert all(torch.isfinite(loss) for loss in losses.values()), losses
    sum(losses.values()).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), f"{name}: no finite gradient"
    model.eval()
    with torch.no_grad():
        detections = model(images)
    assert len(detections) == len(images)
    for detection, image in zip(detections, images):
        assert set(detection) == {"boxes", "scores", "labels"}, set(detection)
        height, width = image.shape[-2:]
        assert (detection["labels"] >= 1).all() and (detection["labels"] < num_classes).all(), detection["labels"]
        assert (detection["boxes"][:, 2] <= width).all() and (detection["boxes"][:, 3] <= height).all()
    return losses, detections


def grown_kernels(genotype: Genotype, *, by: int = 2) -> Genotype:
    """``genotype`` with every kernel ``by`` larger (k3 → k5): Eq. 2 remaps into it exactly."""
    return genotype.with_ops([[op if op.is_skip else dataclasses.replace(op, kernel=op.kernel + by) for op in stage.ops] for stage in genotype.stages])


def _base(base: str | BaseNetwork) -> BaseNetwork:
    return plugins.bases().get(base) if isinstance(base, str) else base


def assert_remap_fills(source: nn.Module, target: nn.Module) -> RemapReport:
    """Remap ``source`` into ``target`` (two networks of one base) and check that a rule filled every module that owns
    parameters (or that its type is registered as ``IGNORE``, listed in the report's ``ignored``). Returns the report."""
    report = remap_network(source, target)
    owners = [path for path, module in target.named_modules() if any(True for _ in module.parameters(recurse=False))]
    done = {path for path, _, _ in report.copied} | set(report.ignored)
    missing = [path for path in owners if path not in done]
    assert not missing, f"no rule filled {missing[:3]}"
    return report


def assert_remaps(base: str | BaseNetwork, genotype: Genotype, *, source: nn.Module | None = None,
                  source_genotype: Genotype | None = None, input_size: int = 96, rtol: float = 1e-5) -> nn.Module:
    """Remapping works for ``base``: into ``genotype`` it runs and a rule fills every module's tensors (none left out
    unless its type is registered as ``IGNORE``), the result runs; into the source's genotype with every kernel grown by
    2 (Eq. 2) it computes what the source computes (logits and taps, BatchNorm in eval mode). ``source``: a network of
    the base built from ``source_genotype`` (default: its ``genotype`` attribute, else the base genotype; without a
    ``source``, a random network of it, BatchNorm randomised). Returns the remapped network of ``genotype``."""
    base = _base(base)
    source_genotype = source_genotype or getattr(source, "genotype", None) or base.base_genotype(width_mult=genotype.width_mult)
    if source is None:
        torch.manual_seed(0)
        source = randomize_batchnorm(base.build(source_genotype))
    source.eval()
    target = base.build(genotype).eval()
    assert_remap_fills(source, target)
    images = _images(input_size)
    assert all(torch.isfinite(output).all() for output in _outputs(target, images).values()), "the remapped network gives NaN or inf"
    grown = base.build(grown_kernels(source_genotype)).eval()
    assert_remap_fills(source, grown)
    _assert_close(_outputs(grown, images), _outputs(source, images), rtol=rtol, what="kernels grown by 2 (Eq. 2)")
    return target


def assert_costs(genotype: Genotype, *, input_size: int | None = None, num_classes: int = 1000) -> CostBreakdown:
    """``netadapt cost`` counts ``genotype``'s network completely: every stage and every layer that is not ``skip`` has
    parameters and MAdds above 0, and stages plus parts add up to the totals (nothing counted twice or left out).
    Returns the breakdown."""
    breakdown = genotype_cost(genotype, input_size=input_size, num_classes=num_classes)
    for row in breakdown.layers:
        if row.op != SKIP.name:
            assert row.params > 0 and row.madds > 0, f"{row.label} ({row.op}) counts {row.params} params, {row.madds} MAdds"
    for row in breakdown.stages + breakdown.others:
        assert row.params > 0 or row.madds > 0, f"{row.label} counts nothing: are its layer_paths/part_paths right?"
    parts = breakdown.stages + breakdown.others
    assert sum(row.params for row in parts) == breakdown.total_params, "params of stages and parts do not add up to the total"
    assert abs(sum(row.madds for row in parts) - breakdown.total_madds) <= 1e-6 * breakdown.total_madds, (
        "MAdds of stages and parts do not add up to the total: a module outside layer_paths and part_paths?"
    )
    return breakdown


def assert_supernet_is_source(base_name: str, space: str | None = None, *, genotype: Genotype | None = None,
                              input_size: int = 96, rtol: float = 1e-5) -> nn.Module:
    """The super network of ``space`` (default: the base's), every candidate remapped from a source network of
    ``genotype`` (default: the base genotype), computes the source's taps when every searched layer's op weights
    are one-hot on the source's op (``skip`` beyond the source's depth). The genotype's searched ops must be
    candidates of the space. Returns the super network."""
    from netadapt.search.space import default_space_name, load_search_space
    from netadapt.search.supernet import build_supernet

    base = _base(base_name)
    genotype = genotype or base.base_genotype()
    torch.manual_seed(0)
    source = randomize_batchnorm(base.build(genotype)).eval()
    supernet = build_supernet(base_name, load_search_space(space or default_space_name(base_name)), source, genotype).eval()
    weights = []
    for layer in supernet.layers:
        ops = genotype.stages[layer.stage].ops
        wanted: Op = ops[layer.layer] if layer.layer < len(ops) else SKIP
        assert wanted in layer.candidates, f"stage {layer.stage + 1} layer {layer.layer + 1}: {wanted.name} is no candidate"
        weights.append(torch.tensor([float(op == wanted) for op in layer.candidates]))
    supernet.set_op_weights(weights)
    images = _images(input_size)
    with torch.no_grad():
        _assert_close(supernet.forward_taps(images), source.forward_taps(images), rtol=rtol, what="super network on the source's path")
    return supernet


# -- the pytest plugin (entry point pytest11) --------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a test over 10 s (netadapt's default run deselects them with -m 'not slow')")


@pytest.fixture(scope="session", autouse=True)
def netadapt_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Caches go to a folder of the test session unless ``NETADAPT_CACHE`` names one."""
    if "NETADAPT_CACHE" not in os.environ:
        os.environ["NETADAPT_CACHE"] = str(tmp_path_factory.mktemp("netadapt-cache"))
    return Path(os.environ["NETADAPT_CACHE"])


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo dataset, 8 train and 4 val images of 96 pixels: pass it as ``--data``."""
    return demo_dataset(tmp_path_factory.mktemp("data") / "demo")


@pytest.fixture
def tiny_search_config() -> SearchConfig:
    """A search of one epoch (one weight step, one α step on ``tiny_data``); change it with ``dataclasses.replace``."""
    return SearchConfig(**TINY_SEARCH)


@pytest.fixture
def tiny_train_config() -> TrainConfig:
    """A training of one epoch (two iterations on ``tiny_data``)."""
    return TrainConfig(**TINY_TRAIN)


@pytest.fixture
def offline_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """torch hub as on a machine without network: an empty cache (``TORCH_HOME``) and downloads that fail. The URLs a
    download was tried for (a base's ``imagenet_state_dict`` should then raise one ``WeightsError`` line)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    attempts: list[str] = []

    def offline(url: str, *args: Any, **kwargs: Any) -> None:
        attempts.append(url)
        raise OSError("Network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)  # looked up when torchvision_weights downloads
    return attempts


@pytest.fixture
def register_plugin() -> Iterator[Any]:
    """``register_plugin(module, name=None)`` registers a plugin until the test ends (see :func:`registered`)."""
    with ExitStack() as stack:
        yield lambda plugin, name=None: stack.enter_context(registered(plugin, name))
