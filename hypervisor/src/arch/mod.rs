//! Hardware: aarch64 boot, exceptions, system registers.
