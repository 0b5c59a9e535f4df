"""scripts/ci_versions.py: the supported-versions table follows what the CI legs recorded."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def ci_versions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The script, on a copy of the docs page and records of four legs that agree with it."""
    spec = importlib.util.spec_from_file_location(
        "ci_versions", ROOT / "scripts" / "ci_versions.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    page = tmp_path / "supported-versions.md"
    shutil.copy(ROOT / "docs" / "supported-versions.md", page)
    monkeypatch.setattr(module, "PAGE", page)
    monkeypatch.setattr(module, "ROOT", tmp_path)
    monkeypatch.setattr(module, "RAN", tmp_path / "ran")
    module.RAN.mkdir()
    legs = {
        "oldest": ("3.11.7", "4.2.30", "2.3.3", "7.4.1", "2.35.0", ["fakeredis", "redis"]),
        "current": ("3.11.7", "5.2.19", "3.1.3", "8.1.0", "2.41.0", []),
        "newest": ("3.13.0", "6.1.3", "3.1.3", "8.1.0", "2.41.0", []),
        "wheel": ("3.12.1", "6.1.3", "3.1.3", "8.1.0", "2.41.0", []),
    }
    for leg, (python, django, flask, redis, fakeredis, exact) in legs.items():
        record = {"python": python, "django": django, "flask": flask, "redis": redis,
                  "fakeredis": fakeredis, "redis-server": "7.0.15", "exact": exact}  # fmt: skip
        (module.RAN / f"{leg}.json").write_text(json.dumps(record))
    # The classifiers are read from the real pyproject.toml.
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    module.write()
    return module


def test_only_exact_pins_are_shown_exactly(ci_versions: ModuleType) -> None:
    pins = ["redis[hiredis]==7.4.1", "django==4.2.*", "flask[async]==2.3.*", "fakeredis==2.35.0"]
    assert ci_versions.exactly_pinned(pins) == ["fakeredis", "redis"]
    table = ci_versions.documented()
    assert "| `oldest` | 3.11 | 4.2 | 2.3 | 7.4.1 | 2.35.0 | 7.0 |" in table
    assert "| `newest` | 3.13 | 6.1 | 3.1 | 8.1 | 2.41 | 7.0 |" in table


def test_check_passes_when_the_page_shows_what_ran(
    ci_versions: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ci_versions.check() == 0
    assert "match the 4 CI legs" in capsys.readouterr().out


def test_a_new_series_upstream_fails_the_check(
    ci_versions: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    current = ci_versions.RAN / "current.json"
    record = json.loads(current.read_text())
    record["redis"] = "8.2.0"  # a patch release (8.1.1) would change nothing
    current.write_text(json.dumps(record))
    assert ci_versions.check() == 1
    err = capsys.readouterr().err
    assert "does not show what CI ran" in err
    assert "| `current` | 3.11 | 5.2 | 3.1 | 8.2 | 2.41 | 7.0 |" in err


def test_a_python_classifier_no_leg_ran_fails_the_check(
    ci_versions: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = ci_versions.RAN / "wheel.json"
    record = json.loads(wheel.read_text())
    record["python"] = "3.13.0"  # then nothing runs on 3.12, which pyproject.toml claims
    wheel.write_text(json.dumps(record))
    ci_versions.write()
    assert ci_versions.check() == 1
    assert (
        "pyproject.toml's python classifiers claim ['3.11', '3.12', '3.13'], "
        "but the CI legs ran ['3.11', '3.13']."
    ) in capsys.readouterr().err


def test_a_leg_that_did_not_record_fails_the_check(ci_versions: ModuleType) -> None:
    (ci_versions.RAN / "newest.json").unlink()
    with pytest.raises(SystemExit) as excinfo:
        ci_versions.check()
    assert str(excinfo.value) == (
        "No record of the CI leg(s) newest in ran: each leg records its versions after its "
        "tests pass, so it did not run or failed."
    )
