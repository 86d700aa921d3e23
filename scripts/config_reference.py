"""docs/configuration.md, made from the config model itself (policy/config.py, policy/rules.py): every key
config.yaml may hold, with its type, its default and the comment beside its field in the source. A key
cannot be missing from it, and tests/test_shipped_files.py fails when the committed file is stale.

Usage: python scripts/config_reference.py [--check]
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import io
import sys
import tokenize
import types
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "configuration.md"
sys.path.insert(0, str(ROOT))
from policy.config import Config  # noqa: E402

HEADER = """# Configuration reference

Every key `config.yaml` may hold, made by `python scripts/config_reference.py` from the config model
(`policy/config.py`, `policy/rules.py`): a key is here because the code has it, and a test fails when this
file is stale. An unknown key is an error naming its path. Environment variables override the file (see
`.env.example`); a list replaces, a mapping merges. `[]` marks a list of the mapping that follows.

| key | type | default | what it is |
|---|---|---|---|
"""


FILE_TYPES = ("ListFile", "CredentialFile")  # what the loader makes of a `file:PATH` entry


def comments(cls: type) -> dict[str, str]:
    """Field name -> the comment on its line, or on the lines just above it, in the class's source."""
    found: dict[str, str] = {}
    pending: list[str] = []
    source = inspect.getsource(cls)
    lines = source.splitlines()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        row, column = token.start
        line = lines[row - 1]
        text = token.string.lstrip("#").strip()
        if line[:column].strip():  # a trailing comment: its line's field
            name = line.split(":", 1)[0].strip()
            found[name] = " ".join([*pending, text]) if name.isidentifier() else text
            pending = []
        else:
            pending.append(text)
            if row < len(lines) and not lines[row].strip().startswith("#"):
                name = lines[row].split(":", 1)[0].strip()
                if name.isidentifier():
                    found[name] = " ".join(pending)
                pending = []
    return found


def shipped_comments(text: str) -> dict[str, str]:
    """Key path -> the comment beside it in the shipped config.yaml (`server.port`, `routes[].path`)."""
    found: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in text.splitlines():
        body, _, comment = line.partition("#")
        if not body.strip() or ":" not in body:
            continue
        indent = len(body) - len(body.lstrip(" -"))
        key = body.strip().lstrip("- ").split(":", 1)[0].strip()
        if not key.isidentifier():
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([name for _, name in stack] + [key])
        stack.append((indent, key))
        if comment.strip() and path not in found:
            found[path] = comment.strip()
    return found


SHIPPED = shipped_comments((ROOT / "config.yaml").read_text())


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):  # a file the loader read stands for a `file:PATH` string
        args = [a for a in typing.get_args(tp) if getattr(a, "__name__", "") not in FILE_TYPES]
        return " or ".join(type_name(a) for a in args)
    if origin is tuple:
        return f"list of {type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"mapping of {type_name(typing.get_args(tp)[1])}"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return " \\| ".join(f"`{m.value}`" for m in tp)
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return {int: "integer", float: "number", str: "string", bool: "boolean", type(None): "null"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        if _dataclass_in(f.type if not isinstance(f.type, str) else Any) is not None:
            return ""  # a section: its keys follow
        try:
            value = f.default_factory()
        except ValueError:  # a section that validates what must be given (auth: its key)
            return ""
        if dataclasses.is_dataclass(value):
            return ""
    else:
        return "required"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, tuple):
        return f"`[{', '.join(str(v) for v in value)}]`"
    if value == {} or value == "":
        return "`{}`" if value == {} else '`""`'
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def rows(cls: type, prefix: str = "") -> list[str]:
    hints, notes, out = typing.get_type_hints(cls), comments(cls), []
    for f in dataclasses.fields(cls):
        if not f.init or f.name.startswith("_"):
            continue
        key, tp = f"{prefix}{f.name}", hints[f.name]
        inner = _dataclass_in(tp)
        shipped = SHIPPED.get(key.replace("[]", ""), "")
        note = notes.get(f.name, "") or shipped or _docstring(inner)
        note = note.replace("|", "\\|")
        out.append(f"| `{key}` | {type_name(tp)} | {default(f)} | {note} |")
        if inner is not None:
            many = typing.get_origin(tp) in (tuple, dict)
            out += rows(inner, f"{key}{'[]' if typing.get_origin(tp) is tuple else '.*' if many else ''}.")
    return out


def _docstring(cls: type | None) -> str:
    """A config class's own docstring's first paragraph (not the signature dataclass makes up)."""
    doc = cls.__doc__ if cls is not None else None
    if not doc or doc.startswith(f"{cls.__name__}("):  # type: ignore[union-attr]
        return ""
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())


def _dataclass_in(tp: Any) -> type | None:
    """The config mapping a field holds: itself, or its list's, mapping's or optional's items."""
    if dataclasses.is_dataclass(tp):
        return typing.cast(type, tp)
    for arg in typing.get_args(tp):
        if dataclasses.is_dataclass(arg) and arg.__name__ not in FILE_TYPES:
            return typing.cast(type, arg)
    return None


def render() -> str:
    return HEADER + "\n".join(rows(Config)) + "\n"


def main() -> None:
    text = render()
    if "--check" in sys.argv:
        sys.exit(
            0
            if OUT.read_text() == text
            else "docs/configuration.md is stale: python scripts/config_reference.py"
        )
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}: {text.count(chr(10)) - HEADER.count(chr(10))} keys")


if __name__ == "__main__":
    main()
