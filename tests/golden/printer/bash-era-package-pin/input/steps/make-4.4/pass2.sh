src_prepare() { :; }
