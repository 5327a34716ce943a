# Fails when the derivation closure in $graph (exportReferencesGraph of the target's .drv) holds
# any of nixpkgs' own bootstrap derivations: $forbiddenDrvs (exact .drv paths, one per line) or a
# derivation named one of $forbiddenNames (one per line). Run by the seed set's bash.
set -eu
found=0
while IFS= read -r drv; do
  [ -n "$drv" ] || continue
  if grep -qxF "$drv" graph; then
    echo "forbidden: $drv (nixpkgs' own bootstrap) is in the closure of $target" >&2
    found=1
  fi
done <<< "$forbiddenDrvs"
while IFS= read -r name; do
  [ -n "$name" ] || continue
  if grep -qE "^/[^ ]*/[a-z0-9]{32}-${name//./\\.}\.drv$" graph; then
    grep -E "^/[^ ]*/[a-z0-9]{32}-${name//./\\.}\.drv$" graph | while IFS= read -r p; do
      echo "forbidden: $p (nixpkgs' own bootstrap: $name) is in the closure of $target" >&2
    done
    found=1
  fi
done <<< "$forbiddenNames"
[ "$found" = 0 ] || exit 1
n=$(grep '\.drv$' graph | sort -u | wc -l)
echo "$target: $n derivations, none of nixpkgs' own bootstrap" > "$out"
