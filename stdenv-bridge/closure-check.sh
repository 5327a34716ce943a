# Fails when the derivation closure of $targetDrv holds any of nixpkgs' own bootstrap
# derivations: $forbiddenDrvs (exact .drv paths, one per line) or a derivation named one of
# $forbiddenNames (one per line). Run by the seed set's bash with its coreutils and grep.
#
# The closure is walked here, over the .drv files themselves: $targetDrv is an input of this
# derivation as a plain file, so the sandbox holds it and every .drv it refers to (Nix's
# exportReferencesGraph would also want their outputs, i.e. the target built first).
set -eu
declare -A seen
queue=("$targetDrv")
: > graph
while [ "${#queue[@]}" -gt 0 ]; do
  drv=${queue[-1]}
  unset 'queue[-1]'
  [ -z "${seen[$drv]:-}" ] || continue
  seen[$drv]=1
  echo "$drv" >> graph
  for ref in $(grep -o '/nix/store/[a-z0-9]\{32\}-[^"]*\.drv' "$drv" | sort -u); do
    [ -n "${seen[$ref]:-}" ] || queue+=("$ref")
  done
done

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
  pattern="^/[^ ]*/[a-z0-9]{32}-${name//./\\.}\.drv$"
  if grep -qE "$pattern" graph; then
    grep -E "$pattern" graph | while IFS= read -r p; do
      echo "forbidden: $p (nixpkgs' own bootstrap: $name) is in the closure of $target" >&2
    done
    found=1
  fi
done <<< "$forbiddenNames"
[ "$found" = 0 ] || exit 1
n=$(wc -l < graph)
echo "$target: $n derivations, none of nixpkgs' own bootstrap" > "$out"
