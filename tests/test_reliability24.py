"""Hostile and mistaken inputs, second round (issue 24): outputs never replace inputs or files netadapt did not
write, full disks and broken plugins are one line, hostile sizes and YAML are refused before they allocate.

The CLI runs in a subprocess of the installed script where what is tested is what a user sees (one stderr
line, the exit code); the rules themselves are tested on the library functions that hold them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from netadapt.data.demo import DEMO_MARKER, STAGING_LOCK, generate_demo_dataset
from netadapt.engine.files import (
    MANIFEST_NAME, atomic_path, check_outputs, record_output, save_torch_atomic, write_text_atomic,
)
from netadapt.engine.rundir import LOCK_NAME, run_directory
from netadapt.errors import OutputError

NETADAPT = shutil.which("netadapt")
needs_script = pytest.mark.skipif(NETADAPT is None, reason="the netadapt script is not installed")

STAGES = [
    [[32, 16], ["k3_e1"], 1],
    [[16, 24], ["k3_e3"], 2],
    [[24, 32], ["k3_e3"], 2],
    [[32, 64], ["k3_e3"], 2],
    [[64, 96], ["k3_e3"], 1],
    [[96, 160], ["k3_e3"], 2],
    [[160, 320], ["k3_e3"], 1],
]


def netadapt(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([NETADAPT, *args], capture_output=True, text=True, timeout=120, **kwargs)


def cli(*args: str) -> subprocess.CompletedProcess:
    """The command in this process (typer's CliRunner: no interpreter start-up), as a CompletedProcess."""
    from typer.testing import CliRunner

    from netadapt.cli.main import app

    result = CliRunner().invoke(app, list(args))
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def one_error_line(result: subprocess.CompletedProcess, *fragments: str, code: int = 2) -> str:
    """The command failed with ``code`` and said so in exactly one stderr line holding every fragment."""
    assert result.returncode == code, (result.returncode, result.stderr[-3000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def genotype_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"base": "mobilenetv2", "input_size": 64, "stages": STAGES}))
    return path


@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str = "1m"):
    """A tmpfs of ``size`` mounted on ``folder`` (root only): a disk that fills up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs (a full disk) needs root")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> None:
    """Fill the file system holding ``folder`` to the last byte."""
    with open(folder / "filler", "wb") as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * 65536)
            handle.flush()


# Item 1: a run directory is netadapt's, and it deletes only what its manifest lists.
def test_a_run_refuses_a_folder_of_the_users_and_deletes_nothing_of_it(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "genotype.yaml").write_text("my notes\n")
    (mine / ".draft.tmp").write_text("my draft\n")
    with pytest.raises(OutputError, match=r"holds files netadapt did not write \('.draft.tmp', 'genotype.yaml'"):
        with run_directory(mine, resume=False):
            pass
    assert sorted(path.name for path in mine.iterdir()) == [".draft.tmp", "genotype.yaml"]


def test_a_run_directory_removes_only_the_temporaries_of_files_it_lists(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with run_directory(run, resume=False):
        write_text_atomic(run / "genotype.yaml", "stages: []\n")
    stale = run / ".genotype.yaml.abcd_123.tmp"  # what a killed atomic write leaves
    stale.write_text("torn")
    with run_directory(run, resume=False):
        assert not stale.exists()
        assert not (run / LOCK_NAME).read_text() == ""
    assert (run / "genotype.yaml").read_text() == "stages: []\n"


@needs_script
def test_train_into_a_users_folder_is_refused_before_work(genotype_file: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "log.jsonl").write_text("my log\n")
    one_error_line(netadapt("train", str(genotype_file), "--weights", "none", "--out", str(mine)), str(mine), "'log.jsonl'", "did not write")
    assert (mine / "log.jsonl").read_text() == "my log\n" and sorted(os.listdir(mine)) == ["log.jsonl"]


def test_a_failed_first_claim_leaves_no_folder(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(RuntimeError), run_directory(run, resume=False):
        raise RuntimeError("failed before writing")
    assert not run.exists()


# Items 2 and 3: an output that is an input of the same command, a file netadapt did not write, a run's file.
@pytest.mark.parametrize("case", ["input", "foreign", "run file"])
def test_check_outputs_refuses_inputs_foreign_files_and_run_files(case: str, tmp_path: Path) -> None:
    source = tmp_path / "g.yaml"
    source.write_text("mine\n")
    if case == "input":
        output, inputs, expected = tmp_path / "link.yaml", [source], "is also an input"
        output.symlink_to(source)  # the same file under another name
    elif case == "foreign":
        output, inputs, expected = tmp_path / "weights.pth", [], "netadapt did not write it"
        output.write_bytes(b"someone's weights")
    else:
        run = tmp_path / "RUN"
        with run_directory(run, resume=False):
            save_torch_atomic({"iteration": 3}, run / "last.pth")
        output, inputs, expected = run / "last.pth", [source], "belongs to the netadapt run"
    before = output.read_bytes()
    with pytest.raises(OutputError, match=expected):
        check_outputs([output], inputs=inputs)
    assert output.read_bytes() == before


def test_check_outputs_lets_netadapt_replace_its_own_file(tmp_path: Path) -> None:
    write_text_atomic(tmp_path / "out.yaml", "first\n")
    check_outputs([tmp_path / "out.yaml"], inputs=[tmp_path / "g.yaml"])
    assert (tmp_path / MANIFEST_NAME).read_text() == '"out.yaml"\n'


@needs_script
def test_commands_refuse_to_write_over_their_inputs(genotype_file: Path, tmp_path: Path) -> None:
    from PIL import Image

    pics = tmp_path / "pics"
    pics.mkdir()
    Image.new("RGB", (8, 8), "red").save(pics / "photo.png")
    picture = (pics / "photo.png").read_bytes()
    (tmp_path / "m.pth").write_bytes(b"a trained checkpoint")
    one_error_line(netadapt("predict", str(pics / "photo.png"), "--checkpoint", str(tmp_path / "m.pth"), "--out", str(pics)),
                   "photo.png", "is also an input")
    one_error_line(cli("export", str(tmp_path / "m.pth"), "--format", "torchscript", "--out", str(tmp_path / "m.pth")),
                   "m.pth", "is also an input")
    genotype = genotype_file.read_bytes()
    one_error_line(cli("remap", str(genotype_file), "--out", str(genotype_file)), "tiny.yaml", "is also an input")
    assert (pics / "photo.png").read_bytes() == picture and (tmp_path / "m.pth").read_bytes() == b"a trained checkpoint"
    assert genotype_file.read_bytes() == genotype and sorted(os.listdir(pics)) == ["photo.png"]


# Item 4: `data demo --out LINK --overwrite` replaces the folder the link points to and leaves nothing behind.
def test_demo_overwrite_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    real = generate_demo_dataset(tmp_path / "real", num_train=1, num_val=1, image_size=64, seed=1)
    link = tmp_path / "LINK"
    link.symlink_to(real)
    first = (real / "train.json").read_text()
    generate_demo_dataset(link, num_train=2, num_val=1, image_size=64, seed=2, overwrite=True)
    assert link.is_symlink() and (link / DEMO_MARKER).is_file() and (real / "train.json").read_text() != first
    assert sorted(os.listdir(tmp_path)) == ["LINK", "real"]
    assert STAGING_LOCK not in os.listdir(real)


# Item 5: a `data demo` killed by SIGKILL leaves a staging folder that the next run removes.
def test_a_staging_folder_of_a_killed_writer_is_removed(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from netadapt.data.demo import _claim_staging; "
        f"_claim_staging(Path({str(out)!r} + '.tmp-424242')); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        alive = tmp_path / "demo.tmp-424242"
        foreign = tmp_path / "demo.tmp-1"  # not netadapt's (no staging lock): left alone
        foreign.mkdir()
        generate_demo_dataset(tmp_path / "other", num_train=1, num_val=1, image_size=64)  # another name: not its business
        assert alive.is_dir()
        generate_demo_dataset(out, num_train=1, num_val=1, image_size=64)  # the writer is alive: its folder stays
        assert alive.is_dir()
        shutil.rmtree(out)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        generate_demo_dataset(out, num_train=1, num_val=1, image_size=64)
        assert not alive.exists() and foreign.is_dir()
    finally:
        holder.kill()
        holder.wait()


# Item 12: a full disk is one line, with nothing half-written and no run directory holding only its lock.
def test_a_full_disk_is_one_line_everywhere(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk") as disk:
        with pytest.raises(OutputError, match="demo: cannot write: No space left on device"):
            generate_demo_dataset(disk / "demo", num_train=60, num_val=1, image_size=320)
        assert os.listdir(disk) == []
        (disk / "run").mkdir()
        with run_directory(disk / "run", resume=False):
            save_torch_atomic({"iteration": 1}, disk / "run" / "last.pth")
        fill(disk)
        with pytest.raises(OutputError, match=r"last.pth: cannot write: .*(disk full|No space left)"):
            save_torch_atomic({"weights": torch.zeros(1 << 16)}, disk / "run" / "last.pth")
        assert torch.load(disk / "run" / "last.pth", weights_only=True) == {"iteration": 1}  # intact
        with pytest.raises(OutputError, match="cannot write: No space left on device"):
            with run_directory(disk / "new", resume=False):
                pass
        assert not (disk / "new").exists()
        assert sorted(os.listdir(disk / "run")) == [MANIFEST_NAME, "last.pth"]


def test_any_failure_while_writing_is_one_output_error(tmp_path: Path) -> None:
    torn = RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0")
    with pytest.raises(OutputError, match=r"x.pth: cannot write: RuntimeError: \[enforce fail.*disk full"):
        with atomic_path(tmp_path / "x.pth"):
            raise torn
    assert os.listdir(tmp_path) == []  # the temporary is gone, and the manifest this first write made


@needs_script
def test_data_demo_on_a_full_disk_is_one_line(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk") as disk:
        one_error_line(netadapt("data", "demo", "--out", str(disk / "demo"), "--train", "60", "--val", "1"),
                       "demo: cannot write: No space left on device")
        assert os.listdir(disk) == []
