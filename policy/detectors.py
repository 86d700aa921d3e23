"""Attack detectors over normalised values (see `policy.normalise`): each returns what it recognised, or
None. Pure Python on purpose: the product is MIT, so no GPL libinjection binding. Every pattern runs on RE2
(`policy.linear`): matching is linear in the value, so no input can make a detector slow.

`scan` runs them all over one value (the gateway calls it for each suspect value of a request, see
`policy.fields`). Each detector looks for the grammar of an attack, not a bare keyword, so that benign
near-misses (`O'Brien`, `select a size`, `1+1=2`) pass.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from policy.linear import Regex, any_of
from policy.normalise import url_decode


def _first(regex: Regex, text: str) -> str | None:
    found = regex.search(text)
    return found.group(0).strip()[:60] if found else None


SQL = any_of(
    r"""['"`]\s*\)*\s*(?:or|and|xor|\|\||&&)\b\s*\(*\s*['"]?\w*['"]?\s*(?:=|<|>|!=|\blike\b|\bis\b|\bbetween\b)""",
    r"\bunion\b(?:\s+(?:all|distinct))?\s*\(?\s*select\b",
    # a statement after `;`, by its grammar: `; alter the names` is a sentence, `; alter table x` is not
    r";\s*(?:(?:drop|alter|create|truncate)\s+(?:table|database|schema|user|view|index|procedure|function)"
    r"|delete\s+from|insert\s+into|update\s+[\w.`\[\]]+\s+set|exec(?:ute)?\s+[\w@]|declare\s+@|shutdown\b"
    r"|waitfor\b|select\s+[\w@*(]|grant\s+\w+(?:\s*,\s*\w+)*\s+(?:on|to)\b)",
    r"""\bwaitfor\s+(?:delay|time)\s+['"]\d""",
    # a function call whose arguments carry a number, a sub-select or a probe: sleep(5), char(0x41)
    r"\b(?:sleep|benchmark|pg_sleep|load_file|extractvalue|updatexml|char|concat|ascii|substring)\s*\("
    r"[^)]*?(?:\d|select|\bversion|user\b|0x)",
    r"\binto\s+(?:out|dump)file\b",
    r"\binformation_schema\b|\bxp_cmdshell\b|\bsysobjects\b|@@version",
    r"\bselect\s+(?:\*|null\b|@@|count\s*\(|[\w.]+\s*,\s*[\w.]+|[\w.]+\s+from\s+\w)",
    # statements by their grammar: `delete from this list` is a sentence
    r"\binsert\s+into\s+[\w.`\[\]]+\s*(?:\(|values\b|select\b)|\bdrop\s+(?:table|database)\s+\w",
    r"\bdelete\s+from\s+[\w.`\[\]]+\s*(?:where\b|;|--|#|$)",
    r"""['"]\s*\)*\s*(?:--(?:\s|$)|#$|;\s*$)""",  # admin'-- and friends
    # a quote closed, then a clause: ' order by 3, ' having 1=1, ' or true--
    r"""['"]\s*\)*\s*(?:order\s+by\s+\d+|having\s+\d+\s*=|group\s+by\s+[\w.]+\s+having\b)""",
    r"""['"]\s*\)*\s*(?:or|and|xor)\s+(?:true|false|not\s+false)\b\s*(?:--|#|/\*|;|\)|$)""",
    r"\b(?:rlike|regexp)\s*\(\s*select\b",
)
# Tautologies need both sides equal (`or 1=1`, `or 'a'='a'`): RE2 has no backreferences, so the sides are
# captured and compared in Python (`_tautology`); finditer keeps the whole search linear.
TAUTOLOGY = any_of(
    r"\b(?:or|and)\s+(\d+)\s*(?:=|<>|!=|>=|<=)\s*(\d+)\b",
    r"""\b(?:or|and)\s+['"](\w*)['"]\s*=\s*['"](\w*)['"]""",
)

# Markup that runs: the whole of XSS in free text (JSON strings, XML text, multipart text fields), where a
# feed's HTML (`<img src="http://...">`), a sentence about `eval()` or a closing `</style>` is content.
XSS_MARKUP = (
    r"<(?:script|iframe|frame|object|embed|applet|xss)\b",
    r"<[a-z][^>]*?[\s/](?:on[a-z]{3,}|formaction|srcdoc)\s*=",  # <svg/onload=: a slash separates too
    r"""["'`][\s/]+on[a-z]{3,}\s*=""",  # " onmouseover=: out of an attribute, into a handler
    r"\b(?:javascript|vbscript|livescript)\s*:",
    r"\bdata\s*:\s*text/html",
)
XSS_PROSE = any_of(*XSS_MARKUP)
XSS = any_of(
    *XSS_MARKUP,
    r"<(?:svg|math|meta|base|link|style)\b",
    r"</(?:script|style|title|textarea)\b",
    r"""["'`][^"'`]*?\s?\bon[a-z]{3,}\s*=""",
    r"\bexpression\s*\(",
    r"\bdocument\s*\.\s*(?:cookie|domain|write|location)",
    r"\b(?:alert|prompt|confirm|eval)\s*\(",
    r"""\bsrc\s*=\s*["']?\s*(?:https?:)?//""",
)

TRAVERSAL = any_of(
    r"(?:^|[/\\=])\.\.(?:[/\\]|$)",
    r"/etc/(?:passwd|shadow|group|hosts)\b|/proc/self/|\b(?:boot|win|system)\.ini\b|[a-z]:\\windows\\",
    r"\x00",
)

PROBE = any_of(
    r"\.(?:bak|backup|bk|old|orig|inc|swp|swo|save|sav|tmp|temp|copy|dist|sql|dump|log|ini|cfg|conf|config"
    r"|passwd|htaccess|htpasswd|env|ds_store)(?:$|[/?;])",
    r"~$",
    r"(?:^|/)(?:\.git|\.svn|\.hg|\.env|web-inf|meta-inf|cfide|iisadmin|iissamples|_vti_bin|_vti_pvt"
    r"|phpmyadmin|server-status|scripts/\.\.)(?:/|$)",
)

COMMAND = any_of(
    r"(?:;|\|\|?|&&|\$\(|`)\s*(?:/(?:usr/)?bin/)?"
    r"(?:cat|ls|id|whoami|uname|wget|curl|nc|ncat|netcat|bash|sh|zsh|ping|nslookup|dig|rm|echo|chmod"
    r"|chown|python\d?|perl|ruby|php|powershell|cmd|certutil|tftp|telnet|sleep|kill|ifconfig|net)\b",
    r"/bin/(?:ba)?sh\b|\bcmd(?:\.exe)?\s+/c\b|\$\{ifs\}",
    # Windows: `&` separates commands too, and type/dir take a drive path
    r"(?:[;|&]|\$\(|`)\s*(?:type|dir|copy|del|more)\s+(?:[a-z]:\\|\\\\|%\w+%)",
    r"&\s*(?:ping\s+-[nct]|nslookup\s|whoami\b|ipconfig\b|net\s+user\b|certutil\b|powershell\b)",
    r"\(\)\s*\{\s*:?\s*;\s*\}",  # shellshock
)

TEMPLATE = any_of(
    r"\$\{\s*(?:jndi|\$\{|lower:|upper:|env:|sys:|java:|date:)",
    r"\{\{[^{}]{0,80}\}\}|\{%[^%]{0,80}%\}|<%[=@!#]?[^%>][^%]{0,80}%>|#\{[^}]{0,80}\}",  # <%s> is a format
    r"\$\{[^}]{0,80}(?:\*|\.|\()[^}]{0,80}\}",
    r"<!--\s*#\s*(?:exec|include|echo|config|fsize|flastmod|printenv)\b",  # server-side includes
)

# A line break, then what makes it an attack: a header a response or a mail acts on, a status line, a log
# line's level, or markup. A break before `Note:` or `P.S.:` is a comment's second line.
CRLF = any_of(
    r"[\r\n]+\s*(?:set-cookie|location|refresh|content-[a-z-]+|transfer-encoding|access-control-[a-z-]+"
    r"|x-[a-z0-9-]+|cache-control|link|host|cookie|authorization|bcc|cc|to|from|subject|reply-to)\s*:",
    r"[\r\n]+\s*(?:http/\d|\[?(?:info|warn|warning|error|debug|critical|notice)\b\]?|<[a-z!/])",
    ignore_case=True,
)


def _tautology(text: str) -> str | None:
    for found in TAUTOLOGY.finditer(text):
        number = found.group(1) is not None
        left, right = found.group(1, 2) if number else found.group(3, 4)
        if left == right:
            return found.group(0).strip()[:60]
    return None


def sql_injection(text: str) -> str | None:
    return _first(SQL, text) or _tautology(text)


CACHED_LENGTH = 512  # values repeat (user agents, cookies, form choices): remember short ones' findings
DETECTORS: dict[str, Callable[[str], str | None]] = {
    "sql_injection": sql_injection,
    "xss": functools.partial(_first, XSS),
    "path_traversal": functools.partial(_first, TRAVERSAL),
    "command_injection": functools.partial(_first, COMMAND),
    "template_injection": functools.partial(_first, TEMPLATE),
}


# Most suspect values are benign: one search for all detectors' patterns first, each detector only after
# a hit (RE2's binding costs a few microseconds a call, whatever the text).
_ANY = any_of(*(regex.pattern for regex in (SQL, TAUTOLOGY, XSS, TRAVERSAL, COMMAND, TEMPLATE)))


# Free text: the same detectors, XSS only for markup that runs.
PROSE_DETECTORS = DETECTORS | {"xss": functools.partial(_first, XSS_PROSE)}


def _scan(text: str, prose: bool = False) -> tuple[tuple[str, str], ...]:
    if _ANY.search(text) is None:
        return ()
    detectors = PROSE_DETECTORS if prose else DETECTORS
    return tuple((name, found) for name, detect in detectors.items() if (found := detect(text)))


_scan_cached = functools.lru_cache(maxsize=8192)(_scan)


def scan(text: str, prose: bool = False) -> tuple[tuple[str, str], ...]:
    """(detector name, what it recognised) for every detector that fires on normalised `text`; `prose`:
    free text, where only markup that runs is cross-site scripting."""
    return _scan_cached(text, prose) if len(text) <= CACHED_LENGTH else _scan(text, prose)


@functools.lru_cache(maxsize=4096)
def _file_probe_cached(path: str) -> str | None:
    return _first(PROBE, path)


def file_probe(path: str) -> str | None:
    """Hidden, backup and admin files asked for by path (the same paths come back: short ones cached)."""
    return _file_probe_cached(path) if len(path) <= CACHED_LENGTH else _first(PROBE, path)


def crlf_injection(raw: str) -> str | None:
    """CR or LF followed by a header or markup: response splitting. Works on the raw value, since
    normalisation folds line breaks into spaces."""
    if "%" not in raw and "\r" not in raw and "\n" not in raw:
        return None
    decoded = url_decode(raw, plus=False)
    return _first(CRLF, decoded) if "\r" in decoded or "\n" in decoded else None
