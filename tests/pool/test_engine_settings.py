"""An engine's host and TLS settings, checked before anything connects: a tcp:// engine is always TLS with a
CA, and the gateway's key must be its owner's only."""

import os
from pathlib import Path

import pytest
import yaml
from engines import make_tls

from conftest import make_config
from policy.errors import ConfigError
from pool.connection import TlsFilesError, tls_context
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
