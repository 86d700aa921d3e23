"""False flags on real API traffic: requests built from real material found on this machine, scored.

Nothing here was written by the project: files of many types found under /usr, /opt and the home folder
(images, PDF, OpenDocument, archives, fonts, audio, source code, CSV, translations: Debian's files, Python's
own test data, toolchains' documentation), JSON and XML data files that Python packages ship, and free
text in many languages (gettext catalogues' translations, license texts). They are sent as an API receives
them: multipart uploads with a title field, raw PUTs with the file's type, JSON comments (the text as
found, line breaks kept) and form posts (as typed into a comment box: no hard line wraps), with a browser's
headers (user agent, client hints, cookies, a bearer token, long Accept headers).

Each request is scored by the gateway's own pure scoring with the repo's config.yaml (CRS on) as an
established trusted caller, and decided: a content factor firing is a false flag, and so is a decision
other than the thread path. The material is chosen by a seeded sample of sorted paths: the same files give
the same corpus (installing packages changes it).

Usage: python bench/benign.py [--per-type 40] [--seed 0] [--show 20]
"""

from __future__ import annotations

import argparse
import gettext
import json
import mimetypes
import os
import random
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_plus

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from policy.config import Config  # noqa: E402
from policy.decision import Action, decide  # noqa: E402
from policy.incoming import Incoming  # noqa: E402
from policy.risk import Factor, RiskInput, RiskScore, score  # noqa: E402
from proxy.crs import load_crs  # noqa: E402
from proxy.loader import create_config  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detection import CALLER, HISTORY, ROUTE  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MAX_FILE = 900 * 1024  # under server.max_body_bytes with the multipart framing
# What a machine holds: Debian's files, and the Python installations and toolchains under the home folder
# (Python's own test data has audio and image files; wheels ship JSON, XML and CSV).
ROOTS = ("/usr", "/opt", str(Path.home()))
FILE_TYPES = (
    "png gif jpg svg pdf ttf woff2 gz zip mo wav mp3 odt tiff bmp ico webp csv py c h sh xml json".split()
)
# Program messages carry terminal control codes (a bell, a backspace) that nobody types into a comment box.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
LANGUAGES = ("fr", "de", "es", "ru", "ja", "zh_CN", "el", "pl", "uk", "ko", "pt_BR", "tr")
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0"
    " Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1"
    " Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "okhttp/4.12.0",
    "python-requests/2.31.0",
)


def headers(rng: random.Random, content_type: str | None) -> tuple[tuple[str, str], ...]:
    """What a browser or an API client sends beside the body."""
    found = [
        ("host", "api.example.com"),
        ("user-agent", rng.choice(USER_AGENTS)),
        ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"),
        ("accept-language", "en-GB,en;q=0.9,fr-FR;q=0.8,fr;q=0.7,de;q=0.6"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("sec-ch-ua", '"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"'),
        ("sec-ch-ua-platform", '"Windows"'),
        ("sec-fetch-site", "same-origin"),
        ("origin", "https://app.example.com"),
        ("referer", "https://app.example.com/settings/profile?tab=uploads"),
        ("authorization", f"Bearer eyJhbGciOiJIUzI1NiJ9.{rng.randbytes(24).hex()}.{rng.randbytes(16).hex()}"),
        (
            "cookie",
            f"sessionid={rng.randbytes(16).hex()}; csrftoken={rng.randbytes(20).hex()};"
            f" _ga=GA1.2.{rng.randrange(10**9)}.{rng.randrange(10**9)}; theme=dark;"
            " consent=%7B%22ads%22%3Afalse%7D",
        ),
    ]
    if content_type:
        found.append(("content-type", content_type))
    return tuple(found)


def files(rng: random.Random, per_type: int) -> Iterator[tuple[str, Path]]:
    """(extension, path): up to `per_type` files of each type, a seeded sample of the sorted candidates."""
    found: dict[str, list[Path]] = {extension: [] for extension in FILE_TYPES}
    project = Path(__file__).resolve().parents[1]
    for root in ROOTS:
        for folder, _, names in os.walk(root):
            if Path(folder).is_relative_to(project):
                continue
            for name in names:
                extension = name.rpartition(".")[2].lower()
                path = Path(folder, name)
                if extension in found and not path.is_symlink() and 0 < path.stat().st_size <= MAX_FILE:
                    found[extension].append(path)
    for extension, paths in found.items():
        for path in rng.sample(sorted(paths), min(per_type, len(paths))):
            yield extension, path


def texts(rng: random.Random, per_language: int) -> Iterator[tuple[str, str]]:
    """(language, a paragraph): translations from gettext catalogues, and license texts' paragraphs."""
    for language in LANGUAGES:
        catalogues = sorted(Path("/usr/share/locale", language, "LC_MESSAGES").glob("*.mo"))
        strings: list[str] = []
        for path in catalogues:
            try:
                with path.open("rb") as handle:
                    catalogue = gettext.GNUTranslations(handle)
            except (OSError, UnicodeDecodeError, ValueError):
                continue
            found = catalogue._catalog.values()  # type: ignore[attr-defined]
            strings += [s for s in found if isinstance(s, str) and len(s) > 20 and not CONTROL.search(s)]
            strings = [s for s in strings if not s.startswith("Project-Id-Version")]  # the catalogue's header
        for _ in range(min(per_language, len(strings) // 4)):
            yield language, " ".join(rng.sample(strings, rng.randint(1, 4)))
    paragraphs = [
        paragraph.strip()
        for path in sorted(Path("/usr/share/common-licenses").glob("*"))
        if path.is_file()
        for paragraph in path.read_text(encoding="utf-8", errors="replace").split("\n\n")
        if len(paragraph.strip()) > 80
    ]
    for paragraph in rng.sample(paragraphs, min(per_language * 2, len(paragraphs))):
        yield "en", paragraph[:4000]


def multipart(fields: list[tuple[str, str | None, str | None, bytes]], boundary: str) -> bytes:
    """A browser's multipart/form-data body: (name, filename or None, part type, data) a part."""
    out = bytearray()
    for name, filename, ctype, data in fields:
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename is not None else ""
        )
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        out += f"Content-Type: {ctype}\r\n".encode() if ctype else b""
        out += b"\r\n" + data + b"\r\n"
    return bytes(out + f"--{boundary}--\r\n".encode())


def requests(per_type: int, seed: int) -> Iterator[tuple[str, Incoming]]:
    """(how it was sent, the request)."""
    rng = random.Random(seed)
    for extension, path in files(rng, per_type):
        data = path.read_bytes()
        ctype, encoding = mimetypes.guess_type(path.name)
        if encoding is not None or ctype is None:  # x.html.gz: a browser sends the archive's type
            ctype = {"gzip": "application/gzip", "bzip2": "application/x-bzip2"}.get(
                encoding or "", "application/octet-stream"
            )
        boundary = f"----WebKitFormBoundary{rng.randbytes(8).hex()}"
        body = multipart(
            [("title", None, None, path.stem.encode()), ("file", path.name, ctype, data)], boundary
        )
        form_type = f"multipart/form-data; boundary={boundary}"
        yield f"upload .{extension}", request(rng, "POST", "/api/files", body, form_type)
        yield f"raw .{extension}", request(rng, "PUT", f"/api/files/{rng.randrange(10**6)}", data, ctype)
    for language, text in texts(rng, per_type):
        comment = json.dumps({"comment": text, "rating": rng.randint(1, 5)}, ensure_ascii=rng.random() < 0.5)
        yield f"json {language}", request(rng, "POST", "/api/reviews", comment.encode(), "application/json")
        typed = " ".join(text.split())  # typed into a comment box: no hard line wraps
        form = f"comment={quote_plus(typed)}&rating={rng.randint(1, 5)}"
        form_type = "application/x-www-form-urlencoded"
        yield f"form {language}", request(rng, "POST", "/api/reviews", form.encode(), form_type)


def request(rng: random.Random, method: str, path: str, body: bytes, ctype: str) -> Incoming:
    return Incoming(method, path.partition("?")[0], path, (), headers(rng, ctype), body, "198.51.100.7")


def run(incoming: Incoming, config: Config, plugins: dict[str, Factor]) -> tuple[RiskScore, Action, float]:
    started = time.perf_counter_ns()
    inp = RiskInput(incoming, CALLER, HISTORY, ROUTE, config.risk.max_scan_bytes)
    result = score(inp, config, plugins)
    cost = (time.perf_counter_ns() - started) / 1000
    return result, decide(result, CALLER, ROUTE, config).action, cost


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--per-type", type=int, default=40, help="files of each type, texts of each language")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=20, help="flagged requests shown with their evidence")
    args = parser.parse_args()
    config = create_config(path=ROOT / "config.yaml", env={"SECRET_KEY": "x" * 32})
    plugins: dict[str, Factor] = {}
    if config.risk.crs.enabled:
        from policy.crs import crs_factor

        plugins["crs"] = crs_factor(load_crs(config.risk.crs, ROOT)[0])
    sent, flagged, moved = Counter[str](), Counter[str](), Counter[str]()
    factors, costs, shown = Counter[str](), dict[str, list[float]](), 0
    for how, incoming in requests(args.per_type, args.seed):
        result, action, cost = run(incoming, config, plugins)
        family = how.split()[0]
        sent[family] += 1
        costs.setdefault(family, []).append(cost)
        if result.suspicious_content:
            flagged[family] += 1
            factors.update(hit.name for hit in result.hits)
            if shown < args.show:
                shown += 1
                print(f"flagged: {how} {incoming.target[:60]}: {[(h.name, h.reason) for h in result.hits]}")
        moved[family] += action is not Action.THREAD
    total = sum(sent.values())
    fired = sum(flagged.values())
    print(f"\n{total} requests, {fired} with a content factor ({fired / total:.2%}),", end=" ")
    print(f"{sum(moved.values())} not on the thread path\n")
    print("| sent as | requests | content factor | not thread | median cost (us) |\n|---|---|---|---|---|")
    for family in sent:
        median = statistics.median(costs[family])
        print(f"| {family} | {sent[family]} | {flagged[family]} | {moved[family]} | {median:.0f} |")
    print(f"\nfactors on flagged requests: {dict(factors.most_common()) or 'none'}")
    kinds = Counter(how for how, _ in requests(args.per_type, args.seed))
    print(f"kinds: {len(kinds)} ({', '.join(sorted(kinds))})")


if __name__ == "__main__":
    main()
