//! EL2 exception vectors and the guest entry/exit path.
//!
//! Static partitioning pins one vCPU to each physical CPU, so a trap never
//! switches vCPUs: the guest's EL1 system registers stay live in the CPU,
//! and only the general-purpose registers, ELR_EL2 and SPSR_EL2 are saved,
//! into the [`GuestRegs`] at the start of the per-CPU block that
//! TPIDR_EL2 points to. The kernel is built for a soft-float target, so EL2
//! code never touches the guest's FP/SIMD registers either.

use core::arch::global_asm;

/// A guest's general-purpose registers and return state, saved on a trap.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GuestRegs {
    /// x0..x30.
    pub x: [u64; 31],
    /// ELR_EL2: where the guest resumes.
    pub elr: u64,
    /// SPSR_EL2: the guest's PSTATE on resume.
    pub spsr: u64,
}

/// Registers saved for an exception taken from EL2 itself (a hypervisor bug).
#[repr(C)]
#[derive(Debug)]
pub struct El2Frame {
    /// x0..x30.
    pub x: [u64; 31],
    /// ELR_EL2.
    pub elr: u64,
    /// SPSR_EL2.
    pub spsr: u64,
    _pad: u64,
}

global_asm!(
    r#"
    // x2..x30 to/from a frame laid out as GuestRegs / El2Frame at `base`
    // (x0, x1 at 0 and 8 are the caller's business).
    .macro SAVE_X2_X30 base
    stp     x2, x3, [\base, #16]
    stp     x4, x5, [\base, #32]
    stp     x6, x7, [\base, #48]
    stp     x8, x9, [\base, #64]
    stp     x10, x11, [\base, #80]
    stp     x12, x13, [\base, #96]
    stp     x14, x15, [\base, #112]
    stp     x16, x17, [\base, #128]
    stp     x18, x19, [\base, #144]
    stp     x20, x21, [\base, #160]
    stp     x22, x23, [\base, #176]
    stp     x24, x25, [\base, #192]
    stp     x26, x27, [\base, #208]
    stp     x28, x29, [\base, #224]
    str     x30, [\base, #240]
    .endm

    .macro LOAD_X2_X30 base
    ldp     x2, x3, [\base, #16]
    ldp     x4, x5, [\base, #32]
    ldp     x6, x7, [\base, #48]
    ldp     x8, x9, [\base, #64]
    ldp     x10, x11, [\base, #80]
    ldp     x12, x13, [\base, #96]
    ldp     x14, x15, [\base, #112]
    ldp     x16, x17, [\base, #128]
    ldp     x18, x19, [\base, #144]
    ldp     x20, x21, [\base, #160]
    ldp     x22, x23, [\base, #176]
    ldp     x24, x25, [\base, #192]
    ldp     x26, x27, [\base, #208]
    ldp     x28, x29, [\base, #224]
    ldr     x30, [\base, #240]
    .endm

    .macro VEC_EL2 kind
    .balign 0x80
    sub     sp, sp, #(34 * 8)
    stp     x0, x1, [sp, #0]
    mov     x0, #\kind
    b       el2_self_trap
    .endm

    .macro VEC_LOWER kind
    .balign 0x80
    stp     x0, x1, [sp, #-16]!
    mov     x0, #\kind
    b       lower_el_trap
    .endm

    .section .text.vectors, "ax"
    .balign 2048
    .global el2_vectors
el2_vectors:
    VEC_EL2 0       // current EL, SP_EL0
    VEC_EL2 1
    VEC_EL2 2
    VEC_EL2 3
    VEC_EL2 4       // current EL, SP_ELx
    VEC_EL2 5
    VEC_EL2 6
    VEC_EL2 7
    VEC_LOWER 0     // lower EL, AArch64
    VEC_LOWER 1
    VEC_LOWER 2
    VEC_LOWER 3
    VEC_LOWER 4     // lower EL, AArch32 (never enabled: HCR_EL2.RW = 1)
    VEC_LOWER 5
    VEC_LOWER 6
    VEC_LOWER 7

    .section .text, "ax"
lower_el_trap:
    mov     x1, x0                  // vector index
    mrs     x0, tpidr_el2           // &GuestRegs of this CPU
    SAVE_X2_X30 x0
    ldp     x2, x3, [sp], #16       // the guest's x0, x1
    stp     x2, x3, [x0, #0]
    mrs     x2, elr_el2
    mrs     x3, spsr_el2
    stp     x2, x3, [x0, #248]
    mov     x29, #0                 // end of the frame-pointer chain
    bl      handle_lower_el
    // fall through: resume the guest from the saved registers

    .global guest_resume
guest_resume:
    mrs     x0, tpidr_el2
    ldp     x2, x3, [x0, #248]
    msr     elr_el2, x2
    msr     spsr_el2, x3
    LOAD_X2_X30 x0
    ldp     x0, x1, [x0, #0]
    eret

el2_self_trap:
    SAVE_X2_X30 sp
    mrs     x2, elr_el2
    mrs     x3, spsr_el2
    stp     x2, x3, [sp, #248]
    mov     x1, sp
    // Returns only after fixing up an aborted guarded device access
    // (below); every other exception at EL2 halts there.
    bl      handle_el2_self
    ldp     x2, x3, [sp, #248]
    msr     elr_el2, x2
    msr     spsr_el2, x3
    LOAD_X2_X30 sp
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #(34 * 8)
    eret

    // Guarded device accesses: x0 = address (x1 = value for stores);
    // return x1 = 0, or 1 if the access took an external abort, which the
    // fixup turns into a return (x0 = all ones for loads). Each is
    // `mov x1, #0; access; ret`, so the fixup resumes at the `ret`.
    // Global: the Rust callers may sit in another codegen unit.
    .balign 4
    .global guarded_begin
guarded_begin:
    .global guarded_load8
guarded_load8:
    mov     x1, #0
    ldrb    w0, [x0]
    ret
    .global guarded_load16
guarded_load16:
    mov     x1, #0
    ldrh    w0, [x0]
    ret
    .global guarded_load32
guarded_load32:
    mov     x1, #0
    ldr     w0, [x0]
    ret
    .global guarded_load64
guarded_load64:
    mov     x1, #0
    ldr     x0, [x0]
    ret
    .global guarded_store8
guarded_store8:
    mov     x2, x1
    mov     x1, #0
    strb    w2, [x0]
    ret
    .global guarded_store16
guarded_store16:
    mov     x2, x1
    mov     x1, #0
    strh    w2, [x0]
    ret
    .global guarded_store32
guarded_store32:
    mov     x2, x1
    mov     x1, #0
    str     w2, [x0]
    ret
    .global guarded_store64
guarded_store64:
    mov     x2, x1
    mov     x1, #0
    str     x2, [x0]
    ret
    .global guarded_end
guarded_end:
"#
);

extern "C" {
    /// First instruction of the guarded accessors.
    static guarded_begin: u8;
    /// Past their last instruction.
    static guarded_end: u8;
}

/// If an exception taken at EL2 with syndrome `esr` is a data abort of a
/// guarded device access, makes it return "aborted" and says so: the
/// caller then resumes at the frame instead of halting.
pub fn guarded_fixup(frame: &mut El2Frame, esr: u64) -> bool {
    // ESR_EL2.EC 0x25: data abort taken without a change in exception level.
    if esr >> 26 != 0x25 {
        return false;
    }
    let begin = core::ptr::addr_of!(guarded_begin) as u64;
    let end = core::ptr::addr_of!(guarded_end) as u64;
    if !(begin..end).contains(&frame.elr) {
        return false;
    }
    frame.x[0] = u64::MAX;
    frame.x[1] = 1;
    // The access is followed by its `ret`.
    frame.elr += 4;
    true
}

/// Reads `size` (1, 2, 4 or 8) bytes of device memory at `address`; `None`
/// if the device answered with an external abort (e.g. nothing decodes
/// there), which the EL2 vector turns into this return instead of a halt.
///
/// # Safety
/// `address` must be mapped at EL2 as device memory, aligned to `size`,
/// and reading it must have no effect beyond the device's own.
pub unsafe fn guarded_read(address: u64, size: u8) -> Option<u64> {
    let value: u64;
    let failed: u64;
    // SAFETY: the accessors touch only `address` (the caller's promise) and
    // follow the C ABI; the fixup returns from them after an abort.
    unsafe {
        match size {
            1 => {
                core::arch::asm!("bl guarded_load8", inout("x0") address => value, out("x1") failed, clobber_abi("C"))
            }
            2 => {
                core::arch::asm!("bl guarded_load16", inout("x0") address => value, out("x1") failed, clobber_abi("C"))
            }
            4 => {
                core::arch::asm!("bl guarded_load32", inout("x0") address => value, out("x1") failed, clobber_abi("C"))
            }
            _ => {
                core::arch::asm!("bl guarded_load64", inout("x0") address => value, out("x1") failed, clobber_abi("C"))
            }
        }
    }
    (failed == 0).then_some(value)
}

/// Writes the low `size` (1, 2, 4 or 8) bytes of `value` to device memory
/// at `address`; false if the device answered with an external abort.
///
/// # Safety
/// As [`guarded_read`], for a write.
pub unsafe fn guarded_write(address: u64, size: u8, value: u64) -> bool {
    let failed: u64;
    // SAFETY: as in `guarded_read`.
    unsafe {
        match size {
            1 => {
                core::arch::asm!("bl guarded_store8", inout("x0") address => _, inout("x1") value => failed, clobber_abi("C"))
            }
            2 => {
                core::arch::asm!("bl guarded_store16", inout("x0") address => _, inout("x1") value => failed, clobber_abi("C"))
            }
            4 => {
                core::arch::asm!("bl guarded_store32", inout("x0") address => _, inout("x1") value => failed, clobber_abi("C"))
            }
            _ => {
                core::arch::asm!("bl guarded_store64", inout("x0") address => _, inout("x1") value => failed, clobber_abi("C"))
            }
        }
    }
    failed == 0
}

/// Leaves the hypervisor for the guest whose registers are in this CPU's
/// [`GuestRegs`], discarding everything on the EL2 stack.
///
/// # Safety
/// TPIDR_EL2 must point at this CPU's per-CPU block (with the registers to
/// load at its start) and `stack_top` must be this CPU's stack top.
pub unsafe fn enter_guest(stack_top: usize) -> ! {
    // SAFETY: the caller guarantees the stack top and TPIDR_EL2; nothing on
    // the current stack is used after the switch.
    unsafe {
        core::arch::asm!(
            "mov sp, {top}",
            "b guest_resume",
            top = in(reg) stack_top,
            options(noreturn)
        )
    }
}
