"""Hide passwords in URLs and text before anything is shown, logged or raised."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit

MASK = "***"
_SECRET_QUERY_KEYS = frozenset({"password", "sentinel_password", "ssl_password"})
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
    """Return ``url`` with any password replaced by ``***``.

    ``redis://:s3cret@host:6379/0`` becomes ``redis://:***@host:6379/0``; a ``password=``
    query parameter (as in ``unix://`` URLs) is masked too.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO_IN_TEXT.sub(rf"\1{MASK}@", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:{MASK}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(key.lower() in _SECRET_QUERY_KEYS for key, _ in pairs):
            hidden = [(k, MASK if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs]
            query = urlencode(hidden, safe="*")
    if netloc == parts.netloc and query == parts.query:
        return _mask_malformed_userinfo(url)
    # Built by hand: urlunsplit would drop the '//' of unix:///path.
    rebuilt = f"{parts.scheme}://{netloc}{parts.path}"
    if query:
        rebuilt += f"?{query}"
    if parts.fragment:
        rebuilt += f"#{parts.fragment}"
    return rebuilt


def _mask_malformed_userinfo(url: str) -> str:
    """A URL urlsplit finds no password in may still hold one: ``://:s3cret@h``,
    ``redis:/:s3cret@h``, ``redis://:pa/ss@h``. Mask whatever follows the first ':' of the
    text before the last '@' (after any '://')."""
    base, question, query = url.partition("?")
    head, at, tail = base.rpartition("@")
    if not at:
        return url
    start = head.find("://")
    start = start + 3 if start >= 0 else 0
    user, colon, _ = head[start:].partition(":")
    if not colon:
        return url
    return f"{head[:start]}{user}:{MASK}@{tail}{question}{query}"


def mask_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Mask passwords in free text (in URLs, ``password=...``, ``'password': '...'``), and
    every literal secret given."""
    masked = _USERINFO_IN_TEXT.sub(rf"\1{MASK}@", text)
    masked = _KEYWORD_IN_TEXT.sub(rf"\1{MASK}", masked)
    masked = _DICT_ITEM_IN_TEXT.sub(rf"\1'{MASK}'", masked)
    for secret in secrets:
        if secret:
            masked = masked.replace(secret, MASK)
    return masked
