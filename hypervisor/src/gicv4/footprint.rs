//! What a partition holds on the physical ITS, counted from the kernel's
//! own bookkeeping, so that a teardown can be checked to give everything
//! back: the part the guest's vITS commands made (must be zero after a
//! teardown) and the part the hypervisor set up once at boot for GICv4
//! (kept across the partition's lives, the same in each).

use core::fmt;

/// Physical ITS state owned by one partition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ItsFootprint {
    /// Made by the guest: functions MAPD'd for this life (software path,
    /// each with an ITT the hypervisor allocated).
    pub guest_devices: usize,
    /// Made by the guest: passthrough events mapped physically (MAPTI to
    /// a physical LPI on the software path, VMAPTI with GICv4).
    pub guest_events: usize,
    /// Made by the guest: physical LPIs held for those events (software path).
    pub guest_lpis: usize,
    /// Made by the guest: routing-table entries naming the partition
    /// (physical LPI -> partition, vCPU, vINTID; software path).
    pub guest_routes: usize,
    /// Set up at boot (GICv4): functions MAPD'd with hypervisor-owned ITTs.
    pub standing_devices: usize,
    /// Set up at boot (GICv4): vPEs VMAPP'd, one per vCPU.
    pub standing_vpes: usize,
    /// Set up at boot (GICv4): the vPEs' doorbell LPIs.
    pub standing_doorbells: usize,
}

impl ItsFootprint {
    /// Whether nothing the guest made is left (what a teardown guarantees).
    pub fn guest_made_is_zero(&self) -> bool {
        self.guest_devices == 0
            && self.guest_events == 0
            && self.guest_lpis == 0
            && self.guest_routes == 0
    }

    /// Physical LPIs the partition holds (its share of the LPI allocator).
    pub fn lpis(&self) -> usize {
        self.guest_lpis.saturating_add(self.standing_doorbells)
    }
}

impl fmt::Display for ItsFootprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "guest-made: devices {}, events {}, LPIs {}, routes {}; standing: devices {}, vPEs {}, doorbell LPIs {}",
            self.guest_devices,
            self.guest_events,
            self.guest_lpis,
            self.guest_routes,
            self.standing_devices,
            self.standing_vpes,
            self.standing_doorbells
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn a_footprint_prints_both_parts_in_one_line() {
        let f = ItsFootprint {
            guest_devices: 1,
            guest_events: 2,
            guest_lpis: 2,
            guest_routes: 2,
            standing_devices: 0,
            standing_vpes: 0,
            standing_doorbells: 0,
        };
        assert_eq!(
            f.to_string(),
            "guest-made: devices 1, events 2, LPIs 2, routes 2; standing: devices 0, vPEs 0, doorbell LPIs 0"
        );
    }

    #[test]
    fn only_the_guest_made_part_must_be_zero_after_a_teardown() {
        let standing = ItsFootprint {
            standing_devices: 1,
            standing_vpes: 2,
            standing_doorbells: 2,
            ..ItsFootprint::default()
        };
        assert!(standing.guest_made_is_zero());
        assert_eq!(standing.lpis(), 2);
        for leak in [
            ItsFootprint {
                guest_devices: 1,
                ..standing
            },
            ItsFootprint {
                guest_events: 1,
                ..standing
            },
            ItsFootprint {
                guest_lpis: 1,
                ..standing
            },
            ItsFootprint {
                guest_routes: 1,
                ..standing
            },
        ] {
            assert!(!leak.guest_made_is_zero(), "{leak}");
        }
        assert_eq!(
            ItsFootprint {
                guest_lpis: 3,
                ..standing
            }
            .lpis(),
            5
        );
    }
}
