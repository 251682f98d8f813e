"""Genotype parsing, validation (one clear message naming file and position) and YAML round trip."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from netadapt.errors import GenotypeError, NetadaptWarning
from netadapt.genotype import DEFAULT_BASE, Op, genotype_from_data, load_genotype, parse_op, save_genotype


def test_paper_list_format_is_read_as_written(paper_yaml: Path) -> None:
    genotype = load_genotype(paper_yaml)
    assert genotype.input_size == 320
    assert [stage.depth for stage in genotype.stages] == [1, 4, 4, 4, 4, 4, 1]
    assert genotype.stages[1].to_list() == [[16, 24], ["k7_e6", "k5_e6", "k3_e6", "k3_e3"], 2]
    assert genotype.stages[5].ops[2] == Op(kernel=7, expansion=3)


def test_bare_stage_list_and_yaml_round_trip(tmp_path: Path, mobilenetv2_yaml: Path) -> None:
    genotype = load_genotype(mobilenetv2_yaml)
    bare = tmp_path / "bare.yaml"
    bare.write_text("- [[32, 16], [k3_e1], 1]\n- [[16, 24], [k3_e6, skip], 2]\n")
    assert [op.name for op in load_genotype(bare).stages[1].ops] == ["k3_e6", "skip"]
    out = tmp_path / "out.yaml"
    save_genotype(genotype, out)
    assert load_genotype(out) == genotype
    assert "  - [[16, 24], [k3_e6, k3_e6], 2]" in out.read_text()


@pytest.mark.parametrize(
    ("text", "reason"),
    [("k4_e6", "odd"), ("k3_e0", "expansion"), ("conv", "unknown op"), ("k99_e6", "kernel"), (3, "string")],
)
def test_bad_op_strings(text: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_op(text)


BAD_GENOTYPES = {
    "malformed": ("stages: [[[32, 16], [k3_e1], 1]\n", "malformed YAML at line"),
    "no_stages": ("base: mobilenetv2\n", "missing 'stages'"),
    "empty": ("stages: []\n", "non-empty list"),
    "not_three": ("stages:\n  - [[32, 16], [k3_e1]]\n", "stage 1: expected [[c_in, c_out], [ops], stride]"),
    "unknown_op": ("stages:\n  - [[32, 16], [k3_e1], 1]\n  - [[16, 24], [k3_e6, k4_e6], 2]\n", "stage 2, op 2: unknown op 'k4_e6'"),
    "zero_expansion": ("stages:\n  - [[32, 16], [k3_e0], 1]\n", "stage 1, op 1: unknown op 'k3_e0'"),
    "conv_op": ("stages:\n  - [[32, 16], [conv], 1]\n", "stage 1, op 1: unknown op 'conv'"),
    "skip_first": ("stages:\n  - [[32, 16], [skip, k3_e6], 1]\n", "stage 1, op 1: 'skip' cannot be a stage's first op"),
    "chain": ("stages:\n  - [[32, 16], [k3_e1], 1]\n  - [[24, 32], [k3_e6], 2]\n", "stage 2: c_in 24 does not match the previous stage's c_out 16"),
    "stride": ("stages:\n  - [[32, 16], [k3_e1], 3]\n", "stage 1: stride must be 1 or 2"),
    "negative": ("stages:\n  - [[32, -16], [k3_e1], 1]\n", "stage 1: c_out -16 is not in"),
    "absurd": ("stages:\n  - [[32, 1000000000], [k3_e1], 1]\n", "stage 1: c_out 1000000000 is not in"),
}


@pytest.mark.parametrize("kind", sorted(BAD_GENOTYPES))
def test_bad_genotype_files_name_file_and_position(tmp_path: Path, kind: str) -> None:
    text, message = BAD_GENOTYPES[kind]
    path = tmp_path / f"{kind}.yaml"
    path.write_text(text)
    with pytest.raises(GenotypeError) as error:
        load_genotype(path)
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_file_is_a_genotype_error(tmp_path: Path) -> None:
    with pytest.raises(GenotypeError, match="cannot read genotype file"):
        load_genotype(tmp_path / "nope.yaml")


def test_with_ops_changes_depth_and_validates(mobilenetv2_yaml: Path) -> None:
    genotype = load_genotype(mobilenetv2_yaml)
    grown = genotype.with_ops([list(stage.ops) + [Op(5, 3)] for stage in genotype.stages])
    assert [stage.depth for stage in grown.stages] == [2, 3, 4, 5, 4, 4, 2]
    with pytest.raises(GenotypeError, match="first op"):
        genotype.with_ops([[Op()] for _ in genotype.stages])


def test_metadata_types_are_checked() -> None:
    with pytest.raises(GenotypeError, match="field 'input_size'"):
        genotype_from_data({"input_size": "big", "stages": [[[32, 16], ["k3_e1"], 1]]}, source="x.yaml")


def test_squeeze_excitation_hardswish_and_fractional_expansions() -> None:
    op = parse_op("k3_e2.3_se_hs")
    assert op == Op(kernel=3, expansion=2.3, se=True, hswish=True) and op.name == "k3_e2.3_se_hs"
    assert parse_op("k5_e6_hs") == Op(5, 6, hswish=True) and parse_op("k5_e3_se").name == "k5_e3_se"
    assert parse_op("k5_e6.0").name == "k5_e6" and isinstance(parse_op("k5_e6.0").expansion, int)
    assert parse_op("k3_e0.25") == Op(3, 0.25)  # below 1: a narrower ResNet block (netadapt-resnet)
    genotype = genotype_from_data({"stages": [[[16, 80], ["k3_e6_hs", "k3_e2.5_hs", "skip"], 2]]})
    assert genotype_from_data(genotype.to_dict()) == genotype
    for text, reason in [("k3_e2.345", "unknown op"), ("k3_e6_hs_se", "unknown op"), ("k3_e16.5", "expansion"), ("k3_e6_sq", "unknown op")]:
        with pytest.raises(ValueError, match=reason):
            parse_op(text)


def test_a_genotype_owns_its_metadata() -> None:
    """Genotype is frozen: a genotype made from another never shares its ``extra`` dict (derive adds to it)."""
    metadata = {"search_space": "fna"}
    source = genotype_from_data({"stages": [[[32, 16], ["k3_e1"], 1]]} | metadata)
    derived = source.with_ops([[parse_op("k5_e1")]])
    derived.extra["super_depths"] = [1]
    assert source.extra == metadata == {"search_space": "fna"} and derived.extra == {"search_space": "fna", "super_depths": [1]}


def test_a_file_without_base_is_mobilenetv2_with_a_warning(tmp_path: Path) -> None:
    bare, named = tmp_path / "bare.yaml", tmp_path / "named.yaml"
    bare.write_text("- [[32, 16], [k3_e1], 1]\n")
    named.write_text("base: mobilenetv2\nstages:\n- [[32, 16], [k3_e1], 1]\n")
    with pytest.warns(NetadaptWarning, match=f"{bare}: names no base network; built by mobilenetv2"):
        assert load_genotype(bare).base == DEFAULT_BASE == "mobilenetv2"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_genotype(named)
