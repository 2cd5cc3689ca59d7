"""Who may use the review page, and how a POST proves it came from the page.

- Loopback by default; any other address needs a token (``--token-env NAME``: the token is read
  from that environment variable, never from the command line, and never printed). A request
  carries it as ``Authorization: Bearer <token>``, or the reviewer types it once into the login
  form and the signed session cookie remembers that they did.
- The reviewer's name is asked once and kept in the same cookie.
- Every POST from the page carries the session's CSRF token in ``X-CSRF-Token`` (the login form in
  a hidden field); a request authenticated by its bearer token carries no cookie to forge, so it
  needs none, and names its reviewer in ``X-Reviewer``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from segcontract.errors import SegstackError

SECRET_ENV = "SEG_REVIEW_SECRET"  # signs the session cookie; else a file beside the store
SECRET_FILE = ".seg-review-secret"
REVIEWER_PATTERN = re.compile(r"^[\w .@'-]{1,64}$")


class AccessError(SegstackError):
    """The page cannot start as asked (an address off loopback without a token)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Access:
    token: str | None = field(repr=False)  # required of every request when set
    secret: str = field(repr=False)  # signs the session cookie

    @property
    def token_mark(self) -> str:
        """What a session logged in with the token keeps: a keyed hash of it, so a session made
        with an older token (or none, on loopback) is not let in after the token changed."""
        if self.token is None:
            return ""
        return hmac.new(self.secret.encode(), self.token.encode(), hashlib.sha256).hexdigest()[:32]

    def session_ok(self, mark: str | None) -> bool:
        return self.token is None or (mark is not None and secrets.compare_digest(mark, self.token_mark))

    def bearer_ok(self, header: str | None) -> bool:
        if self.token is None or not header or not header.startswith("Bearer "):
            return False
        return secrets.compare_digest(header[len("Bearer ") :].encode(), self.token.encode())

    def token_ok(self, given: str | None) -> bool:
        return self.token is None or (
            given is not None and secrets.compare_digest(given.encode(), self.token.encode())
        )


def token_from_env(host: str, token_env: str | None) -> str | None:
    """The token the page requires: from ``$token_env``; None on loopback without one. Off
    loopback, no token (no option, or an empty variable) is an error."""
    if token_env:
        token = os.environ.get(token_env, "")
        if not token:
            raise AccessError(
                f"--token-env {token_env}: the environment variable {token_env} is empty or unset"
            )
        return token
    if not is_loopback(host):
        raise AccessError(
            f"--host {host} is not a loopback address: anyone who reaches it could review; give "
            "--token-env NAME with the page's token in $NAME (or serve on 127.0.0.1)"
        )
    return None


def session_secret(folder: Path) -> str:
    """The key signing session cookies: ``$SEG_REVIEW_SECRET``, else one made once and kept in
    ``folder/.seg-review-secret`` (readable by its owner only), so a restart keeps reviewers'
    names and logins."""
    if from_env := os.environ.get(SECRET_ENV):
        return from_env
    path = folder / SECRET_FILE
    try:
        kept = path.read_text().strip()
        if kept:
            return kept
    except FileNotFoundError:
        pass
    made = secrets.token_urlsafe(32)
    folder.mkdir(parents=True, exist_ok=True)
    try:  # created readable by its owner only, never half-written under its name
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(made)
        os.link(tmp, path)  # fails when another process made it first: theirs is used
    except FileExistsError:
        return path.read_text().strip()
    finally:
        tmp.unlink(missing_ok=True)
    return made


def valid_reviewer(name: str) -> str | None:
    """The name, trimmed, when it is one a reviewer may use (letters, digits, space . @ ' -)."""
    name = " ".join(name.split())
    return name if REVIEWER_PATTERN.match(name) else None
