"""Nix's base-32 encoding ("nix32"), as printed in store paths and ``sha256:<nix32>`` hashes.

The alphabet drops ``e``, ``o``, ``u`` and ``t``. Nix processes the digest from its end: read the
bytes as one little-endian integer and the encoding is that integer's base-32 digits, most
significant first, padded to ``ceil(8 * len / 5)`` characters.
"""

from __future__ import annotations

import base64

ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"
_ALPHABET_SET = frozenset(ALPHABET)


def encoded_length(nbytes: int) -> int:
    """Characters nix32 needs for ``nbytes`` bytes (52 for sha256, 32 for a store-path hash)."""
    return (nbytes * 8 - 1) // 5 + 1 if nbytes else 0


def decoded_length(nchars: int) -> int:
    """Bytes an nix32 string of ``nchars`` characters decodes to."""
    return nchars * 5 // 8


_RFC = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_TO_NIX = str.maketrans(_RFC, ALPHABET)
_FROM_NIX = str.maketrans(ALPHABET, _RFC)


def encode(data: bytes) -> str:
    # The digits of the little-endian integer, most significant first, are the RFC 4648 base32
    # of its big-endian bytes left-padded to a multiple of 40 bits: let the C codec do the work.
    n = encoded_length(len(data))
    if n == 0:
        return ""
    groups = -(-n // 8)  # 8 characters per 5 bytes
    value = int.from_bytes(data, "little")
    rfc = base64.b32encode(value.to_bytes(groups * 5, "big")).decode()
    return rfc[len(rfc) - n :].translate(_TO_NIX)


def decode(text: str) -> bytes:
    """Decode nix32; raises ``ValueError`` on a character outside the alphabet or on bits that
    do not fit the decoded length (Nix rejects those too)."""
    bad = set(text) - _ALPHABET_SET
    if bad:
        raise ValueError(f"invalid character {min(bad)!r} in nix32 string {text!r}")
    nbytes = decoded_length(len(text))
    if not text:
        return b""
    groups = -(-len(text) // 8)
    rfc = "A" * (groups * 8 - len(text)) + text.translate(_FROM_NIX)
    value = int.from_bytes(base64.b32decode(rfc), "big")
    if value >> (nbytes * 8):
        raise ValueError(f"nix32 string {text!r} has non-zero padding bits")
    return value.to_bytes(nbytes, "little")
