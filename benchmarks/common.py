"""What the benchmarks share: how they run netadapt, and the statistics they report.

**Running netadapt.** A benchmark calls the jobs (``from netadapt import jobs``) or the command line; the steps of
the long benchmarks are ``netadapt`` subprocesses (:func:`run_netadapt`), one thread each, whose finished results are
kept so that a stopped run continues (:func:`fresh_run`, :func:`train_step`). Every script runs from the repository
root as ``python benchmarks/NAME.py`` (its first lines put the root on ``sys.path``: Python puts the script's folder
there) and imports as ``benchmarks.NAME``.

**Statistics.** Exact tests for small designs (DESIGN §1.6: with n seeds per arm, exact tests bound what can be shown)
and rank correlations. Each test is one-sided and exact: it enumerates every sign pattern, split or order, so its p is
exact and its smallest reachable value is known (2⁻ⁿ, 1 / C(n+m, n), 1 / n!)."""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "netadapt" / "configs" / "demo.yaml"
BASE_GENOTYPE = ROOT / "examples" / "genotypes" / "mobilenetv2.yaml"


def netadapt_command() -> str:
    """The ``netadapt`` script of the running Python's environment (else the one on ``PATH``)."""
    script = Path(sys.executable).with_name("netadapt")
    return str(script) if script.is_file() else shutil.which("netadapt") or "netadapt"


NETADAPT = netadapt_command()


def one_thread() -> dict[str, str]:
    """The environment of a netadapt subprocess: one thread, so that ``--parallel`` of them share the cores."""
    return os.environ | {"OMP_NUM_THREADS": "1"}


def set_flags(overrides: Iterable[str]) -> list[str]:
    """``--set KEY=VALUE`` for each override."""
    return list(itertools.chain(*(("--set", override) for override in overrides)))


def base_weights(weights: str | None, base: str = "mobilenetv2") -> str:
    """The base weights a benchmark remaps from, as ``--weights`` takes them: ``weights`` as given (a file,
    ``imagenet`` or ``none``), by default the demo's classifier-pretrained base (``jobs.pretrain``; cached)."""
    if weights is not None:
        return weights
    from netadapt import jobs

    return str(jobs.pretrain(base, progress=False, announce=None))


def run_netadapt(command: list[str], log: Path, env: dict[str, str]) -> dict:
    """A netadapt subprocess (``--json``): its stderr written to ``log``, its JSON output returned; a failure raises
    ``RuntimeError`` with the last line of its stderr."""
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    log.write_text(result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed ({result.returncode}): {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout)


def fresh_run(out: Path, command: list[str], log: Path, env: dict[str, str]) -> dict | None:
    """``None`` when ``out`` holds a finished step (its ``result.json``); else the step run anew into ``out``."""
    if (out / "result.json").is_file():
        return None
    if out.exists():
        shutil.rmtree(out)
    return run_netadapt([*command, "--out", str(out)], log, env)


def train_step(root: Path, name: str, group: str, genotype: Path, seed: int, *, common: list[str], weights: str, env: dict[str, str],
               input_size: int, record: dict | None = None) -> dict:
    """``netadapt train GENOTYPE`` into ``ROOT/train-NAME`` unless finished there, then ``netadapt cost`` at ``input_size``;
    its result (name, group, genotype, seed, mAP, mAP@0.5, params, MAdds, seconds, ``record`` added), kept in
    ``result.json``. ``common``: the flags of every command (``--data``, ``--config``, ``--json`` ...)."""
    out = root / f"train-{name}"
    summary = fresh_run(out, [NETADAPT, "train", str(genotype), "--weights", weights, "--set", f"train.seed={seed}", *common],
                        root / f"train-{name}.log", env)
    if summary is None:
        return json.loads((out / "result.json").read_text())
    cost = run_netadapt([NETADAPT, "cost", str(genotype), "--detector", "ssdlite", "--input-size", str(input_size), "--num-classes", "7", "--json"],
                        root / f"cost-{name}.log", env)
    result = {
        "name": name, "group": group, "genotype": str(genotype), "seed": seed,
        "map": 100 * summary["metrics"]["AP"], "map50": 100 * summary["metrics"]["AP50"],
        "params": cost.get("params"), "madds": cost.get("madds"), "seconds": summary.get("seconds"), **(record or {}),
    }
    (out / "result.json").write_text(json.dumps(result))
    return result


def sign_flip_p(differences: list[float]) -> float:
    """One-sided exact p of mean(d) ≥ observed under random signs (2ⁿ patterns; zeros stay zero)."""
    observed = statistics.fmean(differences)
    patterns = list(itertools.product((1, -1), repeat=len(differences)))
    return sum(statistics.fmean(s * d for s, d in zip(signs, differences)) >= observed - 1e-12 for signs in patterns) / len(patterns)


def mann_whitney_p(x: list[float], y: list[float]) -> float:
    """One-sided exact p of U(x > y) ≥ observed over all splits of the pooled values (ties count ½)."""

    def u(a, b):
        return sum(1.0 if i > j else 0.5 if i == j else 0.0 for i in a for j in b)

    pooled, observed = x + y, u(x, y)
    splits = list(itertools.combinations(range(len(pooled)), len(x)))
    hits = 0
    for chosen in splits:
        rest = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        hits += u([pooled[i] for i in chosen], rest) >= observed - 1e-12
    return hits / len(splits)


def holm(ps: dict[str, float]) -> dict[str, float]:
    ordered = sorted(ps.items(), key=lambda item: item[1])
    adjusted, running = {}, 0.0
    for rank, (name, p) in enumerate(ordered):
        running = max(running, min(1.0, (len(ordered) - rank) * p))
        adjusted[name] = running
    return adjusted


def kendall_tau(x: list[float], y: list[float]) -> float:
    """Kendall's τ-b: Σ_{i<j} sign(Δx)·sign(Δy) / √(pairs not tied in x · pairs not tied in y)."""
    pairs = list(itertools.combinations(range(len(x)), 2))
    sign = lambda v: (v > 0) - (v < 0)  # noqa: E731
    score = sum(sign(x[i] - x[j]) * sign(y[i] - y[j]) for i, j in pairs)
    untied_x = sum(x[i] != x[j] for i, j in pairs)
    untied_y = sum(y[i] != y[j] for i, j in pairs)
    return score / math.sqrt(untied_x * untied_y) if untied_x and untied_y else math.nan


def spearman_rho(x: list[float], y: list[float]) -> float:
    """Spearman's ρ: Pearson's correlation of the ranks (ties get their average rank)."""
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    covariance = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    spread = math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    return covariance / spread if spread else math.nan


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def permutation_p(x: list[float], y: list[float]) -> float:
    """One-sided exact p of τ-b ≥ the observed one over every order of ``y``."""
    observed = kendall_tau(x, y)
    orders = list(itertools.permutations(y))
    return sum(kendall_tau(x, list(order)) >= observed - 1e-12 for order in orders) / len(orders)
