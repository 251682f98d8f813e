"""``netadapt.jobs``: a job's name is the job, though its module has the same name (``netadapt.jobs.train``)."""

from __future__ import annotations

import importlib
import subprocess
import sys

JOBS = ["adapt", "cost", "estimate", "evaluate", "export", "front", "predict", "pretrain", "remap", "search", "select", "show", "train"]


def test_every_job_is_a_function_whichever_module_is_imported_later() -> None:
    script = (
        "from netadapt import jobs\n"
        f"for name in {JOBS!r}:\n"
        "    __import__(f'netadapt.jobs.{name}')\n"
        "    assert callable(getattr(jobs, name)) and not isinstance(getattr(jobs, name), type(jobs)), name\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_a_jobs_module_is_reached_by_its_full_path() -> None:
    module = importlib.import_module("netadapt.jobs.train")
    assert module.train.__module__ == "netadapt.jobs.train" and callable(module.init_backbone)
