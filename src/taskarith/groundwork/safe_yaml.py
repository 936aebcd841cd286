"""YAML for configs and overrides: the safe loader, without anchors, aliases or duplicate keys, and with
1e-4 read as a float."""

from __future__ import annotations

import re
from typing import Any

import yaml

from .errors import TaskarithError, clip, first_line, quote


class _Loader(yaml.SafeLoader):
    """The safe loader without anchors and aliases: a few hundred bytes of nested aliases expand to gigabytes
    ("billion laughs"), and a config has no need to repeat itself."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, f"line {event.start_mark.line + 1}: anchors and aliases are not allowed",
                event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        # the last of two equal keys would win without a word
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"line {key_node.start_mark.line + 1}: duplicate key {quote(key)}", key_node.start_mark)
            if isinstance(key, (str, int, float, bool)):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 reads 1e-4 (no dot) as a string; strict types would then refuse the usual way to write a rate
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """The YAML document in `text`, read with the safe loader below."""
    return yaml.load(text, Loader=_Loader)


def load_yaml_value(text: str, where: str) -> Any:
    """One value written as YAML on a command line (0.2 a number, total a string), or a one-line
    TaskarithError: "WHERE: the value is not valid YAML (why)"."""
    try:
        return load_yaml(text)
    # the parser recurses once per nesting level; an integer of over 4,300 digits is a ValueError
    except (yaml.YAMLError, RecursionError, ValueError) as e:
        raise TaskarithError(f"{where}: the value is not valid YAML ({clip(first_line(e))})") from None

