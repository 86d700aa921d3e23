"""An engine's host and TLS settings, checked before anything connects: a tcp:// engine is always TLS with a
CA, and the gateway's key must be its owner's only."""

import os
from pathlib import Path

import pytest
import yaml
from engines import make_tls

from conftest import make_config
from policy.changes import keep_running_values
from policy.errors import ConfigError
from pool.connection import TlsFilesError, tls_context
from pool.settings import caps, engines_of, split
from proxy.loader import ConfigSource, load


def test_a_tcp_engine_needs_an_absolute_cert_path() -> None:
    with pytest.raises(ConfigError, match="docker.cert_path: required for a tcp:// host"):
        make_config({"docker": {"host": "tcp://127.0.0.1:2376"}})
    with pytest.raises(ConfigError, match="docker.cert_path: expected an absolute path"):
        make_config({"docker": {"host": "tcp://127.0.0.1:2376", "cert_path": "certs"}})
    with pytest.raises(ConfigError, match="docker.host: expected unix"):
        make_config({"docker": {"host": "http://127.0.0.1:2375"}})
    config = make_config(env={"DOCKER_HOST": "tcp://127.0.0.1:2376", "DOCKER_CERT_PATH": "/etc/isogate/tls"})
    assert (config.docker.host, config.docker.cert_path) == ("tcp://127.0.0.1:2376", "/etc/isogate/tls")


def test_the_tls_files_are_read_and_the_key_is_the_owners_only(tmp_path: Path) -> None:
    _, gateway, _ = make_tls(tmp_path)
    context = tls_context(str(gateway))
    assert context.verify_mode.name == "CERT_REQUIRED" and context.check_hostname
    os.chmod(gateway / "key.pem", 0o644)
    with pytest.raises(TlsFilesError, match="key.pem is readable by others \\(mode 644\\): chmod 600"):
        tls_context(str(gateway))
    os.chmod(gateway / "key.pem", 0o600)
    (gateway / "ca.pem").unlink()
    with pytest.raises(TlsFilesError, match="No such file"):
        tls_context(str(gateway))


def test_a_config_whose_engine_key_others_can_read_is_refused_as_it_loads(tmp_path: Path) -> None:
    _, gateway, _ = make_tls(tmp_path)
    os.chmod(gateway / "key.pem", 0o640)
    docker = {"host": "tcp://127.0.0.1:2376", "cert_path": str(gateway)}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"auth": {"secret_key": "k" * 32}, "docker": docker}))
    with pytest.raises(ConfigError, match="docker.cert_path: .*key.pem is readable by others"):
        load(ConfigSource(path, env={}))
    os.chmod(gateway / "key.pem", 0o600)
    assert load(ConfigSource(path, env={})).config.docker.cert_path == str(gateway)


def test_several_engines_are_listed_each_checked_and_never_beside_docker_host() -> None:
    engines = [
        {"host": "unix:///var/run/docker.sock", "share": 2},
        {"host": "tcp://10.0.0.7:2376", "cert_path": "/etc/isogate/engine-b", "runtime": "runsc"},
    ]
    config = make_config({"docker": {"engines": engines}})
    assert [(e.host, e.share, e.runtime) for e in config.docker.engines] == [
        ("unix:///var/run/docker.sock", 2, ""),
        ("tcp://10.0.0.7:2376", 1, "runsc"),
    ]
    with pytest.raises(ConfigError, match=r"docker.engines\[1\].cert_path: required for a tcp:// host"):
        make_config({"docker": {"engines": [engines[0], {"host": "tcp://10.0.0.7:2376"}]}})
    with pytest.raises(ConfigError, match=r"docker.engines\[0\].share: must be within \[1, 1000\]"):
        make_config({"docker": {"engines": [{"host": "", "share": 0}]}})
    with pytest.raises(
        ConfigError, match="docker.engines: unix:///var/run/docker.sock listed more than once"
    ):
        make_config({"docker": {"engines": [{"host": ""}, engines[0]]}})
    with pytest.raises(
        ConfigError, match="docker.host: set either docker.host .* or docker.engines, not both"
    ):
        make_config({"docker": {"engines": engines}}, env={"DOCKER_HOST": "unix:///run/other.sock"})


def test_shares_split_the_warm_size_exactly_and_give_each_engine_room_for_one() -> None:
    assert split(3, [1, 1]) == [2, 1] and split(10, [2, 1, 1]) == [5, 3, 2] and split(0, [1, 1]) == [0, 0]
    assert split(1, [1, 3]) == [0, 1]
    assert caps(10, [1, 1]) == [5, 5] and caps(3, [1, 1]) == [2, 2] and caps(2, [10, 1]) == [2, 1]
    assert [e.host for e in engines_of(make_config().docker)] == [""]  # docker.host, as before


def test_a_reload_that_changes_the_engines_waits_for_a_restart() -> None:
    old = make_config()
    new = make_config({"docker": {"engines": [{"host": "unix:///run/other.sock"}]}})
    kept, restart = keep_running_values(old, new)
    assert restart == ["docker.engines"] and kept.docker.engines == ()


def test_each_tcp_engine_s_tls_files_are_checked_as_the_config_loads(tmp_path: Path) -> None:
    _, gateway, _ = make_tls(tmp_path)
    os.chmod(gateway / "key.pem", 0o644)
    engines = [{"host": ""}, {"host": "tcp://127.0.0.1:2376", "cert_path": str(gateway)}]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"auth": {"secret_key": "k" * 32}, "docker": {"engines": engines}}))
    with pytest.raises(ConfigError, match=r"docker.engines\[1\].cert_path: .*key.pem is readable by others"):
        load(ConfigSource(path, env={}))
