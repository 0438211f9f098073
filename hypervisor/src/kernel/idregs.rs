//! Trapped reads of the ID register space (HCR_EL2.TID3): the physical
//! value, filtered by [`crate::guest::cpu_features`].

use crate::guest::cpu_features::{self, IdReg};

/// Reads physical ID register `S3_0_C0_C<crm>_<op2>` (CRm 1..=7). The
/// unallocated encodings of that space read as zero on every Armv8-A CPU,
/// so every (CRm, op2) pair is readable at EL2.
fn read_physical(reg: IdReg) -> u64 {
    macro_rules! read_id {
        ($($crm:literal: [$($op2:literal)*])*) => {
            match (reg.crm, reg.op2) {
                $($(($crm, $op2) => {
                    let value: u64;
                    // SAFETY: reading an ID register has no side effect.
                    unsafe {
                        core::arch::asm!(
                            concat!("mrs {}, S3_0_C0_C", stringify!($crm), "_", stringify!($op2)),
                            out(reg) value,
                            options(nomem, nostack)
                        )
                    };
                    value
                })*)*
                _ => 0,
            }
        };
    }
    read_id! {
        1: [0 1 2 3 4 5 6 7]
        2: [0 1 2 3 4 5 6 7]
        3: [0 1 2 3 4 5 6 7]
        4: [0 1 2 3 4 5 6 7]
        5: [0 1 2 3 4 5 6 7]
        6: [0 1 2 3 4 5 6 7]
        7: [0 1 2 3 4 5 6 7]
    }
}

/// The value a guest's read of the register with syndrome `encoding`
/// returns, if that register is in the trapped ID space.
pub fn guest_read(encoding: u32) -> Option<u64> {
    let reg = cpu_features::decode(encoding)?;
    Some(cpu_features::guest_value(reg, read_physical(reg)))
}
