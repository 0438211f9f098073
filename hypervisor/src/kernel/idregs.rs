//! Trapped reads of the ID register space (HCR_EL2.TID3): the physical
//! value, filtered by [`crate::guest::cpu_features`].

use crate::guest::cpu_features::{self, IdReg};

/// Reads physical ID register `reg` (the ID space EL2 reads by encoding).
fn read_physical(reg: IdReg) -> u64 {
    crate::arch::sysreg::id_space::read(reg.crm, reg.op2)
}

/// The value a guest's read of the register with syndrome `encoding`
/// returns, if that register is in the trapped ID space.
pub fn guest_read(encoding: crate::guest::trap::SysRegEncoding) -> Option<u64> {
    let reg = cpu_features::decode(encoding)?;
    Some(cpu_features::guest_value(reg, read_physical(reg)))
}
