# patchelf, static (nixpkgs' later stages call it with no other input): as nixpkgs'
# minimal-bootstrap patchelf-static builds it.
bridge_build() {
    tar -xf "$src"
    cd "patchelf-$version"
    bash ./configure --prefix="$out" CXXFLAGS="-O2 -static" LDFLAGS=-static
    make -j"$JOBS"
    make install-strip
    rm -rf "$out/share"
}
