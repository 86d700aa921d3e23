"""The transformation pipelines of a rule set (`t:urlDecodeUni,t:lowercase`...), applied to a value with as
little work as it needs: a pipeline none of whose functions can act on the value's characters leaves it as
it is (lower-cased if the pipeline lower-cases) and does not run; the functions that run are skipped when
they cannot act on the text as it is at that point, and each result is kept under the functions that made
it, so pipelines that differ only by such functions (`utf8toUnicode` on ASCII, say) share the work.

Within a request, `Shared` keeps those results by text, so that values with the same text share them, and
URL-decodes a text made of other values' texts piece by piece: the request line holds the target, which
holds the path and the query, and 64 KiB of escapes in a query are decoded once for REQUEST_LINE,
REQUEST_URI and QUERY_STRING, not three times."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from policy.crs.transforms import FUNCTIONS, lowercase

Plan = tuple[tuple[int, ...], frozenset[int], frozenset[int]]  # (to run, only lower-case, unchanged)
_BIT = {name: 1 << i for i, name in enumerate(sorted(FUNCTIONS))}  # function sets as int masks: cheap to hash
Done = dict[tuple[str, ...], str]  # functions applied -> the text they made (one value's)
_URL_DECODES = frozenset({"urldecode", "urldecodeuni"})
_CONTINUES_ESCAPE = frozenset("0123456789abcdefABCDEFuU")  # what may follow `%` within an escape


class Shared:
    """One request's transformations, by text. `pieces[text]`: the pieces `text` is made of."""

    def __init__(self) -> None:
        self.done: dict[str, Done] = {}
        self.pieces: dict[str, tuple[str, ...]] = {}

    def of(self, text: str) -> Done:
        return self.done.setdefault(text, {})

    def url_decoded(self, name: str, text: str) -> str:
        """What URL-decoding function `name` makes of `text`: of its pieces, each decoded once, if no
        escape runs across their boundaries (decoding is then the same piece by piece)."""
        pieces = self.pieces.get(text)
        if pieces is None or not _separable(pieces):
            return FUNCTIONS[name](text)
        return "".join(self._decoded(name, piece) for piece in pieces)

    def _decoded(self, name: str, piece: str) -> str:
        if name == "urldecodeuni" and not _has_uni_escape(piece):
            name = "urldecode"  # the same on this piece, as `Pipelines._apply` shares it
        done = self.of(piece)
        result = done.get((name,))
        if result is None:
            result = done[(name,)] = FUNCTIONS[name](piece)
        return result


def _separable(pieces: tuple[str, ...]) -> bool:
    """Whether no escape (`%HH`, `%uHHHH`) can run across a boundary of `pieces`: at each, what follows
    the last `%` before it cannot be the start of an escape, or the next piece cannot go on with one."""
    tail = ""
    for piece in pieces:
        if piece[:1] in _CONTINUES_ESCAPE and "%" in tail:
            started = tail.rpartition("%")[2]
            if len(started) < 5 and all(char in _CONTINUES_ESCAPE for char in started):
                return False
        tail = (tail + piece)[-5:]
    return True


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

    def transformed(
        self, text: str, wanted: frozenset[int], shared: Shared | None = None
    ) -> dict[str, frozenset[int]]:
        """Each distinct text the `wanted` pipelines make of `text`, with the pipelines that make it."""
        effective = _effective(text)
        run, lowering, unchanged = self._plan(wanted, effective)
        out: dict[str, frozenset[int]] = {}
        if unchanged:
            out[text] = unchanged
        if lowering:
            lower = lowercase(text)  # ASCII only, as the transformation
            out[lower] = out.get(lower, frozenset()) | lowering
        if not run:
            return out
        done: Done = {} if shared is None else shared.of(text)
        received = _Received(text, effective, _has_uni_escape(text))
        for pipeline in run:
            result = self._apply(pipeline, received, done, shared)
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

    def _apply(self, pipeline: int, received: _Received, done: Done, shared: Shared | None) -> str:
        text = received.text
        applied: tuple[str, ...] = ()
        for name in self._names[pipeline]:
            if not (received.acts(name) if text is received.text else _acts(name, text)):
                continue
            if name == "urldecodeuni" and not (
                received.uni if text is received.text else _has_uni_escape(text)
            ):
                name = "urldecode"  # the same on this text: one decoding shared by both pipelines
            applied += (name,)
            result = done.get(applied)
            if result is None:
                if shared is not None and name in _URL_DECODES and text is received.text:
                    result = shared.url_decoded(name, text)  # the first function: on the text as received
                else:
                    result = FUNCTIONS[name](text)
                done[applied] = result
            if result == text:  # changed nothing: what follows is keyed as if it had not run
                applied = applied[:-1]
            else:
                text = result
        return text


class _Received:
    """A value's text as received, with what its characters allow, worked out once for all pipelines (a
    two-character search costs ~50 us in 64 KiB, a one-character one ~1 us)."""

    __slots__ = ("text", "effective", "uni")

    def __init__(self, text: str, effective: int, uni: bool) -> None:
        self.text, self.effective, self.uni = text, effective, uni

    def acts(self, name: str) -> bool:
        return name in _ALWAYS_RUN or bool(self.effective & _BIT[name])


def _has_uni_escape(text: str) -> bool:
    return ("u" in text or "U" in text) and ("%u" in text or "%U" in text)


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


_ALWAYS_RUN = frozenset({"lowercase", "cmdline", "base64decode"})


def _acts(name: str, text: str) -> bool:
    """Whether function `name` can change `text` (lowercase, cmdLine and base64 are always run)."""
    if name in _ALWAYS_RUN:
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
    slash, dot = "/" in text, "." in text  # each two-character search below behind its characters' own
    if " " in text:
        acting |= _WHITESPACE
        if "  " in text:
            acting |= _SPACES
        if (slash and " /" in text) or ("(" in text and " (" in text):
            acting |= _CMDLINE
    if slash and ("//" in text or (dot and ("/." in text or "./" in text))) or text in (".", ".."):
        acting |= _PATH_MASK
    if slash and "*" in text and "/*" in text:
        acting |= _COMMENTS
    if not text.isascii():
        acting |= _UTF8
    return acting
