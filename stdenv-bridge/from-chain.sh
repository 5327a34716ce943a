# A member taken from the chain as it is: the programs the chain step "step" (members.json)
# installed into /usr/bin, copied out of the final system. live-bootstrap's musl is built
# --disable-shared, so they are static and run from any path; the checker proves it.
#   step_bin  the step's own usr/bin (its layer, bind-mounted read-only): what it installed
#   bins      the names to take (empty: all of them); links: "NAME=TARGET ..." made as symlinks
bridge_build() {
    mkdir -p "$out/bin"
    if [ -z "$bins" ]; then
        for f in "$step_bin"/*; do bins="$bins ${f##*/}"; done
    fi
    for b in $bins; do
        if [ ! -e "$step_bin/$b" ] && [ ! -L "$step_bin/$b" ]; then
            echo "bridge: $name: the chain step did not install /usr/bin/$b" >&2
            exit 1
        fi
        if [ ! -e "/usr/bin/$b" ]; then
            echo "bridge: $name: /usr/bin/$b is not in the final system (removed by a later step?)" >&2
            exit 1
        fi
        cp -L "/usr/bin/$b" "$out/bin/$b"
        chmod 555 "$out/bin/$b"
    done
    for l in $links; do
        ln -s "${l#*=}" "$out/bin/${l%%=*}"
    done
}
