"""The `crs` factor in a real gateway: scored like any factor, rules read from Debian's modsecurity-crs,
compiled databases cached under a hash of the rules (a corrupt cache is compiled again, never trusted)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from conftest import CRS_RULES, Gateway, bearer, make_config
from policy.crs import crs_factor
from policy.errors import ConfigError
from proxy import crs as crs_module
from proxy.crs import load_crs
from proxy.loader import Loaded, load_factors

ROUTES = [{"path": "/echo", "handler": "echo"}]


def crs(cache: str, **more: Any) -> dict[str, Any]:
    return {
        "routes": ROUTES,
        "risk": {"crs": {"enabled": True, "rules_dir": CRS_RULES, "cache_dir": cache, **more}},
    }


async def test_an_attack_scores_crs_and_a_plain_request_does_not(gateway: Gateway, crs_cache: str) -> None:
    config = make_config(crs(crs_cache))
    engine, _ = load_crs(config.risk.crs, Path("."))
    client = await gateway(crs(crs_cache), plugins={"crs": crs_factor(engine)})
    attack = await client.get(
        "/echo?id=1'%20union%20select%20password%20from%20users--", headers=bearer("crs")
    )
    assert "crs=40" in attack.headers["X-Isogate-Factors"]
    plain = await client.get("/echo?id=42&q=union+station", headers=bearer("crs"))
    assert "crs" not in plain.headers["X-Isogate-Factors"]


def test_the_loader_registers_the_factor_only_when_enabled(crs_cache: str) -> None:
    config = make_config(crs(crs_cache))
    engine, _ = load_crs(config.risk.crs, Path("."))
    loaded = Loaded(source=None, config=config, sha256="", files=(), crs=engine)  # type: ignore[arg-type]
    assert "crs" in load_factors(loaded)
    assert "crs" not in load_factors(Loaded(None, make_config({}), "", ()))  # type: ignore[arg-type]


def test_missing_rules_are_a_config_error_naming_the_key_and_the_package(tmp_path: Path) -> None:
    config = make_config({"risk": {"crs": {"enabled": True, "rules_dir": str(tmp_path / "none")}}})
    with pytest.raises(ConfigError) as raised:
        load_crs(config.risk.crs, Path("."))
    assert raised.value.path == "risk.crs.rules_dir" and "modsecurity-crs" in str(raised.value)


@pytest.mark.parametrize(
    ("crs_settings", "key"),
    [
        ({"paranoia_level": 5}, "risk.crs.paranoia_level"),
        ({"anomaly_threshold": 0}, "risk.crs.anomaly_threshold"),
        ({"exclude": [{"ids": [12]}]}, "risk.crs.exclude[0].ids[0]"),
        ({"exclude": [{"ids": [942100], "route": "/nowhere"}]}, "risk.crs.exclude[0].route"),
    ],
)
def test_bad_settings_name_their_key(crs_settings: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        make_config({"routes": ROUTES, "risk": {"crs": crs_settings}})
    assert raised.value.path == key


def test_the_compiled_rules_are_cached_and_a_corrupt_cache_is_compiled_again(
    tmp_path: Path, crs_cache: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(crs(crs_cache))
    monkeypatch.setattr(crs_module, "_last", None)  # not an engine another test loaded from another cache
    first, _ = load_crs(config.risk.crs, Path("."))
    cached = list(Path(crs_cache).glob("*.hsdb"))
    assert len(cached) == 1 and cached[0].stat().st_mode & 0o077 == 0
    monkeypatch.setattr(crs_module, "_last", None)  # as a new process would
    again, _ = load_crs(config.risk.crs, Path("."))
    assert again.compiled == first.compiled  # read back, not compiled
    broken = tmp_path / "cache"
    broken.mkdir()
    (broken / cached[0].name).write_bytes(cached[0].read_bytes()[:-100])
    monkeypatch.setattr(crs_module, "_last", None)
    with caplog.at_level(logging.INFO, logger="isogate"):
        rebuilt, _ = load_crs(make_config(crs(str(broken))).risk.crs, Path("."))
    assert (
        rebuilt.compiled == first.compiled and "931130 (operator @endsWith is not evaluated)" in caplog.text
    )
    assert (broken / cached[0].name).read_bytes() == cached[0].read_bytes()  # the corrupt cache replaced


def test_an_upgraded_rule_file_is_a_change_and_unchanged_files_are_not_parsed_again(
    tmp_path: Path, crs_cache: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(CRS_RULES, rules)
    settings = {"enabled": True, "rules_dir": str(rules), "cache_dir": crs_cache}
    config = make_config({"risk": {"crs": settings}})
    monkeypatch.setattr(crs_module, "_last", None)
    engine, parsed = load_crs(config.risk.crs, Path("."))
    assert load_crs(config.risk.crs, Path(".")) == (engine, parsed)  # the same objects: nothing redone
    sqli = rules / "REQUEST-942-APPLICATION-ATTACK-SQLI.conf"
    sqli.write_text(sqli.read_text().replace("id:942190,", "id:942199,"))
    upgraded, changed = load_crs(config.risk.crs, Path("."))
    assert changed.digest != parsed.digest  # the config's digest takes it: a reload applies it
    assert 942199 in {r.id for r in upgraded.rules} and 942190 not in {r.id for r in upgraded.rules}
