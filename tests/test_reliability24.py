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

from netadapt.data.demo import DEMO_MARKER, STAGING_LOCK, demo_dataset_dir, generate_demo_dataset
from netadapt.files import (
    MANIFEST_NAME, atomic_path, check_outputs, save_torch_atomic, write_text_atomic,
)
from netadapt.engine.rundir import LOCK_NAME, run_directory
from netadapt.errors import OutputError
from tests.conftest import STAGES
from tests.test_reliability import one_error_line

NETADAPT = shutil.which("netadapt")
needs_script = pytest.mark.skipif(NETADAPT is None, reason="the netadapt script is not installed")



def netadapt(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([NETADAPT, *args], capture_output=True, text=True, timeout=120, **kwargs)


def cli(*args: str) -> subprocess.CompletedProcess:
    """The command in this process (typer's CliRunner: no interpreter start-up), as a CompletedProcess."""
    from typer.testing import CliRunner

    from netadapt.cli.main import app

    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "300"})
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


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
    run = tmp_path / "RUN"  # a run's files are its own; what another command wrote beside them (an export) is not
    with run_directory(run, resume=False):
        save_torch_atomic({"iteration": 3}, run / "model.pth")
    write_text_atomic(run / "model.onnx", "exported\n")
    check_outputs([run / "model.onnx"], inputs=[run / "model.pth"])
    with pytest.raises(OutputError, match="model.pth: belongs to the netadapt run"):
        check_outputs([run / "model.pth"])


@needs_script
def test_commands_refuse_to_write_over_their_inputs(genotype_file: Path, tmp_path: Path) -> None:
    from PIL import Image

    pics = tmp_path / "pics"
    pics.mkdir()
    Image.new("RGB", (8, 8), "red").save(pics / "photo.png")
    picture = (pics / "photo.png").read_bytes()
    (tmp_path / "m.pth").write_bytes(b"a trained checkpoint")
    one_error_line(cli("predict", str(pics / "photo.png"), "--checkpoint", str(tmp_path / "m.pth"), "--out", str(pics)),
                   "photo.png", "is also an input")
    one_error_line(cli("export", str(tmp_path / "m.pth"), "--format", "torchscript", "--out", str(tmp_path / "m.pth")),
                   "m.pth", "is also an input")
    genotype = genotype_file.read_bytes()
    one_error_line(cli("remap", str(genotype_file), "--out", str(genotype_file)), "tiny.yaml", "is also an input")
    run = tmp_path / "RUN"
    with run_directory(run, resume=False):
        save_torch_atomic({"iteration": 3}, run / "last.pth")
    one_error_line(cli("remap", str(genotype_file), "--out", str(run / "last.pth")), "last.pth: belongs to the netadapt run")
    assert torch.load(run / "last.pth", weights_only=True) == {"iteration": 3}
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
        with pytest.raises(OutputError, match="cannot write: No space left on device"):  # a search with no --data, NETADAPT_CACHE full
            demo_dataset_dir(cache_dir=disk / "cache")


def test_any_failure_while_writing_is_one_output_error(tmp_path: Path) -> None:
    torn = RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0")
    with pytest.raises(OutputError, match=r"x.pth: cannot write: RuntimeError: \[enforce fail.*disk full"):
        with atomic_path(tmp_path / "x.pth"):
            raise torn
    assert os.listdir(tmp_path) == []  # the temporary is gone, and the manifest this first write made


@needs_script
@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_data_demo_on_a_full_or_read_only_disk_is_one_line(fault: str, tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk") as disk:
        if fault == "read-only":
            subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        one_error_line(netadapt("data", "demo", "--out", str(disk / "demo"), "--train", "60", "--val", "1"),
                       "demo: cannot write: " + ("No space left on device" if fault == "full" else "Read-only file system"))
        assert os.listdir(disk) == []


# Item 15: YAML aliases to collections (billion laughs, `notes: *big`) are refused before anything is built.
BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"


@pytest.mark.parametrize("text", [
    BILLION_LAUGHS + "stages: []\n",
    "base: mobilenetv2\nbig: &i {k: [1, 2, 3]}\nnotes: *i\nstages: []\n",
    "".join(f"s{i}: &s{i} x\n" for i in range(101)) + "".join(f"t{i}: *s{i}\n" for i in range(101)),
], ids=["billion-laughs", "notes-alias", "many-aliases"])
def test_yaml_aliases_are_bounded_everywhere(text: str, tmp_path: Path) -> None:
    from netadapt.config import read_config_file
    from netadapt.errors import ConfigError, GenotypeError
    from netadapt.genotype import load_genotype

    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    expected = "more than 100 aliases" if "t100" in text else "refuses aliases to collections"
    with pytest.raises(GenotypeError, match=expected):
        load_genotype(path)
    with pytest.raises(ConfigError, match="malformed YAML"):
        read_config_file(path)
    one_error_line(cli("show", str(path)), str(path), expected)


def test_scalar_aliases_stay_allowed() -> None:
    from netadapt.yamlio import safe_load

    assert safe_load("a: &x 3\nb: *x\n") == {"a": 3, "b": 3}


# Item 13 and 10: COCO fields of the wrong type or out of range are one line when the file is read.
@pytest.mark.parametrize(("field", "value", "message"), [
    ("area", "big", "'area' must be a finite number >= 0, got 'big'"),
    ("area", None, "'area' must be a finite number >= 0, got None"),
    ("area", float("nan"), "'area' must be a finite number >= 0, got nan"),
    ("area", -4.0, "'area' must be a finite number >= 0, got -4.0"),
    ("bbox", [1, 1, 10**400, 4], "'bbox' must be four finite numbers"),
])
def test_coco_fields_are_checked_when_read(field: str, value: object, message: str, tmp_path: Path) -> None:
    import json

    from netadapt.data.coco import load_coco
    from netadapt.errors import DataError

    annotation = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "iscrowd": 0, field: value}
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg", "width": 8, "height": 8}],
                                "annotations": [annotation], "categories": [{"id": 1, "name": "a"}]}))
    with pytest.raises(DataError, match="annotation id 1 .*" + message.replace("(", r"\(").replace("[", r"\[")) as raised:
        load_coco(path)
    assert len(str(raised.value).splitlines()) == 1 and len(str(raised.value)) < 300


# Item 9 and 10: evaluation that would report a number that means nothing is refused.
def test_evaluation_refuses_splits_without_images_or_boxes_and_unknown_categories(tmp_path: Path) -> None:
    import json

    from netadapt.engine.evaluate import evaluate_coco
    from netadapt.errors import DataError

    image = {"id": 1, "file_name": "a.jpg", "width": 8, "height": 8}
    box = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]}
    detection = {"image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "score": 0.9}
    cases = [([], [], "has no images"), ([image], [], "has no annotated boxes"), ([image], [{**box, "iscrowd": 1}], "has no annotated boxes")]
    for images, annotations, message in cases:
        path = tmp_path / "gt.json"
        path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "a"}]}))
        with pytest.raises(DataError, match=f"gt.json: {message}"):
            evaluate_coco(path, [detection])
    path.write_text(json.dumps({"images": [image], "annotations": [box], "categories": [{"id": 1, "name": "a"}]}))
    assert evaluate_coco(path, [detection])["AP"] == pytest.approx(1.0)
    with pytest.raises(DataError, match=r"result #0 names category id 7, which the ground truth lacks \(it has 1\)"):
        evaluate_coco(path, [{**detection, "category_id": 7}])


# Item 8: 16-bit and float grey images keep their contrast.
@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_high_depth_grey_images_are_scaled_not_clipped(mode: str, tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from netadapt.data.images import read_rgb

    ramp = np.linspace(0.0, 1.0, 64).reshape(8, 8)
    if mode == "F":
        picture, suffix = Image.fromarray(ramp.astype(np.float32), mode="F"), ".tiff"
    else:
        picture, suffix = Image.fromarray((ramp * 65535).astype(np.uint16)), ".png"  # 16-bit PNG
    path = tmp_path / f"grey{suffix}"
    picture.save(path)
    pixels = read_rgb(path)
    assert pixels.shape == (3, 8, 8) and int(pixels.min()) == 0 and int(pixels.max()) == 255
    assert abs(int(pixels[0, 4, 0]) - round(255 * ramp[4, 0])) <= 1  # the ramp, not all white or all black


# Item 16: a detector checkpoint with a valid spec but no weights is one line.
def test_a_detector_checkpoint_without_weights_is_one_line(tmp_path: Path) -> None:
    from netadapt.detectors.model import DETECTOR_FORMAT, DetectorSpec, load_detector
    from netadapt.errors import WeightsError
    from netadapt.genotype import genotype_from_data

    spec = DetectorSpec("ssdlite", "mobilenetv2", genotype_from_data(STAGES), ["background", "a"], 64, {})
    path = tmp_path / "model.pth"
    torch.save({"format": DETECTOR_FORMAT, "spec": spec.to_dict()}, path)
    with pytest.raises(WeightsError, match="model.pth: a detector checkpoint without weights"):
        load_detector(path)
    for command in (["predict", str(tmp_path / "model.pth"), "--checkpoint", str(path)], ["export", str(path), "--format", "torchscript"]):
        if command[0] == "predict":
            from PIL import Image

            Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
            command = ["predict", str(tmp_path / "x.png"), "--checkpoint", str(path), "--out", str(tmp_path / "P")]
        one_error_line(cli(*command), "a detector checkpoint without weights")
    assert not (tmp_path / "P").exists()


# Item 17: a failing plugin names itself and is disabled with a warning; other commands go on.
@contextlib.contextmanager
def registered(plugin: object, name: str):
    from netadapt import plugins

    manager = plugins.get_plugin_manager()
    manager.register(plugin, name=name)
    try:
        yield
    finally:
        if manager.get_plugin(name) is not None:
            manager.unregister(name=name)
        plugins._State.disabled.pop(name, None)


def test_a_register_hook_that_raises_disables_its_plugin_with_a_warning() -> None:
    from netadapt import plugins
    from netadapt.errors import NetadaptWarning
    from netadapt.hookspecs import hookimpl

    class Broken:
        @staticmethod
        @hookimpl
        def register_bases(register) -> None:
            register("half", object())
            raise RuntimeError("cannot import my weights\nsecond line")

    with registered(Broken, "broken-plugin"):
        with pytest.warns(NetadaptWarning, match=r"plugin 'broken-plugin' is disabled: its register_bases hook raised RuntimeError: cannot import my weights \("):
            names = plugins.bases().names()
        assert "mobilenetv2" in names and "half" not in names
        infos = {info.name: info for info in plugins.plugin_infos()}
        assert infos["broken-plugin"].notes[0].startswith("DISABLED: its register_bases hook raised RuntimeError")
        result = cli("plugins")
        assert result.returncode == 0 and "broken-plugin" in result.stdout and "DISABLED" in result.stdout, result.stdout


def test_an_unhashable_key_and_a_bad_build_name_the_plugin(genotype_file: Path) -> None:
    from types import SimpleNamespace

    from netadapt import plugins
    from netadapt.errors import PluginError
    from netadapt.hookspecs import hookimpl
    from netadapt.remap.base import remap_base

    class Unhashable:
        @staticmethod
        @hookimpl
        def register_cost_models(register) -> None:
            register(["a", "list"], SimpleNamespace(name="x", unit="u", measure=lambda *args: None))

    with registered(Unhashable, "list-plugin"):
        with pytest.raises(PluginError, match="plugin 'list-plugin': registers a cost model under an unhashable list"):
            plugins.cost_models()
        assert cli("plugins").returncode == 0

    mobilenet = plugins.bases().get("mobilenetv2")
    for name, build, message in [("none-base", lambda genotype, **options: None, "returned NoneType, not a torch.nn.Module"),
                                 ("raising-base", lambda genotype, **options: 1 / 0, "failed: ZeroDivisionError: division by zero")]:
        base = SimpleNamespace(name=name, classifier_key="classifier.1.weight", base_genotype=mobilenet.base_genotype,
                               build=build, imagenet_state_dict=dict)
        plugin = type("Plugin", (), {"register_bases": staticmethod(hookimpl(lambda register, _base=base: register(_base.name, _base)))})
        with registered(plugin, name):
            from netadapt.genotype import load_genotype

            with pytest.raises(PluginError, match=f"plugin {name!r}: base network {name!r}: build\\(\\) {message}"):
                remap_base(load_genotype(genotype_file), base_name=name, weights=None)


# Item 14: sizes are refused by what they would allocate, before anything is built, with the number in the message.
def test_sizes_are_refused_by_what_they_would_allocate(genotype_file: Path, tmp_path: Path) -> None:
    from netadapt.cost.breakdown import genotype_cost
    from netadapt.cost.footprint import genotype_footprint, machine_memory
    from netadapt.errors import ConfigError
    from netadapt.genotype import load_genotype

    genotype = load_genotype(genotype_file)
    small = genotype_footprint(genotype, input_size=320)
    assert 1e6 < small.parameters < 1e7 and small.bytes(batch=16, training=True) < 2**30  # a real run fits
    with pytest.raises(ConfigError, match=r"tiny.yaml: its network of 1000 classes at input 100000×100000 .* would allocate about [\d,.]+ [GT]iB"):
        genotype_cost(genotype, input_size=100000, where=str(genotype_file))
    huge = tmp_path / "huge.yaml"  # every value within the genotype's bounds, terabytes of weights
    huge.write_text(yaml.safe_dump({"base": "mobilenetv2", "input_size": 64, "stages": [
        [[32, 8192], ["k15_e16"] * 64, 2], *[[[8192, 8192], ["k15_e16"] * 64, 1] for _ in range(6)]]}))
    assert genotype_footprint(load_genotype(huge), input_size=64).bytes() > machine_memory()
    one_error_line(cli("show", str(huge)), "huge.yaml: its network", "TiB", "more than this machine's")
    one_error_line(cli("cost", str(genotype_file), "--detector", "ssdlite", "--num-classes", "10000000"),
                   "tiny.yaml: a detector of 10000000 classes", "would allocate about")
    one_error_line(cli("data", "demo", "--out", str(tmp_path / "demo"), "--image-size", "100000"),
                   "--image-size 100000: rendering one demo image would allocate about")
    assert not (tmp_path / "demo").exists()


def test_a_checkpoint_spec_that_would_not_fit_is_refused_before_building(tmp_path: Path) -> None:
    from netadapt.detectors.model import DETECTOR_FORMAT, DetectorSpec, load_detector
    from netadapt.errors import ConfigError
    from netadapt.genotype import genotype_from_data

    spec = DetectorSpec("ssdlite", "mobilenetv2", genotype_from_data(STAGES), ["background", "a"], 64, {}).to_dict()
    path = tmp_path / "model.pth"
    torch.save({"format": DETECTOR_FORMAT, "spec": spec | {"input_size": 200000}, "state_dict": {}}, path)
    with pytest.raises(ConfigError, match=r"model.pth: its spec: a detector of 2 classes at input 200000×200000 .* would allocate about"):
        load_detector(path)


def test_a_training_input_size_that_would_not_fit_is_refused_before_anything_runs(genotype_file: Path, tmp_path: Path) -> None:
    data = generate_demo_dataset(tmp_path / "data", num_train=1, num_val=1, image_size=64)
    one_error_line(cli("train", str(genotype_file), "--data", str(data), "--weights", "none", "--set", "train.input_size=100000",
                       "--out", str(tmp_path / "run")), "train.input_size=100000, train.batch_size=", "would allocate about")
    one_error_line(cli("search", "--data", str(data), "--weights", "none", "--set", "search.input_size=100000", "--out", str(tmp_path / "s")),
                   "search.input_size=100000, search.batch_size=", "would allocate about")
    assert not (tmp_path / "run").exists() and not (tmp_path / "s").exists()


# Items 18 and 20: signals after the last iteration, SIGTERM to the process group, a worker killed by the OOM killer.
def test_a_signal_after_the_last_iteration_is_one_line_that_says_so(tmp_path: Path) -> None:
    from netadapt.engine.signals import after_last_iteration
    from netadapt.errors import Interrupted

    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as raised, after_last_iteration(tmp_path / "last.pth", doing="the final evaluation"):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises here, at once
    assert raised.value.exit_code == 143
    assert str(raised.value) == (f"SIGTERM: stopped after the last iteration, during the final evaluation; {tmp_path / 'last.pth'} "
                                 "holds the last iteration: --resume does the final evaluation again")
    assert signal.getsignal(signal.SIGTERM) is handler


def test_a_dead_loader_worker_is_one_line_with_the_checkpoint_to_resume_from(tmp_path: Path) -> None:
    from netadapt.engine.loop import Loop
    from netadapt.errors import RunError

    saved: list[int] = []

    def batches(epoch: int, first: int):
        for index in range(first, 2):
            if epoch == 1 and index == 1:
                raise RuntimeError("DataLoader worker (pid 4242) is killed by signal: Killed. ")
            yield index

    loop = Loop(total=6, iterations_per_epoch=2, batches=batches, progress=False, save=saved.append, checkpoint_every=2,
                checkpoint_path=tmp_path / "last.pth")
    with pytest.raises(RunError) as raised:
        loop.run(lambda batch, at: {"loss": 1.0})
    assert saved == [2] and str(raised.value).startswith(
        "train: a data loader worker died at iteration 4 of 6 (RuntimeError: DataLoader worker (pid 4242) is killed by signal: Killed; "
        f"the kernel's out-of-memory killer sends SIGKILL): the last checkpoint, {tmp_path / 'last.pth'} at iteration 2: continue from it with --resume")


def _training(genotype_file: Path, data: Path, run: Path) -> subprocess.Popen:
    """A long tiny training with two loader workers, in a process group of its own (as a job manager starts it)."""
    return subprocess.Popen(
        [NETADAPT, "train", str(genotype_file), "--data", str(data), "--weights", "none", "--batch-size", "2", "--epochs", "200",
         "--set", "train.input_size=64", "--set", "train.workers=2", "--set", "train.log_every=1", "--set", "train.checkpoint_every=1",
         "--quiet", "--out", str(run)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for_iterations(run: Path, process: subprocess.Popen, count: int = 2) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        log = run / "log.jsonl"
        if log.is_file() and len(log.read_text().splitlines()) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"no {count} iterations logged: {process.poll()}")


@needs_script
@pytest.mark.slow  # two tiny trainings with workers: about 20 s on 2 cores
@pytest.mark.parametrize("fault", ["SIGTERM to the group", "SIGKILL to a worker"])
def test_loader_workers_dying_or_the_group_terminated_end_in_one_line(fault: str, genotype_file: Path, tmp_path: Path) -> None:
    data = generate_demo_dataset(tmp_path / "data", num_train=6, num_val=1, image_size=64)
    run = tmp_path / "run"
    process = _training(genotype_file, data, run)
    try:
        _wait_for_iterations(run, process)
        if fault == "SIGTERM to the group":
            os.killpg(process.pid, signal.SIGTERM)  # what timeout, scancel and job managers send
        else:
            workers = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
            assert workers, "no loader workers"
            os.kill(int(workers[-1]), signal.SIGKILL)  # what the out-of-memory killer sends
        _, stderr = process.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr[-3000:]
    if fault == "SIGTERM to the group":
        assert process.returncode == 143 and lines[0].startswith("error: SIGTERM: stopped at iteration "), stderr
        assert f"checkpoint {run / 'last.pth'} written" in lines[0] and (run / "last.pth").is_file()
    else:
        assert process.returncode == 2 and "a data loader worker died at iteration" in lines[0], stderr
        assert "killed by signal: Killed" in lines[0] and f"resume from {run / 'last.pth'} (iteration " in lines[0]


# Item 19: one line means one line; advice names options the command has; a refused eval leaves no folder.
def test_control_characters_in_paths_cannot_split_or_colour_the_error_line(tmp_path: Path) -> None:
    hostile = tmp_path / "bad\nline\x1b[31mred.yaml"
    hostile.write_text("stages: [\n")
    line = one_error_line(cli("show", str(hostile)), "bad\\nline\\x1b[31mred.yaml", "malformed YAML")
    assert "\x1b" not in line


def test_control_characters_in_paths_never_reach_the_terminal_on_stdout(tmp_path: Path) -> None:
    out = tmp_path / "demo\x1b]0;pwned\x07"
    result = cli("data", "demo", "--out", str(out), "--train", "1", "--val", "1", "--image-size", "64")
    assert result.returncode == 0 and (out / "train.json").is_file(), result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout and "demo\\x1b]0;pwned\\x07" in result.stdout


def test_library_warnings_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from netadapt.cli.main import _show_warning

    _show_warning(UserWarning("The default weights\n  are deprecated"), UserWarning, "/site-packages/torchvision/models/_utils.py", 135)
    assert capsys.readouterr().err == "warning: The default weights are deprecated (UserWarning, _utils.py:135)\n"


def test_adapts_refusal_names_no_force_option(tmp_path: Path) -> None:
    from netadapt.errors import RunError

    run = tmp_path / "search"
    with run_directory(run, resume=False):
        save_torch_atomic({"iteration": 1}, run / "last.pth")
    with pytest.raises(RunError, match=r"continue it with --resume or choose another --out$"):
        with run_directory(run, resume=False, force_option=None):
            pass
    with pytest.raises(RunError, match="start over with --force"):
        with run_directory(run, resume=False):
            pass


def test_a_refused_eval_leaves_no_eval_folder(tmp_path: Path) -> None:
    data = generate_demo_dataset(tmp_path / "data", num_train=1, num_val=1, image_size=64)
    (tmp_path / "run").mkdir()
    checkpoint = tmp_path / "run" / "model.pth"
    checkpoint.write_bytes(b"not a checkpoint")
    one_error_line(cli("eval", str(checkpoint), "--data", str(data)), "model.pth: not a readable detector checkpoint")
    assert sorted(os.listdir(tmp_path / "run")) == ["model.pth"]


def test_training_on_a_val_split_without_boxes_is_refused_before_it_starts(genotype_file: Path, tmp_path: Path) -> None:
    import json

    data = generate_demo_dataset(tmp_path / "data", num_train=1, num_val=1, image_size=64)
    val = json.loads((data / "val.json").read_text())
    (data / "val.json").write_text(json.dumps(val | {"annotations": []}))
    one_error_line(cli("train", str(genotype_file), "--data", str(data), "--weights", "none", "--set", "train.input_size=64",
                       "--out", str(tmp_path / "run")), "val.json: has no annotated boxes")
    assert not (tmp_path / "run").exists()


def test_a_run_directory_written_before_manifests_is_adopted(tmp_path: Path) -> None:
    """Runs that an earlier netadapt wrote (no manifest) are resumed as before, with a warning; a folder whose last.pth
    is not a netadapt run's stays foreign."""
    from netadapt.errors import NetadaptWarning

    legacy = tmp_path / "legacy"
    legacy.mkdir()
    torch.save({"format": "netadapt-train", "iteration": 2}, legacy / "last.pth")
    (legacy / "log.jsonl").write_text('{"iteration": 2, "loss": 1.5}\n')
    (legacy / ".last.pth.k2j4h1x0.tmp").write_bytes(b"half a checkpoint")
    with pytest.warns(NetadaptWarning, match="netadapt-train run directory written before netadapt listed its files; adopted"):
        with run_directory(legacy, resume=True):
            assert not (legacy / ".last.pth.k2j4h1x0.tmp").exists()
    with pytest.raises(OutputError, match="belongs to the netadapt run"):
        check_outputs([legacy / "log.jsonl"])
    mine = tmp_path / "mine"
    mine.mkdir()
    torch.save({"weights": torch.zeros(2)}, mine / "last.pth")
    with pytest.raises(OutputError, match=r"holds files netadapt did not write \('last.pth'"):
        with run_directory(mine, resume=True):
            pass


@needs_script
@pytest.mark.slow  # a tiny training whose final evaluation is interrupted: about 15 s on 2 cores
def test_sigterm_during_the_final_evaluation_is_one_line_and_resume_finishes(genotype_file: Path, tmp_path: Path) -> None:
    data = generate_demo_dataset(tmp_path / "data", num_train=4, num_val=120, image_size=64)
    run = tmp_path / "run"
    command = [NETADAPT, "train", str(genotype_file), "--data", str(data), "--weights", "none", "--batch-size", "2", "--epochs", "1",
               "--set", "train.input_size=64", "--set", "train.workers=0", "--set", "train.eval_batch_size=1", "--quiet", "--out", str(run)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run / "model.pth").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # model.pth is written after the last iteration, before the evaluation
    assert process.poll() is None, "the training ended before its evaluation could be interrupted"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    lines = stderr.strip().splitlines()
    assert process.returncode == 143 and len(lines) == 1, stderr[-3000:]
    assert lines[0] == (f"error: SIGTERM: stopped after the last iteration, during the final BatchNorm re-estimation and evaluation; "
                        f"{run / 'last.pth'} holds the last iteration: --resume does the final BatchNorm re-estimation and evaluation again")
    assert not (run / "metrics.json").exists()
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0 and (run / "metrics.json").is_file(), resumed.stderr


def test_remove_outputs_deletes_only_what_netadapt_wrote_and_never_follows_a_link(tmp_path: Path) -> None:
    from netadapt.files import record_output, remove_outputs

    images = tmp_path / "my-images"
    images.mkdir()
    (images / "a.jpg").write_bytes(b"a picture")
    rungs = tmp_path / "run" / "rungs"
    write_text_atomic(rungs / "0" / "score.json", "{}\n")
    record_output(rungs / "0" / "images")
    (rungs / "0" / "images").symlink_to(images, target_is_directory=True)
    (rungs / "1").mkdir()
    (rungs / "1" / "notes.txt").write_text("mine\n")
    assert remove_outputs(rungs) == [rungs / "1" / "notes.txt"]
    assert not (rungs / "0").exists() and (rungs / "1" / "notes.txt").is_file() and (images / "a.jpg").is_file()
