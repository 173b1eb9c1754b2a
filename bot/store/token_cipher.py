"""Slack tokens encrypted at rest: ``SLACK_TOKEN_ENCRYPTION_KEY`` as a Fernet cipher.

The setting is one Fernet key (32 url-safe base64-encoded bytes, 44 characters, as
``Fernet.generate_key()`` prints), or several separated by commas to change keys: the first
encrypts, any of them decrypts (``cryptography``'s ``MultiFernet``). Fernet is authenticated, so a
wrong key or an altered value is refused, never decrypted into garbage.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from .errors import TokenKeyMismatch

__all__ = ["KEY_HINT", "KEY_SETTING", "TokenCipher", "TokenKeyMismatch"]

KEY_SETTING = "SLACK_TOKEN_ENCRYPTION_KEY"
#: what a key is and how to make one, for messages
KEY_HINT = (
    "a Fernet key (32 url-safe base64-encoded bytes, 44 characters), made with "
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)


class TokenCipher:
    """Encrypts and decrypts token strings; build it with ``from_setting``."""

    def __init__(self, fernet: MultiFernet) -> None:
        self._fernet = fernet

    @classmethod
    def from_setting(cls, value: str) -> TokenCipher:
        """The cipher for the setting's value; ``ValueError`` (one line, no key in it) if unusable."""
        keys = [part.strip() for part in value.split(",")]
        if not value.strip() or any(not key for key in keys):
            raise ValueError(f"{KEY_SETTING} has an empty key: give {KEY_HINT}")
        fernets: list[Fernet] = []
        for number, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key))
            except ValueError:  # also binascii.Error: not base64, or not 32 bytes
                which = f"key {number} of {len(keys)}" if len(keys) > 1 else "the key"
                raise ValueError(f"{KEY_SETTING}: {which} is not {KEY_HINT}") from None
        return cls(MultiFernet(fernets))

    def seal(self, token: str) -> str:
        return self._fernet.encrypt(token.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, UnicodeError):
            raise TokenKeyMismatch(
                f"a stored Slack token cannot be decrypted with {KEY_SETTING}: it was encrypted "
                "with another key (to change keys, give the new key first and the old one after "
                "it, comma-separated)"
            ) from None
