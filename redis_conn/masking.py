"""Hide passwords before anything is shown, logged or raised.

Two tools. :func:`mask_url` reads a URL's structure (the user part, ``password=`` query
values) and works on malformed URLs too. :func:`mask_text` masks free text: URL-shaped and
``password=``-shaped pieces, and every literal secret it is given, in each form a secret can
take on the way to a screen (as typed, percent-encoded, inside a ``repr``).
:func:`connection_secrets` and :func:`settings_secrets` collect those literals from settings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from urllib.parse import parse_qsl, quote, quote_plus, unquote, unquote_plus

MASK = "***"
# Anything shaped like scheme://user:password@ inside free text (error messages from redis-py).
# The scheme may be missing or mangled ("://:s3cret@host"): the password is masked anyway.
_USERINFO_IN_TEXT = re.compile(r"((?:\b[a-z][a-z0-9+.-]*)?://[^:/@\s]*:)[^@\s]*@", re.IGNORECASE)
# password=... as in the reprs of connections some redis-py versions put in error messages
# (``Connection(db=0,username=None,password=s3cret,...)``) and in URL query strings.
_KEYWORD_IN_TEXT = re.compile(r"(\b\w*password=)(?!\*\*\*)[^,)\s&]+", re.IGNORECASE)
# 'password': '...' as in the repr of a dict of connection keyword arguments.
_DICT_ITEM_IN_TEXT = re.compile(
    r"""(['"]\w*password['"]\s*:\s*)(['"])(?:(?!\2).)*\2""", re.IGNORECASE
)


def mask_url(url: str) -> str:
    """Return ``url`` with every password replaced by ``***``.

    ``redis://:s3cret@host:6379/0`` becomes ``redis://:***@host:6379/0``, and the value of a
    ``password=`` query parameter is masked too. A malformed URL is masked as well: when the
    host part holds no ``@`` but the rest of the URL does (an unencoded ``/``, ``?`` or ``#``
    in the password cut the URL short), everything from the first ``:`` of the user part to
    the last ``@`` is masked.
    """
    return _apply(url, _secret_spans(url))


@lru_cache(maxsize=256)  # error pages ask for every setting's string: parse each URL once
def url_secrets(url: str) -> tuple[str, ...]:
    """Every text in ``url`` that :func:`mask_url` hides, plus the password as redis-py
    decodes it (``%40`` -> ``@``): the literals to look for in anything shown."""
    found: list[str] = []
    for start, end in _secret_spans(url):
        raw = url[start:end]
        found += [raw, unquote(raw), unquote_plus(raw)]
    try:  # exactly what redis-py will send (urllib drops tabs and newlines, for one)
        from redis.connection import parse_url

        password = parse_url(url).get("password")  # type: ignore[no-untyped-call]
    except (ValueError, TypeError):
        password = None
    if isinstance(password, str):
        found.append(password)
    return tuple(s for s in dict.fromkeys(found) if s)


def connection_secrets(
    url: object = None, options: object = None, sentinel_kwargs: object = None
) -> tuple[str, ...]:
    """The passwords of one connection's settings: in the URL, and every OPTIONS or
    SENTINEL_KWARGS value whose key says ``password`` (``ssl_password`` included).
    Works on raw, unvalidated settings: anything of an unexpected type is skipped."""
    found: list[str] = []
    if isinstance(url, str):
        found += url_secrets(url)
    for kwargs in (options, sentinel_kwargs):
        if isinstance(kwargs, Mapping):
            for key, value in kwargs.items():
                if isinstance(key, str) and "password" in key.lower():
                    if isinstance(value, bytes):
                        value = value.decode("utf-8", "replace")
                    if isinstance(value, str) and value:
                        found.append(value)
    return tuple(dict.fromkeys(found))


def settings_secrets(settings: object) -> tuple[str, ...]:
    """Every password in a REDIS_CONNECTIONS mapping, valid or not."""
    if not isinstance(settings, Mapping):
        return ()
    found: list[str] = []
    for entry in settings.values():
        if isinstance(entry, Mapping):
            found += connection_secrets(
                entry.get("URL"), entry.get("OPTIONS"), entry.get("SENTINEL_KWARGS")
            )
    return tuple(dict.fromkeys(found))


@lru_cache(maxsize=256)
def secret_forms(secret: str) -> tuple[str, ...]:
    """The ways ``secret`` can be written out, longest first: as is, percent-encoded, and
    inside the ``repr`` of a ``str`` or of its UTF-8 ``bytes`` (quotes, backslashes and
    non-printable characters escaped, with either quote style)."""
    if not secret:
        return ()
    encoded = secret.encode("utf-8", "surrogatepass")
    forms = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        repr(secret)[1:-1],
        repr(secret + "'\"")[1:-4],  # inside a repr that had to escape single quotes
        repr(encoded)[2:-1],
        repr(encoded + b"'\"")[2:-4],
    }
    return tuple(sorted((f for f in forms if f), key=len, reverse=True))


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask passwords in free text (in URLs, ``password=...``, ``'password': '...'``), and
    every form (:func:`secret_forms`) of every literal secret given."""
    masked = mask_literals(text, secrets)
    masked = _USERINFO_IN_TEXT.sub(rf"\1{MASK}@", masked)
    masked = _KEYWORD_IN_TEXT.sub(rf"\1{MASK}", masked)
    return _DICT_ITEM_IN_TEXT.sub(rf"\1'{MASK}'", masked)


def mask_pieces(text: str, secrets: Iterable[str], *, min_length: int = 3) -> str:
    """Like :func:`mask_literals`, and also mask every run of letters and digits of a secret
    (at least ``min_length`` long): for messages of parsers that quote a piece of a malformed
    URL (``'s3cret' does not appear to be an IPv4 or IPv6 address``)."""
    secrets = tuple(secrets)
    pieces = {p for s in secrets for p in re.findall(r"\w+", s) if len(p) >= min_length}
    return mask_literals(text, (*secrets, *pieces))


def mask_literals(text: str, secrets: Iterable[str]) -> str:
    """Replace every form of every secret in ``text`` by ``***`` (longest forms first, so a
    secret that contains another is masked whole)."""
    forms = sorted({f for s in secrets for f in secret_forms(s)}, key=len, reverse=True)
    for form in forms:
        text = text.replace(form, MASK)
    return text


# -- where the secrets of a URL are ------------------------------------------------------


def userinfo_cut_short(url: str) -> bool:
    """Whether ``url`` has an ``@`` after its host part (outside a ``password=`` value) with
    a ``:`` before it: a user part cut short by an unencoded ``/``, ``?`` or ``#`` (a
    password may hold an ``@`` too), as far as anyone can tell from the text."""
    return _cut_short_span(url, _query_password_spans(url)) is not None


def _secret_spans(url: str) -> list[tuple[int, int]]:
    """The (start, end) index ranges of ``url`` that hold a password, merged."""
    spans = _query_password_spans(url)
    start, host_end = _host_part(url)
    authority = url[start:host_end]
    if "@" in authority:
        userinfo = authority.rpartition("@")[0]
        colon = userinfo.find(":")
        if colon >= 0:
            spans.append((start + colon + 1, start + len(userinfo)))
    cut = _cut_short_span(url, spans)
    if cut is not None:
        spans.append(cut)
    return _merged(spans)


def _host_part(url: str) -> tuple[int, int]:
    """Where the host part (user part included) starts and ends: after ``://``, up to the
    first ``/``, ``?`` or ``#`` (RFC 3986), as urllib reads it."""
    scheme_end = url.find("://")
    start = scheme_end + 3 if scheme_end >= 0 else 0
    end = next((i for i in range(start, len(url)) if url[i] in "/?#"), len(url))
    return start, end


def _cut_short_span(url: str, query_spans: list[tuple[int, int]]) -> tuple[int, int] | None:
    # An '@' after the host part (outside a password= value): the user part was cut short
    # (or the '@' of the user part was not the last one). Mask from its first ':' to that '@'.
    start, host_end = _host_part(url)
    for at in range(len(url) - 1, host_end - 1, -1):
        if url[at] == "@" and not any(s <= at < e for s, e in query_spans):
            colon = url.find(":", start, at)
            return (colon + 1, at) if colon >= 0 else None
    return None


def _query_password_spans(url: str) -> list[tuple[int, int]]:
    question = url.find("?")
    if question < 0:
        return []
    spans = []
    position = question + 1
    # A value runs to the next '&' (a '#' in it is masked too: it is part of what was typed).
    for pair in url[question + 1 :].split("&"):
        key, equals, _ = pair.partition("=")
        if equals and "password" in _decoded_key(key):
            spans.append((position + len(key) + 1, position + len(pair)))
        position += len(pair) + 1
    return spans


def _decoded_key(key: str) -> str:
    pairs = parse_qsl(f"{key}=", keep_blank_values=True)
    return (pairs[0][0] if pairs else key).lower()


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _apply(text: str, spans: list[tuple[int, int]]) -> str:
    out, last = [], 0
    for start, end in spans:
        out += [text[last:start], MASK]
        last = end
    out.append(text[last:])
    return "".join(out)
