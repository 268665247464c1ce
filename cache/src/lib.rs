//! cells-cache: the content-addressed on-disk store of cells-mount.
