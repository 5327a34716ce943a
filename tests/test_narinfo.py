"""narinfo parsing and ed25519 signatures, on the real cache.nixos.org narinfos and on
signatures made by the real ``nix store sign``."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator.cli import main
from orchestrator.errors import ParseError
from orchestrator.formats.narinfo import (
    DEFAULT_TRUSTED_KEY,
    SigStatus,
    check_signatures,
    parse_narinfo,
    parse_public_key,
    parse_secret_key,
    sign_narinfo,
)
from tests.support.cache import (
    build,
    generate_key,
    needs_nix,
    nix,
    path_info,
    unique_salt,
    write_derivations,
)

REPO = Path(__file__).resolve().parent.parent
CACHE_FIXTURES = REPO.parent / "shared" / "fixtures" / "binary-cache"
NIXOS_KEY = parse_public_key(DEFAULT_TRUSTED_KEY)


def fixtures() -> list[Path]:
    found = sorted(CACHE_FIXTURES.glob("*.narinfo"))
    if not found:
        pytest.fail(f"fixture data missing: {CACHE_FIXTURES}")
    return found


def load(name_prefix: str):  # type: ignore[no-untyped-def]
    (path,) = [p for p in fixtures() if p.name.startswith(name_prefix)]
    return parse_narinfo(path.read_text(), source=str(path))


@pytest.mark.parametrize("path", fixtures(), ids=lambda p: p.name[:40])
def test_real_narinfos_verify_with_the_real_key(path: Path) -> None:
    info = parse_narinfo(path.read_text(), source=str(path))
    report = check_signatures(info, [NIXOS_KEY])
    assert report.trusted
    assert report.valid_keys == ["cache.nixos.org-1"]
    others = [c for c in report.checks if c.key_name != "cache.nixos.org-1"]
    assert all(c.status is SigStatus.unknown_key for c in others)


def test_extra_signatures_are_untrusted_on_their_own() -> None:
    for prefix, other in (("syd87", "test1"), ("zzxrhj", "fake-test-sig-1")):
        info = load(prefix)
        only_other = info.model_copy(update={"sigs": [s for s in info.sigs if s.startswith(other)]})
        report = check_signatures(only_other, [NIXOS_KEY])
        assert not report.trusted
        assert report.checks[0].status is SigStatus.unknown_key
        assert f"untrusted key {other}" in report.reason()
        # and a trusted key under that name does not make the signature verify
        fresh = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
        impostor = parse_public_key(f"{other}:{base64.b64encode(fresh).decode()}")
        report2 = check_signatures(only_other, [impostor])
        assert report2.checks[0].status is SigStatus.invalid


def test_fingerprint_is_exact() -> None:
    info = load("syd87")
    assert info.fingerprint() == (
        "1;/nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin;"
        "sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0;196040;"
        "/nix/store/0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl-7.82.0,"
        "/nix/store/6w8g7njm4mck5dmjxws0z1xnrxvl81xa-glibc-2.34-115,"
        "/nix/store/j5jxw3iy7bbz4a57fh9g2xm2gxmyal8h-zlib-1.2.12,"
        "/nix/store/yxvjs9drzsphm9pcf42a4byzj1kb9m7k-openssl-1.1.1n"
    )


def test_fingerprint_sorts_references_and_keeps_self_reference() -> None:
    info = load("p4pclmv")
    refs = info.fingerprint().split(";")[4].split(",")
    assert refs == sorted(refs)
    assert info.store_path in refs
    shuffled = info.model_copy(update={"references": list(reversed(info.references))})
    assert shuffled.fingerprint() == info.fingerprint()
    assert check_signatures(shuffled, [NIXOS_KEY]).trusted


def test_fields() -> None:
    drv = load("8raygmhj")
    assert drv.ca == "text:sha256:18cyz621xqngdfc8kmxrj3v5rrxyzdls5ahqb6qaq5ggm7q9gjdq"
    assert drv.deriver is None
    assert len(drv.references) == 5
    rg = load("axp6zlky")
    assert rg.compression == "zstd"
    assert rg.url == f"nar/{rg.nar_hash.nix32}.nar.zst"  # URL named after the NarHash
    assert rg.file_size == 2133450 and rg.nar_size == 7088584
    curl = load("syd87")
    assert len(curl.sigs) == 2
    assert curl.deriver == "5rwxzi7pal3qhpsyfc16gzkh939q1np6-curl-7.82.0.drv"


def test_tampering_breaks_the_signature() -> None:
    info = load("syd87")
    for update in (
        {"nar_size": info.nar_size + 1},
        {"references": info.references[:-1]},
        {"store_path": info.store_path.replace("curl", "curm")},
        {"nar_hash": load("zzxrhj").nar_hash},
    ):
        report = check_signatures(info.model_copy(update=update), [NIXOS_KEY])
        assert not report.trusted
        assert report.checks[0].status is SigStatus.invalid


def test_compression_defaults_to_bzip2_and_unknown_keys_are_ignored() -> None:
    text = (CACHE_FIXTURES / fixtures()[0].name).read_text()
    lines = [ln for ln in text.splitlines() if not ln.startswith("Compression:")]
    lines.insert(2, "SomethingNew: whatever: with colons")
    info = parse_narinfo("\n".join(lines))
    assert info.compression == "bzip2"
    assert check_signatures(info, [NIXOS_KEY]).trusted


def test_text_roundtrip_keeps_signatures_valid() -> None:
    for path in fixtures():
        info = parse_narinfo(path.read_text())
        again = parse_narinfo(info.to_text())
        assert again == info
        assert check_signatures(again, [NIXOS_KEY]).trusted


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("StorePath: /nix/store/abc\nURL: x\nNarHash: sha256:00\nNarSize: 1\n", "store path"),
        ("URL: x\nNarHash: sha256:" + "0" * 52 + "\nNarSize: 1\n", "no StorePath"),
        ("garbage without colon\n", "Key: value"),
        (
            "StorePath: /nix/store/" + "a" * 32 + "-x\nURL: x\nNarHash: sha256:nope\nNarSize: 1\n",
            "invalid sha256",
        ),
        (
            "StorePath: /nix/store/"
            + "a" * 32
            + "-x\nURL: x\nNarHash: sha256:"
            + "0" * 52
            + "\nNarSize: -4\n",
            "non-negative",
        ),
    ],
)
def test_garbled_narinfo_names_file_and_line(text: str, match: str) -> None:
    with pytest.raises(ParseError, match=match) as err:
        parse_narinfo(text, source="bad.narinfo")
    assert "bad.narinfo" in str(err.value)


def test_public_key_parsing() -> None:
    assert str(NIXOS_KEY) == DEFAULT_TRUSTED_KEY
    for bad in ("nokey", "name:!!!", "name:" + base64.b64encode(b"short").decode()):
        with pytest.raises(ParseError):
            parse_public_key(bad)


@needs_nix
def test_our_signature_equals_nix_store_sign(tmp_path: Path) -> None:
    """ed25519 is deterministic: signing the fingerprint ourselves must give Nix's exact Sig."""
    f = write_derivations(tmp_path)
    out = build(f, "toolA", salt=unique_salt())["out"]
    sk_file, pk = generate_key(tmp_path, "test-sign-1")
    nix("store", "sign", "--key-file", str(sk_file), out)
    info = path_info(out)[0]
    (nix_sig,) = [s for s in info["signatures"] if s.startswith("test-sign-1:")]
    cache = tmp_path / "cache"
    nix("copy", "--to", f"file://{cache}", out)
    narinfo = parse_narinfo((cache / f"{Path(out).name[:32]}.narinfo").read_text())
    secret = parse_secret_key(sk_file.read_text())
    assert str(secret.public()) == pk
    assert sign_narinfo(narinfo, secret).sigs == [nix_sig]
    report = check_signatures(narinfo, [parse_public_key(pk)])
    assert report.trusted and report.valid_keys == ["test-sign-1"]


def test_cli_narinfo_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(p) for p in fixtures()]
    assert main(["narinfo", "check", "--json", *files]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in rows] == ["trusted"] * len(files)
    tampered = tmp_path / "tampered.narinfo"
    tampered.write_text(Path(files[0]).read_text().replace("NarSize: ", "NarSize: 1"))
    garbled = tmp_path / "garbled.narinfo"
    garbled.write_text("this is not a narinfo\n")
    assert main(["narinfo", "check", "--json", files[0], str(tampered), str(garbled)]) == 2
    rows = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in rows] == ["trusted", "untrusted", "error"]
    assert "does not verify" in rows[1]["reason"]
    # with another trusted key only, the real files are untrusted
    other = "other-1:" + base64.b64encode(bytes(32)).decode()
    assert main(["narinfo", "check", "--trusted-key", other, files[0]]) == 2
    assert "untrusted" in capsys.readouterr().out
