"""The one way the agent writes a file it keeps: atomically (temp file, fsync, rename), mode 0600 in a 0700 folder."""

from __future__ import annotations

import os
import secrets
from contextlib import suppress
from pathlib import Path


def write_private(path: Path, data: bytes | str) -> None:
    """Write `data` (text is UTF-8) to `path` atomically; the file is 0600 from its creation and the rename is
    made durable, so a crash leaves the old file or the new one, never half of one. A missing parent folder is
    created with mode 0700."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    parent = path.parent
    if not parent.is_dir():
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(parent, 0o700)  # mkdir's mode is subject to the umask
    tmp = parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    os.chmod(path, 0o600)
    with suppress(OSError):  # make the rename itself durable
        dfd = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
