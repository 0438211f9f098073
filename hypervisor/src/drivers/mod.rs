//! Drivers for physical devices.
