# glibc for x86_64-linux-gnu, cross-compiled by gcc-pass1, --prefix=$out so that the ld scripts
# (libc.so, libm.so) and the programs' interpreter name this store path. Flags follow nixpkgs'
# minimal-bootstrap glibc; the UAPI headers are copied into include/ (nixpkgs' seed glibc has
# both in one include dir).
bridge_build() {
    tar -xf "$src"
    mkdir build
    cd build
    tools="$binutils/bin"
    export CC="$gcc_pass1/bin/$target-gcc"
    export CXX=false
    export AR="$tools/ar" AS="$tools/as" LD="$tools/ld" NM="$tools/nm" RANLIB="$tools/ranlib"
    export OBJCOPY="$tools/objcopy" OBJDUMP="$tools/objdump" READELF="$tools/readelf" STRIP="$tools/strip"
    echo "rootsbindir=$out/sbin" > configparms
    bash "../glibc-$version/configure" \
        --prefix="$out" \
        --host="$target" \
        --build="$("../glibc-$version/scripts/config.guess")" \
        --with-headers="$linux_headers/include" \
        --with-binutils="$tools" \
        --enable-kernel=3.10.0 \
        --disable-nscd \
        --disable-build-nscd \
        --disable-profile \
        --disable-timezone-tools \
        --disable-mathvec \
        --disable-werror \
        libc_cv_slibdir="$out/lib"
    make -j"$JOBS" MAKEINFO=true
    make install MAKEINFO=true INSTALL_UNCOMPRESSED=yes
    # the UAPI headers beside glibc's own (glibc's scsi/ headers win, as in nixpkgs' seed)
    for d in "$linux_headers"/include/*; do
        [ -e "$out/include/${d##*/}" ] || cp -r "$d" "$out/include/"
    done
    # programs and locale data are not part of the seed (nixpkgs' minimal-bootstrap drops them)
    rm -rf "$out/bin" "$out/sbin" "$out/libexec" "$out/share" "$out/etc" "$out/var" "$out/lib/gconv"
}
