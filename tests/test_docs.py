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

The prose is checked for what a bad merge leaves behind: a sentence (5 words or more) or a
phrase of 10 words found twice on a page, and a paragraph whose brackets do not pair up (a
fragment pasted into a sentence). A ``json`` block that shows a health report must have the
keys ``manage.py redis_pools --json`` prints.
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
        namespace.update(test.globs)  # DocTest ran on a copy: later blocks see its names
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


# -- the prose reads as written: no merge left a sentence or a fragment twice ------------------

#: Repeated on purpose: the settings reference gives each key the same fields ("- Accepted:").
FIELD_ITEM = re.compile(r"^[-*+]\s+[A-Z][\w ]*:\s")
#: A phrase this long found twice on a page was pasted twice (a merge, an edit gone wrong).
REPEATED_WORDS = 10
#: A whole sentence this long found twice on a page, likewise.
REPEATED_SENTENCE_WORDS = 5


def prose(page: Path) -> list[tuple[int, str]]:
    """The page's paragraphs and list items as plain text, each with its first line.

    Code blocks, HTML comments, headings and tables are left out; inline code keeps its text
    and a link its label.
    """
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[tuple[int, str]] = []
    current: list[str] = []
    first = 0
    fence: str | None = None
    in_comment = False

    def end_paragraph() -> None:
        if current:
            found.append((first, " ".join(current)))
            current.clear()

    for number, line in enumerate(lines, 1):
        text = line.strip()
        if fence is not None:
            if re.match(rf"^ {{0,3}}{fence[0]}{{{len(fence)},}}\s*$", line):
                fence = None
            continue
        opening = FENCE.match(line)
        if opening is not None:
            end_paragraph()
            fence = opening["fence"]
            continue
        if in_comment or text.startswith("<!--"):
            end_paragraph()
            in_comment = "-->" not in text
            continue
        if not text or text.startswith(("#", "|")) or re.match(r"^(?:[-*+]|\d+\.|:)\s", text):
            end_paragraph()  # a list item or a definition starts a paragraph of its own
            if not text or text.startswith(("#", "|")):
                continue
        if not current:
            first = number
        current.append(text)
    end_paragraph()
    return found


def plain_text(markdown: str, *, code: bool = True) -> str:
    """Inline markup removed: roles and inline code keep their text (or lose it), links
    their label."""
    markdown = re.sub(r"\{[\w:-]+\}`([^`]*)`", lambda m: m[1] if code else "", markdown)
    markdown = re.sub(r"`([^`]*)`", lambda m: m[1] if code else "", markdown)
    return re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)


def repeated_prose(page: Path) -> list[str]:
    """Sentences and long phrases found twice on ``page``, and paragraphs whose brackets do
    not pair up (what a fragment pasted into a sentence leaves behind)."""
    problems = []
    phrases: dict[str, int] = {}
    sentences: dict[str, int] = {}
    for line, paragraph in prose(page):
        text = plain_text(paragraph)
        if FIELD_ITEM.match(text):
            continue
        words = re.findall(r"[\w'./:-]+", text.lower())
        reported = False
        for i in range(len(words) - REPEATED_WORDS + 1):
            phrase = " ".join(words[i : i + REPEATED_WORDS])
            if phrase in phrases and not reported:
                problems.append(
                    f"docs/{page.name}:{line}: repeats '{phrase}' (line {phrases[phrase]})"
                )
                reported = True  # one report per paragraph is enough to find it
            phrases.setdefault(phrase, line)
        for sentence in re.split(r"(?<=[.!?])\s+", text):
            key = " ".join(sentence.lower().split())
            if len(key.split()) < REPEATED_SENTENCE_WORDS:
                continue
            if key in sentences:
                problems.append(
                    f"docs/{page.name}:{line}: says again '{sentence}' (line {sentences[key]})"
                )
            sentences.setdefault(key, line)
        bare = re.sub(r"^(?:[-*+]|\d+\.|:)\s", "", plain_text(paragraph, code=False))
        for opening, closing in ("()", "[]"):
            if bare.count(opening) != bare.count(closing):
                problems.append(
                    f"docs/{page.name}:{line}: unpaired {opening}{closing} in '{paragraph}'"
                )
    return problems


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_no_sentence_or_phrase_is_there_twice(page: Path) -> None:
    problems = repeated_prose(page)
    assert not problems, "\n".join(problems)


def test_the_prose_check_finds_what_a_bad_merge_leaves(tmp_path: Path) -> None:
    page = tmp_path / "merged.md"
    page.write_text(
        "Both are described on the [diagnostics](diagnostics.md) page. The view answers `GET`.\n"
        "Both are described on the [diagnostics](diagnostics.md) page. Connections are named.\n"
        "\n"
        "A staff user (`is_staff`, with its middleware) gets the whole report of\n"
        "`redis_pools --json` instead, passwords still masked. That is caught by `check`.\n"
        "middleware) gets the whole report of `redis_pools --json` instead, passwords still\n"
        "masked, except `maxclients`.\n"
        "\n"
        "```python\n"
        "print('code is not prose'); print('code is not prose'); print('code is not prose')\n"
        "```\n"
        "\n"
        "- Accepted: a number of seconds or None.\n"
        "- Accepted: a number of seconds or None.\n",
        encoding="utf-8",
    )
    assert repeated_prose(page) == [
        "docs/merged.md:1: says again 'Both are described on the diagnostics page.' (line 1)",
        "docs/merged.md:4: repeats 'middleware gets the whole report of redis_pools --json "
        "instead passwords' (line 4)",
        "docs/merged.md:4: unpaired () in 'A staff user (`is_staff`, with its middleware) gets "
        "the whole report of `redis_pools --json` instead, passwords still masked. That is "
        "caught by `check`. middleware) gets the whole report of `redis_pools --json` instead, "
        "passwords still masked, except `maxclients`.'",
    ]


# -- the documented --json report is the one the command prints ---------------------------------


def json_reports(page: Path) -> list[tuple[Block, dict[str, Any]]]:
    """The ``json`` blocks of ``page`` that show a health report."""
    import json

    reports = []
    for block in code_blocks(page):
        if block.language != "json":
            continue
        try:
            shown = json.loads(block.code)
        except ValueError:
            continue  # a fragment, not a whole report
        if isinstance(shown, dict) and "connections" in shown:
            reports.append((block, shown))
    return reports


def test_the_json_sample_has_every_key_the_command_prints(
    settings: Any, redis_server: Any, isolated_connections: None
) -> None:
    import io
    import json

    from django.core.management import call_command

    settings.REDIS_CONNECTIONS = {"users": {"URL": redis_server.url, "MAX_CONNECTIONS": 20}}
    out = io.StringIO()
    call_command("redis_pools", "--json", stdout=out)
    (printed,) = json.loads(out.getvalue())["connections"]
    samples = [(b, s) for page in PAGES for b, s in json_reports(page)]
    assert samples, "no --json sample found in docs/"
    for block, shown in samples:
        assert set(shown) == {"status", "connections"}, block.where
        for entry in shown["connections"]:
            assert list(entry) == list(printed), f"{block.where}: keys of a connection"
            assert set(entry["pool"]) == set(printed["pool"]), f"{block.where}: pool keys"
            assert set(entry["server"]) == set(printed["server"]), f"{block.where}: server keys"
