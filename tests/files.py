"""Real files of common types, made by the standard library's own writers (zlib, wave, zipfile, gzip,
tarfile) or to their formats' specs, with the Content-Type a browser sends for each, and multipart bodies
as browsers build them."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import wave
import zipfile
import zlib

from bench.benign import multipart as form_body


def png(width: int = 16, height: int = 16) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixel = [bytes((x * 16 % 256, y * 16 % 256, 128)) for y in range(height) for x in range(width)]
    rows = b"".join(b"\x00" + b"".join(pixel[y * width : (y + 1) * width]) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def gif() -> bytes:
    return bytes.fromhex(
        "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
    )


def bmp() -> bytes:
    pixels = b"\xff\x00\x00\x00"  # one blue pixel, padded to 4 bytes
    header = struct.pack("<2sIHHI", b"BM", 14 + 40 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, 1, 1, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return header + info + pixels


def wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(b"".join(struct.pack("<h", (i * 997) % 30000 - 15000) for i in range(4000)))
    return out.getvalue()


def pdf() -> bytes:
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>",
        b"<< /Length 44 >>\nstream\nBT /F1 12 Tf 20 100 Td (Hello, world) Tj ET\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def zip_archive() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "README.txt", "Release notes: see ../CHANGES and run `make install`; <b>enjoy</b>\r\n"
        )
        archive.writestr("data/values.csv", 'id,name\n1,O\'Brien\n2,"Smith; Jones"\n')
    return out.getvalue()


def odt() -> bytes:
    """An OpenDocument text: a zip whose first member, stored, is its `mimetype`."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.text")
        archive.writestr("content.xml", '<?xml version="1.0"?><office:document-content/>')
    return out.getvalue()


def gzipped() -> bytes:
    return gzip.compress(b"2024-05-01 GET /index.html 200\r\n2024-05-01 GET /../../etc/passwd 404\r\n" * 50)


def tar_archive() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        data = b"#!/bin/sh\necho 'hello' | cat\n"
        member = tarfile.TarInfo("bin/hello.sh")
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))
    return out.getvalue()


def ttf() -> bytes:
    """A TrueType font's header: version 1.0, one table directory entry (what type checks read)."""
    directory = struct.pack(">IHHHH", 0x00010000, 1, 16, 0, 0)
    return directory + struct.pack(">4sIII", b"head", 0, 28, 54) + bytes(54)


SVG_ICON = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
    b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
    b' width="16" height="16">'
    b'<title>Open &amp; save</title><path d="M2 2h12v12H2z" style="fill:#3465a4;stroke:none"/>'
    b'<a xlink:href="https://example.com/help"><text x="1" y="12">?</text></a></svg>\n'
)
PYTHON = (
    b'#!/usr/bin/env python3\n"""Copy a file; see ../README."""\n'
    b'import os, sys\nos.system(f"cp {sys.argv[1]} /tmp")\n'
)
CSV = b'id,name,comment\n1,"O\'Brien","said ""hi""; left"\n2,Tom & Jerry,<none>\n3,x,"a\r\nb"\n'
TEXT = b'Thanks!\r\nNote: the parcel was late; the box said "fragile" <b>twice</b> & it\'s 50% off.\r\n'

# name -> (bytes, the Content-Type a browser sends for it)
FILES = {
    "photo.png": (png(), "image/png"),
    "anim.gif": (gif(), "image/gif"),
    "scan.bmp": (bmp(), "image/bmp"),
    "voice.wav": (wav(), "audio/x-wav"),
    "report.pdf": (pdf(), "application/pdf"),
    "bundle.zip": (zip_archive(), "application/zip"),
    "letter.odt": (odt(), "application/vnd.oasis.opendocument.text"),
    "access.log.gz": (gzipped(), "application/gzip"),
    "tools.tar": (tar_archive(), "application/x-tar"),
    "font.ttf": (ttf(), "font/ttf"),
    "icon.svg": (SVG_ICON, "image/svg+xml"),
    "copy.py": (PYTHON, "text/x-python"),
    "people.csv": (CSV, "text/csv"),
    "notes.txt": (TEXT, "text/plain"),
}


def multipart(parts: list[tuple[str, str | None, str | None, bytes]]) -> tuple[bytes, str]:
    """(body, Content-Type) of a browser's multipart form; a part: (name, filename or None, type, data)."""
    boundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
    return form_body(parts, boundary), f"multipart/form-data; boundary={boundary}"


def upload(filename: str, data: bytes, ctype: str, title: str = "My file") -> tuple[bytes, str]:
    """A file uploaded with a title field, as a form with a file input sends it."""
    return multipart([("title", None, None, title.encode()), ("file", filename, ctype, data)])
