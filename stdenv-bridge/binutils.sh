# Cross binutils: runs on the chain (i686, musl, static), targets x86_64-linux-gnu, unprefixed
# names (nixpkgs' bintools-wrapper treats the seed as native). Flags follow nixpkgs'
# minimal-bootstrap binutils: no default library path (the compiler's specs name glibc), new
# dtags (RUNPATH), deterministic archives.
bridge_build() {
    tar -xf "$src"
    mkdir build
    cd build
    bash "../binutils-$version/configure" \
        --prefix="$out" \
        --target="$target" \
        --program-prefix= \
        --with-sysroot=/ \
        --with-lib-path=: \
        --enable-deterministic-archives \
        --enable-new-dtags \
        --disable-nls \
        --disable-werror \
        --disable-gold \
        --disable-plugins \
        --disable-gprofng \
        --disable-shared \
        --enable-static \
        LDFLAGS=-static
    make -j"$JOBS" MAKEINFO=true
    make install MAKEINFO=true
    rm -rf "$out/share" "$out/lib"
}
