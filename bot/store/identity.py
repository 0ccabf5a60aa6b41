"""Pseudonymous user keys: the HMAC key they are made with, and the key made from a platform id."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger(__name__)

MEMORY_DB = ":memory:"
KEY_FILE_SUFFIX = ".key"
_KEY_BYTES = 32


def user_key(hash_key: bytes, platform: str, platform_id: int) -> str:
    """Return the hex HMAC-SHA256 of `"<platform>:<platform_id>"`: the only id of a person the store keeps."""
    if not hash_key:
        raise ValueError("hash key is empty")
    if not platform or ":" in platform:
        raise ValueError(f"platform must be a non-empty name without ':' (got {platform!r})")
    message = f"{platform}:{int(platform_id)}".encode("utf-8")
    return hmac.new(hash_key, message, hashlib.sha256).hexdigest()


def key_file_for(db_path: str | Path) -> Path:
    """The file beside the database that holds the generated key: `<db file name>.key`."""
    path = Path(db_path)
    return path.with_name(path.name + KEY_FILE_SUFFIX)


def load_or_create_hash_key(configured: str | None, db_path: str | Path) -> bytes:
    """Return the HMAC key for user keys.

    A configured key (`HUBBOT_HASH_KEY`) wins and is used as its UTF-8 bytes. Otherwise the key is
    read from `<db file name>.key` beside the database, which is created once (32 random bytes,
    written as hex, mode 0600, atomically) when missing. The file holds the hex text and the key is
    that text's UTF-8 bytes, so copying the file's content into `HUBBOT_HASH_KEY` keeps every user
    key the same. An in-memory database gets an ephemeral key. A database URL (PostgreSQL) requires a
    configured key: there is no file to keep one beside, and every process must use the same key.
    """
    if configured is not None and configured.strip():
        return configured.encode("utf-8")
    if "://" in str(db_path):
        # A database server has no file beside it, and every process sharing it must make the same keys.
        raise ValueError("HUBBOT_HASH_KEY must be set when HUBBOT_DB is a database URL (all processes share it)")
    if str(db_path) in (MEMORY_DB, ""):
        log.debug("in-memory database: using an ephemeral hash key")
        return secrets.token_hex(_KEY_BYTES).encode("utf-8")
    path = key_file_for(db_path)
    created = _create_key_file(path)
    key = _read_key_file(path)
    log.warning(
        "HUBBOT_HASH_KEY is unset: %s the user-key file %s; set HUBBOT_HASH_KEY to its content "
        "and keep a backup (losing it unlinks every stored user from their chat)",
        "created" if created else "using",
        path,
    )
    return key


def _create_key_file(path: Path) -> bool:
    """Create the key file unless it exists; True when this call created it. Safe against a racing process."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask may have removed bits; never let it add any
        os.write(fd, (secrets.token_hex(_KEY_BYTES) + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, path)  # atomic, and fails instead of overwriting a key another process made
        return True
    except FileExistsError:
        return False
    finally:
        temporary.unlink(missing_ok=True)


def _read_key_file(path: Path) -> bytes:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("user-key file %s had mode %o; tightening it to 600", path, mode)
        path.chmod(0o600)
    text = path.read_text(encoding="utf-8").strip()
    if not text:
        raise ValueError(f"{path}: the user-key file is empty; restore it from a backup or set HUBBOT_HASH_KEY")
    return text.encode("utf-8")
