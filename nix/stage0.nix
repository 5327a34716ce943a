# stage0-posix from the hex0 seed: one derivation per command of its kaem scripts.
#
# The commands come from steps/stage0/<arch>.json, written by `python -m orchestrator generate`
# (orchestrator/stage0/translate.py interprets kaem.<arch> and every script it runs). This file only turns
# that data into derivations: the first builder is the hex0 seed, every later builder is an
# earlier output (or the chain's own kaem running a generated script that assembles a directory
# with the chain's mkdir/cp/catm/chmod). No nixpkgs, no host binary.
#
# Interface
#   import ./stage0.nix { live-bootstrap, steps; }  -> { x86 = ARCH; amd64 = ARCH; }
#   ARCH = {
#     package       derivation, a directory:
#                     bin/<tool>   the programs stage0-posix leaves in <arch>/bin, mode 0555:
#                                  blood-elf catm chmod cp get_machine hex2 kaem match M1
#                                  M2-Mesoplanet M2-Planet mkdir replace rm sha256sum unbz2
#                                  ungz untar unxz wrap
#                     M2libc/      a copy of stage0-posix's M2libc (what M2-Mesoplanet and
#                                  live-bootstrap's next stage read through M2LIBC_PATH)
#                   plus the attributes below (package.tools.M1, package.system, ...).
#     tools.<tool>  derivation whose output IS that one executable file (not a directory),
#                   e.g. "${tools.kaem}" --file x.kaem; same bytes as package/bin/<tool>.
#     bin           "${package}/bin"
#     M2libc        "${package}/M2libc"
#     system        the Nix system the tools run on: "i686-linux" (x86), "x86_64-linux" (amd64)
#     steps.<id>    every step, by id: the stage0-posix path of the file it writes
#                   ("x86/artifact/hex0", "x86/bin/M1", ...) or "helper/...", "dir/...",
#                   "check/...", "stage0"
#     checks        { self-reproduction; answers; }: derivations. self-reproduction depends on
#                   fixed-output copies (by the chain's catm) of the rebuilt hex0 and kaem-0
#                   whose hash is the seeds' (builtins.hashFile): Nix enforces byte identity.
#                   answers runs the chain's own `sha256sum -c <arch>.answers` over the tools
#                   laid out as x86/bin/<tool> (AMD64/bin/<tool>). `package` depends on both,
#                   as kaem.run (--strict) stops when a check fails.
#   }
#   stepsOf { plan; host ? { }; }  -> { <id> = derivation; }: the derivations of any plan of
#                   that shape (nix/ddc.nix builds the x86 commands with the AMD64 tools this
#                   way); a reference { host = ID; } names host.<ID>, a step of another chain.
{ live-bootstrap, steps }:
let
  inherit (import ./lib.nix) relativeTo hasPrefix;

  stepsOf = { plan, host ? { } }:
    let
      root = "${live-bootstrap}/${plan.root}";

      # Each source file or directory is copied on its own, so a derivation's closure holds
      # what it reads and nothing else: the other seeds of bootstrap-seeds/ never enter it.
      # The tree itself (scripts that read the answers file or copy M2libc) comes without
      # bootstrap-seeds/ for the same reason.
      # Filters compare paths relative to what builtins.path copies (lib.relativeTo): Nix hands
      # them physical paths, which carry a prefix in a chroot store.
      source = p:
        if p == "" then
          builtins.path {
            path = root;
            name = "stage0-posix";
            filter = let rel = relativeTo root; in path: _: rel path != "bootstrap-seeds";
          }
        else
          # copied inside a directory of its own, so the file keeps its name (tools that
          # look at argv[0] see "hex0-seed", not "<hash>-hex0-seed")
          let
            full = "${root}/${p}";
            name = baseNameOf p;
            rel = relativeTo (dirOf full);
            below = path: let r = rel path; in r == name || hasPrefix "${name}/" r;
            dir = builtins.path { path = dirOf full; inherit name; filter = path: _: below path; };
          in
          "${dir}/${name}";

      # A reference in the data: exactly one of lit / src / step / host / out / text.
      ref = r:
        if r ? lit then r.lit
        else if r ? src then source r.src
        else if r ? step then "${built.${r.step}}"
        else if r ? host then "${host.${r.host}}"
        else if r ? out then builtins.placeholder "out" + r.out
        else if r ? text then builtins.toFile r.name r.text
        else throw "stage0: unknown reference ${builtins.toJSON r}";

      # A fixed-output path depends only on its name and hash, so once built it would satisfy
      # any later derivation with the same name: the name carries a digest of the inputs, so a
      # changed chain is compared with the seed again.
      nameOf = s:
        if s ? same_as then
          "${s.name}-${builtins.substring 0 12 (builtins.hashString "sha256"
            (builtins.unsafeDiscardStringContext (toString (map ref ([ s.builder ] ++ s.args)))))}"
        else s.name;

      mk = s: derivation (
        {
          name = nameOf s;
          inherit (plan) system;
          builder = ref s.builder;
          args = map ref s.args;
        }
        // builtins.mapAttrs (_: ref) (s.env or { })
        // (if (s.deps or [ ]) != [ ] then { deps = map (id: built.${id}) s.deps; } else { })
        // (if s ? same_as then {
          # the output must be byte-identical to this file (a seed): Nix checks it
          outputHashMode = "flat";
          outputHashAlgo = "sha256";
          outputHash = builtins.hashFile "sha256" (ref s.same_as);
        } else { })
      );

      built = builtins.listToAttrs (map (s: { name = s.id; value = mk s; }) plan.steps);
    in
    built;

  load = arch:
    let
      plan = builtins.fromJSON (builtins.readFile (steps + "/stage0/${arch}.json"));
      built = stepsOf { inherit plan; };
      tools = builtins.mapAttrs (_: id: built.${id}) plan.tools;
      checks = builtins.mapAttrs (_: id: built.${id}) plan.checks;
      package = built.${plan.package};
      attrs = {
        inherit tools checks;
        inherit (plan) system;
        steps = built;
        bin = "${package}/bin";
        M2libc = "${package}/M2libc";
      };
    in
    attrs // { package = package // attrs; };
in
{
  x86 = load "x86";
  amd64 = load "amd64";
  inherit stepsOf;
}
