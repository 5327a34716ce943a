# x86_64 Linux UAPI headers: `make headers`, then usr/include copied as nixpkgs'
# kernel-headers does (headers_install needs rsync, which the chain lacks; see
# pkgs/os-specific/linux/kernel-headers/default.nix).
bridge_build() {
    tar -xf "$src"
    cd "linux-$version"
    make -j"$JOBS" ARCH=x86_64 HOSTCC=gcc HOST_LFS_CFLAGS=-D_FILE_OFFSET_BITS=64 headers
    find usr/include -name '.*' -exec rm {} +
    cp -r usr/include "$out/"
    find "$out" -type f ! -name '*.h' -exec rm {} +
}
