# The seed compiler: C and C++ for x86_64-linux-gnu, built on the chain (i686, musl, static),
# with specs that name the set's glibc, as nixpkgs' minimal-bootstrap gcc (gcc/glibc.nix) does.
# Unprefixed driver names; target libraries moved to lib/ (lib64 and the tool dir's lib64 link
# there), so ${gcc}/lib holds libstdc++ and libgcc_s as nixpkgs' seed gcc does.
#
# ld and as: the driver and collect2 run a --with-as/--with-ld program before anything on PATH
# (GCC internals: collect2), so naming the seed binutils' ld there would make every link of
# nixpkgs' stages skip the ld on PATH -- nixpkgs' ld-wrapper, the one place that adds RUNPATH
# entries for libraries in other store paths (binutils' tools with zlib, xgcc's cc1 with
# gmp/mpfr/mpc would not run a stage later). Dropping the flags is no cure either: a cross
# compiler would then look for x86_64-linux-gnu-ld. So they name $out/libexec/bridge/{ld,as}:
# during this build plain links to the seed binutils' (the chain's /usr/bin/ld only targets
# i386), and once installed small static programs (bridge_path_progs) that run the `ld`/`as`
# found on PATH, falling back to the seed binutils' only when PATH has none.
bridge_path_progs() {  # DIR FALLBACK-DIR CC NAME...: a program DIR/NAME for each NAME
    dir=$1 fallback=$2 cc=$3
    shift 3
    mkdir -p "$dir"
    cat > path-prog.c <<'EOF'
/* Runs the NAME found on PATH (skipping this program itself), else FALLBACK. */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/stat.h>

int main(int argc, char **argv)
{
    const char *path = getenv("PATH");
    struct stat self, found;
    char buf[4096];
    int have_self = stat(SELF, &self) == 0;

    (void)argc;
    while (path != NULL) {
        const char *end = strchr(path, ':');
        size_t len = end != NULL ? (size_t)(end - path) : strlen(path);
        const char *d = len == 0 ? "." : path;
        if (len == 0)
            len = 1;
        if (len + strlen(NAME) + 2 <= sizeof buf) {
            memcpy(buf, d, len);
            buf[len] = '/';
            strcpy(buf + len + 1, NAME);
            if (access(buf, X_OK) == 0 && stat(buf, &found) == 0 && S_ISREG(found.st_mode)
                && !(have_self && found.st_dev == self.st_dev && found.st_ino == self.st_ino)) {
                argv[0] = buf;
                execv(buf, argv);
            }
        }
        path = end != NULL ? end + 1 : NULL;
    }
    argv[0] = (char *)FALLBACK;
    execv(FALLBACK, argv);
    fprintf(stderr, "%s: no %s on PATH and %s cannot run\n", SELF, NAME, FALLBACK);
    return 127;
}
EOF
    for n in "$@"; do
        rm -f "$dir/$n"
        "$cc" -static -O2 -DNAME="\"$n\"" -DSELF="\"$dir/$n\"" -DFALLBACK="\"$fallback/$n\"" \
            -o "$dir/$n" path-prog.c
    done
    rm path-prog.c
}

bridge_build() {
    tar -xf "$src"
    mkdir build
    cd build
    ld_so="$glibc/lib/ld-linux-x86-64.so.2"
    progs="$out/libexec/bridge"
    mkdir -p "$progs"
    ln -s "$binutils/bin/as" "$progs/as"
    ln -s "$binutils/bin/ld" "$progs/ld"
    bash "../gcc-$version/configure" \
        --prefix="$out" \
        --target="$target" \
        --with-as="$progs/as" \
        --with-ld="$progs/ld" \
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
    # the installed compiler's ld and as: whatever PATH has (nixpkgs' wrappers), see above
    bridge_path_progs "$progs" "$binutils/bin" gcc as ld
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
