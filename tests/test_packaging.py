"""Package metadata as users and build tools see it; the extras the docs name exist.

The build itself (no warning, the wheel holds the package only, installed in a clean venv and
used from outside the checkout) is scripts/test-wheel, which CI runs.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# `redis_conn[django,hiredis]`, `.[test,docs]`, `path/to/redis_conn[flask]`, `.whl[flask]`
EXTRAS = re.compile(r"(?:redis_conn|\.|\.whl)\[([a-z0-9_,-]+)\]")


def test_license_is_an_spdx_expression_with_its_file() -> None:
    assert PROJECT["license"] == "BSD-3-Clause"
    assert PROJECT["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("BSD 3-Clause License\n")
    # The deprecated forms: a license table, a License :: classifier.
    assert not any(c.startswith("License ::") for c in PROJECT["classifiers"])
    installed = metadata.metadata("redis_conn")
    assert installed["License-Expression"] == "BSD-3-Clause"
    assert installed.get_all("License-File") == ["LICENSE"]


def test_every_extra_the_docs_and_scripts_name_exists() -> None:
    extras = set(PROJECT["optional-dependencies"])
    files = [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted(ROOT.glob("example_*/README.md")),
        *sorted((ROOT / "scripts").iterdir()),
        ROOT / ".ci" / "run",
    ]
    named: dict[str, set[str]] = {}
    for path in files:
        for match in EXTRAS.finditer(path.read_text(encoding="utf-8")):
            for extra in match[1].split(","):
                named.setdefault(extra, set()).add(str(path.relative_to(ROOT)))
    assert {"django", "flask", "hiredis", "test", "docs"} <= set(named)
    unknown = {extra: sorted(where) for extra, where in named.items() if extra not in extras}
    assert not unknown, f"extras named but not in pyproject.toml: {unknown}"
