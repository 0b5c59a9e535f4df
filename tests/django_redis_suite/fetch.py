"""Fetch the tests of the installed django-redis version, once: its sdist from PyPI, through pip.

``python tests/django_redis_suite/fetch.py`` prints the directory holding ``tests/``. The tree
is kept under ``.venv/django-redis-tests/django-redis-<version>/`` (ignored by git). Only the
test modules are unpacked: django-redis's ``conftest.py`` and ``settings/`` are replaced by this
directory's :mod:`plugin` and :mod:`settings`. django-redis's ``msgpack``, ``lz4`` and
``pyzstd`` extras are installed into the running interpreter: its tests import msgpack, and
the suite runs with each serializer and compressor.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO / ".venv" / "django-redis-tests"
EXTRAS = "lz4,msgpack,pyzstd"


def django_redis_version() -> str:
    return version("django-redis")


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--quiet", *args], check=True)


def install_extras() -> None:
    """The packages django-redis's optional serializers and compressors import."""
    try:
        import lz4.frame  # noqa: F401
        import msgpack  # noqa: F401
        import pyzstd  # noqa: F401
    except ImportError:
        _pip("install", f"django-redis[{EXTRAS}]=={django_redis_version()}")


def django_redis_suite_dir(cache_dir: Path = CACHE_DIR) -> Path:
    """The unpacked sdist of the installed django-redis (``tests/`` inside), fetched once."""
    install_extras()
    target = cache_dir / f"django-redis-{django_redis_version()}"
    if (target / "tests" / "test_backend.py").is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        _pip(
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--dest",
            tmp,
            f"django-redis=={django_redis_version()}",
        )
        (sdist,) = Path(tmp).glob("*.tar.gz")
        with tarfile.open(sdist) as archive:
            top = archive.getnames()[0].split("/")[0]
            members = [
                m
                for m in archive.getmembers()
                if m.name.startswith(f"{top}/tests/")
                and m.name.count("/") == 2  # tests/*.py, not tests/settings/
                and m.name.endswith(".py")
                and not m.name.endswith("/conftest.py")
            ]
            # The "data" filter (no links out, no device files) where Python has it (3.11.4+).
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            archive.extractall(Path(tmp) / "unpacked", members=members, **safe)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(Path(tmp) / "unpacked" / top), target)
    return target


if __name__ == "__main__":
    print(django_redis_suite_dir())
