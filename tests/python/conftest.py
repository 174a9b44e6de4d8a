"""Shared pytest fixtures: a real chronik-server process on a free port with a temp data dir.

Build the broker first: `cargo build -p chronik-server`.
"""

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def server_bin() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return Path(os.environ.get("CHRONIK_BIN_DIR", target / "debug")) / "chronik-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BrokerProcess:
    def __init__(self, data_dir: Path, extra_args=(), port=None):
        self.port = port or free_port()
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.proc = None
        self.start()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self):
        binary = server_bin()
        assert binary.exists(), f"{binary} not built: run `cargo build -p chronik-server`"
        log = open(self.data_dir / "broker.log", "ab")
        self.proc = subprocess.Popen(
            [str(binary), "start", "--metrics-listen", "off", "--listen", self.bootstrap,
             "--data-dir", str(self.data_dir / "data"), *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            assert self.proc.poll() is None, "chronik-server exited early"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("chronik-server did not listen within 30 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def broker(tmp_path):
    """A fresh single-node broker with no initial rebalance delay."""
    b = BrokerProcess(tmp_path, ["--group-initial-rebalance-delay-ms", "0"])
    yield b
    b.stop()
