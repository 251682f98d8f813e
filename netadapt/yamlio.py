"""YAML read as data, with aliases bounded: what every YAML file netadapt reads goes through.

PyYAML's ``safe_load`` builds no Python objects but expands aliases: ten nested anchors of ten
aliases each (the "billion laughs") or a 1 KB genotype whose ``notes: *big`` repeats a large
collection are accepted, and the run blows up later, in ``dataclasses.asdict`` at the first
checkpoint. :class:`BoundedLoader` is ``SafeLoader`` refusing, while it composes the document and
before anything is built, an alias to a collection (a mapping or a list) and more than
:data:`MAX_ALIASES` aliases of scalars. netadapt's own files use no aliases.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_ALIASES = 100


class BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases to collections and more than :data:`MAX_ALIASES` aliases."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            self.aliases += 1
            if isinstance(target, yaml.CollectionNode):
                raise yaml.composer.ComposerError(
                    None, None, f"alias *{event.anchor} repeats a {'mapping' if isinstance(target, yaml.MappingNode) else 'list'}; "
                    "netadapt refuses aliases to collections (write the values out)", event.start_mark,
                )
            if self.aliases > MAX_ALIASES:
                raise yaml.composer.ComposerError(None, None, f"more than {MAX_ALIASES} aliases", event.start_mark)
        return super().compose_node(parent, index)


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` with :class:`BoundedLoader`; errors are ``yaml.YAMLError`` as PyYAML's."""
    return yaml.load(text, Loader=BoundedLoader)  # noqa: S506 - a SafeLoader subclass
