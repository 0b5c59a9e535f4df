"""The documentation's examples run, and the reference pages list what the code has.

Each page of ``docs/`` is one test. A Python example (a fenced ``python`` or ``pycon`` block)
is preceded by a marker saying how it is checked (docs/README.md explains them):

``<!-- test: run -->``
    Executed. The blocks of a page run in order in one namespace, like a doctest session;
    ``pycon`` blocks are doctests (their printed output is compared). Addresses of the
    documented servers are replaced by the test servers of ``tests/conftest.py``:
    ``127.0.0.1:6379`` by ``redis_server`` and ``127.0.0.1:6380`` by ``redis_server_b``.
    The page starts with the embedded default (one FAKE ``default`` connection).
``<!-- test: settings -->``
    Executed on its own; the ``REDIS_CONNECTIONS`` it defines must pass validation
    (nothing connects: for Sentinel, Cluster and TLS settings of machines we do not have).
``<!-- test: skip: why -->``
    Shown, not run; the reason is required.
``<!-- test: output: NAME -->`` (before a ``text`` or ``console`` block)
    What a command or message prints: the block must match the output of
    ``tests/docs_outputs.py``'s scenario NAME, which runs it against the test servers.
    A text block that shows redis_conn's messages (check ids, ``Redis connection '...'``,
    ``overall:``) must have such a marker.

Code that comes from the example apps is ``{literalinclude}``-ed, and the Sphinx build
(``-W``) fails if the file or object it names is gone.
"""

from __future__ import annotations

import doctest
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import redis_conn
from redis_conn import config
from redis_conn.registry import connections

try:
    from docs_outputs import SCENARIOS, normalise
except ModuleNotFoundError as exc:  # tests/ imported as a package
    if exc.name != "docs_outputs":
        raise
    from tests.docs_outputs import SCENARIOS, normalise

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(p for p in DOCS.glob("*.md") if p.name != "README.md")

PYTHON_LANGUAGES = frozenset({"python", "py", "python3", "pycon"})
MARKER = re.compile(r"^<!--\s*test:\s*(?P<mode>[a-z]+)\s*(?::\s*(?P<why>.*?))?\s*-->$")
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
# Documented address -> session fixture that stands in for it.
SERVERS = {"127.0.0.1:6379": "redis_server", "127.0.0.1:6380": "redis_server_b"}
# The developer's own server is never touched, whatever a page says.
FORBIDDEN_PORT = re.compile(r"(?<![0-9])6379(?![0-9])")
DOCTEST_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the first line of code
    language: str
    code: str
    mode: str | None  # "run", "settings", "skip" or None (unmarked)
    why: str | None

    @property
    def where(self) -> str:
        return f"docs/{self.page.name}:{self.line}"


def code_blocks(page: Path) -> list[Block]:
    """Every fenced block of a MyST page, with the marker on the line before it (if any)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, info = opening["fence"], opening["info"].split()
        language = info[0] if info else ""
        if language in ("{code-block}", "{code}", "{sourcecode}") and len(info) > 1:
            language = info[1]
        end = i + 1
        closing = re.compile(rf"^ {{0,3}}{fence[0]}{{{len(fence)},}}\s*$")
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        body = lines[i + 1 : end]
        if language.startswith("{"):  # a directive: drop its :option: lines
            while body and body[0].startswith(":"):
                body = body[1:]
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.match(previous.strip())
        blocks.append(
            Block(
                page=page,
                line=end - len(body) + 1,
                language=language.lower(),
                code="\n".join(body) + "\n",
                mode=marker["mode"] if marker else None,
                why=marker["why"] if marker else None,
            )
        )
        i = end + 1
    return blocks


def python_blocks(page: Path) -> list[Block]:
    return [b for b in code_blocks(page) if b.language in PYTHON_LANGUAGES]


def output_blocks(page: Path) -> list[Block]:
    return [b for b in code_blocks(page) if b.language not in PYTHON_LANGUAGES]


#: What marks a text block as output of redis_conn, which must then be checked.
OUR_OUTPUT = re.compile(
    r"\(redis_conn\.[EW]\d{3}\)|Redis connection '|^overall: |CommandError: ", re.M
)


def page_id(page: Path) -> str:
    return page.name


# -- every example is accounted for -----------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_python_example_says_how_it_is_checked(page: Path) -> None:
    problems = []
    for block in python_blocks(page):
        if block.mode is None:
            problems.append(f"{block.where}: no '<!-- test: run|settings|skip: why -->' before it")
        elif block.mode not in ("run", "settings", "skip"):
            problems.append(f"{block.where}: unknown marker 'test: {block.mode}'")
        elif block.mode == "skip" and not block.why:
            problems.append(f"{block.where}: 'test: skip' needs a reason ('test: skip: why')")
        elif block.mode == "settings" and block.language == "pycon":
            problems.append(f"{block.where}: 'test: settings' is for python blocks, not pycon")
    assert not problems, "\n".join(problems)


# -- running them -----------------------------------------------------------------------------


@pytest.fixture
def isolated_connections() -> Iterator[None]:
    """Each page starts on the embedded default; whatever it configures is undone after."""
    saved = connections.source
    connections.configure(None)
    try:
        yield
    finally:
        connections.close_all()
        saved.apply_to(connections)


def with_test_servers(code: str, request: pytest.FixtureRequest, where: str) -> str:
    for address, fixture in SERVERS.items():
        if address in code:
            server = request.getfixturevalue(fixture)
            code = code.replace(address, f"{server.host}:{server.port}")
    if FORBIDDEN_PORT.search(code):
        pytest.fail(f"{where}: an executed example may use port 6379 only as 127.0.0.1:6379.")
    return code


def run_block(block: Block, code: str, namespace: dict[str, Any]) -> None:
    # Leading newlines keep tracebacks pointing at the page's own line numbers.
    source = "\n" * (block.line - 1) + code
    if block.language == "pycon":
        test = doctest.DocTestParser().get_doctest(
            source, namespace, block.where, str(block.page), 0
        )
        runner = doctest.DocTestRunner(optionflags=DOCTEST_FLAGS)
        report: list[str] = []
        runner.run(test, out=report.append, clear_globs=False)
        if runner.failures:
            pytest.fail(f"{block.where}: the example's output differs:\n" + "".join(report))
        return
    exec(compile(source, str(block.page), "exec"), namespace)


def check_settings_block(block: Block) -> None:
    namespace: dict[str, Any] = {"__name__": "settings"}
    source = "\n" * (block.line - 1) + block.code
    exec(compile(source, str(block.page), "exec"), namespace)
    assert "REDIS_CONNECTIONS" in namespace, f"{block.where} defines no REDIS_CONNECTIONS"
    try:
        config.parse(namespace["REDIS_CONNECTIONS"])
    except redis_conn.ConfigurationError as exc:
        pytest.fail(f"{block.where}: the documented settings are invalid:\n{exc}")


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_page_examples_run(
    page: Path, request: pytest.FixtureRequest, isolated_connections: None
) -> None:
    namespace: dict[str, Any] = {"__name__": f"docs.{page.stem}"}
    for block in python_blocks(page):
        if block.mode == "run":
            run_block(block, with_test_servers(block.code, request, block.where), namespace)
        elif block.mode == "settings":
            check_settings_block(block)


# -- what commands print -----------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_shown_output_is_what_the_code_prints(
    page: Path, request: pytest.FixtureRequest, isolated_connections: None
) -> None:
    problems = []
    for block in output_blocks(page):
        if block.mode != "output":
            if OUR_OUTPUT.search(block.code):
                problems.append(f"{block.where}: shows redis_conn output without 'test: output'")
            continue
        if block.why not in SCENARIOS:
            problems.append(f"{block.where}: no scenario {block.why!r} in tests/docs_outputs.py")
            continue
        printed = SCENARIOS[block.why](request)
        if normalise(block.code) != normalise(printed):
            problems.append(f"{block.where} shows:\n{block.code}\nbut the code prints:\n{printed}")
    assert not problems, "\n\n".join(problems)


def test_every_output_scenario_is_shown_once() -> None:
    shown = [b.why for page in PAGES for b in output_blocks(page) if b.mode == "output"]
    assert sorted(shown) == sorted(SCENARIOS)


# -- the reference pages are complete ---------------------------------------------------------


def test_settings_reference_documents_every_key_and_default() -> None:
    text = (DOCS / "settings.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^#{2,4} `([A-Z_]+)`", text, flags=re.MULTILINE))
    assert headings == set(config.KNOWN_KEYS), "one '### `KEY`' section per setting"
    for key, default in config.DEFAULTS.items():
        section = text.split(f"### `{key}`", 1)[1].split("\n#", 1)[0]
        assert f"Default: `{default!r}`" in section, f"{key}: default {default!r} not stated"


def test_settings_reference_states_each_bound_as_the_error_does() -> None:
    text = (DOCS / "settings.md").read_text(encoding="utf-8").replace("`", "")
    for key in config.DEFAULTS:
        [problem] = config.validate({"x": {"URL": "redis://h", key: "soon"}})
        expected = problem.message.split("; expected ", 1)[1].rstrip(".")
        section = text.split(f"### {key}", 1)[1].split("\n#", 1)[0]
        assert f"Accepted: {expected}." in section, f"{key}: say 'Accepted: {expected}.'"


def test_settings_reference_documents_every_check_id() -> None:
    text = (DOCS / "settings.md").read_text(encoding="utf-8")
    ids = {value for name, value in vars(config).items() if name.startswith("E_")}
    checks = (Path(redis_conn.__file__).parent / "django" / "checks.py").read_text()
    ids |= set(re.findall(r'id="redis_conn\.([EW]\d{3})"', checks))
    assert ids, "no check ids found"
    missing = sorted(i for i in ids if f"redis_conn.{i}" not in text)
    assert not missing, f"settings.md does not explain {missing}"


def test_api_reference_covers_every_public_name() -> None:
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    missing = [name for name in redis_conn.__all__ if not re.search(rf"\b{name}\b", text)]
    assert not missing, f"api.md does not document redis_conn.{missing}"
