"""A random id made once per spool directory and kept in it (``producer.id``).

Exactly-once delivery names its transactional producer after the collector it serves;
the spool directory is what identifies a collector across restarts (one process per
directory, kept on a volume that survives restarts), where a host name may not be (a
Kubernetes Deployment's pods are renamed). The file is written atomically and durably
once; a spool directory copied elsewhere keeps its id (it is the same collector).
"""

from __future__ import annotations

import os
import re
import uuid

IDENTITY_FILE = "producer.id"
_VALID = re.compile(r"[0-9a-f]{16}")


def spool_identity(directory: str) -> str:
    """The directory's id (16 hex digits), made and stored on first use. Blocking."""
    path = os.path.join(directory, IDENTITY_FILE)
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            text = f.read().strip()
        if _VALID.fullmatch(text):
            return text
    except FileNotFoundError:
        pass
    os.makedirs(directory, exist_ok=True)
    made = uuid.uuid4().hex[:16]
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, (made + "\n").encode())
        os.fdatasync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return made
