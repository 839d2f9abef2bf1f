"""Reading campaign text: a strict YAML loader, and pydantic's errors as one line each.

Apart from ``orchestrator.spec.loader`` so that a reader of a stored file's few fields
(``orchestrator.spec.stored``) uses the same YAML rules and error lines without loading the whole
campaign schema.
"""

from __future__ import annotations

from typing import Any

import yaml

from orchestrator.errors import SpecError

MAX_FILE_BYTES = 1_000_000


class CrossFieldProblems(ValueError):
    """Several problems found across fields; each line already names its field path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


MAX_DEPTH = 40


class _Refused(yaml.YAMLError):
    """A YAML construct campaign files do not allow; the message is the whole problem line."""


class _CampaignLoader(yaml.SafeLoader):
    """Safe YAML, stricter: no aliases (no alias bombs), bounded nesting, no duplicate keys."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not allowed in "
                           "a campaign file; write the values out")
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _Refused(f"line {mark.line + 1}: nested deeper than {MAX_DEPTH} levels; "
                               "a campaign file needs a few")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if node.tag not in PLAIN_TAGS:
            raise _Refused(_tag_problem(node))
        # PyYAML's scalar constructors let Python's own errors out for values such as
        # `2020-13-45` (a date), `!!int abc` or `!!bool x`; each becomes one problem line.
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError) as err:
            raise _Refused(f"line {node.start_mark.line + 1}: {node.tag.rsplit(':', 1)[-1]} value cannot be read "
                           f"({type(err).__name__}: {err}); quote it to make it text, or correct it") from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):  # e.g. `!!set x`: PyYAML's own error says what it expected
            return super().construct_mapping(node, deep=deep)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise _Refused(f"line {key_node.start_mark.line + 1}: key {key!r} appears twice in one mapping; "
                               "keep one")
            if isinstance(key, (str, int, float, bool)):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


# Text, numbers, true/false, null, lists, mappings, and dates (what an unquoted 2024-05-01 reads as). Not
# !!binary (bytes, which pydantic would decode into a name or a setting), !!set, !!omap or !!pairs (sets and
# tuples no field takes), nor a language's own tags: SafeLoader has no constructor for those.
PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{kind}" for kind in
                       ("str", "int", "float", "bool", "null", "seq", "map", "timestamp"))


def _tag_problem(node: yaml.Node) -> str:
    """The one line for a node whose tag is not in ``PLAIN_TAGS``."""
    line = f"line {node.start_mark.line + 1}"
    if node.tag == "tag:yaml.org,2002:merge":
        return f"{line}: YAML merge keys (<<) are not allowed in a campaign file; write the keys out"
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    what = {"!!binary": " (bytes)", "!!set": " (a set)", "!!omap": " (pairs)", "!!pairs": " (pairs)"}.get(tag, "")
    return (f"{line}: the YAML tag {tag}{what} is not allowed in a campaign file; write the value as plain "
            "text, a number, a list or a mapping, without a tag")


def parse_yaml_text(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=_CampaignLoader)  # noqa: S506 - a SafeLoader subclass
    except _Refused as err:
        raise SpecError([one_line(str(err))], source) from None
    except RecursionError:
        raise SpecError([f"nested deeper than {MAX_DEPTH} levels; a campaign file needs a few"], source) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SpecError([one_line(f"{where}YAML syntax error: {problem}; check indentation, colons and quotes")], source) from None
    if not isinstance(data, dict):
        raise SpecError(["the file must be a YAML mapping with fields such as name:, budget:, parameters:"], source)
    return data


def describe_error(error: dict[str, Any], data: Any) -> list[str]:
    """One or more lines for one pydantic error: ``path: problem; fix``."""
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, CrossFieldProblems):
        return cause.problems
    path = _path(error["loc"], data)
    kind, message = error["type"], error["msg"]
    if kind == "missing":
        return [f"{path}: required field is missing; add it"]
    if kind == "extra_forbidden":
        return [f"{path}: unknown field; remove it or check its spelling"]
    if kind == "value_error":
        return [f"{path}: {message.removeprefix('Value error, ')}"]
    return [f"{path}: {message[0].lower()}{message[1:]}, got {_short(error.get('input'))}; correct the value"]


def _path(loc: tuple[Any, ...], data: Any) -> str:
    """``('parameters', 0, 'bounds')`` -> ``parameters[0](red).bounds``; tagged-union noise is dropped."""
    parts, node = [], data
    for key in loc:
        if isinstance(key, int):
            name = node[key].get("name") if isinstance(node, list) and key < len(node) and isinstance(node[key], dict) else None
            parts.append(f"[{key}]" + (f"({name})" if isinstance(name, str) else ""))
            node = node[key] if isinstance(node, list) and key < len(node) else None
        else:
            parts.append(("." if parts else "") + str(key))
            node = node.get(key) if isinstance(node, dict) else None
    return "".join(parts) or "campaign"


def one_line(text: str) -> str:
    """Escape line breaks and other unprintable characters (from keys or names in the file) so a problem stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
