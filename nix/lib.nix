# The few list and attrset helpers the library needs. Kept here so that nothing depends on
# nixpkgs' lib (evaluating the chain must not fetch nixpkgs).
rec {
  listToAttrs' = f: xs: builtins.listToAttrs (map (x: { name = f x; value = x; }) xs);

  concatMapStrings = f: xs: builtins.concatStringsSep "" (map f xs);

  optional = cond: x: if cond then [ x ] else [ ];

  last = xs: builtins.elemAt xs (builtins.length xs - 1);

  # The position of each element, from 0, as { index; value; } pairs.
  imap0 = f: xs: builtins.genList (i: f i (builtins.elemAt xs i)) (builtins.length xs);
}
