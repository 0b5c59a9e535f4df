"""scripts/ci_versions.py: the supported-versions table follows what the CI legs recorded, the
ranges admit what CI ran, the tools are pinned (constraints/tools.txt), and CI says when a
release exists beyond a range."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def ci_versions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The script, on a copy of the docs page and records of five legs that agree with it."""
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
        "current": ("3.11.7", "5.2.19", "3.1.3", "8.2.0", "2.41.0", []),
        "newest": ("3.14.10", "6.1.3", "3.1.3", "8.2.0", "2.41.0", []),
        "between": ("3.13.0", "6.0.10", "3.0.3", "8.1.0", "2.41.0", []),
        "wheel-3.12": ("3.12.1", "6.1.3", "3.1.3", "8.2.0", "2.41.0", []),
        "wheel-3.13": ("3.13.0", "6.1.3", "3.1.3", "8.2.0", "2.41.0", []),
    }
    for leg, (python, django, flask, redis, fakeredis, exact) in legs.items():
        record = {"python": python, "django": django, "flask": flask, "redis": redis,
                  "fakeredis": fakeredis, "redis-server": "7.0.15", "exact": exact}  # fmt: skip
        (module.RAN / f"{leg}.json").write_text(json.dumps(record))
    # The classifiers and the ranges are read from the real pyproject.toml.
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    module.write()
    return module


def test_only_exact_pins_are_shown_exactly(ci_versions: ModuleType) -> None:
    pins = ["redis[hiredis]==7.4.1", "django==4.2.*", "flask[async]==2.3.*", "fakeredis==2.35.0"]
    assert ci_versions.exactly_pinned(pins) == ["fakeredis", "redis"]
    table = ci_versions.documented()
    assert "| `oldest` | 3.11 | 4.2 | 2.3 | 7.4.1 | 2.35.0 | 7.0 |" in table
    assert "| `newest` | 3.14 | 6.1 | 3.1 | 8.2 | 2.41 | 7.0 |" in table
    assert "| `between` | 3.13 | 6.0 | 3.0 | 8.1 | 2.41 | 7.0 |" in table


def test_check_passes_when_the_page_shows_what_ran(
    ci_versions: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ci_versions.check() == 0
    assert "the ranges' upper bounds match the 6 CI legs" in capsys.readouterr().out


def test_a_new_series_upstream_fails_the_check(
    ci_versions: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    current = ci_versions.RAN / "current.json"
    record = json.loads(current.read_text())
    record["django"] = "6.0.1"  # a patch release (5.2.20) would change nothing
    current.write_text(json.dumps(record))
    assert ci_versions.check() == 1
    err = capsys.readouterr().err
    assert "does not show what CI ran" in err
    assert "| `current` | 3.11 | 6.0 | 3.1 | 8.2 | 2.41 | 7.0 |" in err


def test_a_python_classifier_no_leg_ran_fails_the_check(
    ci_versions: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = ci_versions.RAN / "wheel-3.12.json"
    record = json.loads(wheel.read_text())
    record["python"] = "3.13.0"  # then nothing runs on 3.12, which pyproject.toml claims
    wheel.write_text(json.dumps(record))
    ci_versions.write()
    assert ci_versions.check() == 1
    assert (
        "pyproject.toml's python classifiers claim ['3.11', '3.12', '3.13', '3.14'], "
        "but the CI legs ran ['3.11', '3.13', '3.14']."
    ) in capsys.readouterr().err


def test_a_leg_that_did_not_record_fails_the_check(ci_versions: ModuleType) -> None:
    (ci_versions.RAN / "newest.json").unlink()
    with pytest.raises(SystemExit) as excinfo:
        ci_versions.check()
    assert str(excinfo.value) == (
        "No record of the CI leg(s) newest in ran: each leg records its versions after its "
        "tests pass, so it did not run or failed."
    )


def test_a_range_admitting_a_series_no_leg_ran_fails_the_check(
    ci_versions: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    pyproject = ci_versions.ROOT / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("<8.3", "<8.4"))
    assert ci_versions.check() == 1
    assert (
        "pyproject.toml admits redis>=7.4.1,<8.4, but the newest leg ran redis 8.2: "
        "cap it at <8.3, the series after the newest one CI ran."
    ) in capsys.readouterr().err


def test_a_range_without_an_upper_bound_fails_the_check(
    ci_versions: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    pyproject = ci_versions.ROOT / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("django>=4.2,<6.2", "django>=4.2"))
    assert ci_versions.check() == 1
    assert "pyproject.toml admits django>=4.2, but the newest leg ran django 6.1" in (
        capsys.readouterr().err
    )


def test_each_library_is_named_with_one_range_everywhere(ci_versions: ModuleType) -> None:
    assert ci_versions.declared_ranges() == {
        "redis": ">=7.4.1,<8.3",
        "fakeredis": ">=2.35,<2.42",
        "django": ">=4.2,<6.2",
        "flask": ">=2.3,<3.2",
    }
    pyproject = ci_versions.ROOT / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text.replace('django = ["django>=4.2,<6.2"]', 'django = ["django>=4.2"]'))
    with pytest.raises(SystemExit) as excinfo:
        ci_versions.declared_ranges()
    assert str(excinfo.value) == (
        "pyproject.toml names django with different ranges: ['>=4.2', '>=4.2,<6.2']."
    )


def test_the_oldest_leg_installs_the_floors_of_the_ranges(ci_versions: ModuleType) -> None:
    script = (ROOT / "scripts" / "test-oldest").read_text()
    floors = re.search(r'^floors="(.+)"$', script, re.MULTILINE)
    assert floors is not None
    pinned = {}
    for pin in floors[1].split():
        match = re.fullmatch(r"([a-z]+)(?:\[\w+\])?==([0-9.]+?)(?:\.\*)?", pin)
        assert match is not None, f"not a floor: {pin!r}"
        pinned[match[1]] = Version(match[2])
    for name, declared in ci_versions.declared_ranges().items():
        lowest = re.search(r">=([0-9.]+)", declared)
        assert lowest is not None, f"{name} has no floor: {declared}"
        assert pinned[name] == Version(lowest[1]), f"the oldest leg runs {name} {pinned[name]}"


def test_the_between_leg_runs_series_the_ranges_admit(ci_versions: ModuleType) -> None:
    script = (ROOT / "scripts" / "test-between").read_text()
    pins = re.search(r'^pins="(.+)"$', script, re.MULTILINE)
    assert pins is not None
    ranges = ci_versions.declared_ranges()
    for pin in pins[1].split():
        match = re.fullmatch(r"([a-z]+)(?:\[\w+\])?==([0-9.]+)\.\*", pin)
        assert match is not None, f"not a series: {pin!r}"
        name, first = match[1], Version(match[2] + ".0")
        assert first in SpecifierSet(ranges[name]), f"{pin} is outside {name}{ranges[name]}"


def test_the_newest_leg_names_no_version(ci_versions: ModuleType) -> None:
    # It takes what the ranges admit on the day: a pin here would hide tomorrow's release.
    script = (ROOT / "scripts" / "test-newest").read_text()
    commands = "\n".join(line for line in script.splitlines() if not line.startswith("#"))
    assert "--upgrade" in commands
    assert not re.search(r"(redis|django|flask|fakeredis)\S*[=<>~]=", commands, re.IGNORECASE)


def test_every_tool_is_pinned_and_no_library_is(ci_versions: ModuleType) -> None:
    pins = {}
    for line in (ROOT / "constraints" / "tools.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert re.fullmatch(r"[0-9][0-9a-z.]*", version), f"not an exact pin: {line!r}"
            pins[name] = version
    assert set(ci_versions.TOOLS) <= set(pins)
    floating = {re.sub(r"\[.*", "", name) for name in ci_versions.FLOATING}
    assert not floating & set(pins)
    # A package added to the test or docs extras is a tool (pinned) or a library (floating).
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    named = {
        re.split(r"[\[<>=~! ]", requirement, maxsplit=1)[0].lower()
        for extra in ("test", "docs")
        for requirement in project["optional-dependencies"][extra]
    }
    assert named - set(ci_versions.TOOLS) - floating == set()


def outside(
    ci_versions: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    known: dict[str, list[str]],
) -> list[str]:
    """The lines of ``outside`` when pip's index lists ``known`` (a name absent: lookup failed)."""

    def releases(name: str) -> list[str]:
        if name not in known:
            raise OSError(f"pip index versions {name} failed: no network")
        return known[name]

    monkeypatch.setattr(ci_versions, "releases", releases)
    assert ci_versions.outside() == 0  # never a failure
    return capsys.readouterr().out.splitlines()


def test_a_release_beyond_a_range_is_noted(
    ci_versions: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    known = {
        "redis": ["8.3.0", "8.3.0rc1", "8.2.0", "7.4.1", "0.6.1"],
        "fakeredis": ["2.41.0", "2.35.0"],
        "django": ["6.2", "6.1.3", "5.2.20"],
        "flask": ["3.1.3", "2.3.3"],
    }
    assert outside(ci_versions, monkeypatch, capsys, known) == [
        "NOTE: redis 8.3.0 is out; pyproject admits <8.3: test it and widen the range.",
        "fakeredis: 2.41.0, the newest release, is admitted (>=2.35,<2.42).",
        "NOTE: django 6.2 is out; pyproject admits <6.2: test it and widen the range.",
        "flask: 3.1.3, the newest release, is admitted (>=2.3,<3.2).",
    ]


def test_a_failed_lookup_is_said_and_the_rest_still_checked(
    ci_versions: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    known = {"redis": ["8.2.0"], "fakeredis": ["2.41.0"], "flask": ["3.2.0", "3.1.3"]}
    lines = outside(ci_versions, monkeypatch, capsys, known)
    assert lines[2] == (
        "NOTE: could not look up the releases of django "
        "(pip index versions django failed: no network); not checked."
    )
    assert (
        lines[3] == "NOTE: flask 3.2.0 is out; pyproject admits <3.2: test it and widen the range."
    )
