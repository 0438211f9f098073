//! Entry points and the EL1 exception vectors.

core::arch::global_asm!(
    r#"
    .section .text.head, "ax"
    .global _start
_start:
    // vCPU 0: x0 = device tree (arm64 boot protocol), MMU off, EL1h.
    mov     x19, x0
    bl      drop_to_el1
    ldr     x1, =__bss_start
    ldr     x2, =__bss_end
1:  cmp     x1, x2
    b.hs    2f
    str     xzr, [x1], #8
    b       1b
2:  ldr     x1, =__stacks_end
    mov     sp, x1
    bl      install_vectors
    mov     x0, x19
    bl      guest_main
    b       .

    .global secondary_start
secondary_start:
    // Secondary vCPUs: x0 = context id = vCPU index (our CPU_ON convention).
    mov     x19, x0
    bl      drop_to_el1
    ldr     x1, =__stacks_end
    lsl     x2, x19, #16
    sub     x1, x1, x2
    mov     sp, x1
    bl      install_vectors
    mov     x0, x19
    bl      guest_secondary_main
    b       .

    // Entered at EL2 (bare QEMU with virtualization=on, used as a GICv4
    // oracle without the hypervisor): run the guest at EL1 anyway, with
    // nothing trapped or routed to EL2, and relay its HVCs (PSCI) to SMC,
    // the PSCI conduit QEMU uses then. Returns at EL1; no stack used;
    // clobbers x0 only. Global: other entry points (vits_tests.rs) use it.
    .global drop_to_el1
drop_to_el1:
    mrs     x0, CurrentEL
    cmp     x0, #(2 << 2)
    b.ne    1f
    mov     x0, #(1 << 31)              // HCR_EL2.RW only: no IMO/FMO, no stage 2
    msr     hcr_el2, x0
    mov     x0, #3                      // CNTHCTL_EL2: EL1PCTEN | EL1PCEN
    msr     cnthctl_el2, x0
    msr     cntvoff_el2, xzr
    mov     x0, #0x33ff                 // CPTR_EL2: RES1 bits, no traps
    msr     cptr_el2, x0
    msr     hstr_el2, xzr
    mov     x0, #0x9                    // ICC_SRE_EL2: SRE | Enable (EL1 may set its SRE)
    msr     S3_4_C12_C9_5, x0
    isb
    msr     S3_4_C12_C11_0, xzr         // ICH_HCR_EL2: virtual CPU interface off
    mrs     x0, midr_el1
    msr     vpidr_el2, x0
    mrs     x0, mpidr_el1
    msr     vmpidr_el2, x0
    ldr     x0, =el2_psci_relay
    msr     vbar_el2, x0
    mov     x0, #0x3c5                  // EL1h, DAIF masked
    msr     spsr_el2, x0
    msr     elr_el2, x30
    isb
    eret
1:  ret

    // EL2 vectors of the bare-EL2 case: only HVC from EL1 reaches them.
    .balign 2048
el2_psci_relay:
    .rept 8
    .balign 0x80
    b       .
    .endr
    .balign 0x80
    smc     #0                          // lower EL, AArch64, sync: the HVC
    eret
    .rept 7
    .balign 0x80
    b       .
    .endr

    // A vector table whose every entry returns to where the exception
    // was taken (the `stuck` scenario's broken guest).
    .balign 2048
    .global eret_vectors
eret_vectors:
    .rept 16
    .balign 0x80
    eret
    .endr

    // VBAR_EL1 and CPACR_EL1 of the calling vCPU; clobbers x1.
    .global install_vectors
install_vectors:
    ldr     x1, =guest_vectors
    msr     vbar_el1, x1
    // Enable FP/SIMD at EL1 (CPACR_EL1.FPEN) though we build soft-float.
    mov     x1, #(3 << 20)
    msr     cpacr_el1, x1
    isb
    ret

    // The registers a C call may clobber (plus x29, x30), on a 256-byte
    // frame whose bytes 176..192 callers may use for ELR/SPSR.
    .macro SAVE_CALLER
    sub     sp, sp, #(32 * 8)
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x29, [sp, #144]
    str     x30, [sp, #160]
    .endm

    .macro RESTORE_CALLER
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x29, [sp, #144]
    ldr     x30, [sp, #160]
    add     sp, sp, #(32 * 8)
    .endm

    .macro VEC target
    .balign 0x80
    b       \target
    .endm

    .balign 2048
guest_vectors:
    VEC unexpected_exception
    VEC unexpected_exception
    VEC unexpected_exception
    VEC unexpected_exception
    VEC sync_exception          // current EL, SPx: sync
    VEC irq_exception           // current EL, SPx: IRQ
    VEC unexpected_exception
    VEC unexpected_exception
    .rept 8
    VEC unexpected_exception
    .endr

sync_exception:
    SAVE_CALLER
    mrs     x0, esr_el1
    mrs     x1, far_el1
    mrs     x2, elr_el1
    bl      guest_sync_exception
    msr     elr_el1, x0
    RESTORE_CALLER
    eret

irq_exception:
    SAVE_CALLER
    mrs     x0, elr_el1
    mrs     x1, spsr_el1
    stp     x0, x1, [sp, #176]
    bl      guest_irq
    ldp     x0, x1, [sp, #176]
    msr     elr_el1, x0
    msr     spsr_el1, x1
    RESTORE_CALLER
    eret

unexpected_exception:
    mrs     x0, esr_el1
    mrs     x1, far_el1
    mrs     x2, elr_el1
    bl      guest_unexpected_exception
    b       .
    .ltorg
"#
);

extern "C" {
    /// The secondary entry point (for PSCI CPU_ON).
    pub fn secondary_start();
}

#[no_mangle]
extern "C" fn guest_unexpected_exception(esr: u64, far: u64, elr: u64) -> ! {
    crate::println!(
        "FAIL unexpected exception: ESR_EL1={esr:#x} FAR_EL1={far:#x} ELR_EL1={elr:#x}"
    );
    super::psci::system_off()
}

extern "C" {
    /// The `eret`-only vector table (see the assembly above).
    static eret_vectors: u8;
}

/// Address of the `eret`-only vector table.
pub fn eret_vectors_addr() -> u64 {
    core::ptr::addr_of!(eret_vectors) as u64
}
