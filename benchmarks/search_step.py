"""Step time and peak memory of the search strategies against the networks they search over,
measured so that every ratio holds on a shared machine.

Configurations, all on one device with one fixed batch (random images and boxes) and one input size,
each step the job's own (:class:`~netadapt.search.step.SearchStep`'s weight step, or a network alone:
:class:`~netadapt.engine.train.DetectorTrainStep`, with the search's optimiser settings; ``search.amp``'s precision,
gradient clipping, the per-iteration schedule):

- ``base``: a train step of the base network's detector (MobileNetV2-SSDLite);
- ``candidate:<op>``: a train step of each candidate network, the super network's skeleton with
  that op on every searched layer, built alone (what ``darts`` runs side by side);
- ``darts``: a search weight step (every candidate of every layer, weighted by softmax(α));
- ``sampled`` and ``fna``: a search weight step, which runs one path drawn from softmax(α);
- ``sampled:path`` and ``fna:path``: a train step of the very network that strategy drew for
  this round, built alone (:func:`~netadapt.search.derive.derive_genotype` of the drawn ops).

Ratios and their targets (a target is met when the median over rounds is within it):

    darts_time_vs_candidates_sum   darts step / Σ candidate networks' steps        ≤ 1.15 (no waste)
    sampled_time_vs_path           sampled step / its drawn network's step         ≤ 1.1  (physical limit 1.0)
    sampled_time_vs_base           sampled step / base network's step              ≤ 1.5
    sampled_memory_vs_base         sampled peak memory / base network's            ≤ 1.5
    fna_time_vs_path, fna_time_vs_base, fna_memory_vs_base                         the same targets

and, without a target, ``darts_time_vs_base``, ``darts_memory_vs_base`` and
``<strategy>_memory_vs_path`` (the super network holds every candidate's weights, a path
network one op's).

**Time: interleaved rounds.** Every configuration lives in its own worker process that builds its
model once, takes ``--warmup`` steps, then answers commands on a pipe. The parent drives
``--rounds`` rounds; a round first lets ``sampled`` and ``fna`` draw their next path and has each
path worker build that network alone and take ``--warmup`` untimed steps on it (at least one, as
every worker does before its first timed step), then asks every worker for one timed step, in an
order rotated by one each round. A worker times its own step (``perf_counter``; CUDA synchronised
before and after). Each ratio is computed per round from that round's times, so both of its sides
ran within seconds of each other under the same load, and is reported as the median with min and
max over rounds. A strategy's timed step is what the loop does per weight step: draw the op
weights (``sampled`` and ``fna`` draw before the round's steps; the draw is timed and added),
set them, forward, backward, optimiser step. Before their timed steps, ``sampled`` and ``fna``
take one warm-up step over every candidate, so that every weight has its optimiser state, as
after a long search (a weight without a gradient costs the optimiser nothing: this changes
memory, not time). Σ candidates counts the parts every network shares (stem, detection head,
loss) once per candidate, ``darts`` once, so ``darts_time_vs_candidates_sum`` is below 1 when
nothing is wasted and grows with what the mixed ops waste.

Each worker also reports its step's process CPU time (``time.process_time``), and on CPU every
time ratio has a ``cpu_time`` twin (``darts_cpu_time_vs_candidates_sum``, ...), judged against the
same target. With ``OMP_NUM_THREADS=1`` a step's CPU time is its work, whatever else the machine
runs (only cache and memory-bandwidth contention remain), where wall-clock time also counts the
time slices other processes took: on a loaded machine the CPU-time ratios are the steadier
ones, on a quiet one the two agree. With several threads CPU time also counts their spin-waits.

**Memory: a second pass, in fresh workers.** Memory does not move with the load, so it need not
be interleaved; each worker is a process of its own, so its peak is its configuration's alone. On
CUDA it is ``torch.cuda.max_memory_allocated`` over one step (reset just before it): weights,
optimiser state, gradients, activations. On CPU it is the resident set's high-water mark: glibc's
malloc is told to serve every block over 64 KiB with mmap (``mallopt``: a freed tensor leaves the
resident set at once instead of staying in the heap), ``malloc_trim`` gives back what the heap
holds, ``/proc/self/clear_refs`` resets VmHWM, the step runs, and the peak is VmHWM minus the
resident set the worker had after its imports (the same things as on CUDA, plus torch's CPU-side
state common to every configuration). Making the resident set follow the live tensors changes
step times (every step faults its pages in afresh), so the timed workers keep glibc's defaults
and fresh workers measure memory: ``base`` and the candidates once (their peak is the same every
step), ``sampled`` and ``fna`` on each round's path again (replayed: the same op weights), each
path worker on each round's network. Memory ratios are per round too. On CPU this needs Linux
and glibc; elsewhere memory is reported as unavailable. ``step MiB`` (peak minus the memory just
before the step: activations, gradients, workspaces) is printed beside the peak.

The JSON (``--json FILE``) holds the settings (device, input size, batch, threads), the number
of rounds, ``os.getloadavg()`` before, after and at each round's start, every raw per-round time
and memory, each round's order and drawn paths, the ratios (median, min, max, per round) and
the targets with pass or fail.

    OMP_NUM_THREADS=1 python benchmarks/search_step.py --rounds 3 --input-size 96 --batch-size 4   # a quick look
    OMP_NUM_THREADS=2 python benchmarks/search_step.py --json step.json         # CPU: input 160, batch 8, 10 rounds
    python benchmarks/search_step.py --device cuda --input-size 320 --batch-size 32 --json step.json

The parent imports no torch; on CPU the workers use ``OMP_NUM_THREADS`` threads each (one steps at
a time). The α step (``darts`` and ``fna``: every candidate; ``sampled``: one path) is not timed
here: ``netadapt estimate`` times it with the rest of a search.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SAMPLING = ("sampled", "fna")  # strategies whose weight step runs one drawn path
STRATEGIES = ("darts", *SAMPLING)
SCHEDULE_ITERATIONS = 1000  # the learning-rate schedule the steps are built with (it does not change their time)
TARGETS = {
    "darts_time_vs_candidates_sum": 1.15,
    "sampled_time_vs_path": 1.1,
    "sampled_time_vs_base": 1.5,
    "sampled_memory_vs_base": 1.5,
    "fna_time_vs_path": 1.1,
    "fna_time_vs_base": 1.5,
    "fna_memory_vs_base": 1.5,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--input-size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds (each times one step of every configuration)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per worker before the rounds")
    parser.add_argument("--space", default="fna", help="search space (a registered name or a YAML file)")
    parser.add_argument("--num-classes", type=int, default=7, help="detector classes with the background (demo: 7)")
    parser.add_argument("--amp", default="auto", choices=("off", "bf16", "fp16", "auto"), help="as search.amp (auto: bf16 on a CUDA device that supports it)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one configuration; settings on stdin
    args = parser.parse_args(argv)
    if args.worker:
        return serve()
    if args.rounds < 1 or args.warmup < 0:
        parser.error("--rounds must be at least 1 and --warmup not negative")
    settings = {
        "device": args.device, "input_size": args.input_size, "batch_size": args.batch_size, "warmup": args.warmup,
        "space": args.space, "num_classes": args.num_classes, "amp": args.amp, "channels_last": args.channels_last, "seed": args.seed,
    }
    result = run(settings, rounds=args.rounds)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


# --- the parent: rounds, then memory ------------------------------------------------------------


def run(settings: dict, *, rounds: int) -> dict:
    """Time ``rounds`` interleaved rounds, then measure memory; every raw number and the ratios."""
    load_before = os.getloadavg()
    started = time.perf_counter()
    probe = _Worker("base", settings, memory=False)  # the candidates' names, torch's version and threads
    info = probe.wait_ready()
    candidates = info["candidates"]
    configs = ["base", *(f"candidate:{op}" for op in candidates), *STRATEGIES, *(f"{s}:path" for s in SAMPLING)]
    print(
        f"device {settings['device']}, input {settings['input_size']}², batch {settings['batch_size']}, {rounds} rounds, "
        f"{info['threads']} thread(s) per worker (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), "
        f"load {_load(load_before)}; starting {len(configs)} workers",
        flush=True,
    )
    timed = time_rounds({"base": probe} | {config: _Worker(config, settings, memory=False) for config in configs[1:]}, candidates, rounds)
    print(f"  timed ({time.perf_counter() - started:.0f} s)", flush=True)
    memory = measure_memory({config: _Worker(config, settings, memory=True) for config in configs}, timed["paths"], timed["genotypes"], rounds)
    print(f"  memory measured ({time.perf_counter() - started:.0f} s)", flush=True)

    on_cpu = settings["device"].split(":")[0] == "cpu"  # on CUDA the host's CPU time says little
    per_round = [
        round_ratios({c: timed["time_s"][c][r] for c in configs}, candidates, "time")
        | (round_ratios({c: timed["cpu_time_s"][c][r] for c in configs}, candidates, "cpu_time") if on_cpu else {})
        | round_ratios({c: memory["peak_bytes"][c][r] for c in configs}, candidates, "memory")
        for r in range(rounds)
    ]
    ratios = summarise(per_round)
    return {
        "device": settings["device"], "input_size": settings["input_size"], "batch_size": settings["batch_size"],
        "threads": info["threads"], "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "torch": info["torch"],
        "settings": settings, "rounds": rounds, "seconds": time.perf_counter() - started,
        "loadavg_before": list(load_before), "loadavg_after": list(os.getloadavg()), "candidates": candidates,
        **{key: value for key, value in timed.items() if key != "genotypes"}, **memory,
        "ratios": ratios, "targets": verdicts(ratios),
    }


def time_rounds(workers: dict[str, _Worker], candidates: list[str], rounds: int) -> dict:
    """Per round: ``sampled`` and ``fna`` draw, their path workers build what was drawn, then one timed
    step of every worker in the round's order. Closes the workers."""
    configs = list(workers)
    for worker in workers.values():
        worker.wait_ready()
    out: dict = {
        "time_s": {config: [] for config in configs}, "cpu_time_s": {config: [] for config in configs},
        "orders": [], "loadavg_per_round": [], "paths": {s: [] for s in SAMPLING}, "genotypes": {s: [] for s in SAMPLING},
    }
    for index in range(rounds):
        out["loadavg_per_round"].append(list(os.getloadavg()))
        for strategy in SAMPLING:
            drawn = workers[strategy].send(do="draw")
            out["paths"][strategy].append(drawn["ops"])
            out["genotypes"][strategy].append(drawn["genotype"])
            workers[f"{strategy}:path"].send(do="build", genotype=drawn["genotype"])
        out["orders"].append(rotation(configs, index))
        for config in out["orders"][-1]:
            step = workers[config].send(do="step")
            out["time_s"][config].append(step["time_s"])
            out["cpu_time_s"][config].append(step["cpu_s"])
        this = round_ratios({config: values[-1] for config, values in out["time_s"].items()}, candidates, "time")
        print(
            f"  round {index + 1}/{rounds} (load {out['loadavg_per_round'][-1][0]:.1f}): "
            + ", ".join(f"{name} {this[name]:.2f}" for name in ("darts_time_vs_candidates_sum", "sampled_time_vs_path", "fna_time_vs_path")),
            flush=True,
        )
    for worker in workers.values():
        worker.close()
    return out


def measure_memory(workers: dict[str, _Worker], paths: dict[str, list[list[str]]], genotypes: dict[str, list[dict]], rounds: int) -> dict:
    """Peak and step memory per configuration and round, in memory workers: ``sampled`` and ``fna`` on the
    paths they drew in the timed rounds, their path workers on those networks. Closes the workers."""
    out: dict = {"peak_bytes": {}, "step_bytes": {}, "memory_method": None}
    for config, worker in workers.items():
        out["memory_method"] = worker.wait_ready()["memory_method"]
        if config in SAMPLING:
            measured = [worker.send(do="use", ops=ops) and worker.send(do="step") for ops in paths[config]]
        elif config.endswith(":path"):
            measured = [worker.send(do="build", genotype=g) and worker.send(do="step") for g in genotypes[config.split(":")[0]]]
        else:
            measured = [worker.send(do="step")] * rounds  # the same network every round
        worker.close()
        out["peak_bytes"][config] = [m["peak_bytes"] for m in measured]
        out["step_bytes"][config] = [m["step_bytes"] for m in measured]
    return out


def rotation(configs: list[str], index: int) -> list[str]:
    """Round ``index``'s order: the configurations rotated by ``index``, so none is always first or last."""
    shift = index % len(configs)
    return configs[shift:] + configs[:shift]


def round_ratios(values: dict[str, float | None], candidates: list[str], quantity: str) -> dict[str, float | None]:
    """One round's ratios of ``quantity`` (``time``, ``cpu_time`` or ``memory``) from that round's value per
    configuration (None where a value is missing). Memory has no ``darts_memory_vs_candidates_sum``: the
    candidate networks' peaks do not add up (each counts the weights at rest of the parts they share)."""

    def ratio(a: str | float | None, b: str | float | None) -> float | None:
        a, b = values.get(a) if isinstance(a, str) else a, values.get(b) if isinstance(b, str) else b
        return None if a is None or b is None or b == 0 else a / b

    out = {f"darts_{quantity}_vs_base": ratio("darts", "base")}
    if quantity != "memory":
        parts = [values.get(f"candidate:{op}") for op in candidates]
        out[f"darts_{quantity}_vs_candidates_sum"] = ratio("darts", None if None in parts else sum(parts))
    for strategy in SAMPLING:
        out[f"{strategy}_{quantity}_vs_path"] = ratio(strategy, f"{strategy}:path")
        out[f"{strategy}_{quantity}_vs_base"] = ratio(strategy, "base")
    return out


def spread(values: list[float | None]) -> dict[str, float | None]:
    """Median, min and max (None if any value is missing)."""
    if not values or None in values:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarise(per_round: list[dict[str, float | None]]) -> dict[str, dict]:
    """Every ratio as its spread over rounds, with the per-round values."""
    return {name: spread([r[name] for r in per_round]) | {"per_round": [r[name] for r in per_round]} for name in per_round[0]}


def verdicts(ratios: dict[str, dict]) -> dict[str, dict]:
    """Each target against its ratio's median (``pass`` None where the ratio is unavailable); a time
    target also against the same ratio of CPU time, where there is one."""
    out = {}
    for name, target in TARGETS.items():
        for ratio in (name, name.replace("_time_", "_cpu_time_")) if "_time_" in name else (name,):
            if ratio in ratios:
                median = ratios[ratio]["median"]
                out[ratio] = {"target": target, "median": median, "max": ratios[ratio]["max"], "pass": None if median is None else median <= target}
    return out


def report(result: dict) -> str:
    def mib(values: list[float | None]) -> str:
        return "n/a" if None in values else f"{statistics.median(values) / 2**20:.0f}"

    def seconds(values: list[float]) -> str:
        s = spread(values)
        return f"{s['median']:.3f} [{s['min']:.3f}–{s['max']:.3f}]"

    lines = ["", f"{'configuration':<18} {'time (s), median [min–max]':>28} {'CPU time (s)':>28} {'peak MiB':>9} {'step MiB':>9}"]
    for config, times in result["time_s"].items():
        peak, step = mib(result["peak_bytes"][config]), mib(result["step_bytes"][config])
        lines.append(f"{config:<18} {seconds(times):>28} {seconds(result['cpu_time_s'][config]):>28} {peak:>9} {step:>9}")
    lines += [f"(memory: {result['memory_method']}; sampled, fna and their paths: median over the rounds' paths)", ""]
    lines.append(f"{'ratio':<34} {'median':>7} {'[min–max] over rounds':>22} {'target':>8}")
    for name, values in result["ratios"].items():
        if values["median"] is None:
            lines.append(f"{name:<34} {'n/a':>7}")
            continue
        verdict = result["targets"].get(name)
        target = "" if verdict is None else f"≤ {verdict['target']:<5} {'pass' if verdict['pass'] else 'FAIL'}"
        bounds = f"[{values['min']:.3f}–{values['max']:.3f}]"
        lines.append(f"{name:<34} {values['median']:>7.3f} {bounds:>22}   {target}")
    lines.append(
        f"\n{result['rounds']} rounds, {result['seconds']:.0f} s; load average {_load(result['loadavg_before'])} before, "
        f"{_load(result['loadavg_after'])} after; {result['threads']} thread(s) per worker"
    )
    return "\n".join(lines)


def _load(load) -> str:
    return "/".join(f"{value:.1f}" for value in load)


class _Worker:
    """A worker process (this script with ``--worker``): one JSON command per line in, one reply per line out."""

    def __init__(self, config: str, settings: dict, *, memory: bool) -> None:
        self.config = config
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        self.info: dict = {}
        self._write({"config": config, "memory": memory, **settings})

    def wait_ready(self) -> dict:
        if not self.info:
            self.info = self._read()
        return self.info

    def send(self, **command) -> dict:
        self.wait_ready()
        self._write(command)
        return self._read()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()

    def _write(self, message: dict) -> None:
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"{self.config}: the worker process ended (exit status {self.process.wait()}); its error is above")
        return json.loads(line)


# --- a worker: one configuration ----------------------------------------------------------------


def serve() -> int:
    """Build one configuration (settings: the first line of stdin), warm it up, then answer commands:
    ``draw`` (sampled, fna: the next step's path), ``use`` (the same with given ops), ``build`` (a path
    worker: that network), ``step`` (time, or memory in a memory worker). Replies go to the real stdout;
    anything else printed goes to stderr."""
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    settings = json.loads(sys.stdin.readline())
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import torch

    from netadapt.search import loop  # noqa: F401  (what a step needs, imported before the memory baseline)

    memory = _Memory(torch.device(settings["device"])) if settings["memory"] else None  # after the imports, before anything is built
    bench = _Bench(settings)
    bench.warm_up(1 if memory else settings["warmup"])
    reply = lambda message: replies.write(json.dumps(message) + "\n")  # noqa: E731
    reply({
        "candidates": bench.candidates, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "memory_method": memory.method if memory else None,
    })
    for line in sys.stdin:
        command = json.loads(line)
        if command["do"] == "draw":
            reply(bench.draw())
        elif command["do"] == "use":
            reply(bench.use(command["ops"]))
        elif command["do"] == "build":
            bench.build_path(command["genotype"])
            bench.warm_up(1 if memory else max(1, settings["warmup"]))  # as every other worker before its first timed step
            reply({"built": True})
        elif command["do"] == "step":
            reply(memory.measure(bench.step) if memory else bench.timed_step())
        else:
            raise ValueError(f"unknown command {command['do']!r}")
    return 0


class _Bench:
    """One configuration's model, optimiser and batch, and its step as the search loop takes it."""

    def __init__(self, settings: dict) -> None:
        import torch

        from netadapt import plugins
        from netadapt.config import SearchConfig
        from netadapt.engine.precision import Precision
        from netadapt.engine.throughput import prepare_device
        from netadapt.engine.train import batch_to_device
        from netadapt.genotype import parse_op
        from netadapt.search.step import strategy_for
        from netadapt.search.space import load_search_space
        from netadapt.search.supernet import ArchitectureParameters, build_supernet, skeleton_genotype

        self.torch = torch
        self.config = settings["config"]
        kind = self.config.split(":")[0]
        self.device = torch.device(settings["device"])
        prepare_device(self.device)
        self.search = SearchConfig(
            input_size=settings["input_size"], batch_size=settings["batch_size"], space=settings["space"], seed=settings["seed"],
            strategy=kind if kind in STRATEGIES else "darts", amp=settings["amp"], channels_last=settings["channels_last"],
        )
        self.num_classes = settings["num_classes"]
        self.precision = Precision(self.search.amp, self.device)
        self.images, self.targets = batch_to_device(*_batch(settings["input_size"], settings["batch_size"], self.num_classes), self.device)
        self.base = plugins.bases().get("mobilenetv2")
        self.space = load_search_space(settings["space"])
        self.candidates = list(self.space.candidates)
        self.op_weights = None  # a search weight step's op weights: computed in the step (darts) or drawn before it
        self.pending_s = 0.0  # the draw's seconds, counted in the next step
        self.runner = None  # the job's own step: the search's SearchStep (its weight step) or the detector's DetectorTrainStep
        self.done = 0  # steps taken (the steps' schedule position)
        torch.manual_seed(settings["seed"])
        if kind == "base":
            self._build(self.base.base_genotype())
        elif kind == "candidate":
            self._build(skeleton_genotype(self.base.base_genotype(), self.space, parse_op(self.config.split(":")[1])))
        elif self.config.endswith(":path"):
            self.model = None  # built on each round's drawn network (build_path)
        else:
            source_genotype = self.base.base_genotype()
            self.supernet = build_supernet("mobilenetv2", self.space, self.base.build(source_genotype), source_genotype)
            self._prepare(self.supernet)
            self.arch = ArchitectureParameters(self.supernet.layers, generator=torch.Generator().manual_seed(settings["seed"])).to(self.device)
            self.strategy = strategy_for(self.search)
            self.generator = torch.Generator().manual_seed(settings["seed"])  # as the loop's (CPU) generator
            self.runner = self._search_step()
            if kind in SAMPLING:  # every candidate once, so that every weight has its optimiser state
                with torch.no_grad():
                    self.op_weights = self.arch.probabilities(temperature=self.search.alpha_temperature)
                self.step()

    def _build(self, genotype) -> None:
        self._prepare(self.base.build(genotype))

    def _prepare(self, body) -> None:
        from netadapt.detectors.model import build_detector_on, options_from_config
        from netadapt.engine.throughput import to_memory_format
        from netadapt.engine.train import DetectorTrainStep

        self.model = self.runner = None  # the previous network goes before the next is built
        model = build_detector_on(body, "ssdlite", num_classes=self.num_classes, input_size=self.search.input_size, options=options_from_config("ssdlite", self.search))
        self.model = self.precision.prepare(to_memory_format(model.to(self.device).train(), channels_last=self.search.channels_last))
        if body is not getattr(self, "supernet", None):  # a network alone: the training job's step, with the search's optimiser settings
            self.runner = DetectorTrainStep(
                self.model, self.search, total=SCHEDULE_ITERATIONS, iterations_per_epoch=SCHEDULE_ITERATIONS, device=self.device, precision=self.precision,
            )

    def _search_step(self):
        """The search's own step on the super network (a synthetic cost table: the α step is not timed here), with the
        strategy's op weights replayed from :meth:`draw` where the round drew them."""
        import torch

        from netadapt.engine.distributed import Context
        from netadapt.search.cost_term import CostTerm
        from netadapt.search.step import SearchStep

        cost_term = CostTerm(cost_lambda=self.search.cost_lambda, cost_log_base=self.search.cost_log_base, target=None, target_weight=self.search.target_weight)
        return SearchStep(
            detector=self.model, supernet=self.supernet, arch=self.arch, strategy=_Drawn(self.strategy, self), config=self.search,
            context=Context(device=self.device), precision=self.precision, costs=[torch.ones(len(layer.candidates), device=self.device) for layer in self.supernet.layers],
            cost_term=cost_term, unit="ops", iterations_per_epoch=SCHEDULE_ITERATIONS,
        )

    def build_path(self, genotype: dict) -> None:
        from netadapt.genotype import genotype_from_data

        self._build(genotype_from_data(genotype, source=f"{self.config} network"))
        _release_freed_memory()

    def draw(self) -> dict:
        """The next weight step's op weights, drawn as the loop draws them; the path and its network."""
        from netadapt.search.derive import derive_genotype

        started = time.perf_counter()
        self.op_weights = self.strategy.weight_step_weights(self.arch, temperature=self.search.alpha_temperature, generator=self.generator)
        self.pending_s = time.perf_counter() - started
        ops = [names[int(w.argmax())] for names, w in zip(self.arch.candidate_names, self.op_weights)]
        genotype = derive_genotype(self.supernet.skeleton, self.supernet.layers, ops, space_name=self.space.name)
        return {"ops": ops, "genotype": genotype.to_dict()}

    def use(self, ops: list[str]) -> dict:
        """Op weights one on ``ops`` (a path drawn in the timed rounds), as a draw would give them."""
        torch = self.torch
        self.op_weights = [
            torch.zeros(len(names), device=self.device).index_fill_(0, torch.tensor([names.index(op)], device=self.device), 1.0)
            for names, op in zip(self.arch.candidate_names, ops, strict=True)
        ]
        return {"ops": ops}

    def warm_up(self, steps: int) -> None:
        for _ in range(steps if self.model is not None else 0):
            if self.config in SAMPLING:
                self.draw()
            self.step()

    def step(self) -> None:
        """One step as the job takes it: the search's weight step (``darts``: its op weights computed in it; sampled, fna:
        the drawn ones) or the detector's train step."""
        from netadapt.engine.loop import Position
        from netadapt.engine.train import DetectorTrainStep

        at, batch = Position(self.done, 0, self.done), (self.images, self.targets)
        self.done += 1
        if isinstance(self.runner, DetectorTrainStep):
            self.runner(batch, at)
        else:
            self.runner.weight_step(batch, at)

    def timed_step(self) -> dict[str, float]:
        """Wall-clock and process CPU seconds of one step (the draw's added: measured as both)."""
        _synchronise(self.device)
        started, cpu_started = time.perf_counter(), time.process_time()
        self.step()
        _synchronise(self.device)
        seconds = {"time_s": time.perf_counter() - started + self.pending_s, "cpu_s": time.process_time() - cpu_started + self.pending_s}
        self.pending_s = 0.0
        return seconds


class _Drawn:
    """The configured strategy, but a weight step runs the op weights the round drew before it (:meth:`_Bench.draw`,
    :meth:`_Bench.use`: the path workers build that very network); without them (``darts``) the strategy's own."""

    def __init__(self, strategy, bench: _Bench) -> None:
        self.strategy, self.bench = strategy, bench

    def weight_step_weights(self, arch, *, temperature: float, generator):
        if self.bench.op_weights is not None:
            return self.bench.op_weights
        return self.strategy.weight_step_weights(arch, temperature=temperature, generator=generator)

    def __getattr__(self, name: str):
        return getattr(self.strategy, name)


def _batch(input_size: int, batch_size: int, num_classes: int):
    """The same images and boxes for every configuration (seeded): 1 to 4 boxes per image."""
    import torch

    generator = torch.Generator().manual_seed(1234)
    images, targets = [], []
    for _ in range(batch_size):
        images.append(torch.rand(3, input_size, input_size, generator=generator))
        count = int(torch.randint(1, 5, (1,), generator=generator))
        corner = torch.rand(count, 2, generator=generator) * input_size * 0.6
        extent = (0.1 + 0.3 * torch.rand(count, 2, generator=generator)) * input_size
        boxes = torch.cat([corner, (corner + extent).clamp(max=input_size)], dim=1)
        targets.append({"boxes": boxes, "labels": torch.randint(1, num_classes, (count,), generator=generator)})
    return images, targets


def _synchronise(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _release_freed_memory() -> None:
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


class _Memory:
    """Peak memory of one step in a memory worker (the module docstring says what is counted and how)."""

    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters

    def __init__(self, device) -> None:
        import ctypes

        self.device, self.libc = device, None
        if device.type == "cuda":
            self.method = "torch.cuda.max_memory_allocated"
            return
        self.method = "resident set high-water mark (VmHWM), glibc mmap above 64 KiB"
        try:
            self.libc = ctypes.CDLL("libc.so.6")
            self.libc.mallopt(self.M_MMAP_THRESHOLD, 64 * 1024)
            self.libc.mallopt(self.M_TRIM_THRESHOLD, 128 * 1024)
            self.libc.malloc_trim(0)
            self.start = _proc_status("VmRSS")
            Path("/proc/self/clear_refs").write_text("5")
        except (OSError, AttributeError):
            self.libc, self.method = None, "unavailable (needs Linux and glibc)"

    def measure(self, step) -> dict[str, float | None]:
        import torch

        _release_freed_memory()
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
        before = _proc_status("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := the current resident set
        step()
        peak = _proc_status("VmHWM")
        return {"peak_bytes": peak - self.start, "step_bytes": peak - before}


def _proc_status(field: str) -> int:
    """A memory field of /proc/self/status, in bytes."""
    import re

    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    if match is None:
        raise OSError(f"/proc/self/status has no {field}")
    return int(match.group(1)) * 1024


if __name__ == "__main__":
    raise SystemExit(main())
