"""Test helper: a throwaway moto S3 server on loopback, in a subprocess.

    with moto_s3_server() as endpoint:   # e.g. "http://127.0.0.1:54321"
        ...

The server binds 127.0.0.1 only, is polled until it answers (at most ``timeout`` seconds) and is
always terminated (then killed if it lingers) when the block exits, even on errors.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Iterator

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status < 500
    except urllib.error.HTTPError as exc:  # any HTTP answer means the server is up
        return exc.code < 500
    except (urllib.error.URLError, OSError):
        return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextlib.contextmanager
def moto_s3_server(timeout: float = 20.0) -> Iterator[str]:
    """Start ``python -m moto.server`` on 127.0.0.1:<free port>; yield its endpoint URL."""
    port = free_port()
    endpoint = f"http://{HOST}:{port}"
    # The server needs no credentials of its own; keep real ones out of its environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + timeout
        while not _answers(f"{endpoint}/moto-api/"):
            if proc.poll() is not None:
                log.seek(0)
                tail = log.read()[-2000:].decode("utf-8", "replace")
                raise RuntimeError(f"moto server exited with {proc.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto server on {endpoint} did not answer within {timeout:.0f}s")
            time.sleep(0.1)
        yield endpoint
    finally:
        _stop(proc)
        log.close()
