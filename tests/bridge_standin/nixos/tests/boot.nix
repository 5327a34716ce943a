# Stands for nixpkgs' nixos/tests/boot.nix (tests only): its BIOS and UEFI CD-ROM boot tests,
# each reporting which package set it was handed (the real file builds its ISO with
# `nixpkgs.pkgs = pkgs` and boots it in QEMU).
{ system ? "(builtins.currentSystem)", config ? { }, pkgs ? import ../.. { localSystem = { inherit system; }; } }:
{
  biosCdrom = { name = "boot-bios-cdrom"; inherit system; stages = pkgs.stdenv.stages; };
  uefiCdrom = { name = "boot-uefi-cdrom"; inherit system; stages = pkgs.stdenv.stages; };
}
