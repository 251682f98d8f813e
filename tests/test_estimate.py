"""``netadapt estimate``: the schedule counted as the loops count it, every phase timed, figures labelled."""

from __future__ import annotations

import json
import math
import shutil
import subprocess

import pytest

NETADAPT = shutil.which("netadapt")


@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
@pytest.mark.skipif(NETADAPT is None, reason="the netadapt script is not installed")
def test_estimate_counts_the_schedule_and_times_every_phase() -> None:
    tiny = {"input_size": 64, "batch_size": 4, "epochs": 3, "alpha_start_epoch": 2, "repeat": 2, "strategy": "fna",
            "strategy_options": {"weight_steps_per_alpha_step": 5}}
    flags = [arg for name, value in tiny.items() for arg in ("--set", f"search.{name}={json.dumps(value)}")]
    flags += ["--set", "train.input_size=64", "--set", "train.batch_size=4", "--set", "train.epochs=2", "--set", "train.eval_batch_size=4"]
    done = subprocess.run([NETADAPT, "estimate", "--images", "100", "--world-size", "2", "--steps", "1", "--json", *flags],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    steps = {phase["name"]: phase["steps"] for phase in result["phases"]}
    weight_per_epoch = math.ceil(math.ceil(50 * 2 / 2) / 4)  # half the images for weights, repeat 2, over 2 devices, batch 4
    assert steps == {
        "search weight step": 3 * weight_per_epoch,
        "search α step": 2 * math.ceil(weight_per_epoch / 5),  # epochs 2 and 3, one per 5 weight steps
        "train step": 2 * math.ceil(50 / 4),
        "evaluation batch": math.ceil(2500 / 4),  # COCO val2017's 5000 images over 2 devices
    }
    assert result["total_hours"] == pytest.approx(result["search_hours"] + result["train_hours"])
    assert result["total_device_days"] == pytest.approx(result["total_hours"] * 2 / 24)
    for phase in result["phases"]:
        assert phase["seconds_per_step"] > 0 and phase["hours"] == pytest.approx(phase["seconds_per_step"] * phase["steps"] / 3600)
        assert {"steps", "hours"} <= set(phase["projected"]) and phase["peak_memory_bytes"] > 0
    assert set(result["peak_memory_bytes"]) == set(steps) and result["num_classes"] == 81


def test_estimate_refuses_data_and_images_together(tmp_path) -> None:
    done = subprocess.run([NETADAPT, "estimate", "--data", str(tmp_path), "--images", "10"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "give --data or --images, not both" in done.stderr
