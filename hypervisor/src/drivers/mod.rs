//! Drivers for physical devices, behind small interfaces.

pub mod ecam;
pub mod gicv3;
pub mod its;
pub mod pl011;
pub mod smmuv3;
