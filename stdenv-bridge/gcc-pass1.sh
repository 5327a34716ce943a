# Cross gcc, pass 1: C only, no libc yet (--without-headers), libgcc.a only: enough to compile
# glibc for x86_64. gmp, mpfr and mpc are the chain's own (/usr).
bridge_build() {
    tar -xf "$src"
    mkdir build
    cd build
    bash "../gcc-$version/configure" \
        --prefix="$out" \
        --target="$target" \
        --with-as="$binutils/bin/as" \
        --with-ld="$binutils/bin/ld" \
        --with-glibc-version="$version_glibc" \
        --with-gmp=/usr --with-mpfr=/usr --with-mpc=/usr \
        --enable-languages=c \
        --without-headers \
        --with-newlib \
        --disable-shared \
        --disable-threads \
        --disable-multilib \
        --disable-nls \
        --disable-bootstrap \
        --disable-decimal-float \
        --disable-libatomic \
        --disable-libgomp \
        --disable-libquadmath \
        --disable-libssp \
        --disable-libvtv \
        --disable-libstdcxx \
        --disable-libsanitizer \
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
    make -j"$JOBS" all-gcc all-target-libgcc MAKEINFO=true
    make install-gcc install-target-libgcc MAKEINFO=true
    rm -rf "$out/share"
}
