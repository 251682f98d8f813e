"""The remapping driver: which source layer feeds which target layer, and which rule copies it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from netadapt import plugins
from netadapt.errors import RemapError

Rule = Callable[[nn.Module, nn.Module], None]


class _Ignore:
    """Register a module type with this rule to leave its tensors alone on purpose."""

    def __repr__(self) -> str:
        return "netadapt.remap.IGNORE"


IGNORE = _Ignore()


@dataclass
class RemapReport:
    """What a remap did: ``copied`` holds (target path, source path, rule name) per module."""

    copied: list[tuple[str, str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def find_rule(rules: plugins.Registry[Rule], module_type: type) -> Rule | _Ignore | None:
    """The rule of the most specific registered class in ``module_type``'s hierarchy."""
    for cls in module_type.__mro__:
        if cls in rules:
            return rules.get(cls)
    return None


def layer_correspondence(source_paths: list[list[str | None]], target_paths: list[list[str | None]]) -> dict[str, str]:
    """Eq. 1: in every stage, target layer i takes source layer f(i) = min(i, l).

    ``l`` is the number of source layers in the stage; ``skip`` layers (``None`` paths) are no
    layers, so a stage with skips counts only its real blocks.
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
            mapping[path] = sources[min(i, len(sources) - 1)]
    return mapping


def remap_network(source: nn.Module, target: nn.Module, *, rules: plugins.Registry[Rule] | None = None) -> RemapReport:
    """Fill ``target``'s tensors from ``source`` (both built by the same base network plugin).

    Both networks expose ``layer_paths`` and ``part_paths`` (see ``netadapt.bases``). Every target module owning
    parameters or buffers needs a rule; a module with none is an error naming its path and type.
    """
    rules = plugins.remap_rules() if rules is None else rules
    correspondence = layer_correspondence(source.layer_paths, target.layer_paths)
    # Parts outside the stages (stem, head conv, classifier) are copied as they are.
    correspondence.update({path: source.part_paths[label] for label, path in target.part_paths.items()})
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
