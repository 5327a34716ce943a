"""Real Nix builds, real signed binary caches, served over HTTP on 127.0.0.1, for the verify tests.

Everything here drives the real ``nix`` binary: derivations are built with ``/bin/sh`` as the
builder (sandbox off, so no static shell is needed), copied into a ``file://`` binary cache with
``nix copy`` and signed with a key from ``nix key generate-secret``. ``serve`` puts such a cache
directory behind Python's HTTP server on a free loopback port; its handler can be told to fail,
to stall, or to die after N requests, so the client's fault handling meets real sockets.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

NIX = shutil.which("nix")
FLAGS = [
    "--extra-experimental-features",
    "nix-command flakes",
    "--option",
    "substituters",
    "",
    "--option",
    "sandbox",
    "false",
]

needs_nix = pytest.mark.skipif(NIX is None, reason="needs a working nix binary")

# A family of tiny derivations. `tool` embeds its dependency's path (text, a symlink, a script),
# its own path, and a one-character `extra`, so two bootstraps (two `dep`s) give builds that
# differ only in store hashes, and another `extra` makes a one-byte change. `nondet` differs at
# every build; `many` has `n` outputs (many store paths from one build).
DERIVATIONS = r"""
{ salt, n ? "1", extra ? "." }:
let
  sh = "/bin/sh";
  sys = builtins.currentSystem;
  PATH = "/usr/bin:/bin";
  mkDep = boot: builtins.derivation {
    name = "dep";
    system = sys;
    builder = sh;
    inherit boot PATH;
    args = [ "-c" "mkdir -p $out/bin; printf '#!/bin/sh\necho dep\n' > $out/bin/x; chmod +x $out/bin/x" ];
  };
  mkTool = dep: builtins.derivation {
    name = "tool-${salt}";
    system = sys;
    builder = sh;
    inherit dep extra PATH;
    args = [ "-c" ''
      mkdir -p $out/bin $out/share/doc $out/iso
      printf '#!/bin/sh\nexec %s/bin/x "$@"\n' "$dep" > $out/bin/tool
      chmod +x $out/bin/tool
      ln -s $dep $out/dep
      echo "built at $out against $dep$extra" > $out/share/doc/README
      echo "image bytes" > $out/iso/image.iso
    '' ];
  };
  many = builtins.derivation {
    name = "many-${salt}";
    system = sys;
    builder = sh;
    outputs = builtins.genList (i: "o${toString i}") (builtins.fromJSON n);
    inherit PATH;
    args = [ "-c" "for o in $outputs; do eval p=\\$$o; echo \"$o ${salt}\" > $p; done" ];
  };
  nondet = builtins.derivation {
    name = "nondet-${salt}";
    system = sys;
    builder = sh;
    inherit PATH;
    args = [ "-c" "mkdir $out; echo stable > $out/stable; cat /proc/sys/kernel/random/uuid > $out/stamp" ];
  };
in {
  inherit nondet;
  depA = mkDep "A-${salt}";
  depB = mkDep "B-${salt}";
  toolA = mkTool (mkDep "A-${salt}");
  toolB = mkTool (mkDep "B-${salt}");
  inherit many;
}
"""


def nix(
    *args: str, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    assert NIX is not None
    proc = subprocess.run(
        [NIX, *FLAGS, *args], capture_output=True, text=True, input=input, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"nix {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def unique_salt() -> str:
    return uuid.uuid4().hex[:12]


def write_derivations(directory: Path) -> Path:
    f = directory / "derivations.nix"
    f.write_text(DERIVATIONS)
    return f


def build(file: Path, attr: str, **argstr: str) -> dict[str, str]:
    """Build every output of ``attr`` of ``file``; returns {output name: store path}."""
    args = ["eval", "--raw", "-f", str(file), f"{attr}.drvPath"]
    for k, v in argstr.items():
        args += ["--argstr", k, v]
    drv = nix(*args).stdout.strip()
    out = json.loads(nix("build", "--no-link", "--json", drv).stdout)
    return dict(out[0]["outputs"])


def drv_path(file: Path, attr: str, **argstr: str) -> str:
    args = ["eval", "--raw", "-f", str(file), f"{attr}.drvPath"]
    for k, v in argstr.items():
        args += ["--argstr", k, v]
    return nix(*args).stdout.strip()


def path_info(*paths: str) -> list[dict]:
    return json.loads(nix("path-info", "--json", *paths).stdout)


def generate_key(directory: Path, name: str) -> tuple[Path, str]:
    """(secret key file, public key ``name:base64``) made by ``nix key``."""
    secret = nix("key", "generate-secret", "--key-name", name).stdout
    sk = directory / f"{name}.secret"
    sk.write_text(secret)
    public = nix("key", "convert-secret-to-public", input=secret).stdout.strip()
    return sk, public


def copy_to_cache(paths: list[str], cache: Path, secret: Path, compression: str = "xz") -> None:
    url = f"file://{cache}?secret-key={secret}&compression={compression}"
    nix("copy", "--to", url, *paths)


def substitute_from_cache(path: str, cache: Path, public_key: str) -> None:
    """Delete ``path`` locally and copy it back from the cache: now it is substituted."""
    nix("store", "delete", path)
    nix("copy", "--from", f"file://{cache}", "--option", "trusted-public-keys", public_key, path)


def narinfo_file(cache: Path, store_path: str) -> Path:
    return cache / f"{Path(store_path).name[:32]}.narinfo"


# --------------------------------------------------------------------------------------------
# HTTP


class CacheServer:
    """A binary cache directory (or any routes) served on 127.0.0.1 with injectable faults."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        die_after: int | None = None,
        fail_first: int = 0,
        routes: Callable[[http.server.BaseHTTPRequestHandler], bool] | None = None,
    ) -> None:
        self.root = root
        self.die_after = die_after
        self.fail_first = fail_first
        self.routes = routes
        self.requests: list[str] = []
        self.failed: dict[str, int] = {}
        self.dead = False
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else headers+body meet delayed ACKs: 40 ms each

            def __init__(self, *a, **kw):  # type: ignore[no-untyped-def]
                super().__init__(*a, directory=str(server.root or "."), **kw)

            def log_message(self, *args):  # type: ignore[no-untyped-def]
                pass

            def do_GET(self) -> None:
                with server.lock:
                    if server.dead:
                        self.close_connection = True
                        return
                    server.requests.append(self.path)
                    count = len(server.requests)
                    tries = server.failed.get(self.path, 0)
                    if tries < server.fail_first:
                        server.failed[self.path] = tries + 1
                        fail = True
                    else:
                        fail = False
                if fail:
                    self.send_error(503, "try again")
                    return
                if server.die_after is not None and count > server.die_after:
                    server.kill()
                    self.close_connection = True
                    return
                if server.routes is not None and server.routes(self):
                    return
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> CacheServer:
        self.thread.start()
        return self

    def kill(self) -> None:
        """Stop answering: the listening socket closes, live connections are dropped."""
        self.dead = True
        threading.Thread(target=self._shutdown, daemon=True).start()

    def _shutdown(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def stop(self) -> None:
        if not self.dead:
            self.dead = True
            self._shutdown()


@contextlib.contextmanager
def serve(root: Path | None = None, **kw) -> Iterator[CacheServer]:  # type: ignore[no-untyped-def]
    server = CacheServer(root, **kw).start()
    try:
        yield server
    finally:
        server.stop()


def port_is_closed(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) != 0


def wait_until(pred: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


# --------------------------------------------------------------------------------------------
# A small world of real builds and one real signed cache, shared by the verify tests


class World:
    """Built once per test module (each with its own salt, so modules never share paths).

    * ``many``: paths built here and copied to the cache (the ``reproducible`` case)
    * ``tool_a`` (over ``dep_a``): our bootstrap's build; ``tool_b`` (over ``dep_b``): theirs,
      only in the cache (deleted locally); ``tool_b_changed``: theirs with a one-byte change,
      local only
    * ``nondet``: in the cache (zstd) from one build, rebuilt locally with other bytes
    * ``substituted``: deleted locally and copied back from the cache
    """

    def __init__(self, tmp: Path, n_many: int = 6) -> None:
        self.tmp = tmp
        self.salt = unique_salt()
        self.file = write_derivations(tmp)
        self.cache = tmp / "cache"
        self.secret, self.public = generate_key(tmp, f"test-verify-{self.salt}")
        s = self.salt
        self.many = list(build(self.file, "many", salt=s, n=str(n_many)).values())
        self.tool_a = build(self.file, "toolA", salt=s)["out"]
        self.tool_b = build(self.file, "toolB", salt=s)["out"]
        self.tool_b_changed = build(self.file, "toolB", salt=s, extra="!")["out"]
        info = {i["path"]: i for i in path_info(self.tool_a, self.tool_b)}
        self.dep_a = next(r for r in info[self.tool_a]["references"] if r.endswith("-dep"))
        self.dep_b = next(r for r in info[self.tool_b]["references"] if r.endswith("-dep"))
        self.nondet = build(self.file, "nondet", salt=s)["out"]
        self.substituted = build(self.file, "many", salt=s + "-sub", n="1")["o0"]
        copy_to_cache([*self.many, self.tool_b, self.substituted], self.cache, self.secret)
        copy_to_cache([self.nondet], self.cache, self.secret, compression="zstd")
        self.nondet_cached_stamp = Path(self.nondet, "stamp").read_bytes()
        nix("store", "delete", self.tool_b)
        nix("store", "delete", self.nondet)
        build(self.file, "nondet", salt=s)  # same path, other bytes
        substitute_from_cache(self.substituted, self.cache, self.public)

    def cache_copy(self, dest: Path) -> Path:
        shutil.copytree(self.cache, dest)
        return dest
