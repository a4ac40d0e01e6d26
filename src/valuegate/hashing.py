"""The one file-hashing helper: bundles, model sidecars, data fingerprints and the registry
all name a file by the same digest."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: str | Path) -> str:
    """sha256 of a file's bytes, 64 hex digits. Streams the file (`hashlib.file_digest`), so
    a multi-gigabyte data file is hashed without being read into memory."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
