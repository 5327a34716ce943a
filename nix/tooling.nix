# Developer tooling from nixpkgs: the CLI as a package, the dev shell, the formatter.
# Kept apart from the chain (nix/default.nix), which must never evaluate nixpkgs.
{ pkgs, src }:
let
  python = pkgs.python3;
  orchestrator = python.pkgs.buildPythonApplication {
    pname = "orchestrator";
    version = "0.1.0";
    pyproject = true;
    inherit src;
    build-system = [ python.pkgs.setuptools ];
    dependencies = with python.pkgs; [ jinja2 pydantic rich httpx cryptography tenacity ];
    nativeCheckInputs = [ python.pkgs.pytestCheckHook ];
    doCheck = false; # the tests need ../shared/fixtures and a writable Nix store
  };
in
{
  inherit orchestrator;

  mkShell = pkgs.mkShell {
    packages = [
      (python.withPackages (ps: with ps; [ jinja2 pydantic rich httpx cryptography tenacity pytest mypy ]))
      pkgs.ruff
      pkgs.nixpkgs-fmt
    ];
  };

  formatter = pkgs.nixpkgs-fmt;

  # The same strictness tests/test_lint.py applies, as flake checks.
  checks = {
    lint = pkgs.runCommand "orchestrator-lint" { nativeBuildInputs = [ pkgs.ruff ]; } ''
      cd ${src}
      ruff check --no-cache .
      ruff format --no-cache --check .
      touch $out
    '';
    typecheck = pkgs.runCommand "orchestrator-typecheck"
      { nativeBuildInputs = [ (python.withPackages (ps: with ps; [ mypy pydantic jinja2 rich httpx cryptography ])) ]; } ''
      cd ${src}
      MYPY_CACHE_DIR=$TMPDIR/mypy mypy orchestrator
      touch $out
    '';
  };
}
