"""Secrets out of the server's log lines: every handler's output passes through ``mask_secrets``."""

from __future__ import annotations

import logging

from fastplug.config.masking import mask_secrets

LOGGERS = ("", "fastplug", "uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error", "gunicorn.access")
"""Loggers whose handlers the server writes through (uvicorn's share gunicorn's in a worker)."""


class MaskSecrets(logging.Formatter):
    """A handler's formatter, wrapped: each line it writes (message, arguments, traceback) has
    its URLs' passwords and secret query parameters masked, whoever logged it (a driver's error
    may quote its DSN). A line without ``://`` costs one substring test."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(self.inner.format(record))


def mask_log_handlers() -> None:
    """Wrap the formatter of each handler of :data:`LOGGERS` in :class:`MaskSecrets`, once;
    run after the server configured its logging (handlers added later are not covered)."""
    for name in LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if not isinstance(handler.formatter, MaskSecrets):
                handler.setFormatter(MaskSecrets(handler.formatter))
