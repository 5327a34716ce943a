"""nix32 and hash parsing, checked against the real ``nix hash`` conversions."""

from __future__ import annotations

import base64
import hashlib
import random

import pytest

from orchestrator.formats import nix32
from orchestrator.formats.hashes import Hash, HashError, parse_hash
from tests.support.cache import needs_nix, nix


def _digests(n: int, size: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    edge = [bytes(size), b"\xff" * size, b"\x01" + bytes(size - 1), bytes(size - 1) + b"\x80"]
    return edge + [rng.randbytes(size) for _ in range(n)]


@needs_nix
@pytest.mark.parametrize(
    ("algo", "size"), [("sha256", 32), ("sha1", 20), ("md5", 16), ("sha512", 64)]
)
def test_encode_equals_nix_to_base32(algo: str, size: int) -> None:
    digests = _digests(12, size, seed=size)
    out = nix("hash", "to-base32", "--type", algo, *(d.hex() for d in digests)).stdout.split()
    assert [nix32.encode(d) for d in digests] == out
    assert [nix32.decode(s) for s in out] == digests


@needs_nix
def test_sri_and_hex_equal_nix() -> None:
    digests = _digests(8, 32, seed=7)
    nix32s = [nix32.encode(d) for d in digests]
    sri = nix("hash", "to-sri", "--type", "sha256", *nix32s).stdout.split()
    hexes = nix("hash", "to-base16", "--type", "sha256", *nix32s).stdout.split()
    for d, s, h, n in zip(digests, sri, hexes, nix32s, strict=True):
        assert Hash(algo="sha256", digest=d).to_sri() == s
        assert parse_hash(s) == parse_hash(f"sha256:{n}") == parse_hash(h, "sha256")
        assert parse_hash(f"sha256:{h}").digest == d


def test_store_path_hash_length() -> None:
    # store path hashes are 20 bytes -> 32 characters
    assert nix32.encoded_length(20) == 32
    assert nix32.encoded_length(32) == 52
    assert len(nix32.encode(hashlib.sha1(b"x").digest())) == 32


def test_alphabet_has_no_e_o_u_t() -> None:
    assert not set("eout") & set(nix32.ALPHABET)
    assert len(set(nix32.ALPHABET)) == 32


@pytest.mark.parametrize(
    "bad",
    [
        "sha256:" + "e" * 52,  # letter outside the alphabet
        "sha256:" + "z" * 52,  # padding bits set (260 bits for 256)
        "sha256:" + "0" * 51,  # wrong length
        "sha256-notbase64!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
        "sha999:" + "0" * 52,
        "0" * 52,  # bare, no algorithm given
        "sha1:" + "0" * 52,  # sha256 length under sha1
    ],
)
def test_invalid_hashes_are_refused(bad: str) -> None:
    with pytest.raises(HashError):
        parse_hash(bad)


def test_expected_algorithm_must_agree() -> None:
    h = Hash.of_bytes(b"abc")
    assert parse_hash(h.hex, "sha256") == h
    with pytest.raises(HashError):
        parse_hash(h.to_nix32(), "sha1")


def test_base64_after_colon() -> None:
    h = Hash.of_bytes(b"abc")
    assert parse_hash("sha256:" + base64.b64encode(h.digest).decode()) == h


def test_every_form_roundtrips() -> None:
    for d in _digests(20, 32, seed=1):
        h = Hash(algo="sha256", digest=d)
        for text in (h.to_nix32(), h.to_sri(), h.to_hex()):
            assert parse_hash(text) == h
