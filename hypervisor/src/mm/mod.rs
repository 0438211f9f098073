//! Memory management: typed addresses, translation tables, frame allocation.

pub mod addr;

pub use addr::{Ipa, PhysAddr, VirtAddr};
