"""Agent logging: journald under systemd, stderr otherwise, plus a rotating file."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from jetfleet.errors import ConfigError

FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_SYSLOG_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class _SyslogPrefixFormatter(logging.Formatter):
    """``<N>message``: journald reads the priority from the prefix of lines on a journal stream."""

    def format(self, record: logging.LogRecord) -> str:
        return f"<{_SYSLOG_PRIORITY.get(record.levelno, 6)}>{record.name}: {super().format(record)}"


def setup_logging(level: str, log_file: Path | None, *, journal_stream: str | None) -> None:
    """Configure the root logger once. ``journal_stream`` is $JOURNAL_STREAM (set by systemd)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(level)
    root.addHandler(_console_handler(journal_stream))
    if log_file is not None:
        root.addHandler(_file_handler(log_file))
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _console_handler(journal_stream: str | None) -> logging.Handler:
    if journal_stream:
        try:
            from systemd.journal import JournalHandler  # optional: python-systemd

            handler: logging.Handler = JournalHandler(SYSLOG_IDENTIFIER="jetson-client")
            return handler
        except ImportError:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(_SyslogPrefixFormatter("%(message)s"))
            return handler
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FILE_FORMAT))
    return handler


def _file_handler(log_file: Path) -> logging.Handler:
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=10 * 1024 * 1024, backupCount=3)
    except OSError as exc:
        raise ConfigError(f"cannot open {log_file}: {exc.strerror}", key="log_file") from exc
    handler.setFormatter(logging.Formatter(FILE_FORMAT))
    return handler
