//! The bare-metal baseline: the passthrough test guest on QEMU without the
//! hypervisor, driving edu's MSI through the real (emulated) GICv3 ITS.
//!
//! Two things a hypervisor-less boot lacks, and what stands in for them:
//!
//! - firmware: nothing assigns edu's BAR0 on QEMU without firmware (it
//!   reads 0); the shim writes 0x1000_0000 (the start of the 32-bit PCI
//!   window) into it through the ECAM, as firmware would;
//! - the exit-count hypercall (`0xc600_0001`): QEMU's PSCI would answer
//!   NOT_SUPPORTED, and the guest checks its count. The machine gets
//!   `virtualization=on`, so the shim owns EL2: it counts the guest's
//!   hypercalls (its only exits: HCR_EL2 traps nothing else, stage 2 is
//!   off, interrupts go straight to EL1) and answers `0xc600_0001` with
//!   that count, passes PSCI to QEMU with SMC, and starts secondaries
//!   through itself so that they too enter the guest at EL1.
//!
//! The shim is 56 instructions, loaded raw at [`SHIM_ADDR`] with QEMU's
//! `-device loader,...,cpu-num=0` (which sets CPU 0's PC; the guest ELF is
//! `-kernel`, so QEMU still puts the device tree with `-append`'s bootargs
//! at the start of RAM, where the guest finds it when x0 is 0). The guest
//! at EL1 drives edu, the distributor, its redistributors and the ITS
//! itself; the shim is never entered on the MSI path.

use crate::board::{Board, Qemu};
use std::path::Path;
use std::process::Command;

/// Where the shim is loaded (in RAM, clear of the device tree at
/// 0x4000_0000 and the guest at 0x5020_0000).
const SHIM_ADDR: u64 = 0x7f00_0000;
/// Offset of the guest entry literal in the shim.
const ENTRY_AT: usize = 0xe0;
/// Offset of the EL2 vector table in the shim (VBAR_EL2, 2 KiB aligned).
const VECTORS_AT: usize = 0x800;
/// The shim's size.
const SHIM_SIZE: usize = 0x1000;

/// The shim's code, offsets 0..0xe0 (assembled with `llvm-mc
/// -triple=aarch64`; position independent).
const SHIM_CODE: [u32; 56] = [
    // _start (CPU 0, EL2): edu 00:01.0 BAR0 = 0x1000_0000 via the ECAM
    0xd290_0201, // mov   x1, #0x8010
    0xf2a2_0001, // movk  x1, #0x1000, lsl #16
    0xf2c0_0801, // movk  x1, #0x40, lsl #32      (0x40_1000_8010)
    0x52a2_0002, // mov   w2, #0x10000000
    0xb900_0022, // str   w2, [x1]
    0x5800_0669, // ldr   x9, guest_entry         (0xe0)
    0xd280_000a, // mov   x10, #0                 (x0 for the guest)
    0x1400_0003, // b     el2_setup
    // secondary (0x20, started by CPU_ON at EL2)
    0x5800_0649, // ldr   x9, sec_entry           (0xe8)
    0x5800_066a, // ldr   x10, sec_context        (0xf0)
    // el2_setup (0x28)
    0xd538_00a1, // mrs   x1, mpidr_el1
    0x9240_1c21, // and   x1, x1, #0xff
    0x1000_2682, // adr   x2, stacks_top          (0x500)
    0xcb01_2042, // sub   x2, x2, x1, lsl #8      (256 bytes per CPU)
    0x9100_005f, // mov   sp, x2
    0xd2b0_0001, // mov   x1, #(1 << 31)
    0xd51c_1101, // msr   hcr_el2, x1             (RW only: no traps)
    0xd280_01e1, // mov   x1, #0xf
    0xd51c_c9a1, // msr   icc_sre_el2, x1         (EL1 may use ICC_*)
    0xd503_3fdf, // isb
    0xd280_0061, // mov   x1, #3
    0xd51c_e101, // msr   cnthctl_el2, x1         (EL1 counter/timer)
    0xd51c_e07f, // msr   cntvoff_el2, xzr
    0xd286_7fe1, // mov   x1, #0x33ff
    0xd51c_1141, // msr   cptr_el2, x1            (no FP/SIMD traps)
    0xd51c_117f, // msr   hstr_el2, xzr
    0xd51c_d05f, // msr   tpidr_el2, xzr          (hypercall count)
    0x1000_3ca1, // adr   x1, vectors             (0x800)
    0xd51c_c001, // msr   vbar_el2, x1
    0xd280_78a1, // mov   x1, #0x3c5
    0xd51c_4001, // msr   spsr_el2, x1            (EL1h, DAIF masked)
    0xd51c_4029, // msr   elr_el2, x9
    0xaa0a_03e0, // mov   x0, x10
    0xd503_3fdf, // isb
    0xd69f_03e0, // eret
    // hvc (0x8c), from the lower-EL synchronous vector
    0xa9bf_17e4, // stp   x4, x5, [sp, #-16]!
    0xd53c_d044, // mrs   x4, tpidr_el2
    0x9100_0484, // add   x4, x4, #1
    0xd51c_d044, // msr   tpidr_el2, x4
    0xd280_0025, // mov   x5, #1
    0xf2b8_c005, // movk  x5, #0xc600, lsl #16
    0xeb05_001f, // cmp   x0, x5                  (exit count?)
    0x5400_0061, // b.ne  1f
    0xaa04_03e0, // mov   x0, x4
    0x1400_000a, // b     3f
    0xd280_0065, // 1: mov x5, #3
    0xf2b8_8005, // movk  x5, #0xc400, lsl #16
    0xeb05_001f, // cmp   x0, x5                  (CPU_ON, SMC64?)
    0x5400_00a1, // b.ne  2f
    0x1000_0125, // adr   x5, sec_entry
    0xa900_0ca2, // stp   x2, x3, [x5]            (guest entry, context)
    0x10ff_faa2, // adr   x2, secondary
    0xd280_0003, // mov   x3, #0
    0xd400_0003, // 2: smc #0                     (QEMU's PSCI)
    0xa8c1_17e4, // 3: ldp x4, x5, [sp], #16
    0xd69f_03e0, // eret
];
/// `b .`: every vector but the lower-EL synchronous one.
const HANG: u32 = 0x1400_0000;
/// `b hvc` at the lower-EL AArch64 synchronous vector (0xc00 -> 0x8c).
const TO_HVC: u32 = 0x17ff_fd23;

/// The shim with `entry` (the guest's ELF entry) patched in.
pub fn shim(entry: u64) -> Vec<u8> {
    let mut b = vec![0u8; SHIM_SIZE];
    for (i, w) in SHIM_CODE.iter().enumerate() {
        b[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    b[ENTRY_AT..ENTRY_AT + 8].copy_from_slice(&entry.to_le_bytes());
    for v in 0..16 {
        let at = VECTORS_AT + v * 0x80;
        let word = if v == 8 { TO_HVC } else { HANG };
        b[at..at + 4].copy_from_slice(&word.to_le_bytes());
    }
    b
}

/// The entry point of an AArch64 ELF (e_entry).
pub fn elf_entry(elf: &Path) -> Result<u64, String> {
    let bytes = std::fs::read(elf).map_err(|e| format!("{}: {e}", elf.display()))?;
    if bytes.len() < 32 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 {
        return Err(format!("{}: not an ELF64 file", elf.display()));
    }
    Ok(u64::from_le_bytes(bytes[24..32].try_into().unwrap()))
}

/// The QEMU command of one bare-metal boot on machine `machine`, with the
/// board's `-smp` (the hypervisor runs' CPUs; the guest starts none of the
/// secondaries, which stay powered off).
pub fn command(board: &Board, machine: &str, guest_elf: &Path, shim: &Path) -> Command {
    command_for(&board.qemu, machine, guest_elf, shim)
}

/// [`command`] from the board's QEMU settings alone.
pub fn command_for(qemu: &Qemu, machine: &str, guest_elf: &Path, shim: &Path) -> Command {
    let mut cmd = Command::new(&qemu.binary);
    cmd.args([
        "-M",
        machine,
        "-cpu",
        &qemu.cpu,
        "-smp",
        &qemu.smp.to_string(),
        "-m",
        "1G",
    ]);
    cmd.args(["-nographic", "-nic", "none", "-device", "edu"]);
    cmd.arg("-kernel").arg(guest_elf);
    cmd.args(["-append", "scenario=passthrough"]);
    cmd.arg("-device").arg(format!(
        "loader,file={},addr={SHIM_ADDR:#x},force-raw=on,cpu-num=0",
        shim.display()
    ));
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shim_branches_and_literals_are_where_the_code_says() {
        let s = shim(0x5020_0000);
        assert_eq!(s.len(), SHIM_SIZE);
        assert_eq!(&s[ENTRY_AT..ENTRY_AT + 8], &0x5020_0000u64.to_le_bytes());
        // b hvc at 0xc00: imm26 = (0x8c - 0xc00) / 4.
        let imm = ((0x8ci64 - 0xc00) / 4) as u32 & 0x03ff_ffff;
        assert_eq!(TO_HVC, 0x1400_0000 | imm);
        assert_eq!(
            u32::from_le_bytes(s[0xc00..0xc04].try_into().unwrap()),
            TO_HVC
        );
        assert_eq!(SHIM_CODE.len() * 4, ENTRY_AT);
    }
}
