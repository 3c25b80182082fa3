"""Who may knock on which door of the Order API: API keys and signed per-order tokens. Pure.

Two credentials, two audiences:

- **API keys** are the storefront's and the back office's (``Authorization: Bearer <key>``). Any
  of the configured keys is accepted, so a key can be rotated by adding the new one, moving the
  callers, then dropping the old one.
- **Order tokens** are the customer's: ``HMAC-SHA256(secret, job_id)``, base64url without padding,
  handed out once in the 202 answer's ``status_url``. The first secret of the list signs; every
  secret verifies, so the signing secret rotates the same way as keys. A token proves that this
  service accepted the order (it is never issued otherwise), and it only opens that one order.

Comparisons are constant-time. Neither keys nor secrets appear in a repr.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from enum import Enum

from crown_edge.errors import ConfigError

#: Shortest API key or token secret accepted from configuration (bytes of text).
MIN_SECRET_LEN = 16


class KeyCheck(Enum):
    """Outcome of :meth:`Credentials.check_key` (401 missing, 403 wrong)."""

    OK = "ok"
    MISSING = "missing"
    WRONG = "wrong"


def new_secret() -> str:
    """A fresh random key or secret (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(32)


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if there is one."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _sign(secret: str, job_id: str) -> str:
    mac = hmac.new(secret.encode(), job_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class Credentials:
    """The API keys and the token secrets (first signs, all verify) of one Order API."""

    api_keys: tuple[str, ...] = field(repr=False)
    token_secrets: tuple[str, ...] = field(repr=False)

    def __post_init__(self) -> None:
        if not self.api_keys:
            raise ConfigError("api", "keys", "no API key configured")
        if not self.token_secrets:
            raise ConfigError("api", "token_secrets", "no token secret configured")
        for name, values in (("keys", self.api_keys), ("token_secrets", self.token_secrets)):
            for value in values:
                if len(value) < MIN_SECRET_LEN or value != value.strip():
                    raise ConfigError(
                        "api",
                        name,
                        "too short or padded with spaces",
                        f"at least {MIN_SECRET_LEN} characters",
                    )

    def check_key(self, authorization: str | None) -> KeyCheck:
        """Whether an ``Authorization`` header carries one of the API keys."""
        given = bearer(authorization)
        if given is None:
            return KeyCheck.MISSING
        ok = False
        for key in self.api_keys:  # no early exit: every key is compared
            ok |= hmac.compare_digest(given.encode(), key.encode())
        return KeyCheck.OK if ok else KeyCheck.WRONG

    def token(self, job_id: str) -> str:
        """The customer's token for ``job_id`` (signed with the first secret)."""
        return _sign(self.token_secrets[0], job_id)

    def check_token(self, job_id: str, token: str | None) -> bool:
        """Whether ``token`` opens ``job_id`` (any configured secret)."""
        if not token:
            return False
        ok = False
        for secret in self.token_secrets:
            ok |= hmac.compare_digest(token.encode(), _sign(secret, job_id).encode())
        return ok
