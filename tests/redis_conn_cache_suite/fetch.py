"""Fetch the tests of the installed Django version, once: its sdist from PyPI, through pip.

``python tests/redis_conn_cache_suite/fetch.py`` prints the directory holding ``runtests.py``.
The tree is kept under ``.venv/django-tests/django-<version>/`` (ignored by git).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO / ".venv" / "django-tests"


def django_version() -> str:
    from importlib.metadata import version

    return version("django")


def django_tests_dir(cache_dir: Path = CACHE_DIR) -> Path:
    """The ``tests/`` directory of the installed Django's sdist, downloaded on first use."""
    version = django_version()
    target = cache_dir / f"django-{version}"
    tests = target / "tests"
    if (tests / "runtests.py").is_file():
        return tests
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--dest",
                tmp,
                f"django=={version}",
            ],
            check=True,
        )
        (sdist,) = Path(tmp).glob("*.tar.gz")
        unpacked = Path(tmp) / "unpacked"
        with tarfile.open(sdist) as archive:
            prefix = f"{archive.getnames()[0].split('/')[0]}/tests/"
            members = [m for m in archive.getmembers() if m.name.startswith(prefix)]
            # The "data" filter (no links out, no device files) where Python has it (3.11.4+).
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            archive.extractall(unpacked, members=members, **safe)
        target.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tests, ignore_errors=True)
        shutil.move(str(unpacked / prefix.split("/")[0] / "tests"), tests)
    return tests


if __name__ == "__main__":
    print(django_tests_dir())
