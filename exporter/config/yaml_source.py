"""YAML that remembers where each value came from, for error messages.

PyYAML's constructed objects forget their line numbers and silently keep the
last of two duplicate keys. We walk the composed node tree ourselves to keep
both: a plain value, and a table from key path to line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]


def format_path(path: Path) -> str:
    """``("targets", 3, "tls")`` -> ``targets[3].tls``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"


@dataclass
class YamlDocument:
    value: Any
    lines: dict[Path, int] = field(default_factory=dict)
    # Problems found while reading: (path, line, message).
    problems: list[tuple[Path, int, str]] = field(default_factory=list)

    def line_of(self, path: Path) -> int:
        """The line of ``path``, or of its nearest ancestor that has one."""
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)


class YamlSyntaxError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def load_yaml(text: str) -> YamlDocument:
    try:
        # The reader rejects unprintable characters (NUL, most C0 controls)
        # in its constructor, before any node has a mark.
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise YamlSyntaxError(line, f"unacceptable character #x{exc.character:04x}: {exc.reason}") from exc
    try:
        node = loader.get_single_node()
        document = YamlDocument(value=None)
        if node is not None:
            document.value = _convert(node, (), loader, document)
        return document
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        # Only PyYAML's description, never its quote of the line: the line
        # could hold a password.
        raise YamlSyntaxError(line, exc.problem or "syntax error") from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(1, "syntax error") from exc
    finally:
        loader.dispose()


def _convert(node: yaml.Node, path: Path, loader: yaml.SafeLoader, document: YamlDocument) -> Any:
    document.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        mapping: dict[Any, Any] = {}
        for key_node, value_node in _pairs(node):
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                document.problems.append((path, key_node.start_mark.line + 1, "mapping keys must be plain scalars"))
                continue
            child: Path = (*path, str(key))
            if key in mapping:
                line = key_node.start_mark.line + 1
                document.problems.append((child, line, f"duplicate key {key!r}"))
                continue
            document.lines[child] = key_node.start_mark.line + 1
            mapping[key] = _convert(value_node, child, loader, document)
        return mapping
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, index), loader, document) for index, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _pairs(node: yaml.MappingNode) -> Iterator[tuple[yaml.Node, yaml.Node]]:
    yield from node.value
