"""Files a request carries (a multipart file part, or a raw body of a file's type), checked by what they
are rather than scanned as text: their first bytes against the declared type and the filename's extension
(a script or executable disguised as media, a double extension), and active content in markup (SVG, HTML,
XML). Magic bytes are read by `filetype` (signatures of ~80 binary formats); text signatures are ours.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass

import filetype

from policy.linear import any_of, compile

HEAD_BYTES = 8192  # what is kept of a file: enough for every signature `filetype` and the checks below read
_TYPES = mimetypes.MimeTypes()  # the standard library's own table only: no /etc/mime.types read

# Extensions a web server runs (Apache runs `shell.php.jpg` as PHP), and Windows executables. Not `com` or
# `pl`, which are far more often a domain's part of a name (`news.example.com.xml`) than a program.
EXECUTABLE_EXTENSIONS = frozenset(
    "php php3 php4 php5 php7 phtml phar pht phps asp aspx ashx asmx jsp jspx cgi shtml"
    " exe dll scr bat cmd msi hta vbs vbe wsf ps1".split()
)
ARCHIVE_TYPES = frozenset(
    f"application/{name}"
    for name in "zip gzip x-gzip x-tar x-bzip2 x-xz x-7z-compressed x-rar-compressed zstd x-compress x-lzip"
    " epub+zip java-archive x-deb x-rpm x-unix-archive".split()
)
EXECUTABLE_TYPES = frozenset(
    f"application/{name}"
    for name in "x-executable x-msdownload x-mach-binary x-dosexec x-sharedlib x-elf".split()
)
FONT_TYPES = frozenset(
    f"application/{name}" for name in "font-sfnt font-woff x-font-ttf vnd.ms-fontobject x-font-otf".split()
)
# Markup a browser runs when it is served back (its active content is what matters), and XML (its DTD is).
ACTIVE_TYPES = frozenset({"image/svg+xml", "text/html", "application/xhtml+xml"})
MARKUP_TYPES = ACTIVE_TYPES | {"text/xml", "application/xml"}


def family(mime: str) -> str:
    """The kind of thing a type is: image, svg, media, font, pdf, archive, executable, script, html, text
    or other. Office and OpenDocument files are zip archives, as their bytes say."""
    if mime == "image/svg+xml":
        return "svg"
    major, _, minor = mime.partition("/")
    if major == "image":
        return "image"
    if major in ("audio", "video"):
        return "media"
    if major == "font" or mime in FONT_TYPES:
        return "font"
    if mime == "application/pdf":
        return "pdf"
    if mime in ARCHIVE_TYPES or "openxmlformats" in minor or "opendocument" in minor:
        return "archive"
    if mime in EXECUTABLE_TYPES:
        return "executable"
    if mime in ("application/x-httpd-php", "application/x-php", "text/x-php", "text/x-shellscript"):
        return "script"
    if mime in ("text/html", "application/xhtml+xml"):
        return "html"
    if major == "text" or mime.endswith(("+xml", "+json", "/json", "/xml", "/javascript")):
        return "text"
    return "other"


# Families a file can be disguised as: what an upload form for pictures, sounds or documents accepts.
INNOCENT = frozenset({"image", "svg", "media", "font", "pdf", "archive"})
# Families whose bytes run (on the server, or in a browser when served back).
ACTIVE = frozenset({"executable", "script", "html"})
BINARY = frozenset({"image", "media", "font", "pdf", "archive", "executable"})

_SCRIPT_START = compile(r"^\s*(?:<\?php|<\?=|<%[@=\s]|#!/)", ignore_case=True)
_HTML_START = compile(
    r"^(?:\xef\xbb\xbf)?\s*(?:<!--[^>]{0,200}-->\s*)*(?:<!doctype\s+html|<html|<head|<body|<script)",
    ignore_case=True,
)
_SVG = compile(r"<svg[\s>]", ignore_case=True)


def sniff(head: bytes) -> str | None:
    """The type the first bytes say, or None when they say nothing known."""
    if head and (kind := filetype.guess(head)) is not None:
        return str(kind.mime)
    text = head[:1024].decode("latin-1")
    if _SCRIPT_START.search(text):
        return "text/x-shellscript" if text.lstrip().startswith("#!") else "application/x-httpd-php"
    if "<?php" in head.decode("latin-1").lower():
        return "application/x-httpd-php"
    if _HTML_START.search(text):
        return "text/html"
    if _SVG.search(text):
        return "image/svg+xml"
    return None


def extension_type(filename: str) -> str | None:
    """The type a filename's last extension names (a server script's own, which the table lacks)."""
    extension = filename.rpartition(".")[2].lower() if "." in filename else ""
    if extension in ("exe", "dll", "scr", "msi"):
        return "application/x-msdownload"
    if extension in EXECUTABLE_EXTENSIONS:
        return "text/x-php"  # a script a server runs
    return _TYPES.guess_type(f"x.{extension}", strict=False)[0] if extension else None


@dataclass(frozen=True, slots=True)
class Upload:
    """A file in a request: where it was (`FILES:avatar`, or `REQUEST_BODY` for a raw body), its name and
    declared type, its first HEAD_BYTES bytes and its whole size."""

    where: str
    filename: str
    declared: str  # the Content-Type as sent, lower-cased, without parameters ("" when none)
    head: bytes
    size: int
    sniffed: str | None  # the type its bytes say (`sniff(head)`), worked out once by who made it


def disguise(upload: Upload) -> str | None:
    """Why a file is not what it says it is, or None: active content (a script, an executable, HTML) sent as
    an innocent type or under an innocent name, bytes of one binary kind declared as another, or a double
    extension whose inner one a server runs."""
    name = upload.filename.lower()
    parts = name.rsplit("/", 1)[-1].split(".")
    inner = [p for p in parts[1:-1] if p.split(";")[0] in EXECUTABLE_EXTENSIONS]
    if inner:
        return f"{upload.where}: double extension in {upload.filename[:60]!r}"
    sniffed = upload.sniffed
    by_name = extension_type(name)
    if parts[-1] in EXECUTABLE_EXTENSIONS and INNOCENT & {family(upload.declared), family(sniffed or "")}:
        return f"{upload.where}: named {upload.filename[:60]!r} but declared as {upload.declared or '-'}"
    if sniffed is None:
        return None
    actual = family(sniffed)
    claims = [(f"declared as {upload.declared}", family(upload.declared))] if upload.declared else []
    if by_name is not None:
        claims.append((f"named {upload.filename[:60]!r}", family(by_name)))
    for said, claimed in claims:
        if actual in ACTIVE and claimed in INNOCENT:
            return f"{upload.where}: {sniffed} content {said}"
        if actual in BINARY and claimed in INNOCENT and actual != claimed:
            return f"{upload.where}: {sniffed} bytes {said}"
    return None


ACTIVE_CONTENT = any_of(
    r"<(?:script|iframe|embed|object|foreignobject|handler|listener|applet|meta\s[^>]*http-equiv)\b",
    r"<[a-z][a-z0-9:-]*\s[^>]*\bon[a-z]{3,}\s*=",  # an event-handler attribute in a tag
    r"\b(?:javascript|vbscript|livescript)\s*:",
    r"\bdata\s*:\s*text/html",
    ignore_case=True,
)


def active_content(upload: Upload) -> str | None:
    """Script, event handlers, `javascript:` URLs or embedded documents in an SVG or HTML file (by its
    bytes; by its declared type or name when its bytes say nothing). Not in plain XML, which a browser shows
    as a tree (a feed's HTML in CDATA is the feed reader's to sanitise)."""
    sniffed = upload.sniffed
    claimed = (sniffed,) if sniffed is not None else (upload.declared, extension_type(upload.filename))
    if not any(mime in ACTIVE_TYPES for mime in claimed):
        return None
    found = ACTIVE_CONTENT.search(upload.head.decode("latin-1"))
    return f"{upload.where}: {found.group(0)[:40]!r}" if found else None
