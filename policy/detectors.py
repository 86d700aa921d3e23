"""Attack detectors over normalised values (see `policy.normalise`): each returns what it recognised, or
None. Pure Python on purpose: the product is MIT, so no GPL libinjection binding.

`scan` runs them all over one value (the gateway calls it for each suspect value of a request, see
`policy.fields`). Each detector looks for the grammar of an attack, not a bare keyword, so that benign
near-misses (`O'Brien`, `select a size`, `1+1=2`) pass.
"""

from __future__ import annotations

import functools
import re

from policy.normalise import url_decode


def _first(regex: re.Pattern[str], text: str) -> str | None:
    found = regex.search(text)
    return found.group(0).strip()[:60] if found else None


SQL = re.compile(
    r"""
      ['"`]\s*\)*\s*(?:or|and|xor|\|\||&&)\b\s*\(*\s*(['"]?)\w*\1?\s*(?:=|<|>|!=|\blike\b|\bis\b|\bbetween\b)
    | \b(?:or|and)\s+(\d+)\s*(?:=|<>|!=|>=|<=)\s*\2\b          # or 1=1
    | \b(?:or|and)\s+(['"])(\w*)\3\s*=\s*\3\4\3                # or 'a'='a'
    | \bunion\b(?:\s+(?:all|distinct))?\s*\(?\s*select\b
    | ;\s*(?:drop|delete|insert|update|create|alter|truncate|exec|execute|declare|shutdown|waitfor|select
          |grant)\b
    | \bwaitfor\s+(?:delay|time)\s+['"]\d
    | \b(?:sleep|benchmark|pg_sleep|load_file|extractvalue|updatexml|char|concat|ascii|substring)\s*\(
          (?=[^)]*(?:\d|select|\bversion|user\b|0x))
    | \binto\s+(?:out|dump)file\b | \binformation_schema\b | \bxp_cmdshell\b | \bsysobjects\b | @@version
    | \bselect\s+(?:\*|null\b|@@|count\s*\(|[\w.]+\s*,\s*[\w.]+|[\w.]+\s+from\s+\w)
    | \b(?:insert\s+into|delete\s+from|drop\s+(?:table|database))\s+\w
    | ['"]\s*\)*\s*(?:--(?:\s|$)|\#$|;\s*$)                     # admin'-- and friends
    """,
    re.VERBOSE,
)

XSS = re.compile(
    r"""
      <(?:script|iframe|frame|object|embed|applet|svg|math|meta|base|link|style|xss)\b
    | </(?:script|style|title|textarea)\b
    | <[a-z][^>]*?\s(?:on[a-z]{3,}|formaction|srcdoc)\s*=
    | ["'`][^"'`]*?\s?\bon[a-z]{3,}\s*=
    | \b(?:javascript|vbscript|livescript)\s*:
    | \bdata\s*:\s*text/html
    | \bexpression\s*\(
    | \bdocument\s*\.\s*(?:cookie|domain|write|location)
    | \b(?:alert|prompt|confirm|eval)\s*\(
    | \bsrc\s*=\s*["']?\s*(?:https?:)?//
    """,
    re.VERBOSE,
)

TRAVERSAL = re.compile(
    r"""
      (?:^|[/\\=])\.\.(?:[/\\]|$)
    | /etc/(?:passwd|shadow|group|hosts)\b | /proc/self/ | \b(?:boot|win|system)\.ini\b | [a-z]:\\windows\\
    | \x00
    """,
    re.VERBOSE,
)

PROBE = re.compile(
    r"""
      \.(?:bak|backup|bk|old|orig|inc|swp|swo|save|sav|tmp|temp|copy|dist|sql|dump|log|ini|cfg|conf|config
          |passwd|htaccess|htpasswd|env|ds_store)(?:$|[/?;])
    | ~$
    | (?:^|/)(?:\.git|\.svn|\.hg|\.env|web-inf|meta-inf|cfide|iisadmin|iissamples|_vti_bin|_vti_pvt
          |phpmyadmin|server-status|scripts/\.\.)(?:/|$)
    """,
    re.VERBOSE,
)

COMMAND = re.compile(
    r"""
      (?:;|\|\|?|&&|\$\(|`)\s*(?:/(?:usr/)?bin/)?
          (?:cat|ls|id|whoami|uname|wget|curl|nc|ncat|netcat|bash|sh|zsh|ping|nslookup|dig|rm|echo|chmod
          |chown|python\d?|perl|ruby|php|powershell|cmd|certutil|tftp|telnet|sleep|kill|ifconfig|net)\b
    | /bin/(?:ba)?sh\b | \bcmd(?:\.exe)?\s+/c\b | \$\{ifs\} | \(\)\s*\{\s*:?\s*;\s*\}   # shellshock
    """,
    re.VERBOSE,
)

TEMPLATE = re.compile(
    r"""
      \$\{\s*(?:jndi|\$\{|lower:|upper:|env:|sys:|java:|date:)
    | \{\{[^{}]{0,80}\}\} | \{%[^%]{0,80}%\} | <%=? | \#\{[^}]{0,80}\}
    | \$\{[^}]{0,80}(?:\*|\.|\()[^}]{0,80}\}
    | <!--\s*\#\s*(?:exec|include|echo|config|fsize|flastmod|printenv)\b      # server-side includes
    """,
    re.VERBOSE,
)

CRLF = re.compile(r"[\r\n]+\s*(?:[a-z0-9-]+\s*:|<)", re.IGNORECASE)


CACHED_LENGTH = 512  # values repeat (user agents, cookies, form choices): remember short ones' findings
PATTERNS = {
    "sql_injection": SQL,
    "xss": XSS,
    "path_traversal": TRAVERSAL,
    "command_injection": COMMAND,
    "template_injection": TEMPLATE,
}


def _scan(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((name, found) for name, regex in PATTERNS.items() if (found := _first(regex, text)))


_scan_cached = functools.lru_cache(maxsize=8192)(_scan)


def scan(text: str) -> tuple[tuple[str, str], ...]:
    """(detector name, what it recognised) for every detector that fires on normalised `text`."""
    return _scan_cached(text) if len(text) <= CACHED_LENGTH else _scan(text)


def file_probe(path: str) -> str | None:
    """Hidden, backup and admin files asked for by path."""
    return _first(PROBE, path)


def crlf_injection(raw: str) -> str | None:
    """CR or LF followed by a header or markup: response splitting. Works on the raw value, since
    normalisation folds line breaks into spaces."""
    return _first(CRLF, url_decode(raw[:8192], plus=False))
