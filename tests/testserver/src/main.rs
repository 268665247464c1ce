//! The `cells-testserver` binary.
fn main() {}
