"""stage0-posix's kaem scripts, interpreted and translated into Nix derivations (JSON data).

stage0-posix builds itself from a 181-byte hex0 seed by a chain of kaem scripts
(``kaem.x86`` -> ``x86/mescc-tools-seed-kaem.kaem`` -> ``x86/mescc-tools-mini-kaem.kaem`` ->
``x86/kaem.run`` -> ``x86/mescc-tools-full-kaem.kaem`` -> ``mescc-tools-extra/mescc-tools-extra.kaem``
...). This module

1. **interprets** those scripts with kaem's own semantics (``kaem.py``), which records every
   program they run as a :class:`Command`;
2. **translates** the commands into :class:`Step` s, one Nix derivation each: the builder is the
   seed or an earlier step's output, the arguments map source paths to the live-bootstrap input
   and artifacts to the step that produced them, the output is ``placeholder "out"``.

The result is bulk data, rendered as ``steps/stage0/<arch>.json``; the hand-written
``nix/stage0.nix`` turns it into derivations. ``steps/stage0/meta.json`` records what they were
generated from (``stage0_record.py``: a tree without the scripts can only check them). Nothing
here runs a tool.

Where a tool needs more than files on its command line, the need is read from the sources and
met with the chain's own tools (never a host binary):

- ``M2-Mesoplanet`` runs ``M2-Planet``, ``blood-elf``, ``M1``, ``hex2`` and ``catm`` through
  ``PATH`` (``M2-Mesoplanet/cc_spawn.c``) and reads headers below ``M2LIBC_PATH``
  (``cc_reader.c``). ``PATH`` becomes a directory assembled by the chain's kaem, mkdir, cp/catm
  and chmod, holding the programs of that list that the script's ``PATH`` holds at that point;
  ``M2LIBC_PATH`` becomes the source directory. Its temporary files go to the sandbox's own
  ``TMPDIR`` (the script points ``TMPDIR`` at its artifact directory).
- The first such directory is needed before the chain has built ``mkdir`` and ``chmod``
  (mescc-tools-extra builds them with ``M2-Mesoplanet`` itself). Bootstrap helpers
  ``mkdir-0``/``chmod-0`` are built from the same sources with the steps ``M2-Mesoplanet`` would
  spawn, run one by one (``-E`` preprocessing, then ``M2-Planet``, ``M1``, ``hex2``).
- ``sha256sum -c FILE`` checks files at the relative paths ``FILE`` lists: a check step lays
  them out (with the chain's mkdir/cp) and runs the command there.

Two outputs are self-reproductions of seeds (the scripts say so in comments): ``artifact/hex0``
is the ``hex0-seed`` and ``artifact/kaem-0`` the ``kaem-optional-seed``. The check copies each
with the chain's ``catm`` into a fixed-output derivation whose expected hash nix/stage0.nix takes
from the seed (``builtins.hashFile``), so Nix itself enforces byte identity. (The rebuilt
programs themselves cannot be flat fixed outputs: those must not be executable.)

"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.errors import GenerateError
from orchestrator.stage0.kaem import STAGE0, Arg, Command, Interpreter
from orchestrator.stage0.record import RECORD, keep_checked, record_for
from orchestrator.upstream.tree import SourceTree


class Arch(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str  # as in <name>.answers, ${ARCH}
    arch_dir: str  # ${ARCH_DIR}
    entry: str  # the script the seed kaem runs
    system: str  # Nix system the binaries run on
    answers: str

    @property
    def seeds(self) -> str:
        return f"bootstrap-seeds/POSIX/{self.arch_dir}"


ARCHES: dict[str, Arch] = {
    "x86": Arch(
        name="x86", arch_dir="x86", entry="kaem.x86", system="i686-linux", answers="x86.answers"
    ),
    "amd64": Arch(
        name="amd64",
        arch_dir="AMD64",
        entry="kaem.amd64",
        system="x86_64-linux",
        answers="amd64.answers",
    ),
}

# Outputs that must equal a seed byte for byte: artifact (under <arch_dir>/) -> seed (under
# bootstrap-seeds/POSIX/<arch_dir>/). From the comments in <arch>/mescc-tools-seed-kaem.kaem.
SELF_REPRODUCTIONS = {"artifact/hex0": "hex0-seed", "artifact/kaem-0": "kaem-optional-seed"}

# Environment variables a tool reads (kaem passes its whole environment; only these matter).
# M2-Mesoplanet/cc.c: M2LIBC_PATH, TMPDIR, M2MESOPLANET_NEW_ARGUMENTLESS_BEHAVIOR;
# cc_spawn.c: PATH; cc_env.c: ARCHITECTURE_OVERRIDE, OS_OVERRIDE.
TOOL_ENV: dict[str, tuple[str, ...]] = {
    "M2-Mesoplanet": (
        "PATH",
        "M2LIBC_PATH",
        "TMPDIR",
        "ARCHITECTURE_OVERRIDE",
        "OS_OVERRIDE",
        "M2MESOPLANET_NEW_ARGUMENTLESS_BEHAVIOR",
    ),
}
# Programs a tool runs through PATH (M2-Mesoplanet/cc_spawn.c: spawn_M2, spawn_blood_elf,
# spawn_M1, spawn_hex2, spawn_catm).
TOOL_SPAWNS: dict[str, tuple[str, ...]] = {
    "M2-Mesoplanet": ("M2-Planet", "blood-elf", "M1", "hex2", "catm"),
}

KAEM_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+=:,@%")


# ------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------
class Ref(BaseModel):
    """A string in a derivation: exactly one of the fields is set.

    lit: the text itself; src: a path below stage0-posix in the live-bootstrap input;
    step: the output of an earlier step; out: the step's own output, plus this suffix;
    text/name: a file with this content (builtins.toFile).
    """

    model_config = ConfigDict(frozen=True)

    lit: str | None = None
    src: str | None = None
    step: str | None = None
    out: str | None = None
    text: str | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Ref:
        set_ = [k for k in ("lit", "src", "step", "out", "text") if getattr(self, k) is not None]
        if len(set_) != 1:
            raise ValueError(f"a Ref sets exactly one of lit/src/step/out/text, not {set_}")
        if (self.text is None) != (self.name is None):
            raise ValueError("text and name go together")
        return self


class Origin(BaseModel):
    script: str
    line: int
    cwd: str
    command: str


StepKind = Literal["command", "helper", "assemble", "check"]


class Step(BaseModel):
    id: str  # unique; the tree path of the output for commands
    name: str  # derivation name
    kind: StepKind
    builder: Ref
    args: list[Ref]
    env: dict[str, Ref] = Field(default_factory=dict)
    same_as: Ref | None = None  # fixed-output: the output must equal this file
    deps: list[str] = Field(default_factory=list)  # steps that must succeed first
    origin: Origin | None = None
    output: str | None = None  # stage0-posix-relative path the scripts write


class Stage0Plan(BaseModel):
    """Everything nix/stage0.nix needs for one architecture."""

    arch: str
    arch_dir: str
    system: str
    root: str  # stage0-posix inside the live-bootstrap input
    entry: str
    steps: list[Step]
    tools: dict[str, str]  # name -> step id: the programs left in <arch_dir>/bin
    package: str  # step id of the assembled output (bin/ and M2libc/)
    checks: dict[str, str]  # check name -> step id

    def to_json(self) -> str:
        data = self.model_dump(mode="json", exclude_none=True, exclude_defaults=False)
        return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


# ------------------------------------------------------------------------------------------
# The translation: commands -> steps
# ------------------------------------------------------------------------------------------
class Translator:
    def __init__(self, interp: Interpreter, arch: Arch) -> None:
        self.interp = interp
        self.arch = arch
        self.commands = interp.commands
        self.steps: list[Step] = []
        self.ids: set[str] = set()
        self.produced: dict[str, str] = {}  # tree path -> step id of its latest writer
        self.assembled: dict[tuple[tuple[str, str], ...], str] = {}  # directory contents -> step
        self.position = 0  # index of the command being translated
        self.reproductions: list[tuple[str, str]] = []  # (step id, seed it must equal)

    # -- helpers -------------------------------------------------------------------------------
    def _add(self, step: Step) -> str:
        if step.id in self.ids:
            raise GenerateError(f"duplicate stage0 step id {step.id}")
        self.ids.add(step.id)
        self.steps.append(step)
        return step.id

    def _new_id(self, base: str) -> str:
        if base not in self.ids:
            return base
        n = 2
        while f"{base}~{n}" in self.ids:
            n += 1
        return f"{base}~{n}"

    def _ref(self, path: str) -> Ref:
        """A stage0-posix file as it is at this point: an artifact's step, or the source."""
        if path in self.produced:
            return Ref(step=self.produced[path])
        if self.interp.is_source_file(path):
            return Ref(src=path)
        raise GenerateError(f"{path}: neither a source nor an earlier artifact")

    def _origin(self, c: Command) -> Origin:
        return Origin(script=c.script, line=c.line, cwd=c.cwd, command=c.text)

    # -- the tools the translation itself uses --------------------------------------------------
    def _have(self, name: str) -> Ref | None:
        """The chain's own program `name`, as built so far: <arch_dir>/bin first, then
        <arch_dir>/artifact (an executable source file there counts too)."""
        for d in ("bin", "artifact"):
            path = f"{self.arch.arch_dir}/{d}/{name}"
            if path in self.produced:
                return Ref(step=self.produced[path])
            if self.interp.tree.kind(self.interp.tree_path_of(path)) == "executable":
                return Ref(src=path)
        return None

    def _helper(self, name: str) -> Ref:
        found = self._have(name)
        if found is not None:
            return found
        hid = f"helper/{name}-0"
        if hid in self.ids:
            return Ref(step=hid)
        # A later command builds <bin>/name with M2-Mesoplanet: build it now, spawn by spawn.
        for c in self.commands[self.position :]:
            if c.output and posixpath.basename(c.output) == name and c.tool_name == "M2-Mesoplanet":
                return Ref(step=self._split_mesoplanet(c, hid))
        raise GenerateError(
            f"stage0: a directory must be assembled before the chain has a `{name}`, and no later "
            f"M2-Mesoplanet command builds one"
        )

    def _split_mesoplanet(self, c: Command, hid: str) -> str:
        """The programs M2-Mesoplanet would spawn for `c` (cc_spawn.c spawn_processes), as
        separate steps, without debug info: a working bootstrap helper, not a release binary."""
        arch = _option(c, ("-A", "--architecture"))
        if arch is None:
            raise GenerateError(f"{c.script}:{c.line}: M2-Mesoplanet without --architecture")
        m2libc = self._m2libc(c)
        endian = c.env.get("ENDIAN_FLAG", "--little-endian")
        base = c.env.get("BASE_ADDRESS")
        if base is None:
            raise GenerateError(f"{c.script}:{c.line}: BASE_ADDRESS is not set for M2-Mesoplanet")
        spawn = self._spawn_dirs(c)
        origin = self._origin(c)
        pre = self._mesoplanet_preprocess(c, hid, m2libc)
        m1 = self._add(
            Step(
                id=f"{hid}/M2.M1",
                name=f"{posixpath.basename(hid)}.M1",
                kind="helper",
                builder=spawn("M2-Planet"),
                args=[
                    Ref(lit="--file"),
                    Ref(step=pre),
                    Ref(lit="--output"),
                    Ref(out=""),
                    Ref(lit="--architecture"),
                    Ref(lit=arch),
                ],
                origin=origin,
            )
        )
        hex2 = self._add(
            Step(
                id=f"{hid}/M1.hex2",
                name=f"{posixpath.basename(hid)}.hex2",
                kind="helper",
                builder=spawn("M1"),
                args=[
                    Ref(lit="--file"),
                    _sub(m2libc, f"/{arch}/{arch}_defs.M1"),
                    Ref(lit="--file"),
                    _sub(m2libc, f"/{arch}/libc-full.M1"),
                    Ref(lit="--file"),
                    Ref(step=m1),
                    Ref(lit=endian),
                    Ref(lit="--architecture"),
                    Ref(lit=arch),
                    Ref(lit="--output"),
                    Ref(out=""),
                ],
                origin=origin,
            )
        )
        return self._add(
            Step(
                id=hid,
                name=posixpath.basename(hid),
                kind="helper",
                builder=spawn("hex2"),
                args=[
                    Ref(lit="--file"),
                    _sub(m2libc, f"/{arch}/ELF-{arch}.hex2"),
                    Ref(lit="--file"),
                    Ref(step=hex2),
                    Ref(lit="--output"),
                    Ref(out=""),
                    Ref(lit="--architecture"),
                    Ref(lit=arch),
                    Ref(lit="--base-address"),
                    Ref(lit=base),
                    Ref(lit=endian),
                ],
                origin=origin,
            )
        )

    def _mesoplanet_preprocess(self, c: Command, hid: str, m2libc: Ref) -> str:
        """The first spawned program: M2-Mesoplanet itself with ``-E`` (its arguments without
        the output), the preprocessed C."""
        pre_args: list[Ref] = []
        skip = False
        for a in c.args:
            if skip:
                skip = False
                continue
            if a.text in ("-o", "--output"):
                skip = True
                continue
            pre_args.append(self._arg(a))
        return self._add(
            Step(
                id=f"{hid}/preprocessed.c",
                name=f"{posixpath.basename(hid)}.c",
                kind="helper",
                builder=self._ref(c.tool),
                args=[*pre_args, Ref(lit="-E"), Ref(lit="-o"), Ref(out="")],
                env={"M2LIBC_PATH": m2libc},
                origin=self._origin(c),
            )
        )

    def _m2libc(self, c: Command) -> Ref:
        value = c.env.get("M2LIBC_PATH")
        if value is None:
            value = "./M2libc"  # cc.c's default
        d = self.interp.resolve(c.cwd, value, file=c.script, line=c.line)
        if d is None or not self.interp.tree.is_dir(self.interp.tree_path_of(d)):
            raise GenerateError(
                f"{c.script}:{c.line}: M2LIBC_PATH={value} is not a source directory"
            )
        return Ref(src=d)

    def _spawn_dirs(self, c: Command) -> Callable[[str], Ref]:
        """Where `c` would find a program through its PATH (first match, as kaem and
        M2-Mesoplanet search)."""
        entries = []
        for entry in c.env.get("PATH", "").split(":"):
            d = self.interp.resolve(c.cwd, entry, file=c.script, line=c.line)
            if d is not None:
                entries.append(d)

        def find(name: str) -> Ref:
            for d in entries:
                path = f"{d}/{name}" if d else name
                if path in self.produced:
                    return Ref(step=self.produced[path])
            raise GenerateError(f"{c.script}:{c.line}: {name} is not in PATH={c.env.get('PATH')}")

        return find

    def _spawn_path(self, c: Command) -> list[tuple[str, str]]:
        """(name, step id) of each program c's tool spawns that its PATH holds now."""
        entries = []
        for entry in c.env.get("PATH", "").split(":"):
            d = self.interp.resolve(c.cwd, entry, file=c.script, line=c.line)
            if d is not None:
                entries.append(d)
        found = []
        for name in TOOL_SPAWNS.get(c.tool_name, ()):
            for d in entries:
                path = f"{d}/{name}" if d else name
                if path in self.produced:
                    found.append((name, self.produced[path]))
                    break
        return found

    # -- kaem scripts the translation writes ----------------------------------------------------
    def _script_step(
        self,
        *,
        sid: str,
        name: str,
        kind: StepKind,
        purpose: str,
        lines: list[list[str | Ref]],
        deps: list[str] | None = None,
        origin: Origin | None = None,
    ) -> str:
        """A step run by the chain's kaem: `lines` are commands whose Ref words become
        variables (kaem expands ${NAME} from the environment)."""
        env: dict[str, Ref] = {}
        by_ref: dict[Ref, str] = {}
        text = [
            f"# {purpose}",
            "# Generated by orchestrator.stage0; run by the chain's own kaem.",
        ]

        def word(w: str | Ref) -> str:
            if isinstance(w, str):
                bad = set(w) - KAEM_SAFE
                if bad:
                    raise GenerateError(
                        f"stage0: cannot quote {w!r} for kaem (characters {sorted(bad)})"
                    )
                return w
            if w.lit is not None:
                return word(w.lit)
            if w.out is not None:
                return "${out}" + word(w.out) if w.out else "${out}"
            if w.src is not None:
                env["SRC"] = Ref(src="")
                return "${SRC}/" + word(w.src) if w.src else "${SRC}"
            var = by_ref.get(w)
            if var is None:
                var = by_ref[w] = f"T{len(by_ref)}"
                env[var] = w
            return "${" + var + "}"

        for ln in lines:
            text.append(" ".join(word(w) for w in ln))
        kaem = self._helper("kaem")
        script = "\n".join(text) + "\n"
        return self._add(
            Step(
                id=sid,
                name=name,
                kind=kind,
                builder=kaem,
                args=[
                    Ref(lit="--verbose"),
                    Ref(lit="--strict"),
                    Ref(lit="--file"),
                    Ref(text=script, name=f"{name}.kaem"),
                ],
                env=env,
                deps=sorted(set(deps or [])),
                origin=origin,
            )
        )

    def _copy_lines(self, src: Ref, dest: Ref | str, *, executable: bool) -> list[list[str | Ref]]:
        cp = self._have("cp")
        if cp is not None:
            lines: list[list[str | Ref]] = [[cp, src, dest]]
        else:
            lines = [[self._helper("catm"), dest, src]]
        if executable:
            lines.append([self._helper("chmod"), "755", dest])
        return lines

    def _assemble_dir(self, files: list[tuple[str, str]], origin: Origin) -> str:
        key = tuple(files)
        if key in self.assembled:
            return self.assembled[key]
        mkdir = self._helper("mkdir")
        lines: list[list[str | Ref]] = [[mkdir, Ref(out="")]]
        for name, sid in files:
            lines += self._copy_lines(Ref(step=sid), Ref(out=f"/{name}"), executable=True)
        n = len(self.assembled) + 1
        sid = self._script_step(
            sid=f"dir/path-{n}",
            name=f"path-{n}",
            kind="assemble",
            purpose="the programs "
            + ", ".join(nm for nm, _ in files)
            + f" for PATH ({origin.script}:{origin.line})",
            lines=lines,
            origin=origin,
        )
        self.assembled[key] = sid
        return sid

    # -- commands ------------------------------------------------------------------------------
    def _arg(self, a: Arg) -> Ref:
        if a.kind == "literal":
            return Ref(lit=a.text)
        if a.kind == "output":
            return Ref(out="")
        if a.kind == "source-dir":
            return Ref(src=a.path or "")
        return self._ref(a.path or "")

    def translate(self) -> list[Step]:
        for position, c in enumerate(self.commands):
            self.position = position
            if c.output is None:
                self._check(c)
            else:
                self._command(c)
        return self.steps

    def _command(self, c: Command) -> None:
        assert c.output is not None
        origin = self._origin(c)
        env: dict[str, Ref] = {}
        for var in TOOL_ENV.get(c.tool_name, ()):
            if var not in c.env:
                continue
            if var == "TMPDIR":
                continue  # the sandbox's private, writable TMPDIR serves
            if var == "PATH":
                env["PATH"] = Ref(step=self._assemble_dir(self._spawn_path(c), origin))
            elif var == "M2LIBC_PATH":
                env["M2LIBC_PATH"] = self._m2libc(c)
            else:
                env[var] = Ref(lit=c.env[var])
        sid = self._add(
            Step(
                id=self._new_id(c.output),
                name=_drv_name(posixpath.basename(c.output)),
                kind="command",
                builder=self._ref(c.tool),
                args=[self._arg(a) for a in c.args],
                env=env,
                origin=origin,
                output=c.output,
            )
        )
        self.produced[c.output] = sid
        prefix = f"{self.arch.arch_dir}/"
        if c.output.startswith(prefix) and c.output[len(prefix) :] in SELF_REPRODUCTIONS:
            seed = f"{self.arch.seeds}/{SELF_REPRODUCTIONS[c.output[len(prefix) :]]}"
            if self.interp.is_source_file(seed):
                self.reproductions.append((sid, seed))

    def _check(self, c: Command) -> None:
        """Lay out the files the command reads at their relative paths, run it, succeed."""
        origin = self._origin(c)
        mkdir = self._helper("mkdir")
        made: set[str] = set()
        lines: list[list[str | Ref]] = []
        for path in c.check_files:
            rel = posixpath.relpath(path, c.cwd) if c.cwd else path
            parts = rel.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in made:
                    made.add(d)
                    lines.append([mkdir, d])
            lines += self._copy_lines(self._ref(path), rel, executable=False)
        lines.append([self._ref(c.tool), *[self._arg(a) for a in c.args]])
        lines.append([mkdir, Ref(out="")])
        name = f"check-{posixpath.basename(c.script)}-{c.line}"
        self._script_step(
            sid=self._new_id(f"check/{c.script}:{c.line}"),
            name=_drv_name(name),
            kind="check",
            purpose=f"{c.script}:{c.line}: {c.text}",
            lines=lines,
            origin=origin,
        )

    def package(self) -> tuple[str, dict[str, str]]:
        """bin/ with the programs left in <arch_dir>/bin, and M2libc/ (live-bootstrap's next
        stage compiles against it), assembled with the chain's mkdir, cp and chmod."""
        self.position = len(self.commands)
        bindir = f"{self.arch.arch_dir}/bin/"
        tools = {
            p[len(bindir) :]: sid
            for p, sid in self.produced.items()
            if p.startswith(bindir) and "/" not in p[len(bindir) :]
        }
        mkdir = self._helper("mkdir")
        lines: list[list[str | Ref]] = [[mkdir, Ref(out="")], [mkdir, Ref(out="/bin")]]
        for name in sorted(tools):
            lines += self._copy_lines(
                Ref(step=tools[name]), Ref(out=f"/bin/{name}"), executable=True
            )
        m2libc = "M2libc"
        lines.append([mkdir, Ref(out="/M2libc")])
        for rel in self._source_tree(m2libc):
            if rel.endswith("/"):
                lines.append([mkdir, Ref(out=f"/M2libc/{rel[:-1]}")])
            else:
                lines += self._copy_lines(
                    Ref(src=f"{m2libc}/{rel}"), Ref(out=f"/M2libc/{rel}"), executable=False
                )
        used = {r.step for s in self.steps for r in [s.builder, *s.args, *s.env.values()] if r.step}
        used |= {d for s in self.steps for d in s.deps}
        leaves = [s.id for s in self.steps if s.id not in used]
        sid = self._script_step(
            sid="stage0",
            name=f"stage0-posix-{self.arch.name}",
            kind="assemble",
            purpose=f"stage0-posix for {self.arch.name}: bin/ and M2libc/",
            lines=lines,
            deps=leaves,
        )
        return sid, tools

    def checks(self) -> dict[str, str]:
        """One step per check: `self-reproduction` (the fixed-output steps whose output must
        equal a seed) and `answers` (the scripts' own `sha256sum -c`)."""
        self.position = len(self.commands)
        out: dict[str, str] = {}
        fixed = []
        for sid, seed in self.reproductions:
            # A fixed-output copy whose hash is the seed's: Nix itself refuses any other bytes.
            # (catm writes a non-executable file, as a flat fixed output must be.)
            fixed.append(
                self._add(
                    Step(
                        id=f"check/self-reproduction/{sid}",
                        name=_drv_name(f"{posixpath.basename(sid)}-is-{posixpath.basename(seed)}"),
                        kind="check",
                        builder=self._helper("catm"),
                        args=[Ref(out=""), Ref(step=sid)],
                        same_as=Ref(src=seed),
                    )
                )
            )
        if fixed:
            out["self-reproduction"] = self._script_step(
                sid="check/self-reproduction",
                name=f"stage0-{self.arch.name}-self-reproduction",
                kind="check",
                purpose="outputs rebuilt from source that must equal the seeds: "
                + ", ".join(fixed),
                lines=[[self._helper("mkdir"), Ref(out="")]],
                deps=fixed,
            )
        answers = [
            s.id
            for s in self.steps
            if s.kind == "check" and not s.id.startswith("check/self-reproduction")
        ]
        if len(answers) == 1:
            out["answers"] = answers[0]
        elif answers:
            out["answers"] = self._script_step(
                sid="check/answers",
                name=f"stage0-{self.arch.name}-answers",
                kind="check",
                purpose="every sha256sum -c of the scripts",
                lines=[[self._helper("mkdir"), Ref(out="")]],
                deps=answers,
            )
        return out

    def _source_tree(self, top: str) -> list[str]:
        """Every directory (with a trailing /) and file below stage0-posix/top, parents first."""
        out: list[str] = []

        def walk(rel: str) -> None:
            for name in self.interp.tree.list_dir(
                self.interp.tree_path_of(f"{top}/{rel}" if rel else top)
            ):
                child = f"{rel}/{name}" if rel else name
                path = f"{top}/{child}"
                if self.interp.tree.is_dir(self.interp.tree_path_of(path)):
                    out.append(child + "/")
                    walk(child)
                elif self.interp.is_source_file(path):
                    out.append(child)

        walk("")
        return out


def _option(c: Command, names: tuple[str, ...]) -> str | None:
    for i, a in enumerate(c.args):
        if a.text in names and i + 1 < len(c.args):
            return c.args[i + 1].text
    return None


def _sub(ref: Ref, suffix: str) -> Ref:
    assert ref.src is not None
    return Ref(src=ref.src + suffix)


_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-._?=")


def _drv_name(name: str) -> str:
    cleaned = "".join(c if c in _NAME_OK else "-" for c in name).lstrip(".")
    return cleaned or "step"


# ------------------------------------------------------------------------------------------
# Entry points
# ------------------------------------------------------------------------------------------
def interpret(tree: SourceTree, arch: Arch, *, root: str = STAGE0) -> Interpreter:
    interp = Interpreter(tree, root)
    interp.run(arch.entry)
    return interp


def plan(
    tree: SourceTree,
    arch: Arch | str,
    *,
    root: str = STAGE0,
    reads: dict[str, str] | None = None,
) -> Stage0Plan:
    """Interpret the scripts for one architecture and translate them into steps; ``reads``
    collects every file read (tree path -> sha256)."""
    if isinstance(arch, str):
        arch = ARCHES[arch]
    interp = interpret(tree, arch, root=root)
    if reads is not None:
        reads.update(interp.reads)
    tr = Translator(interp, arch)
    tr.translate()
    checks = tr.checks()
    package, tools = tr.package()
    return Stage0Plan(
        arch=arch.name,
        arch_dir=arch.arch_dir,
        system=arch.system,
        root=root,
        entry=arch.entry,
        steps=tr.steps,
        tools=tools,
        package=package,
        checks=checks,
    )


def available(tree: SourceTree, arch: Arch, root: str = STAGE0) -> bool:
    return not tree.data_only and tree.has_content(f"{root}/{arch.entry}")


def render_stage0(
    tree: SourceTree, committed: Path | None = None
) -> tuple[dict[str, str], list[str]]:
    """({"<arch>.json": text, ..., "meta.json": record}, kept) for steps/stage0/.

    A tree with the stage0-posix scripts is translated (kept = []). A tree without them (a
    data-only snapshot) keeps the committed files in ``committed`` only after checking them
    against their record (stage0_record.keep_checked), which raises on any mismatch."""
    if not all(available(tree, a) for a in ARCHES.values()):
        return keep_checked(tree, committed)
    reads: dict[str, str] = {}
    files = {
        f"{name}.json": plan(tree, arch, reads=reads).to_json() for name, arch in ARCHES.items()
    }
    files[RECORD] = record_for(tree, committed, reads, files)
    return files, []
