//! cells-testserver: a Cells-compatible test double.
