"""The credential scan the broker tests share: plant secrets, capture every output, search it.

A secret can leak through loguru, the standard library's logging (ccxt and aiohttp log there),
a journal, a report or an exception's text. :func:`captured_logs` records both loggers at every
level, with tracebacks and local variables, so a leak at any level shows up;
:func:`assert_secrets_absent` then searches everything a test collected.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from loguru import logger

# One error of each kind the planted-credential runs provoke, by type name.
PROVOKED_ERRORS = frozenset(
    {
        "BrokerTimeoutError",
        "RateLimitError",
        "BrokerUnavailableError",
        "InsufficientFundsError",
        "RestrictedSymbolError",
        "APIChangedError",
        "NetworkError",
        "AuthenticationError",
    }
)


class _Capture(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def captured_logs() -> Iterator[list[str]]:
    """Every loguru and stdlib log line written inside the block, including ``diagnose``'s
    variable dumps, which would print a secret held in a local."""
    lines: list[str] = []
    sink = logger.add(
        lambda message: lines.append(str(message)),
        level=0,
        format="{time} {level} {name} {message} {extra}\n{exception}",
        backtrace=True,
        diagnose=True,
    )
    root = logging.getLogger()
    handler = _Capture(lines)
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        logger.remove(sink)
        root.removeHandler(handler)
        root.setLevel(previous)


def assert_secrets_absent(texts: Iterable[str], *secrets: str) -> None:
    """Fail if any planted secret appears in any of ``texts``."""
    everything = "\n".join(texts)
    for secret in secrets:
        assert secret not in everything
