"""The transformation pipelines of a rule set (`t:urlDecodeUni,t:lowercase`...), applied to a value with as
little work as it needs: a pipeline none of whose functions can act on the value's characters leaves it as
it is (lower-cased if the pipeline lower-cases) and does not run; the functions that run are skipped when
they cannot act on the text as it is at that point, and each result is kept under the functions that made
it, so pipelines that differ only by such functions (`utf8toUnicode` on ASCII, say) share the work."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from policy.crs.transforms import FUNCTIONS, lowercase

Plan = tuple[tuple[int, ...], frozenset[int], frozenset[int]]  # (to run, only lower-case, unchanged)
_BIT = {name: 1 << i for i, name in enumerate(sorted(FUNCTIONS))}  # function sets as int masks: cheap to hash
Done = dict[tuple[str, ...], str]  # functions applied -> the text they made (one value's)


class Pipelines:
    """Pipelines by index (`index[transforms]`), as the rules name them."""

    def __init__(self, transforms: Sequence[tuple[str, ...]]) -> None:
        self._names = sorted(set(transforms))
        self.index = {names: i for i, names in enumerate(self._names)}
        self._lowering = frozenset(
            i for names, i in self.index.items() if {"lowercase", "cmdline"} & set(names)
        )
        self._uses = [_mask(names) for names in self._names]  # pipeline -> its functions
        self._plans: dict[tuple[frozenset[int], int], Plan] = {}

    def transformed(self, text: str, wanted: frozenset[int], done: Done) -> dict[str, frozenset[int]]:
        """Each distinct text the `wanted` pipelines make of `text`, with the pipelines that make it."""
        run, lowering, unchanged = self._plan(wanted, _effective(text))
        out: dict[str, frozenset[int]] = {}
        if unchanged:
            out[text] = unchanged
        if lowering:
            lower = lowercase(text)  # ASCII only, as the transformation
            out[lower] = out.get(lower, frozenset()) | lowering
        for pipeline in run:
            result = self._apply(pipeline, text, done)
            out[result] = out.get(result, frozenset()) | {pipeline}
        return out

    def _plan(self, wanted: frozenset[int], effective: int) -> Plan:
        key = (wanted, effective)
        plan = self._plans.get(key)
        if plan is None:
            run = tuple(p for p in sorted(wanted) if effective & self._uses[p])
            rest = wanted - set(run)
            plan = (run, rest & self._lowering, rest - self._lowering)
            if len(self._plans) < 4096:  # few distinct keys: (variable, characters present)
                self._plans[key] = plan
        return plan

    def _apply(self, pipeline: int, text: str, done: Done) -> str:
        applied: tuple[str, ...] = ()
        for name in self._names[pipeline]:
            if not _acts(name, text):
                continue
            if name == "urldecodeuni" and "%u" not in text and "%U" not in text:
                name = "urldecode"  # the same on this text: one decoding shared by both pipelines
            applied += (name,)
            result = done.get(applied)
            if result is None:
                result = done[applied] = FUNCTIONS[name](text)
            text = result
        return text


# The functions a character can make act (beyond lowercase): a pipeline none of whose functions can act on
# a text leaves it as it is (lower-cased if the pipeline lower-cases), so it need not run.
_PATH_FUNCTIONS = {"normalisepath", "normalizepath", "normalisepathwin", "normalizepathwin"}
_ACTS_ON = {
    "%": {"urldecode", "urldecodeuni"},
    "+": {"urldecode", "urldecodeuni"},
    "&": {"htmlentitydecode"},
    "\\": {"jsdecode", "cssdecode", "cmdline"} | _PATH_FUNCTIONS,
    "\x00": {"removenulls"},
    '"': {"cmdline"},
    "'": {"cmdline"},
    "^": {"cmdline"},
    ",": {"cmdline"},
    ";": {"cmdline"},
    **{space: {"removewhitespace", "compresswhitespace", "cmdline"} for space in "\t\n\r\x0b\x0c\xa0"},
}
_ALWAYS = frozenset({"base64decode"})  # acts on any text
_TRIGGERS = {name: "".join(c for c, names in _ACTS_ON.items() if name in names) for name in FUNCTIONS}


def _mask(names: Iterable[str]) -> int:
    mask = 0
    for name in names:
        mask |= _BIT[name]
    return mask


_ACTS_ON_MASK = {char: _mask(names) for char, names in _ACTS_ON.items()}
_ALWAYS_MASK = _mask(_ALWAYS)
_PATH_MASK = _mask(_PATH_FUNCTIONS)
_WHITESPACE = _mask(["removewhitespace"])
_SPACES = _mask(["compresswhitespace", "cmdline"])
_CMDLINE = _mask(["cmdline"])
_COMMENTS = _mask(["replacecomments"])
_UTF8 = _mask(["utf8tounicode"])


def _acts(name: str, text: str) -> bool:
    """Whether function `name` can change `text` (lowercase, cmdLine and base64 are always run)."""
    if name in ("lowercase", "cmdline", "base64decode"):
        return True
    if name == "removewhitespace":
        return " " in text or any(c in text for c in _TRIGGERS[name])
    if name == "compresswhitespace":
        return "  " in text or any(c in text for c in _TRIGGERS[name])
    if name == "utf8tounicode":
        return not text.isascii()
    if name == "replacecomments":
        return "/*" in text
    if name in _PATH_FUNCTIONS:
        return "/" in text or "." in text or "\\" in text
    return any(c in text for c in _TRIGGERS[name])


def _effective(text: str) -> int:
    """The transformation functions besides lowercase that can change `text` (a mask of `_BIT`s)."""
    acting = _ALWAYS_MASK
    for char, mask in _ACTS_ON_MASK.items():
        if char in text:
            acting |= mask
    if " " in text:
        acting |= _WHITESPACE
        if "  " in text:
            acting |= _SPACES
        if " /" in text or " (" in text:
            acting |= _CMDLINE
    if "/" in text or "." in text:
        if "//" in text or "/." in text or "./" in text or text in (".", ".."):
            acting |= _PATH_MASK
        if "/*" in text:
            acting |= _COMMENTS
    if not text.isascii():
        acting |= _UTF8
    return acting
