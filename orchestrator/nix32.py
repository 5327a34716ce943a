"""Nix's base-32 encoding ("nix32"), as printed in store paths and ``sha256:<nix32>`` hashes.

The alphabet drops ``e``, ``o``, ``u`` and ``t``. Nix processes the digest from its end: read the
bytes as one little-endian integer and the encoding is that integer's base-32 digits, most
significant first, padded to ``ceil(8 * len / 5)`` characters.
"""

from __future__ import annotations

ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}


def encoded_length(nbytes: int) -> int:
    """Characters nix32 needs for ``nbytes`` bytes (52 for sha256, 32 for a store-path hash)."""
    return (nbytes * 8 - 1) // 5 + 1 if nbytes else 0


def decoded_length(nchars: int) -> int:
    """Bytes an nix32 string of ``nchars`` characters decodes to."""
    return nchars * 5 // 8


def encode(data: bytes) -> str:
    n = encoded_length(len(data))
    value = int.from_bytes(data, "little")
    out = []
    for _ in range(n):
        out.append(ALPHABET[value & 0x1F])
        value >>= 5
    return "".join(reversed(out))


def decode(text: str) -> bytes:
    """Decode nix32; raises ``ValueError`` on a character outside the alphabet or on bits that
    do not fit the decoded length (Nix rejects those too)."""
    value = 0
    for ch in text:
        digit = _VALUE.get(ch)
        if digit is None:
            raise ValueError(f"invalid character {ch!r} in nix32 string {text!r}")
        value = (value << 5) | digit
    nbytes = decoded_length(len(text))
    if value >> (nbytes * 8):
        raise ValueError(f"nix32 string {text!r} has non-zero padding bits")
    return value.to_bytes(nbytes, "little")


def is_nix32(text: str, nbytes: int | None = None) -> bool:
    if nbytes is not None and len(text) != encoded_length(nbytes):
        return False
    try:
        decode(text)
    except ValueError:
        return False
    return True
