"""The content-addressed artifact store: ``<data_dir>/artifacts/<sha[:2]>/<sha256>``.

Uploads stream to ``<data_dir>/uploads/<id>.part`` while being hashed (never held in memory), are
fsynced and renamed to ``<id>`` with a ``<id>.json`` record; creating a model version then moves them
into the store (same filesystem: a rename) or discards them. Uploads nobody claimed are removed
after :data:`UPLOAD_TTL_SECONDS`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path

from fastapi.concurrency import run_in_threadpool

from jetfleet.errors import NotFoundError, PermanentError
from jetfleet.files import fsync_path

UPLOAD_TTL_SECONDS = 3600.0
_WRITE_BUFFER = 4 << 20
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class InvalidField(PermanentError):
    """A request field is wrong; the message starts with the field's name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Upload:
    upload_id: str
    sha256: str
    size_bytes: int
    created: float


class ArtifactStore:
    def __init__(self, artifacts_dir: Path, uploads_dir: Path, max_bytes: int) -> None:
        self.root = artifacts_dir
        self.uploads = uploads_dir
        self.max_bytes = max_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        self.uploads.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise InvalidField("sha256", "must be 64 lowercase hex digits")
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    async def receive(self, chunks: AsyncIterator[bytes], *, expected_sha256: str | None,
                      expected_size: int | None) -> Upload:
        """Stream ``chunks`` into a new upload; a short, long or mismatching body leaves nothing behind."""
        if expected_sha256 is not None and not _SHA256.match(expected_sha256):
            raise InvalidField("X-Artifact-SHA256", "must be 64 lowercase hex digits")
        if expected_size is not None and expected_size > self.max_bytes:
            raise InvalidField("Content-Length", f"{expected_size} bytes is over the limit of {self.max_bytes}")
        await run_in_threadpool(self.collect_garbage)
        upload_id = uuid.uuid4().hex
        part = self.uploads / f"{upload_id}.part"
        try:
            digest, size = await self._write(chunks, part)
            _check_body(size, digest.hexdigest(), expected_size, expected_sha256)
            await run_in_threadpool(os.replace, part, self.uploads / upload_id)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        upload = Upload(upload_id, digest.hexdigest(), size, time.time())
        (self.uploads / f"{upload_id}.json").write_text(json.dumps(asdict(upload)))
        return upload

    async def _write(self, chunks: AsyncIterator[bytes], part: Path) -> tuple[hashlib._Hash, int]:
        digest = hashlib.sha256()
        size = 0
        buffer = bytearray()
        with open(part, "wb") as handle:
            async for chunk in chunks:
                buffer += chunk
                size += len(chunk)
                if size > self.max_bytes:
                    raise InvalidField("body", f"upload is over the limit of {self.max_bytes} bytes")
                if len(buffer) >= _WRITE_BUFFER:
                    await run_in_threadpool(_write_and_hash, handle, digest, bytes(buffer))
                    buffer.clear()
            await run_in_threadpool(_write_and_hash, handle, digest, bytes(buffer))
            await run_in_threadpool(os.fsync, handle.fileno())
        return digest, size

    def upload(self, upload_id: str, field: str) -> tuple[Upload, Path]:
        if not _UPLOAD_ID.match(upload_id):
            raise InvalidField(field, f"{upload_id!r} is not an upload id")
        try:
            upload = Upload(**json.loads((self.uploads / f"{upload_id}.json").read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            raise NotFoundError(f"{field}: no upload {upload_id} (uploads expire after "
                                f"{UPLOAD_TTL_SECONDS:.0f}s)") from None
        return upload, self.uploads / upload_id

    def commit(self, upload_id: str) -> None:
        """Move an upload into the store (a no-op for content it already holds)."""
        upload, path = self.upload(upload_id, "upload")
        target = self.path(upload.sha256)
        if target.exists():
            self.discard(upload_id)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        fsync_path(target.parent)
        (self.uploads / f"{upload_id}.json").unlink(missing_ok=True)

    def discard(self, upload_id: str) -> None:
        if _UPLOAD_ID.match(upload_id):
            for name in (upload_id, f"{upload_id}.json", f"{upload_id}.part"):
                (self.uploads / name).unlink(missing_ok=True)

    def collect_garbage(self, now: float | None = None) -> None:
        """Remove uploads (and interrupted .part files) older than the TTL."""
        cutoff = (now or time.time()) - UPLOAD_TTL_SECONDS
        for entry in self.uploads.iterdir():
            with suppress(FileNotFoundError):
                if entry.stat().st_mtime < cutoff:
                    entry.unlink()

    def open_checked(self, sha256: str) -> Path:
        path = self.path(sha256)
        if not path.is_file():
            raise NotFoundError(f"no artifact {sha256}")
        return path


def _write_and_hash(handle: object, digest: hashlib._Hash, data: bytes) -> None:
    handle.write(data)  # type: ignore[attr-defined]
    digest.update(data)


def _check_body(size: int, sha256: str, expected_size: int | None, expected_sha256: str | None) -> None:
    if size == 0:
        raise InvalidField("body", "the upload is empty")
    if expected_size is not None and size != expected_size:
        raise InvalidField("Content-Length", f"announced {expected_size} bytes but {size} arrived")
    if expected_sha256 is not None and sha256 != expected_sha256:
        raise InvalidField("X-Artifact-SHA256", f"the body's sha256 is {sha256}, not {expected_sha256}")

