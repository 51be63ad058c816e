"""Reading the YAML and JSON a user hands in (task files, configs, prompt lists), hardened: alias bombs and keys
repeated in one mapping are refused before anything is built from them."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from diffuse_lm.errors import shorten

MAX_ALIASED_NODES = 100_000  # YAML values that aliases may add to one file: more is an alias bomb
_JSON_SPACE = re.compile(r"[ \t\n\r]*")


class AliasBomb(yaml.YAMLError):
    """YAML aliases that would expand to far more values than any task or config has."""


class BoundedYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases that would expand past :data:`MAX_ALIASED_NODES` values (an
    alias bomb) while composing, before any object is built or walked."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._seen = 0  # values composed, aliases counted at their expanded size
        self._aliased = 0
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            size = self._sizes.get(id(node), 1)
            self._seen += size
            self._aliased += size
            if self._aliased > MAX_ALIASED_NODES:
                raise AliasBomb(f"aliases expand to more than {MAX_ALIASED_NODES:,} values")
            return node
        start = self._seen
        self._seen += 1
        node = super().compose_node(parent, index)
        self._sizes[id(node)] = self._seen - start
        return node

    def construct_mapping(self, node, deep=False):
        """Refuse a key given twice in one mapping (YAML keeps the last silently; a merge ``<<`` may still
        be overridden, as YAML says)."""
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                if (key_node.tag, key_node.value) in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {shorten(key_node.value)}", key_node.start_mark
                    )
                seen.add((key_node.tag, key_node.value))
        return super().construct_mapping(node, deep)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object whose keys are all different (JSON parsers keep the last of a repeated key silently)."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {shorten(key)}")
        seen.add(key)
    return dict(pairs)


def loads_json(text: str) -> Any:
    """``json.loads`` that refuses a key repeated in one object (a ``ValueError``)."""
    return json.loads(text, object_pairs_hook=_unique_keys)


def bounded_yaml_load(text: str) -> Any:
    """``yaml.safe_load`` that refuses alias bombs (:class:`yaml.YAMLError`) before building anything: for
    every YAML file a user hands in (task files, configs, prompt lists)."""
    return yaml.load(text, Loader=BoundedYamlLoader)


def json_item_lines(text: str) -> list[int]:
    """The line each item of a JSON array starts on (``text`` is known to be a valid array)."""
    decoder, lines, line, seen = json.JSONDecoder(), [], 1, 0
    i = _JSON_SPACE.match(text, text.index("[") + 1).end()
    while text[i] != "]":
        line, seen = line + text.count("\n", seen, i), i
        lines.append(line)
        _, i = decoder.raw_decode(text, i)
        i = _JSON_SPACE.match(text, i).end()
        i = _JSON_SPACE.match(text, i + (text[i] == ",")).end()
    return lines


def yaml_item_lines(text: str) -> list[int]:
    """The line each item of a YAML sequence starts on (``text`` is known to be a valid sequence)."""
    return [node.start_mark.line + 1 for node in yaml.compose(text, Loader=BoundedYamlLoader).value]


def yaml_problem(e: yaml.YAMLError) -> str:
    """Where and what: ``line 3, column 1: duplicate key 'lr'``."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem
