"""A second Docker engine on this machine, reached over TCP with mutual TLS, as a remote engine is: its own
data-root, exec-root, pidfile and socket, no bridge, and a listener on 127.0.0.1 whose certificates the test
makes (a CA, the engine's certificate for 127.0.0.1, the gateway's client certificate). The images a test
needs are moved to it with `docker save | docker load` (no registry)."""

from __future__ import annotations

import datetime
import gc
import ipaddress
import os
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from ports import free_port

READY_S = 60.0  # dockerd is ready in ~6 s here; a loaded machine takes longer


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey] | None, *,
    ca: bool = False, usage: x509.ObjectIdentifier | None = None,
) -> x509.Certificate:  # fmt: skip
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, signer = (subject, key) if issuer is None else issuer
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        address = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
        builder = builder.add_extension(x509.SubjectAlternativeName([address]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _write(
    folder: Path, ca: x509.Certificate, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(folder / "key.pem", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return folder


def make_tls(folder: Path) -> tuple[Path, Path, Path]:
    """(the engine's folder, the gateway's, the gateway's with a CA that did not sign the engine's
    certificate), each with Docker's ca.pem, cert.pem and key.pem."""
    keys = {name: ec.generate_private_key(ec.SECP256R1()) for name in ("ca", "other", "engine", "gateway")}
    ca = _certificate("isogate test CA", keys["ca"], None, ca=True)
    other = _certificate("another CA", keys["other"], None, ca=True)
    signer = ("isogate test CA", keys["ca"])
    engine = _certificate("127.0.0.1", keys["engine"], signer, usage=ExtendedKeyUsageOID.SERVER_AUTH)
    gateway = _certificate("isogate", keys["gateway"], signer, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    return (
        _write(folder / "engine", ca, engine, keys["engine"]),
        _write(folder / "gateway", ca, gateway, keys["gateway"]),
        _write(folder / "wrong-ca", other, gateway, keys["gateway"]),
    )


def collect_tls_leftovers() -> None:
    """Collect, quietly, what the test left for the garbage collector. On the standard event loop (tests;
    the gateway runs uvloop), a TLS connection to an engine that is cut short (a handshake past a deadline,
    an engine killed or restarting) can leave its socket and transport to the collector, which says
    "unclosed" (a ResourceWarning, an error here) in whichever later test it happens to run: collected at
    the end of each test that talks TLS to an engine, not in an unrelated one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


class SecondEngine:
    """`dockerd` beside the machine's own, serving tcp://127.0.0.1:`port` with TLS verified both ways."""

    def __init__(self, port: int = 0, tls: tuple[Path, Path] | None = None) -> None:
        """`port`: 0 for a free one. `tls`: (the engine's folder, the gateway's), not those made here."""
        self.port = port or free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="isogate-engine-"))
        # exec-root holds sockets: a short path (a unix socket path is at most 108 bytes)
        self.exec_root = Path(tempfile.mkdtemp(prefix="ie-", dir="/run"))
        self.socket = self.folder / "docker.sock"
        self.engine_tls, self.client_tls, self.wrong_ca = make_tls(self.folder / "tls")
        if tls is not None:
            self.engine_tls, self.client_tls = tls
        self.host = f"tcp://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        tls = self.engine_tls
        command = [
            "dockerd", "--data-root", str(self.folder / "data"), "--exec-root", str(self.exec_root),
            "--pidfile", str(self.folder / "dockerd.pid"), "-H", f"unix://{self.socket}", "-H", self.host,
            "--tlsverify", "--tlscacert", str(tls / "ca.pem"), "--tlscert", str(tls / "cert.pem"),
            "--tlskey", str(tls / "key.pem"), "--bridge=none", "--iptables=false", "--ip-masq=false",
        ]  # fmt: skip
        with open(self.folder / "dockerd.log", "ab") as log:  # the process keeps its own copy
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_S
        while self.docker("version", check=False).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the second dockerd did not start: {self.log()[-800:]}")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL the engine and its containerd, as a crashed daemon or a lost machine: its connections
        reset at once. (A containerd left running would hold its socket: the next start would time out.)"""
        assert self.process is not None
        subprocess.run(["pkill", "-KILL", "-P", str(self.process.pid)], check=False)
        self.process.kill()
        self.process.wait()
        # Its containerd may linger as a zombie (nobody reaps it here), which dockerd would take for running.
        (self.exec_root / "containerd" / "containerd.pid").unlink(missing_ok=True)

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The docker CLI against this engine, over its unix socket."""
        return subprocess.run(
            ["docker", "-H", f"unix://{self.socket}", *args], capture_output=True, text=True, check=check
        )

    def load(self, *images: str) -> None:
        """Move `images` from the machine's engine to this one (docker save | docker load)."""
        with subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE) as save:
            loaded = subprocess.run(
                ["docker", "-H", f"unix://{self.socket}", "load", "-q"],
                stdin=save.stdout,
                capture_output=True,
            )
        assert save.returncode == 0 and loaded.returncode == 0, loaded.stderr

    def labelled(self, pool_name: str) -> list[str]:
        return self.docker("ps", "-q", "--filter", f"label=isogate.pool={pool_name}").stdout.split()

    def log(self) -> str:
        return (self.folder / "dockerd.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            ids = self.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                self.docker("rm", "-f", *ids, check=False)
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        subprocess.run(["umount", "-R", str(self.folder / "data")], capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)
        shutil.rmtree(self.exec_root, ignore_errors=True)
