"""OAuth 2.0 client credentials, as Nexthink's token endpoint (Okta) issues them.

Tokens are random strings that really expire ``lifetime`` seconds after they were issued, by
the clock given (``time.monotonic`` unless a test passes its own). ``expire_all()`` makes every
token issued so far answer 401, as if they had all run out at once.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
import secrets
import time
from collections.abc import Callable

__all__ = ["SCOPE", "TokenIssuer"]

#: the only scope Nexthink's API credentials are issued for
SCOPE = "service:integration"


class TokenIssuer:
    def __init__(
        self,
        client_id: str,
        client_secret: str,
        lifetime: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if lifetime <= 0:
            raise ValueError(f"token lifetime must be positive, got {lifetime:g}")
        self.client_id = client_id
        self.client_secret = client_secret
        self.lifetime = lifetime
        self._clock = clock
        self._expiry: dict[str, float] = {}

    def authenticate(self, authorization: str | None) -> bool:
        """Whether ``Authorization: Basic base64(id:secret)`` names this client."""
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic" or not encoded:
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        client_id, sep, client_secret = decoded.partition(":")
        return bool(sep) and (
            hmac.compare_digest(client_id.encode(), self.client_id.encode())
            & hmac.compare_digest(client_secret.encode(), self.client_secret.encode())
        )

    @property
    def expires_in(self) -> int:
        """``expires_in`` as the token endpoint writes it: whole seconds, at least 1."""
        return max(1, math.ceil(self.lifetime))

    def issue(self) -> str:
        token = secrets.token_urlsafe(32)
        self._expiry[token] = self._clock() + self.lifetime
        return token

    def valid(self, authorization: str | None) -> bool:
        """Whether ``Authorization: Bearer <token>`` carries a token issued here and not expired."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        expiry = self._expiry.get(token.strip())
        return expiry is not None and self._clock() < expiry

    def expire_all(self) -> int:
        """Every token issued so far answers 401 from now on; returns how many there were."""
        count = len(self._expiry)
        self._expiry.clear()
        return count
