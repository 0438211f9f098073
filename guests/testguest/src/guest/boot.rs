//! Entry points and the EL1 exception vectors.

core::arch::global_asm!(
    r#"
    .section .text.head, "ax"
    .global _start
_start:
    // vCPU 0: x0 = device tree (arm64 boot protocol), MMU off, EL1h.
    mov     x19, x0
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
    ldr     x1, =__stacks_end
    lsl     x2, x0, #16
    sub     x1, x1, x2
    mov     sp, x1
    bl      install_vectors
    mov     x0, x19
    bl      guest_secondary_main
    b       .

install_vectors:
    ldr     x1, =guest_vectors
    msr     vbar_el1, x1
    // Enable FP/SIMD at EL1 (CPACR_EL1.FPEN) though we build soft-float.
    mov     x1, #(3 << 20)
    msr     cpacr_el1, x1
    isb
    ret

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
    mrs     x0, esr_el1
    mrs     x1, far_el1
    mrs     x2, elr_el1
    bl      guest_sync_exception
    msr     elr_el1, x0
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
    eret

irq_exception:
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
    mrs     x0, elr_el1
    mrs     x1, spsr_el1
    stp     x0, x1, [sp, #176]
    bl      guest_irq
    ldp     x0, x1, [sp, #176]
    msr     elr_el1, x0
    msr     spsr_el1, x1
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
