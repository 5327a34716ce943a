# Distfiles as fixed-output derivations.
#
# Nix's builtin fetcher (no host binary, works in the sandbox) downloads the first URL; the
# output path depends only on name and sha256, so a store seeded with `orchestrator distfiles
# seed` (`nix-store --add-fixed sha256`) satisfies it offline. The alternative URLs are kept as
# data for `orchestrator distfiles mirror` and for people reading the derivation.
{ }:
{
  fetchDistfile = { name, sha256, urls, git ? null }:
    let
      # A git source without an HTTP snapshot can only come from a mirror or a seeded store;
      # the file:// URL makes the failing fetch say so in its error message.
      url = if urls != [ ] then builtins.head urls
        else "file:///no-http-snapshot--seed-this-distfile-with--orchestrator-distfiles-seed/${name}";
      drv = derivation {
        inherit name url urls;
        system = "builtin";
        builder = "builtin:fetchurl";
        outputHashMode = "flat";
        outputHashAlgo = "sha256";
        outputHash = sha256;
        preferLocalBuild = true;
        impureEnvVars = [ "http_proxy" "https_proxy" "ftp_proxy" "all_proxy" "no_proxy" ];
      };
    in
    drv // { inherit urls sha256 git; fileName = name; };
}
