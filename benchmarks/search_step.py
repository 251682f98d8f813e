"""Step time and peak memory of the search strategies against the networks they search over.

In one run on one device, with the same batch (fixed random images and boxes) and input size,
it measures a train step of: the base network's detector; each candidate network's detector
(the super network's skeleton with that op on every searched layer: what ``darts`` runs side by
side); a ``darts`` search step; a ``sampled`` search step. A search step is measured as its two
kinds, the weight step and the α step, each as the search loop runs it (the α step with the cost
term); a strategy's step time and memory are those of its slower / larger kind. Prints a table
and the ratios

    darts_time_vs_candidates_sum   darts step / Σ candidate networks' train steps (≤ 1.15: no waste)
    sampled_time_vs_base           sampled step / base network's train step (≤ 1.5)
    sampled_memory_vs_base         sampled peak memory / base network's peak memory (≤ 1.5)

and with ``--json FILE`` writes them, with every measurement, to FILE.

    python benchmarks/search_step.py                          # CPU: input 160, batch 8, ~4 min on 2 cores
    python benchmarks/search_step.py --device cuda --input-size 320 --batch-size 32 --json step.json

Time: median of ``--repeats`` steps after ``--warmup`` steps (CUDA: synchronised). The sampled
strategy draws a new architecture every step, so its median is over ``--sampled-repeats`` (15)
architectures drawn from softmax(α) at its initialisation (near uniform); they come from the
search space (depths 4, kernels up to 7), so ``sampled_time_vs_candidates_mean`` (against the
mean candidate network) is printed beside ``sampled_time_vs_base``.

Memory: each configuration runs in a fresh subprocess, timing first, then one more step per kind
for memory. On CUDA the peak is ``torch.cuda.max_memory_allocated`` over that step (reset just
before it); it counts everything allocated: weights, optimiser state, gradients, activations.
On CPU, tracemalloc does not see torch's allocations, so the peak is the resident set: before
the memory step, glibc's malloc is told to serve every block over 64 KiB with mmap (``mallopt``,
so that a freed tensor leaves the resident set at once instead of staying in the heap) and to
give back what it holds (``malloc_trim``); ``/proc/self/clear_refs`` resets the kernel's
high-water mark (VmHWM), the step runs, and the peak is VmHWM minus the resident set the process
had after its imports, before it built anything. That counts the same things as on CUDA, plus
the CPU-side bookkeeping of torch common to all configurations; it needs Linux and glibc
(elsewhere memory is reported as unavailable). ``step memory`` (peak minus the resident set
just before the step: activations, gradients, workspaces) is printed beside it.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

STRATEGIES = ("darts", "sampled")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--input-size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sampled-repeats", type=int, default=15, help="repeats of the sampled strategy (a new architecture each step)")
    parser.add_argument("--space", default="fna", help="search space (a registered name or a YAML file)")
    parser.add_argument("--num-classes", type=int, default=7, help="detector classes with the background (demo: 7)")
    parser.add_argument("--sample-k", type=int, default=1, help="candidates per layer of the sampled strategy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # one configuration, in a subprocess
    args = parser.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(measure(args.worker, args)))
        return 0

    from netadapt.search.space import load_search_space

    candidates = [name for name in load_search_space(args.space).candidates]
    configs = ["base", *(f"candidate:{name}" for name in candidates), *STRATEGIES]
    print(
        f"device {args.device}, input {args.input_size}×{args.input_size}, batch {args.batch_size}, "
        f"median of {args.repeats} steps ({args.sampled_repeats} for sampled) after {args.warmup}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
        flush=True,
    )
    results = {}
    started = time.perf_counter()
    for config in configs:
        command = [sys.executable, __file__, "--worker", config, *_forwarded(argv if argv is not None else sys.argv[1:])]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(f"{config}: the measuring subprocess failed")
        results[config] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  measured {config} ({time.perf_counter() - started:.0f} s)", flush=True)
    summary = summarise(results, candidates)
    print(_table(results, summary))
    if args.json:
        args.json.write_text(json.dumps({"settings": _settings(args), "summary": summary, "configurations": results}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def summarise(results: dict[str, dict], candidates: list[str]) -> dict[str, float | None]:
    """The ratios the issue asks for (plain numbers; None where memory could not be measured)."""
    base = results["base"]["kinds"]["train"]
    candidates_sum = sum(results[f"candidate:{name}"]["kinds"]["train"]["time_s"] for name in candidates)
    darts, sampled = _slowest(results["darts"]), _slowest(results["sampled"])
    return {
        "darts_time_vs_candidates_sum": darts["time_s"] / candidates_sum,
        "sampled_time_vs_base": sampled["time_s"] / base["time_s"],
        "sampled_memory_vs_base": _ratio(sampled["peak_bytes"], base["peak_bytes"]),
        "sampled_time_vs_candidates_mean": sampled["time_s"] / (candidates_sum / len(candidates)),
        "darts_time_vs_base": darts["time_s"] / base["time_s"],
        "darts_memory_vs_base": _ratio(darts["peak_bytes"], base["peak_bytes"]),
        "sampled_step_memory_vs_base": _ratio(sampled["step_bytes"], base["step_bytes"]),
        "darts_time_s": darts["time_s"],
        "sampled_time_s": sampled["time_s"],
        "base_time_s": base["time_s"],
        "candidates_sum_time_s": candidates_sum,
    }


def _slowest(result: dict) -> dict[str, float | None]:
    """A strategy's step: the slower of its kinds, and the larger memory of its kinds."""
    kinds = result["kinds"].values()
    peaks = [kind["peak_bytes"] for kind in kinds]
    steps = [kind["step_bytes"] for kind in kinds]
    return {
        "time_s": max(kind["time_s"] for kind in kinds),
        "peak_bytes": None if None in peaks else max(peaks),
        "step_bytes": None if None in steps else max(steps),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a / b


# --- one configuration, in its own process -------------------------------------------------------


def measure(config: str, args: argparse.Namespace) -> dict:
    """Time every step kind of ``config``, then measure the peak memory of one more step of each."""
    device = torch.device(args.device)
    memory = _Memory(device)  # the resident set after the imports, before anything is built
    steps = build_steps(
        config, input_size=args.input_size, batch_size=args.batch_size, space=args.space, num_classes=args.num_classes,
        seed=args.seed, sample_k=args.sample_k, device=device,
    )
    repeats = args.sampled_repeats if config == "sampled" else args.repeats
    times = time_steps(steps, warmup=args.warmup, repeats=repeats, device=device)
    kinds = {kind: {"time_s": statistics.median(seconds), "times_s": seconds} | memory.peak_of(steps[kind]) for kind, seconds in times.items()}
    return {"config": config, "kinds": kinds, "memory_method": memory.method}


def time_steps(steps: dict, *, warmup: int, repeats: int, device: torch.device) -> dict[str, list[float]]:
    """Seconds of each of ``repeats`` calls of every step function, after ``warmup`` calls."""
    times: dict[str, list[float]] = {}
    for kind, step in steps.items():
        times[kind] = []
        for repeat in range(warmup + repeats):
            _synchronise(device)
            started = time.perf_counter()
            step()
            _synchronise(device)
            if repeat >= warmup:
                times[kind].append(time.perf_counter() - started)
    return times


def build_steps(
    config: str, *, input_size: int, batch_size: int, space: str = "fna", num_classes: int = 7, seed: int = 0, sample_k: int = 1,
    device: torch.device = torch.device("cpu"),
) -> dict:
    """The step functions of ``config`` (``base``, ``candidate:<op>`` or a strategy) on a fixed
    random batch: ``{"train": ...}``, or a strategy's ``{"weight": ..., "alpha": ...}``."""
    from netadapt import plugins
    from netadapt.data.demo import cache_root
    from netadapt.detectors.model import DetectorSpec, build_detector
    from netadapt.engine.config import SearchConfig
    from netadapt.engine.train import batch_to_device, make_optimizer
    from netadapt.genotype import parse_op
    from netadapt.search.cost_table import build_cost_table, expected_cost
    from netadapt.search.space import load_search_space
    from netadapt.search.supernet import ArchitectureParameters, build_supernet, skeleton_genotype

    torch.manual_seed(seed)
    search = SearchConfig(input_size=input_size, batch_size=batch_size, space=space, strategy=config, seed=seed, sample_k=sample_k)
    images, targets = batch_to_device(*_batch(input_size=input_size, batch_size=batch_size, num_classes=num_classes), device)
    base = plugins.bases().get("mobilenetv2")
    search_space = load_search_space(space)
    class_names = ["background", *(f"class{i}" for i in range(1, num_classes))]

    def loss_of(model) -> torch.Tensor:
        return sum(model(images, targets).values())

    if config not in STRATEGIES:
        genotype = base.base_genotype() if config == "base" else skeleton_genotype(base.base_genotype(), search_space, parse_op(config.split(":")[1]))
        model = build_detector(DetectorSpec("ssdlite", "mobilenetv2", genotype, class_names, input_size, {"anchors": search.anchors}))
        model.to(device).train()
        optimizer = make_optimizer(model.parameters(), search)

        def train_step() -> None:
            loss = loss_of(model)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return {"train": train_step}

    source_genotype = base.base_genotype()
    supernet = build_supernet("mobilenetv2", search_space, base.build(source_genotype), source_genotype)
    model = plugins.detectors().get("ssdlite").build(supernet, num_classes=num_classes, input_size=input_size, anchors=search.anchors)
    arch = ArchitectureParameters(supernet.layers, generator=torch.Generator().manual_seed(seed))
    costs = build_cost_table(supernet, input_size=input_size, cache_dir=cache_root() / "cost_tables").tensors(device)
    model.to(device).train()
    arch.to(device)
    strategy = plugins.strategies().get(config)
    if hasattr(strategy, "for_config"):  # a strategy with settings of its own (sampled: sample_k)
        strategy = strategy.for_config(search)
    optimizer = make_optimizer(model.parameters(), search)
    alpha_optimizer = torch.optim.Adam(arch.parameters(), lr=search.alpha_lr, betas=tuple(search.alpha_betas), weight_decay=search.alpha_weight_decay)
    generator = torch.Generator().manual_seed(seed)

    # As netadapt.search.loop runs them.
    def weight_step() -> None:
        supernet.set_op_weights(strategy.weight_step_weights(arch, temperature=search.alpha_temperature, generator=generator))
        loss = loss_of(model)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def alpha_step() -> None:
        op_weights = strategy.alpha_step_weights(arch, temperature=search.alpha_temperature, generator=generator)
        supernet.set_op_weights(op_weights)
        loss = loss_of(model) + search.cost_lambda * torch.log(expected_cost(op_weights, costs)) / math.log(search.cost_log_base)
        alpha_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        alpha_optimizer.step()
        optimizer.zero_grad(set_to_none=True)  # the α step's weight gradients are not used

    return {"weight": weight_step, "alpha": alpha_step}


def _batch(*, input_size: int, batch_size: int, num_classes: int) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """The same images and boxes for every configuration (seeded): 1 to 4 boxes per image."""
    generator = torch.Generator().manual_seed(1234)
    size = input_size
    images, targets = [], []
    for _ in range(batch_size):
        images.append(torch.rand(3, size, size, generator=generator))
        count = int(torch.randint(1, 5, (1,), generator=generator))
        corner = torch.rand(count, 2, generator=generator) * size * 0.6
        extent = (0.1 + 0.3 * torch.rand(count, 2, generator=generator)) * size
        boxes = torch.cat([corner, (corner + extent).clamp(max=size)], dim=1)
        targets.append({"boxes": boxes, "labels": torch.randint(1, num_classes, (count,), generator=generator)})
    return images, targets


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Memory:
    """Peak memory of one step (see the module docstring for what is counted and how)."""

    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.method = "torch.cuda.max_memory_allocated" if device.type == "cuda" else "resident set (VmHWM)"
        self.libc = None
        if device.type != "cuda":
            try:
                self.libc = ctypes.CDLL("libc.so.6")
                self.start = _proc_status("VmRSS")
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                self.libc, self.method = None, "unavailable (needs Linux and glibc)"

    def peak_of(self, step) -> dict[str, float | None]:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            before = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            step()
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
            return {"peak_bytes": peak, "step_bytes": peak - before}
        if self.libc is None:
            return {"peak_bytes": None, "step_bytes": None}
        self.libc.mallopt(self.M_MMAP_THRESHOLD, 64 * 1024)
        self.libc.mallopt(self.M_TRIM_THRESHOLD, 128 * 1024)
        self.libc.malloc_trim(0)
        before = _proc_status("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := the current resident set
        step()
        peak = _proc_status("VmHWM")
        return {"peak_bytes": peak - self.start, "step_bytes": peak - before}


def _proc_status(field: str) -> int:
    """A memory field of /proc/self/status, in bytes."""
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    if match is None:
        raise OSError(f"/proc/self/status has no {field}")
    return int(match.group(1)) * 1024


# --- report --------------------------------------------------------------------------------------


def _forwarded(argv: list[str]) -> list[str]:
    """The command line without ``--json FILE`` (workers print their result instead)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--json":
            skip = True
        elif not arg.startswith("--json="):
            out.append(arg)
    return out


def _settings(args: argparse.Namespace) -> dict:
    return {
        "device": args.device, "input_size": args.input_size, "batch_size": args.batch_size, "warmup": args.warmup,
        "repeats": args.repeats, "sampled_repeats": args.sampled_repeats, "space": args.space, "sample_k": args.sample_k, "num_classes": args.num_classes,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "torch": torch.__version__,
    }


def _table(results: dict[str, dict], summary: dict[str, float | None]) -> str:
    def mib(value: float | None) -> str:
        return "n/a" if value is None else f"{value / 2**20:.0f}"

    lines = ["", f"{'configuration':<20} {'step':<7} {'time (s)':>9} {'peak MiB':>9} {'step MiB':>9}"]
    for config, result in results.items():
        for kind, values in result["kinds"].items():
            lines.append(f"{config:<20} {kind:<7} {values['time_s']:>9.3f} {mib(values['peak_bytes']):>9} {mib(values['step_bytes']):>9}")
    method = next(iter(results.values()))["memory_method"]

    def show(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines += [
        f"(memory: {method})",
        "",
        f"darts_time_vs_candidates_sum  {show(summary['darts_time_vs_candidates_sum'])}   (target ≤ 1.15)",
        f"sampled_time_vs_base          {show(summary['sampled_time_vs_base'])}   (target ≤ 1.5)",
        f"sampled_memory_vs_base        {show(summary['sampled_memory_vs_base'])}   (target ≤ 1.5)",
        f"sampled_time_vs_candidates_mean {show(summary['sampled_time_vs_candidates_mean'])}   (one network of the search space)",
        f"darts_time_vs_base            {show(summary['darts_time_vs_base'])}",
        f"darts_memory_vs_base          {show(summary['darts_memory_vs_base'])}",
        f"sampled_step_memory_vs_base   {show(summary['sampled_step_memory_vs_base'])}   (step memory: peak minus memory at rest)",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
