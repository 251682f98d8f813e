"""The remapping driver: which source layer feeds which target layer, and which rule copies it."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

from torch import nn

from netadapt import plugins
from netadapt.contracts import IGNORE, Ignore, LayerPath, RemapRule, check_network, module_paths
from netadapt.errors import RemapError
from netadapt.remap.preserve import check_mode, importance_sorted, inserted_layers, narrowed_layers, start_as_identity

Rule = RemapRule


@dataclass
class RemapReport:
    """What a remap did: ``copied`` holds (target path, source path, rule name) per module. Under ``preserve``:
    ``identity`` lists the inserted layers that start as the identity, ``copied_inserted`` those that could not
    (not residual: FNA's copy), ``sorted_source_layers`` the source layers whose channels were sorted."""

    copied: list[tuple[str, str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    mode: str = "fna"
    identity: list[str] = field(default_factory=list)
    copied_inserted: list[str] = field(default_factory=list)
    sorted_source_layers: int = 0


def find_rule(rules: plugins.Registry[Rule], module_type: type) -> Rule | Ignore | None:
    """The rule of the most specific registered class in ``module_type``'s hierarchy."""
    for cls in module_type.__mro__:
        if cls in rules:
            return rules.get(cls)
    return None


def layer_correspondence(source_paths: list[list[LayerPath]], target_paths: list[list[LayerPath]]) -> dict[str, str]:
    """Eq. 1: in every stage, target layer i takes source layer f(i) = min(i, l).

    ``l`` is the number of source layers in the stage; ``skip`` layers (``None`` paths) are no
    layers, so a stage with skips counts only its real blocks. A layer of several modules takes
    the source layer's modules one by one, in order.
    """
    if len(source_paths) != len(target_paths):
        raise RemapError(f"source has {len(source_paths)} stages, target has {len(target_paths)}: not the same family")
    mapping: dict[str, str] = {}
    for number, (source_stage, target_stage) in enumerate(zip(source_paths, target_paths), start=1):
        sources = [path for path in source_stage if path is not None]
        targets = [path for path in target_stage if path is not None]
        if targets and not sources:
            raise RemapError(f"stage {number}: the source stage has no layers to copy from")
        for i, path in enumerate(targets):
            mapping.update(_module_correspondence(path, sources[min(i, len(sources) - 1)], where=f"stage {number}"))
    return mapping


def _module_correspondence(target: LayerPath, source: LayerPath, *, where: str) -> dict[str, str]:
    """Target module path → source module path of one layer or part, several modules taken one by one."""
    targets, sources = module_paths(target), module_paths(source)
    if len(targets) != len(sources):
        raise RemapError(f"{where}: target layer {target!r} has {len(targets)} modules, its source layer {source!r} {len(sources)}")
    return dict(zip(targets, sources))


def remap_network(source: nn.Module, target: nn.Module, *, rules: plugins.Registry[Rule] | None = None, mode: str = "fna") -> RemapReport:
    """Fill ``target``'s tensors from ``source`` (both built by the same base network plugin).

    Both networks expose ``layer_paths`` and ``part_paths`` (see ``netadapt.bases``). Every target module owning
    parameters or buffers needs a rule; a module with none is an error naming its path and type. ``mode``:
    ``fna`` (Section 2.1, the paper's copy rules) or ``preserve`` (:mod:`netadapt.remap.preserve`: inserted
    layers start as the identity, narrower layers keep their most important channels).
    """
    rules = plugins.remap_rules() if rules is None else rules
    check_network(source), check_network(target)
    report = RemapReport(mode=check_mode(mode))
    correspondence = layer_correspondence(source.layer_paths, target.layer_paths)
    # Parts outside the stages (stem, head conv, classifier) are copied as they are.
    for label, path in target.part_paths.items():
        if label not in source.part_paths:
            raise RemapError(f"target part {label!r} ({path!r}) has no counterpart in the source network's part_paths")
        correspondence.update(_module_correspondence(path, source.part_paths[label], where=f"part {label!r}"))
    # preserve: a narrower layer is filled from its source layer with the hidden channels sorted by importance.
    narrowed = narrowed_layers(source, target, correspondence) if mode == "preserve" else {}
    sorted_source, report.sorted_source_layers = importance_sorted(source, set(narrowed.values())) if narrowed else (source, 0)
    for path, module in target.named_modules():
        if not _owns_tensors(module):
            continue
        rule = find_rule(rules, type(module))
        if rule is None:
            raise RemapError(
                f"no remap rule for layer {path!r} of type {type(module).__module__}.{type(module).__qualname__}; "
                "register one with the register_remap_rules hook (or register the type as netadapt.remap.IGNORE)"
            )
        if rule is IGNORE:
            report.ignored.append(path)
            continue
        source_path = _source_path(path, correspondence)
        donor = sorted_source if any(path == layer or path.startswith(layer + ".") for layer in narrowed) else source
        try:
            source_module = donor.get_submodule(source_path)
        except AttributeError:
            raise RemapError(f"target layer {path!r} ({type(module).__name__}) has no counterpart {source_path!r} in the source network") from None
        if find_rule(rules, type(source_module)) is not rule:
            raise RemapError(
                f"target layer {path!r} is a {type(module).__name__} but source layer {source_path!r} is a {type(source_module).__name__}"
            )
        try:
            _apply(rule, source_module, module, mode)
        except RemapError as error:
            raise RemapError(f"layer {path!r} ({type(module).__name__}) from {source_path!r}: {error}") from None
        report.copied.append((path, source_path, getattr(rule, "__name__", repr(rule))))
    if mode == "preserve":
        for layer in inserted_layers(source.layer_paths, target.layer_paths):
            (report.identity if start_as_identity(target, layer) else report.copied_inserted).append(str(layer))
    return report


def _apply(rule: Rule, source: nn.Module, target: nn.Module, mode: str) -> None:
    """``rule(source, target)``, with ``mode=`` when the rule takes it (plugins' rules may ignore the mode)."""
    if _takes_mode(rule):
        rule(source, target, mode=mode)
    else:
        rule(source, target)


def _takes_mode(rule: Rule) -> bool:
    try:
        parameters = inspect.signature(rule).parameters
    except (TypeError, ValueError):
        return False
    return "mode" in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _owns_tensors(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False)) or any(
        tensor is not None for _, tensor in module.named_buffers(recurse=False)
    )


def _source_path(path: str, correspondence: dict[str, str]) -> str:
    """Replace the longest prefix of ``path`` that is a target layer by its source layer."""
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in correspondence:
            return ".".join([correspondence[prefix], *parts[end:]])
    return path
