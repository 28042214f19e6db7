"""Key material: generated from the OS's secure random source, shown once, stored only as a hash.

The hash is a plain SHA-256: a key carries 256 random bits, so a slow password hash would buy nothing
against guessing and would cost the hot path on every cache miss.
"""

from __future__ import annotations

import hashlib
import secrets
import string

PREFIX = "sk-sluice-"


_ALPHABET = string.ascii_letters + string.digits


def new_key() -> str:
    """43 characters of base62: 256 random bits."""
    return PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(43))


def new_id(kind: str) -> str:
    return f"{kind}_{secrets.token_hex(8)}"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def hint(key: str) -> str:
    """Enough to recognise a key in a list, far too little to use it."""
    return f"{key[: len(PREFIX)]}...{key[-4:]}"
