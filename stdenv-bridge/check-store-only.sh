#!/usr/bin/bash
# usage: check-store-only.sh MEMBER DIR
#
# The capture check of every bridge member: nixpkgs runs each seed tool from its own store path
# inside a plain Nix sandbox (no live-bootstrap root around it), so a file of DIR fails the member
# when it would look outside the store at run time:
#   * an ELF program whose interpreter (PT_INTERP) is not in the store;
#   * an ELF file with a RUNPATH/RPATH entry outside the store;
#   * an ELF program that needs a library found neither in its RUNPATH nor beside its (store)
#     interpreter -- the loader would then search /lib and /usr/lib;
#   * a script in bin/ whose #! interpreter is not in the store;
#   * a symlink to an absolute path outside the store.
# It runs with the tools of the root it is in (the chain's readelf, sed, find): nothing from the
# host.
set -eu
member=$1
dir=$2
store=${NIX_STORE:-/nix/store}
problems=0
# (a list file, not process substitution: the runner's /dev has no /dev/fd)
list=$(mktemp)
find "$dir" \( -type f -o -type l \) -print0 > "$list"

report() {
    echo "bridge: $member: $1" >&2
    problems=$((problems + 1))
}
in_store() {
    case "$1" in
        "$store"/*) return 0 ;;
        *) return 1 ;;
    esac
}
is_elf() {
    [ "$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]
}

while IFS= read -r -d '' f; do
    if [ -L "$f" ]; then
        t=$(readlink "$f")
        case "$t" in
            /*) in_store "$t" || report "$f is a symlink to $t, outside the store" ;;
        esac
        continue
    fi
    [ -f "$f" ] || continue
    if is_elf "$f"; then
        here=$(dirname "$f")
        interp=$(readelf -lW "$f" 2> /dev/null |
            sed -n 's/.*\[Requesting program interpreter: \(.*\)\]$/\1/p')
        if [ -n "$interp" ] && ! in_store "$interp"; then
            report "$f is dynamically linked with interpreter $interp, outside the store"
            continue
        fi
        dynamic=$(readelf -dW "$f" 2> /dev/null || true)
        runpath=$(printf '%s\n' "$dynamic" |
            sed -n 's/.*(R\(UN\)\{0,1\}PATH).*\[\(.*\)\]$/\2/p' | tr ':' '\n')
        dirs=""
        for d in $runpath; do
            d=${d//\$ORIGIN/$here}
            if in_store "$d"; then dirs="$dirs $d"; else report "$f has RUNPATH entry $d, outside the store"; fi
        done
        if [ -n "$interp" ]; then
            needed=$(printf '%s\n' "$dynamic" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p')
            for lib in $needed; do
                found=""
                for d in $dirs "$(dirname "$interp")"; do
                    if [ -e "$d/$lib" ]; then found=1; break; fi
                done
                [ -n "$found" ] || report "$f needs $lib, found neither in its RUNPATH nor beside its interpreter $interp (the loader would search /lib and /usr/lib)"
            done
        fi
    else
        case "$f" in
            "$dir"/bin/*)
                if [ "$(head -c 2 "$f")" = "#!" ]; then
                    interp=$(head -n 1 "$f" | sed 's/^#! *//; s/[ \t].*//')
                    in_store "$interp" || report "$f is a script for $interp, outside the store"
                fi
                ;;
        esac
    fi
done < "$list"
rm -f "$list"

if [ "$problems" != 0 ]; then
    echo "bridge: $member: $problems file(s) would not run from the store in a plain Nix sandbox" >&2
    exit 1
fi
echo "bridge: $member: every file runs from the store (no interpreter, library or script outside it)"
