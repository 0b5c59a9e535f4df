"""A real headless browser (Debian's ``chromium``, driven by selenium and ``chromedriver``) and
web servers in subprocesses, for the tests that look at pages the way a developer does.

``.ci/run`` installs ``chromium`` and ``chromium-driver`` (apt); selenium is in the test extra
and is pointed at the installed driver, so nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
)


@contextlib.contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a fresh profile, closed (profile removed) afterwards."""
    profile = tempfile.mkdtemp(prefix="redis_conn-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(START_TIMEOUT)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def wait_until_listening(port: int, process: subprocess.Popen[Any], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}:\n{log.read_text()}")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)  # polling, bounded by the deadline
    raise AssertionError(
        f"the server did not listen on {port} in {START_TIMEOUT} s:\n{log.read_text()}"
    )


@contextlib.contextmanager
def web_server(
    command: Sequence[str], port: int, env: Mapping[str, str], log: Path
) -> Iterator[str]:
    """Run ``python <command>`` from the repository root; yields its base URL."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, *command], cwd=ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_until_listening(port, process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def server_timing(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """The Server-Timing entries the browser read for the page it shows."""
    entries: list[dict[str, Any]] = driver.execute_script(
        "return performance.getEntriesByType('navigation')[0].serverTiming"
        ".map(e => ({name: e.name, duration: e.duration, description: e.description}));"
    )
    return entries
