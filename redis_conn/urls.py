"""The URL setting: what redis-py would refuse, misread or silently replace, found before
anything connects.

redis-py parses the URL (:func:`redis.connection.parse_url`); these rules only catch what it
lets through: a password cut short by an unencoded character, a database path it ignores,
a unix URL without a socket path. Messages show the URL masked, never a piece of a password.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from redis_conn import messages
from redis_conn.masking import mask_pieces, mask_text, mask_url, url_secrets, userinfo_cut_short
from redis_conn.problems import E_BAD_URL, E_CONFLICT, Problem, sentence

URL_SCHEMES = ("redis", "rediss", "unix")
ENCODE_HINT = (
    "Percent-encode the user name and password, e.g. urllib.parse.quote(password, safe=''), "
    "or move the password to OPTIONS['password']."
)


def url_scheme(url: str) -> str:
    """The scheme as urllib reads it; also for URLs urllib refuses (``redis://[::1``)."""
    try:
        return urlsplit(url).scheme
    except ValueError:
        scheme, colon, _ = url.partition(":")
        return scheme.lower() if colon else ""


def check_url(name: str, key: str, url: str) -> Problem | None:
    """The first thing wrong with ``url`` (a ``str``), or None."""

    def problem(text: str, hint: str | None = None, *, id: str = E_BAD_URL) -> Problem:
        message = f"{messages.subject(name)} has URL {mask_url(url)!r} {text}"
        return Problem(id, sentence(message), connection=name, key=key, hint=hint)

    scheme = url_scheme(url)
    if scheme not in URL_SCHEMES:
        return problem(
            f"with scheme {scheme or 'none'!r}.", "Use redis://, rediss:// (TLS) or unix://."
        )
    if "#" in url:
        return problem(
            "with a '#': redis-py ignores the rest of the URL after it.",
            "Percent-encode '#' as %23 (in a password: urllib.parse.quote(password, safe='')).",
        )
    if userinfo_cut_short(url):
        return problem(
            "with an '@' after the host: a '/', '?' or '#' in the user name or password cut "
            "the URL short, so redis-py would read the rest of the password as the host, "
            "path or query.",
            ENCODE_HINT,
        )
    from redis.connection import parse_url

    try:
        options = parse_url(url)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError) as exc:
        reason = mask_pieces(mask_text(str(exc)), url_secrets(url))
        return problem(f"that redis-py cannot parse: {reason}")
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    for credential in ("username", "password"):
        if credential in query and getattr(parts, credential):
            return problem(
                f"with a {credential} both in its user part and in ?{credential}=; redis-py "
                "would use the user part's.",
                f"Keep one: the user part, or ?{credential}=.",
                id=E_CONFLICT,
            )
    for option, values in query.items():
        read = options.get(option)
        if isinstance(read, str) and values and read != values[0]:
            return problem(
                f"whose ?{option}= value this redis-py decodes twice (a '%' in it is read as an "
                "escape again), so it would use another value than the one written.",
                "Move the value to OPTIONS (a password may also go in the URL's user part, "
                "decoded once), or upgrade redis-py (newer versions decode query values once).",
            )
    if scheme == "unix":
        if not options.get("path"):
            return problem(
                "with no socket path.", "Write the path after unix://, e.g. unix:///run/redis.sock."
            )
        if parts.hostname:
            return problem(
                f"with a host part ({parts.hostname!r}), which redis-py ignores: the socket "
                f"path would be {options['path']!r}.",
                "Write three slashes before an absolute path: unix:///run/redis.sock.",
            )
    else:
        path_problem = _database_path(parts.path, options)
        if path_problem is not None:
            id, text, hint = path_problem
            return problem(text, hint, id=id)
        if parts.port == 0:
            return problem("with port 0; redis-py would connect to 6379 instead.")
    db = options.get("db")
    if isinstance(db, int) and db < 0:
        return problem(f"naming db {db}; a database number is a whole number >= 0.")
    return None


def parsed_url(url: object) -> dict[str, Any] | None:
    """redis-py's reading of ``url`` if :func:`check_url` accepts it, else None."""
    if not isinstance(url, str) or check_url("", "URL", url) is not None:
        return None
    from redis.connection import parse_url

    return dict(parse_url(url))  # type: ignore[no-untyped-call]


def _database_path(path: str, options: dict[str, Any]) -> tuple[str, str, str] | None:
    """redis-py reads ``/<db>`` leniently: ``/abc`` silently means db 0 and ``/1/5`` db 15."""
    number = unquote(path).strip("/")
    if not number:
        return None
    if not (number.isascii() and number.isdigit()):
        return (
            E_BAD_URL,
            f"with the path {path!r} where the database number goes; redis-py would "
            f"silently use db {options.get('db', 0)}.",
            "End the URL with the database number, a whole number >= 0 (e.g. /0), or "
            "with nothing for db 0.",
        )
    if "db" in options and options["db"] != int(number):
        return (
            E_CONFLICT,
            f"naming db {int(number)} in its path and db {options['db']} in its query; "
            f"redis-py would use db {options['db']}.",
            "Keep one: the number after the last '/', or ?db=.",
        )
    return None
