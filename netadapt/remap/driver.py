"""The remapping driver: which source layer feeds which target layer, and which rule copies it."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from netadapt import plugins
from netadapt.contracts import IGNORE, Ignore, LayerPath, RemapRule, check_network, module_paths
from netadapt.errors import RemapError

Rule = RemapRule


@dataclass
class RemapReport:
    """What a remap did: ``copied`` holds (target path, source path, rule name) per module."""

    copied: list[tuple[str, str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


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


def remap_network(source: nn.Module, target: nn.Module, *, rules: plugins.Registry[Rule] | None = None) -> RemapReport:
    """Fill ``target``'s tensors from ``source`` (both built by the same base network plugin).

    Both networks expose ``layer_paths`` and ``part_paths`` (see ``netadapt.bases``). Every target module owning
    parameters or buffers needs a rule; a module with none is an error naming its path and type.
    """
    rules = plugins.remap_rules() if rules is None else rules
    check_network(source), check_network(target)
    correspondence = layer_correspondence(source.layer_paths, target.layer_paths)
    # Parts outside the stages (stem, head conv, classifier) are copied as they are.
    for label, path in target.part_paths.items():
        if label not in source.part_paths:
            raise RemapError(f"target part {label!r} ({path!r}) has no counterpart in the source network's part_paths")
        correspondence.update(_module_correspondence(path, source.part_paths[label], where=f"part {label!r}"))
    report = RemapReport()
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
        try:
            source_module = source.get_submodule(source_path)
        except AttributeError:
            raise RemapError(f"target layer {path!r} ({type(module).__name__}) has no counterpart {source_path!r} in the source network") from None
        if find_rule(rules, type(source_module)) is not rule:
            raise RemapError(
                f"target layer {path!r} is a {type(module).__name__} but source layer {source_path!r} is a {type(source_module).__name__}"
            )
        try:
            rule(source_module, module)
        except RemapError as error:
            raise RemapError(f"layer {path!r} ({type(module).__name__}) from {source_path!r}: {error}") from None
        report.copied.append((path, source_path, getattr(rule, "__name__", repr(rule))))
    return report


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
