"""The server's safety defaults: the bearer token (created once, readable only by the user) and the bind address."""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import stat
from pathlib import Path

from engine.deploy.errors import ServeError
from engine.paths import user_data_dir

#: Token file name inside ``<user data>/serve``.
TOKEN_FILE = "token"


def default_token_path() -> Path:
    """``<user data folder>/serve/token``."""
    return user_data_dir() / "serve" / TOKEN_FILE


def load_or_create_token(path: str | Path | None = None) -> tuple[str, Path, bool]:
    """The server's bearer token.

    Args:
        path: A token file to read (it must exist); None: the default file,
            created with a new random token (mode 0600) when missing.

    Returns:
        ``(token, path, created)``.

    Raises:
        ServeError: the file is missing (an explicit path), empty, or readable by others.
    """
    if path is not None:
        return read_token_file(Path(path)), Path(path), False
    target = default_token_path()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        handle = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_token_file(target), target, False
    token = secrets.token_urlsafe(32)
    with os.fdopen(handle, "w", encoding="ascii") as stream:
        stream.write(token + "\n")
    return token, target, True


def read_token_file(path: Path) -> str:
    """The token in ``path`` (server and clients read token files the same way).

    Raises:
        ServeError: the file is missing, empty, too short, or readable by other users.
    """
    if not path.is_file():
        raise ServeError("no such token file", path)
    if os.name == "posix" and stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise ServeError("the token file can be read by other users; run `chmod 600` on it", path)
    token = path.read_text(encoding="utf-8").strip()
    if len(token) < 16:
        raise ServeError("the token file holds no token of at least 16 characters", path)
    return token


def bearer_matches(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>`` (constant-time comparison)."""
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(host: str, allow_remote: bool) -> None:
    """Refuse a non-loopback bind address unless the user said they mean it.

    Raises:
        ServeError: ``host`` is not loopback and ``allow_remote`` is False.
    """
    if not is_loopback(host) and not allow_remote:
        raise ServeError(
            f"--host {host} would accept connections from other computers; the server has no TLS, so put it "
            "behind a TLS proxy or a private network and pass --allow-remote to confirm"
        )
