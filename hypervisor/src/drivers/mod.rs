//! Drivers for physical devices, behind small interfaces.

pub mod pl011;
