"""The references generated from the code (``netadapt config``, ``netadapt spaces``) and their written copies in
docs/: equal, and complete (every key of every shipped config and genotype file is in them)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from netadapt import genotype
from netadapt.cli.main import app
from netadapt.config import PACKAGED_CONFIGS, SearchConfig, TrainConfig
from netadapt.jobs import reference
from netadapt.search import space
from netadapt.testing import run_netadapt

ROOT = Path(__file__).resolve().parents[1]
CONFIG_FILES = sorted((ROOT / "examples" / "configs").glob("*.yaml")) + sorted(PACKAGED_CONFIGS.glob("*.yaml"))
GENOTYPE_FILES = sorted((ROOT / "examples" / "genotypes").glob("*.yaml")) + sorted(ROOT.glob("plugins/*/netadapt_*/genotypes/*.yaml"))
REGENERATE = "regenerate: NETADAPT_DISABLE_PLUGINS=1 netadapt config > docs/config.md; NETADAPT_DISABLE_PLUGINS=1 netadapt spaces > docs/search-spaces.md"


def test_docs_config_md_is_the_output_of_netadapt_config() -> None:
    result = run_netadapt("config", env={"NETADAPT_DISABLE_PLUGINS": "1"})  # the built-in plugins' options only
    assert result.returncode == 0, result.stderr
    assert result.stdout == (ROOT / "docs" / "config.md").read_text(), REGENERATE
    assert reference.config_markdown(builtin_only=True) == result.stdout


def test_docs_search_spaces_md_is_the_built_in_spaces() -> None:
    assert reference.spaces_markdown(builtin_only=True) == (ROOT / "docs" / "search-spaces.md").read_text(), REGENERATE


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_key_of_a_shipped_config_is_in_the_reference(path: Path) -> None:
    documented = {(key.section, key.key) for key in reference.config_keys(builtin_only=True)}
    used = {(section, key) for section, values in yaml.safe_load(path.read_text()).items() for key in values}
    plugin_options = {  # strategy_options: {weight_steps_per_alpha_step: 5} → strategy_options.weight_steps_per_alpha_step
        (section, f"{key}.{option}")
        for section, values in yaml.safe_load(path.read_text()).items() for key, value in values.items() if key.endswith("_options")
        for option in value
    }
    assert used and used | plugin_options <= documented, sorted((used | plugin_options) - documented)


@pytest.mark.parametrize("path", GENOTYPE_FILES, ids=lambda path: path.name)
def test_every_key_of_a_shipped_genotype_is_in_the_reference(path: Path) -> None:
    used = set(yaml.safe_load(path.read_text()))
    assert used <= set(genotype.FIELDS), sorted(used - set(genotype.FIELDS))


def test_every_field_of_the_code_is_documented() -> None:
    """A field added to a config, the Genotype or a SearchSpace without its reference entry fails here."""
    for kind in (TrainConfig, SearchConfig):
        assert all(field.metadata.get("doc") for field in dataclasses.fields(kind)), kind
    assert {f.name for f in dataclasses.fields(genotype.Genotype)} - {"extra", "stages"} <= set(genotype.FIELDS)
    assert {f.name for f in dataclasses.fields(space.SearchSpace)} - {"extra"} == set(space.FIELDS)
    assert {"search_space", "super_depths"} <= {word.strip(",()") for word in genotype.FIELDS["(any other key)"].split()}


def test_one_section_and_json() -> None:
    result = CliRunner().invoke(app, ["config", "--section", "search", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert {row["section"] for row in rows} == {"search"}
    start = next(row for row in rows if row["key"] == "alpha_start_epoch")
    assert (start["default"], start["unit"], start["plugin"]) == (20, "epochs", "") and "1-based" in start["doc"]
    options = next(row for row in rows if row["key"] == "strategy_options")
    assert (options["type"], options["plugin"]) == ("mapping", "strategy")
    k = next(row for row in rows if row["key"] == "strategy_options.k")
    assert (k["default"], k["plugin"]) == (1, "strategy: sampled")  # declared by the plugin (options)
    unknown = CliRunner().invoke(app, ["config", "--section", "serach"])
    assert unknown.exit_code == 2 and "unknown section 'serach'" in unknown.output


def test_netadapt_spaces_lists_every_registered_space() -> None:
    result = CliRunner().invoke(app, ["spaces", "--json"])
    assert result.exit_code == 0, result.output
    spaces = {row["name"]: row for row in json.loads(result.output)}
    assert spaces["fna"]["depths"] == [1, 4, 4, 4, 4, 4, 1] and spaces["fna"]["searched_stages"] == [2, 3, 4, 5, 6]
    assert spaces["fna"]["candidates"]["2"][-1] == "skip"
    assert all("no docstring" not in row["fits"] for row in spaces.values()), spaces  # installed plugins' spaces too
