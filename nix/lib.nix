# The few list and attrset helpers the library needs. Kept here so that nothing depends on
# nixpkgs' lib (evaluating the chain must not fetch nixpkgs).
rec {
  listToAttrs' = f: xs: builtins.listToAttrs (map (x: { name = f x; value = x; }) xs);

  concatMapStrings = f: xs: builtins.concatStringsSep "" (map f xs);

  optional = cond: x: if cond then [ x ] else [ ];

  last = xs: builtins.elemAt xs (builtins.length xs - 1);

  # The position of each element, from 0, as { index; value; } pairs.
  imap0 = f: xs: builtins.genList (i: f i (builtins.elemAt xs i)) (builtins.length xs);

  # builtins.path hands its filter the *physical* path of each entry: "/nix/store/…" in the
  # default store, "ROOT/nix/store/…" in a chroot store (`--store ROOT`). So a filter must never
  # compare with "${base}/…": it takes the part after `base`, whatever comes before it.
  # relativeTo base p = "" for base itself, "a/b" for base/a/b, null for a path not under base.
  relativeTo = base:
    let
      special = [ "\\" "." "[" "]" "(" ")" "*" "+" "?" "{" "}" "|" "^" "$" ];
      # only to match against: the path given to builtins.path keeps its context
      plain = builtins.unsafeDiscardStringContext base;
      escaped = builtins.replaceStrings special (map (c: "\\" + c) special) plain;
      re = "(.*)" + escaped + "(/(.*))?";
    in
    p:
    let m = builtins.match re p; in
    if m == null then null
    else if builtins.elemAt m 1 == null then ""
    else builtins.elemAt m 2;

  hasPrefix = pre: s: builtins.substring 0 (builtins.stringLength pre) s == pre;
}
