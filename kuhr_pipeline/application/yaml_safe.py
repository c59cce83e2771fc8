"""Parsing untrusted YAML in bounded time and memory.

Specs are small, hand-written files: no anchors or aliases (the "billion laughs" bomb), no
deep nesting, no tags beyond plain scalars, lists and mappings, no key given twice, and a size limit.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_SPEC_BYTES = 256 * 1024
MAX_DEPTH = 12


class _NoAliasLoader(yaml.SafeLoader):
    """A SafeLoader that refuses anchors, aliases and deep nesting while composing."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.YAMLError(f"anchors and aliases are not allowed (line {event.start_mark.line + 1})")
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.YAMLError(f"nested deeper than {MAX_DEPTH} levels (line {event.start_mark.line + 1})")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """A key given twice is an error (PyYAML keeps the last one: `claims: all` then
        `claims: entry` would quietly change what is delivered)."""
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if duplicate:
                raise yaml.YAMLError(f"key '{key}' is given twice (line {key_node.start_mark.line + 1})")
        return super().construct_mapping(node, deep)


def parse_yaml(text: str) -> Any:
    """Parse one YAML document; raises yaml.YAMLError with a position on anything unsafe."""
    return yaml.load(text, Loader=_NoAliasLoader)
