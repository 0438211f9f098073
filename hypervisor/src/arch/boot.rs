//! First instructions: the arm64 Image header, the EL3 -> EL2 drop, per-CPU
//! stacks, BSS, then Rust. Runs with the MMU and caches off, which is why
//! the kernel is built with `+strict-align` (no unaligned accesses, which
//! fault on the Device memory type that applies while the MMU is off).

use super::{MAX_CPUS, STACK_SIZE};
use core::arch::global_asm;
use core::sync::atomic::AtomicU64;

/// The per-CPU EL2 stacks.
#[repr(C, align(16))]
pub struct Stacks(pub [[u8; STACK_SIZE]; MAX_CPUS]);

/// The per-CPU EL2 stacks (in BSS; each CPU uses `STACKS.0[index]`).
#[no_mangle]
pub static mut STACKS: Stacks = Stacks([[0; STACK_SIZE]; MAX_CPUS]);

/// For CPUs released from a spin table (`kernel::spin_table`), which get
/// no argument: entry `i` is CPU `i`'s MPIDR affinity with bit 63 set, or
/// 0. `spin_table_entry` searches it for its own MPIDR_EL1 (with the MMU
/// and caches off, so the writer cleans each entry to the point of
/// coherency).
#[no_mangle]
pub static SPIN_ENTRY_MPIDRS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Top of the stack of CPU `index`.
pub fn stack_top(index: usize) -> usize {
    // Pointer arithmetic only: no reference to the mutable static is created.
    core::ptr::addr_of!(STACKS) as usize + (index + 1) * STACK_SIZE
}

global_asm!(
    r#"
    .section .text.head, "ax"
    .global _start
_start:
    // arm64 Image header (Documentation/arch/arm64/booting.rst): loaders
    // such as QEMU, U-Boot `booti` and Raspberry Pi firmware recognise it.
    b       primary_entry
    .word   0
    .quad   0                       // text_offset
    .quad   __image_size            // image_size, including BSS
    .quad   0x2                     // flags: little-endian, 4 KiB pages
    .quad   0
    .quad   0
    .quad   0
    .ascii  "ARM\x64"
    .word   0

    .section .text, "ax"
primary_entry:
    mov     x19, x0                 // physical address of the device tree
    msr     daifset, #0xf
    // We are linked at the board's load address and run identity-mapped:
    // refuse to run anywhere else rather than fail in obscure ways later.
    adr     x1, _start
    ldr     x2, =_start
    cmp     x1, x2
    b.ne    boot_hang
    bl      drop_to_el2
    // Zero BSS (the stacks live there, so before any stack use).
    ldr     x1, =__bss_start
    ldr     x2, =__bss_end
1:  cmp     x1, x2
    b.hs    2f
    str     xzr, [x1], #8
    b       1b
2:  mov     x20, #0                 // CPU index 0
    bl      setup_cpu
    mov     x0, x19
    bl      rust_primary_main
    b       boot_hang

    // PSCI CPU_ON entry point; x0 = context_id = CPU index.
    .global secondary_entry
secondary_entry:
    msr     daifset, #0xf
    mov     x20, x0
    bl      drop_to_el2
    bl      setup_cpu
    mov     x0, x20
    bl      rust_secondary_main
    b       boot_hang

    // Spin-table entry point: no argument; the CPU index is the position
    // of this CPU's MPIDR affinity (Aff3..Aff0, bit 63 set as "used") in
    // SPIN_ENTRY_MPIDRS. Not found: hang (nothing else is safe yet).
    .global spin_table_entry
spin_table_entry:
    msr     daifset, #0xf
    mrs     x1, mpidr_el1
    ldr     x2, =0xff00ffffff
    and     x1, x1, x2
    orr     x1, x1, #(1 << 63)
    ldr     x3, ={mpidrs}
    mov     x20, #0
5:  cmp     x20, #{max_cpus}
    b.hs    boot_hang
    ldr     x4, [x3, x20, lsl #3]
    cmp     x4, x1
    b.eq    6f
    add     x20, x20, #1
    b       5b
6:  bl      drop_to_el2
    bl      setup_cpu
    mov     x0, x20
    bl      rust_secondary_main
    b       boot_hang

    // Sets SP to this CPU's stack (x20 = CPU index) and installs the vectors.
setup_cpu:
    ldr     x1, ={stacks}
    mov     x2, #{stack_size}
    madd    x1, x20, x2, x1
    add     sp, x1, x2
    ldr     x1, =el2_vectors
    msr     vbar_el2, x1
    isb
    ret

    // Entered at EL3 (e.g. QEMU raspi4b with -kernel, or virt with
    // secure=on): configure EL3 minimally and continue at EL2. At EL2
    // already: nothing to do. At EL1: we cannot be a hypervisor.
drop_to_el2:
    mrs     x1, CurrentEL
    lsr     x1, x1, #2
    cmp     x1, #2
    b.eq    3f
    cmp     x1, #3
    b.ne    boot_hang
    mrs     x1, id_aa64pfr0_el1
    ubfx    x1, x1, #24, #4         // GIC system register interface present?
    cbz     x1, 4f
    mov     x1, #0xf                // ICC_SRE_EL3: SRE, DFB, DIB, Enable
    msr     icc_sre_el3, x1
    isb
4:  msr     cptr_el3, xzr
    mov     x1, #0x5b1              // SCR_EL3: NS, RES1, SMD, HCE, RW (EL2 is AArch64)
    msr     scr_el3, x1
    mov     x1, #0x3c9              // SPSR_EL3: EL2h, DAIF masked
    msr     spsr_el3, x1
    msr     elr_el3, x30
    isb
    eret
3:  ret

    .global boot_hang
boot_hang:
    wfe
    b       boot_hang
    .ltorg
"#,
    stacks = sym STACKS,
    mpidrs = sym SPIN_ENTRY_MPIDRS,
    max_cpus = const MAX_CPUS,
    stack_size = const STACK_SIZE,
);
