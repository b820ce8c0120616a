"""Secret keys from configuration, or (the default that runs) a generated key kept in `.run/keys/`.

Production sets ``YOUHU_PERSONAL_DATA_KEY`` and ``YOUHU_AUTH_SECRET`` (base64url of 32 random bytes,
e.g. ``python -c "import os,base64;print(base64.urlsafe_b64encode(os.urandom(32)).decode())"``).
Unset, a key is generated once per checkout with mode 0600, so a demo's sealed data stays readable
across restarts and nothing secret is ever committed.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from dispatch.settings import REPO_DIR

KEY_DIR = REPO_DIR / ".run" / "keys"


def decode_key(text: str) -> bytes:
    raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    if len(raw) != 32:
        raise ValueError(f"a key must be 32 bytes of base64url, got {len(raw)} bytes")
    return raw


def local_key(name: str, directory: Path = KEY_DIR) -> bytes:
    """The checkout's own key ``name``, created on first use (atomic, 0600)."""
    path = directory / f"{name}.key"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(base64.urlsafe_b64encode(os.urandom(32)).decode())
        try:
            os.link(tmp, path)  # fails if another process won the race: keep theirs
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return decode_key(path.read_text())


def resolve_key(configured: str | None, name: str) -> bytes:
    return decode_key(configured) if configured else local_key(name)
