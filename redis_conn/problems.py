"""What is wrong with the settings: one :class:`Problem` per finding, with a stable id.

The ids are shared with the Django system checks (``redis_conn.E001`` ...).
"""

from __future__ import annotations

from dataclasses import dataclass

E_NOT_A_MAPPING = "E001"
E_UNKNOWN_KEY = "E002"
E_BAD_VALUE = "E003"
E_MISSING_URL = "E004"
E_BAD_URL = "E005"
E_ALIAS_MISSING = "E006"
E_ALIAS_LOOP = "E007"
E_ALIAS_EXTRA_KEYS = "E008"
E_CONFLICT = "E009"
E_BAD_OPTION = "E010"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the settings; ``message`` names the connection and the key."""

    id: str
    message: str
    connection: str | None = None
    key: str | None = None
    hint: str | None = None

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message} HINT: {self.hint}"


def sentence(text: str) -> str:
    """``text`` ending with a period (messages quoted from redis-py or Python may not)."""
    text = text.rstrip()
    return text if text.endswith((".", "!", "?")) else f"{text}."
