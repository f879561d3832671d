"""Resumable artifact downloads into ``models_dir/.downloads`` (blocking: run them in a thread).

Each download is ``<name>-<version>-<sha16>.part`` plus a ``.json`` record (what it is, bytes done,
whether it was resumed). After an agent restart or a kill -9 the bytes already in the ``.part`` file
are kept and the rest is asked for with ``Range: bytes=<size>-``; the sha256 check at the end catches
a tail damaged by a power cut (a resumed download that fails it is fetched once more from zero).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from jetfleet.agent.ota.failures import StepFailure
from jetfleet.agent.ota.observed import PartialDownload

log = logging.getLogger("jetfleet.agent.ota")
DOWNLOADS_DIRNAME = ".downloads"
CHUNK_BYTES = 1 << 20
RECORD_EVERY_BYTES = 4 << 20
RETRY_NOT_FOUND_SECONDS = 300.0


@dataclass(frozen=True)
class Fetch:
    """One file to fetch: the artifact, or a golden file (``kind``)."""

    name: str
    version: int
    sha256: str
    size_bytes: int
    url: str
    kind: str = "artifact"


class Downloads:
    def __init__(self, models_dir: Path, tls: ssl.SSLContext | None = None) -> None:
        self.dir = models_dir / DOWNLOADS_DIRNAME
        self.tls = tls  # verifies an https control plane (a private CA: the agent's ca_bundle)

    def part(self, fetch: Fetch) -> Path:
        suffix = "" if fetch.kind == "artifact" else f".{fetch.kind}"
        return self.dir / f"{fetch.name}-{fetch.version}-{fetch.sha256[:16]}{suffix}.part"

    def _record(self, part: Path) -> Path:
        return part.with_suffix(".json")

    def partials(self) -> list[PartialDownload]:
        """Artifact downloads on disk (complete or not), from their records and real file sizes."""
        found = []
        for record in sorted(self.dir.glob("*.json")) if self.dir.is_dir() else []:
            try:
                data = json.loads(record.read_text())
                if data.get("kind", "artifact") != "artifact":
                    continue
                size = record.with_suffix(".part").stat().st_size
                found.append(PartialDownload(data["name"], int(data["version"]), data["sha256"], size,
                                             int(data["size_bytes"])))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a record without its .part (or half-written): the next fetch starts over
        return found

    def remove(self, name: str, version: int, sha256: str) -> None:
        for path in self.dir.glob(f"{name}-{version}-{sha256[:16]}*") if self.dir.is_dir() else []:
            path.unlink(missing_ok=True)

    def fetch(self, fetch: Fetch, headers: dict[str, str], timeout: float, cancel: threading.Event,
              progress: Callable[[int], None] = lambda _n: None) -> Path:
        """Download (or finish) ``fetch``; returns the complete ``.part`` path. Raises :class:`StepFailure`."""
        self.dir.mkdir(parents=True, exist_ok=True)
        part = self.part(fetch)
        record = self._record(part)
        offset = part.stat().st_size if part.exists() else 0
        if offset > fetch.size_bytes:
            offset = 0
        resumed = bool(_load(record).get("resumed", False)) or offset > 0
        _save(record, fetch, offset, resumed)
        if offset < fetch.size_bytes:
            if offset:
                log.info("resuming download of %s version %s at byte %d of %d", fetch.name, fetch.version, offset,
                         fetch.size_bytes)
            transfer = _Transfer(fetch, part, record, resumed, cancel, progress, self.tls)
            try:
                transfer.run(headers, timeout, offset)
            except TimeoutError as exc:
                raise StepFailure("DOWNLOAD_ERROR/TIMEOUT", f"{fetch.url}: {exc}", temporary=True) from exc
            except (OSError, http.client.HTTPException) as exc:
                raise StepFailure("DOWNLOAD_ERROR/NETWORK", f"{fetch.url}: {exc or type(exc).__name__}",
                                  temporary=True) from exc
        return part

    def resumed(self, fetch: Fetch) -> bool:
        return bool(_load(self._record(self.part(fetch))).get("resumed", False))


class _Transfer:
    """One file over the standard library's HTTP client: it reads straight into one reused buffer, which keeps
    up with curl (httpx's streaming costs several times more CPU per byte)."""

    def __init__(self, fetch: Fetch, part: Path, record: Path, resumed: bool, cancel: threading.Event,
                 progress: Callable[[int], None], tls: ssl.SSLContext | None = None) -> None:
        self.fetch, self.part, self.record, self.resumed = fetch, part, record, resumed
        self.cancel, self.progress, self.tls = cancel, progress, tls

    def run(self, headers: dict[str, str], timeout: float, offset: int) -> None:
        url = urlsplit(self.fetch.url)
        connection: http.client.HTTPConnection
        if url.scheme == "https":
            connection = http.client.HTTPSConnection(url.hostname or "", url.port, timeout=timeout, context=self.tls)
        else:
            connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=timeout)
        try:
            path = url.path + (f"?{url.query}" if url.query else "")
            connection.request("GET", path, headers={**headers, **({"Range": f"bytes={offset}-"} if offset else {})})
            response = connection.getresponse()
            if offset and response.status == 416:  # our part is not a prefix the server knows: start over
                response.read()
                self.part.unlink(missing_ok=True)
                return self.run(headers, timeout, 0)
            if response.status == 200:
                offset = 0  # the server sent the whole file
            _check_status(response.status, self.fetch)
            with open(self.part, "r+b" if offset and self.part.exists() else "wb") as handle:
                handle.seek(offset)
                handle.truncate()
                self._copy(response, handle, offset)
        finally:
            connection.close()

    def _copy(self, response: http.client.HTTPResponse, handle: BinaryIO, done: int) -> None:
        buffer = memoryview(bytearray(CHUNK_BYTES))
        since_record = 0
        while count := response.readinto(buffer):
            if self.cancel.is_set():
                raise StepFailure("DOWNLOAD_ERROR/CANCELLED", "superseded or stopping", temporary=True)
            handle.write(buffer[:count])
            done += count
            since_record += count
            if since_record >= RECORD_EVERY_BYTES:
                self.progress(done)
                _save(self.record, self.fetch, done, self.resumed)
                since_record = 0
        handle.flush()
        os.fsync(handle.fileno())
        self.progress(done)
        _save(self.record, self.fetch, done, self.resumed)
        if done != self.fetch.size_bytes:
            raise StepFailure("DOWNLOAD_ERROR/SHORT_READ", f"got {done} of {self.fetch.size_bytes} bytes",
                              temporary=True)


def _check_status(code: int, fetch: Fetch) -> None:
    if code in (200, 206):
        return
    reason = f"DOWNLOAD_ERROR/HTTP_{code}"
    message = f"{fetch.url} answered {code}"
    if code >= 500 or code in (401, 408, 429):
        raise StepFailure(reason, message, temporary=True)  # 401: our token may be renewing
    raise StepFailure(reason, message, retry_after=RETRY_NOT_FOUND_SECONDS)


def _load(record: Path) -> dict[str, object]:
    try:
        data = json.loads(record.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save(record: Path, fetch: Fetch, done: int, resumed: bool) -> None:
    tmp = record.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"name": fetch.name, "version": fetch.version, "sha256": fetch.sha256,
                               "size_bytes": fetch.size_bytes, "kind": fetch.kind, "url": fetch.url,
                               "bytes_done": done, "resumed": resumed}))
    os.replace(tmp, record)
