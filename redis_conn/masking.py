"""Hide passwords in URLs and text before anything is shown, logged or raised."""

from __future__ import annotations

import re

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
    """Return ``url`` with any password replaced by ``***``.

    ``redis://:s3cret@host:6379/0`` becomes ``redis://:***@host:6379/0``; a ``password=``
    query parameter (as in ``unix://`` URLs) is masked too. Malformed URLs are masked as well
    (``://:s3cret@host``, ``redis:/:s3cret@host``, an unencoded ``/`` or ``?`` in the
    password): whatever follows the first ``:`` of the user part, up to the last ``@``.
    """
    base, question, query = url.partition("?")
    # No '@' before the first '?': the password itself may hold a '?'.
    masked = _mask_userinfo(base) + question + query if "@" in base else _mask_userinfo(url)
    return _KEYWORD_IN_TEXT.sub(rf"\1{MASK}", masked)


def _mask_userinfo(text: str) -> str:
    head, at, tail = text.rpartition("@")
    if not at:
        return text
    start = head.find("://")
    start = start + 3 if start >= 0 else 0
    user, colon, _ = head[start:].partition(":")
    if not colon:
        return text
    return f"{head[:start]}{user}:{MASK}@{tail}"


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
