"""Names on the server: what each connection sends with ``CLIENT SETNAME``.

A connection named ``users`` of a project whose prefix is ``shop`` shows up in ``CLIENT LIST``
as ``name=shop:users``, from every process and host that uses it, so an operator can tell who
holds which sockets and ``redis_pools`` can count them across workers. redis-py sends the
name itself (its ``client_name`` connection argument) right after connecting.
"""

from __future__ import annotations

import re

from redis_conn import messages

#: Between the prefix and the connection name: ``shop:users``.
SEPARATOR = ":"
#: What replaces each character Redis refuses in a client name.
REPLACEMENT = "_"
# CLIENT SETNAME accepts printable ASCII without spaces ('!' to '~'), nothing else.
_REFUSED = re.compile(r"[^!-~]")


def sanitize(text: str) -> str:
    """``text`` with every character CLIENT SETNAME refuses (spaces, non-ASCII) as ``_``."""
    return _REFUSED.sub(REPLACEMENT, text)


def server_name(prefix: str | None, connection: str) -> str:
    """The name a connection sends: ``prefix:connection``, or ``connection`` without a prefix."""
    name = connection if not prefix else f"{prefix}{SEPARATOR}{connection}"
    return sanitize(name)


def prefix_from_module(module: str | None) -> str | None:
    """The top-level package of a dotted module path: ``"shop.settings.prod"`` -> ``"shop"``.

    The default prefix of a Django project (the package of its settings module) and of a Flask
    app (its import name). ``None`` for ``None``, ``""`` and ``"__main__"``.
    """
    if not module or module == "__main__":
        return None
    return module.split(".", 1)[0] or None


def explain_refused_name(exc: BaseException, connection: str, client_name: str | None) -> None:
    """Reword the error of a server that refused CLIENT SETNAME; other errors are left alone.

    A proxy or an ACL that forbids naming answers the handshake with an error the user would
    not connect to the CLIENT_NAME setting; say what happened and how to turn the name off.
    """
    if not client_name or not exc.args:
        return
    message = str(exc.args[0])
    lowered = message.lower()
    # ACL: "... permissions to run the 'client|setname' command"; no such command (renamed,
    # or a proxy): "unknown command 'CLIENT', with args beginning with: 'SETNAME' ...".
    if "setname" not in lowered and "'client'" not in lowered:
        return
    exc.args = (
        f"{messages.prefix(connection)}the server refused CLIENT SETNAME {client_name!r} "
        f"({message}). Set CLIENT_NAME to False for this connection if a proxy or an ACL "
        "forbids naming connections, or allow the command (ACL: +client|setname).",
        *exc.args[1:],
    )
