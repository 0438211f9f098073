//! Drivers for physical devices, behind small interfaces.

pub mod bcm2835_aux;
pub mod ecam;
pub mod gicv2;
pub mod gicv3;
pub mod its;
pub mod pl011;
pub mod smmuv3;
pub mod uart;
