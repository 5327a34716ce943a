# The seed compiler: C and C++ for x86_64-linux-gnu, built on the chain (i686, musl, static),
# with specs that name the set's glibc, as nixpkgs' minimal-bootstrap gcc (gcc/glibc.nix) does.
# Unprefixed driver names; target libraries moved to lib/ (lib64 and the tool dir's lib64 link
# there), so ${gcc}/lib holds libstdc++ and libgcc_s as nixpkgs' seed gcc does.
bridge_build() {
    tar -xf "$src"
    mkdir build
    cd build
    ld_so="$glibc/lib/ld-linux-x86-64.so.2"
    bash "../gcc-$version/configure" \
        --prefix="$out" \
        --target="$target" \
        --with-as="$binutils/bin/as" \
        --with-ld="$binutils/bin/ld" \
        --with-sysroot=/ \
        --with-native-system-header-dir="$glibc/include" \
        --with-specs="%x{-dynamic-linker=$ld_so} %x{-L$glibc/lib/} -B$glibc/lib/" \
        --with-gmp=/usr --with-mpfr=/usr --with-mpc=/usr \
        --enable-languages=c,c++ \
        --enable-checking=release \
        --enable-threads=posix \
        --enable-shared \
        --disable-multilib \
        --disable-nls \
        --disable-bootstrap \
        --disable-libsanitizer \
        --disable-libssp \
        --disable-libgomp \
        --disable-libquadmath \
        --disable-libitm \
        --disable-libvtv \
        --disable-libatomic \
        --disable-libstdcxx-pch \
        --disable-libstdcxx-backtrace \
        --disable-libstdcxx-filesystem-ts \
        --disable-lto \
        --disable-plugin \
        --without-isl \
        AR_FOR_TARGET="$binutils/bin/ar" \
        NM_FOR_TARGET="$binutils/bin/nm" \
        RANLIB_FOR_TARGET="$binutils/bin/ranlib" \
        STRIP_FOR_TARGET="$binutils/bin/strip" \
        OBJDUMP_FOR_TARGET="$binutils/bin/objdump" \
        READELF_FOR_TARGET="$binutils/bin/readelf" \
        LDFLAGS=-static
    make -j"$JOBS" MAKEINFO=true
    make install-strip MAKEINFO=true
    # header installation tools keep build-time paths; the gdb pretty-printers are unused
    rm -rf "$out"/libexec/gcc/*/*/install-tools "$out"/lib/gcc/*/*/install-tools
    rm -rf "$out"/share
    # unprefixed names (nixpkgs wraps the seed as a native compiler)
    for t in gcc g++ c++ cpp gcc-ar gcc-nm gcc-ranlib gcov; do
        if [ -e "$out/bin/$target-$t" ]; then ln -sf "$target-$t" "$out/bin/$t"; fi
    done
    ln -sf gcc "$out/bin/cc"
    # target libraries into lib/
    mkdir -p "$out/lib"
    for d in "$out/$target/lib64" "$out/$target/lib" "$out/lib64"; do
        if [ -d "$d" ] && [ ! -L "$d" ]; then
            for f in "$d"/* "$d"/.[!.]*; do
                if [ -e "$f" ] || [ -L "$f" ]; then mv "$f" "$out/lib/"; fi
            done
            rmdir "$d"
        fi
    done
    ln -s ../lib "$out/$target/lib64"
    [ -e "$out/$target/lib" ] || ln -s ../lib "$out/$target/lib"
    ln -s lib "$out/lib64"
}
