//! System register access: one module per register the hypervisor reads
//! or writes, taking and returning the typed values of [`crate::sysreg`]
//! (or a raw `u64` for the EL1 context that the hypervisor only resets and
//! for addresses), and the barriers that must sit next to writes that
//! change translation or trapping.
//!
//! Where `aarch64-cpu` defines the register, its accessor executes the
//! `mrs`/`msr`; the registers it lacks (MDCR_EL2, VMPIDR_EL2, the ICC_*
//! registers but ICC_SRE_EL2, and ICC_CTLR_EL1 which it has read-only)
//! are reached here by name, or by their
//! `S<op0>_<op1>_C<n>_C<m>_<op2>` encoding, which appears nowhere else.
//!
//! A write that can change EL2's own translation, exception routing,
//! per-CPU state or its access to the GIC is `unsafe` and says why in a
//! `# Safety` section; a write that only shapes a guest's state or the
//! delivery of interrupts is safe.
//!
//! `aarch64-cpu` declares its register accesses `nomem`, so the compiler
//! may move memory accesses across them: every write here sits between two
//! empty asm statements that are NOT `nomem` (compiler memory barriers,
//! no instruction), as the previous macro's asm was; a write that changes
//! how memory is translated is further followed by an `isb` by its caller
//! (and preceded by a `dsb` where table writes must be visible first).

use crate::sysreg::*;

/// Orders the compiler's memory accesses around a system register access
/// (emits nothing).
#[inline(always)]
fn compiler_barrier() {
    // SAFETY: an empty asm statement has no effect; not being `nomem`, it
    // only keeps the compiler from moving memory accesses across it.
    unsafe { core::arch::asm!("", options(nostack, preserves_flags)) };
}

/// The `mrs`/`msr` of a register: `aarch64-cpu`'s accessor, or our own
/// asm by name or encoding.
macro_rules! raw_access {
    (get cpu $reg:ident) => {{
        use aarch64_cpu::registers::Readable;
        aarch64_cpu::registers::$reg.get()
    }};
    (set cpu $reg:ident, $value:expr) => {{
        use aarch64_cpu::registers::Writeable;
        aarch64_cpu::registers::$reg.set($value)
    }};
    (get asm $name:literal) => {{
        let value: u64;
        // SAFETY: `mrs` of a register that exists on every CPU this
        // hypervisor runs on (checked at boot: GICv3 CPU interface, EL2);
        // it writes only the output register. Not `nomem`: some reads
        // (ICC_IAR1_EL1) change the interrupt state.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $name), out(reg) value, options(nostack)) };
        value
    }};
    (set asm $name:literal, $value:expr) => {{
        let value: u64 = $value;
        // SAFETY: the accessor's contract (its `unsafe fn` or its
        // documented harmlessness) covers this `msr`.
        unsafe { core::arch::asm!(concat!("msr ", $name, ", {}"), in(reg) value, options(nostack)) };
    }};
}

/// Declares one accessor module per register: `read`, and a `write`
/// that is safe or `unsafe` (with its `# Safety` contract).
macro_rules! sysreg {
    ($(#[$meta:meta])* $module:ident: $ty:ty = $via:ident $reg:tt; $($access:tt)*) => {
        $(#[$meta])*
        pub mod $module {
            #[allow(unused_imports)]
            use super::*;
            sysreg!(@ $ty, $via $reg; $($access)*);
        }
    };
    (@ $ty:ty, $via:ident $reg:tt;) => {};
    (@ $ty:ty, $via:ident $reg:tt; read $(, $($rest:tt)*)?) => {
        /// Reads the register.
        #[inline(always)]
        #[allow(clippy::useless_conversion)]
        pub fn read() -> $ty {
            <$ty>::from(raw_access!(get $via $reg))
        }
        sysreg!(@ $ty, $via $reg; $($($rest)*)?);
    };
    (@ $ty:ty, $via:ident $reg:tt; write) => {
        /// Writes the register: it shapes only a guest's state or the
        /// delivery of interrupts, never EL2's own memory accesses.
        #[inline(always)]
        #[allow(clippy::useless_conversion)]
        pub fn write(value: $ty) {
            compiler_barrier();
            raw_access!(set $via $reg, u64::from(value));
            compiler_barrier();
        }
    };
    (@ $ty:ty, $via:ident $reg:tt; unsafe write: $safety:literal) => {
        /// Writes the register.
        ///
        /// # Safety
        #[doc = $safety]
        #[inline(always)]
        #[allow(clippy::useless_conversion)]
        pub unsafe fn write(value: $ty) {
            compiler_barrier();
            raw_access!(set $via $reg, u64::from(value));
            compiler_barrier();
        }
    };
}

// ---------------------------------------------------------------- EL2

sysreg! {
    /// HCR_EL2, the hypervisor's configuration of EL1&0.
    hcr_el2: HcrEl2 = cpu HCR_EL2; read, unsafe write:
    "E2H and TGE must stay clear (they would change EL2's own translation
    regime); with VM set, VTTBR_EL2/VTCR_EL2 must hold the stage 2 of the
    partition whose vCPU runs next."
}

sysreg! {
    /// CPTR_EL2, traps of FP/SIMD, SVE, SME, trace and activity monitors.
    cptr_el2: CptrEl2 = cpu CPTR_EL2; unsafe write:
    "the traps apply to EL2 too: the value must not trap what EL2 itself
    executes (the hypervisor is built soft-float and uses no SVE or SME,
    so only `guest::CPTR`-like values qualify)."
}

sysreg! {
    /// MDCR_EL2, debug and performance monitor traps.
    mdcr_el2: MdcrEl2 = asm "mdcr_el2"; unsafe write:
    "TDE must stay clear: the hypervisor has no handler for debug
    exceptions routed to EL2."
}

sysreg! {
    /// SCTLR_EL2, EL2's MMU, caches and alignment checks.
    sctlr_el2: SctlrEl2 = cpu SCTLR_EL2; unsafe write:
    "turning the MMU on needs MAIR_EL2, TCR_EL2 and TTBR0_EL2 to describe
    tables that identity-map everything EL2 uses from then on; the caller
    puts an `isb` after it."
}

sysreg! {
    /// TCR_EL2, the EL2 translation regime's shape.
    tcr_el2: TcrEl2 = cpu TCR_EL2; unsafe write:
    "must match the tables in TTBR0_EL2 before the MMU is on, and never
    change while it is."
}

sysreg! {
    /// MAIR_EL2, the memory attributes EL2's descriptors index.
    mair_el2: u64 = cpu MAIR_EL2; unsafe write:
    "the attribute indices EL2's page tables use must keep their meaning
    while the MMU is on."
}

sysreg! {
    /// TTBR0_EL2, the root of EL2's page tables.
    ttbr0_el2: u64 = cpu TTBR0_EL2; unsafe write:
    "the address must be the root of tables that map everything EL2 uses,
    with TLB maintenance before the MMU relies on them."
}

sysreg! {
    /// VTCR_EL2, the stage-2 translation regime's shape.
    vtcr_el2: VtcrEl2 = cpu VTCR_EL2; unsafe write:
    "must describe the stage-2 tables in VTTBR_EL2 before a guest runs
    (a wrong shape lets the guest reach memory outside its partition)."
}

sysreg! {
    /// VTTBR_EL2, a partition's stage-2 root and VMID.
    vttbr_el2: VttbrEl2 = cpu VTTBR_EL2; unsafe write:
    "BADDR must be the root of the stage-2 tables of the partition about
    to run and VMID that partition's own, so that no TLB entry of another
    partition applies."
}

sysreg! {
    /// TPIDR_EL2, this CPU's `PerCpu` block.
    tpidr_el2: u64 = cpu TPIDR_EL2; read, unsafe write:
    "the value must be the address of this CPU's `PerCpu` block, which the
    exception vectors and `percpu::current` dereference."
}

sysreg! {
    /// ICC_SRE_EL2, the GIC system register interface at EL2 and EL1.
    icc_sre_el2: IccSreEl2 = cpu ICC_SRE_EL2; unsafe write:
    "SRE must stay set once ICC_* registers are in use (clearing it makes
    them UNDEFINED)."
}

sysreg! {
    /// CNTHCTL_EL2, EL1's access to the physical counter and timer.
    cnthctl_el2: CnthctlEl2 = cpu CNTHCTL_EL2; write
}

sysreg! {
    /// CNTVOFF_EL2, the virtual counter's offset.
    cntvoff_el2: u64 = cpu CNTVOFF_EL2; write
}

sysreg! {
    /// VMPIDR_EL2, the MPIDR_EL1 a vCPU reads.
    vmpidr_el2: MpidrEl1 = asm "vmpidr_el2"; write
}

sysreg! {
    /// VPIDR_EL2, the MIDR_EL1 a vCPU reads.
    vpidr_el2: u64 = asm "vpidr_el2"; write
}

sysreg! {
    /// ESR_EL2, the syndrome of the exception taken to EL2.
    esr_el2: u64 = cpu ESR_EL2; read
}

sysreg! {
    /// FAR_EL2, the faulting virtual address of the exception.
    far_el2: u64 = cpu FAR_EL2; read
}

sysreg! {
    /// HPFAR_EL2, the faulting IPA (bits [51:12], shifted right by 8).
    hpfar_el2: u64 = cpu HPFAR_EL2; read
}

// ------------------------------------------------- identification, counters

sysreg! {
    /// ID_AA64PFR0_EL1.
    id_aa64pfr0_el1: IdAa64Pfr0El1 = cpu ID_AA64PFR0_EL1; read
}

sysreg! {
    /// ID_AA64DFR0_EL1.
    id_aa64dfr0_el1: IdAa64Dfr0El1 = cpu ID_AA64DFR0_EL1; read
}

sysreg! {
    /// ID_AA64MMFR0_EL1.
    id_aa64mmfr0_el1: IdAa64Mmfr0El1 = cpu ID_AA64MMFR0_EL1; read
}

sysreg! {
    /// ID_AA64MMFR1_EL1.
    id_aa64mmfr1_el1: IdAa64Mmfr1El1 = cpu ID_AA64MMFR1_EL1; read
}

sysreg! {
    /// MIDR_EL1, this CPU's identification.
    midr_el1: u64 = cpu MIDR_EL1; read
}

sysreg! {
    /// MPIDR_EL1, this CPU's affinity.
    mpidr_el1: MpidrEl1 = cpu MPIDR_EL1; read
}

sysreg! {
    /// PMCR_EL0, the PMU's control (its number of counters).
    pmcr_el0: PmcrEl0 = asm "pmcr_el0"; read
}

sysreg! {
    /// CTR_EL0, the cache geometry.
    ctr_el0: CtrEl0 = asm "ctr_el0"; read
}

sysreg! {
    /// CNTPCT_EL0, the physical counter.
    cntpct_el0: u64 = cpu CNTPCT_EL0; read
}

sysreg! {
    /// CNTFRQ_EL0, the counter frequency in Hz.
    cntfrq_el0: u64 = cpu CNTFRQ_EL0; read
}

/// The ID register space `S3_0_C0_C<crm>_<op2>` (CRm 1..=7), which a guest's
/// trapped reads (HCR_EL2.TID3) reach.
pub mod id_space {
    /// Reads the ID register at (`crm`, `op2`); 0 outside CRm 1..=7,
    /// op2 0..=7. The unallocated encodings of that space read as zero on
    /// every Armv8-A CPU, so every pair is readable at EL2.
    pub fn read(crm: u8, op2: u8) -> u64 {
        macro_rules! read_id {
            ($($crm:literal: [$($op2:literal)*])*) => {
                match (crm, op2) {
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
}

// ---------------------------------------------------- EL1 and EL0 context
// A vCPU's state, written at EL2 while no guest runs on this CPU: EL2
// never uses the EL1&0 regime, so these writes are harmless to it.

sysreg! {
    /// SCTLR_EL1.
    sctlr_el1: SctlrEl1 = cpu SCTLR_EL1; write
}

sysreg! {
    /// VBAR_EL1, the guest's exception vectors.
    vbar_el1: u64 = cpu VBAR_EL1; read, write
}

sysreg! {
    /// TCR_EL1.
    tcr_el1: u64 = cpu TCR_EL1; write
}

sysreg! {
    /// TTBR0_EL1.
    ttbr0_el1: u64 = cpu TTBR0_EL1; write
}

sysreg! {
    /// TTBR1_EL1.
    ttbr1_el1: u64 = cpu TTBR1_EL1; write
}

sysreg! {
    /// MAIR_EL1.
    mair_el1: u64 = cpu MAIR_EL1; write
}

sysreg! {
    /// AMAIR_EL1.
    amair_el1: u64 = asm "amair_el1"; write
}

sysreg! {
    /// CPACR_EL1.
    cpacr_el1: u64 = cpu CPACR_EL1; write
}

sysreg! {
    /// CONTEXTIDR_EL1.
    contextidr_el1: u64 = asm "contextidr_el1"; write
}

sysreg! {
    /// TPIDR_EL0.
    tpidr_el0: u64 = cpu TPIDR_EL0; write
}

sysreg! {
    /// TPIDRRO_EL0.
    tpidrro_el0: u64 = cpu TPIDRRO_EL0; write
}

sysreg! {
    /// TPIDR_EL1.
    tpidr_el1: u64 = cpu TPIDR_EL1; write
}

sysreg! {
    /// SP_EL0.
    sp_el0: u64 = cpu SP_EL0; write
}

sysreg! {
    /// SP_EL1.
    sp_el1: u64 = cpu SP_EL1; write
}

sysreg! {
    /// ELR_EL1.
    elr_el1: u64 = cpu ELR_EL1; read, write
}

sysreg! {
    /// SPSR_EL1.
    spsr_el1: u64 = cpu SPSR_EL1; write
}

sysreg! {
    /// ESR_EL1.
    esr_el1: u64 = cpu ESR_EL1; read, write
}

sysreg! {
    /// FAR_EL1.
    far_el1: u64 = cpu FAR_EL1; read, write
}

sysreg! {
    /// AFSR0_EL1.
    afsr0_el1: u64 = asm "afsr0_el1"; write
}

sysreg! {
    /// AFSR1_EL1.
    afsr1_el1: u64 = asm "afsr1_el1"; write
}

sysreg! {
    /// PAR_EL1.
    par_el1: u64 = cpu PAR_EL1; write
}

sysreg! {
    /// CNTKCTL_EL1.
    cntkctl_el1: u64 = cpu CNTKCTL_EL1; write
}

sysreg! {
    /// CNTV_CTL_EL0, the virtual timer's control.
    cntv_ctl_el0: u64 = cpu CNTV_CTL_EL0; write
}

sysreg! {
    /// CNTP_CTL_EL0, the physical timer's control.
    cntp_ctl_el0: u64 = cpu CNTP_CTL_EL0; write
}

sysreg! {
    /// CNTV_CVAL_EL0.
    cntv_cval_el0: u64 = cpu CNTV_CVAL_EL0; write
}

sysreg! {
    /// CNTP_CVAL_EL0.
    cntp_cval_el0: u64 = cpu CNTP_CVAL_EL0; write
}

sysreg! {
    /// CSSELR_EL1.
    csselr_el1: u64 = cpu CSSELR_EL1; write
}

sysreg! {
    /// MDSCR_EL1.
    mdscr_el1: u64 = asm "mdscr_el1"; write
}

// ------------------------------------------------ GICv3 CPU interface

sysreg! {
    /// ICC_PMR_EL1, the priority mask.
    icc_pmr_el1: IccPmrEl1 = asm "icc_pmr_el1"; write
}

sysreg! {
    /// ICC_CTLR_EL1, EOI mode and binary point sharing.
    icc_ctlr_el1: IccCtlrEl1 = asm "icc_ctlr_el1"; write
}

sysreg! {
    /// ICC_IGRPEN1_EL1, Group 1 enable.
    icc_igrpen1_el1: IccIgrpen1El1 = asm "icc_igrpen1_el1"; write
}

sysreg! {
    /// ICC_IAR1_EL1: reading acknowledges the highest-priority Group 1 interrupt.
    icc_iar1_el1: IccIar1El1 = asm "icc_iar1_el1"; read
}

sysreg! {
    /// ICC_EOIR1_EL1: writing an INTID ends it (a priority drop with EOImode 1).
    icc_eoir1_el1: u32 = asm "icc_eoir1_el1"; write
}

sysreg! {
    /// ICC_DIR_EL1: writing an INTID deactivates it (EOImode 1).
    icc_dir_el1: u32 = asm "icc_dir_el1"; write
}

sysreg! {
    /// ICC_SGI1R_EL1: writing sends a Group 1 SGI.
    icc_sgi1r_el1: IccSgi1rEl1 = asm "icc_sgi1r_el1"; write
}

sysreg! {
    /// ICH_HCR_EL2, the virtual CPU interface's control.
    ich_hcr_el2: IchHcrEl2 = cpu ICH_HCR_EL2; read, write
}

sysreg! {
    /// ICH_VTR_EL2, what the virtual CPU interface implements.
    ich_vtr_el2: IchVtrEl2 = cpu ICH_VTR_EL2; read
}

sysreg! {
    /// ICH_VMCR_EL2, the guest's view of its ICV_* control state.
    ich_vmcr_el2: IchVmcrEl2 = cpu ICH_VMCR_EL2; read, write
}

sysreg! {
    /// ICH_AP1R0_EL2, the guest's Group 1 active priorities (with up to 5
    /// priority bits the only one that exists).
    ich_ap1r0_el2: u64 = cpu ICH_AP1R0_EL2; write
}

/// ICH_LR<n>_EL2, the list registers (their encoding:
/// `vgic::lr::ListRegister`). Writing one only changes what the guest's
/// virtual CPU interface presents.
pub mod ich_lr {
    use aarch64_cpu::registers::{Readable, Writeable};
    use aarch64_cpu::registers::{
        ICH_LR0_EL2, ICH_LR10_EL2, ICH_LR11_EL2, ICH_LR12_EL2, ICH_LR13_EL2, ICH_LR14_EL2,
        ICH_LR15_EL2, ICH_LR1_EL2, ICH_LR2_EL2, ICH_LR3_EL2, ICH_LR4_EL2, ICH_LR5_EL2, ICH_LR6_EL2,
        ICH_LR7_EL2, ICH_LR8_EL2, ICH_LR9_EL2,
    };

    /// The architecture's largest number of list registers.
    pub const MAX: usize = 16;

    /// Reads list register `n` (0 for `n` >= 16).
    pub fn read(n: usize) -> u64 {
        match n {
            0 => ICH_LR0_EL2.get(),
            1 => ICH_LR1_EL2.get(),
            2 => ICH_LR2_EL2.get(),
            3 => ICH_LR3_EL2.get(),
            4 => ICH_LR4_EL2.get(),
            5 => ICH_LR5_EL2.get(),
            6 => ICH_LR6_EL2.get(),
            7 => ICH_LR7_EL2.get(),
            8 => ICH_LR8_EL2.get(),
            9 => ICH_LR9_EL2.get(),
            10 => ICH_LR10_EL2.get(),
            11 => ICH_LR11_EL2.get(),
            12 => ICH_LR12_EL2.get(),
            13 => ICH_LR13_EL2.get(),
            14 => ICH_LR14_EL2.get(),
            15 => ICH_LR15_EL2.get(),
            _ => 0,
        }
    }

    /// Writes list register `n` (nothing for `n` >= 16).
    pub fn write(n: usize, value: u64) {
        match n {
            0 => ICH_LR0_EL2.set(value),
            1 => ICH_LR1_EL2.set(value),
            2 => ICH_LR2_EL2.set(value),
            3 => ICH_LR3_EL2.set(value),
            4 => ICH_LR4_EL2.set(value),
            5 => ICH_LR5_EL2.set(value),
            6 => ICH_LR6_EL2.set(value),
            7 => ICH_LR7_EL2.set(value),
            8 => ICH_LR8_EL2.set(value),
            9 => ICH_LR9_EL2.set(value),
            10 => ICH_LR10_EL2.set(value),
            11 => ICH_LR11_EL2.set(value),
            12 => ICH_LR12_EL2.set(value),
            13 => ICH_LR13_EL2.set(value),
            14 => ICH_LR14_EL2.set(value),
            15 => ICH_LR15_EL2.set(value),
            _ => {}
        }
    }
}

/// Instruction synchronization barrier.
#[inline(always)]
pub fn isb() {
    // SAFETY: a barrier has no effect beyond ordering.
    unsafe { core::arch::asm!("isb", options(nostack)) };
}

/// Data synchronization barrier, inner shareable.
#[inline(always)]
pub fn dsb_ish() {
    // SAFETY: a barrier has no effect beyond ordering.
    unsafe { core::arch::asm!("dsb ish", options(nostack)) };
}

/// Data synchronization barrier, full system.
#[inline(always)]
pub fn dsb_sy() {
    // SAFETY: a barrier has no effect beyond ordering.
    unsafe { core::arch::asm!("dsb sy", options(nostack)) };
}

/// Send event (wakes CPUs waiting in WFE).
#[inline(always)]
pub fn sev() {
    // SAFETY: SEV only signals an event.
    unsafe { core::arch::asm!("sev", options(nomem, nostack)) };
}

/// Wait for event.
#[inline(always)]
pub fn wfe() {
    // SAFETY: WFE only suspends until an event.
    unsafe { core::arch::asm!("wfe", options(nomem, nostack)) };
}

/// Wait for interrupt: wakes when an interrupt is pending at the GIC CPU
/// interface even while PSTATE masks it (unlike `wfe`, which needs an
/// event).
#[inline(always)]
pub fn wfi() {
    // SAFETY: waiting has no effect on memory.
    unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
}

/// The physical counter (CNTPCT_EL0), for timestamps.
#[inline(always)]
pub fn counter() -> u64 {
    isb();
    cntpct_el0::read()
}

/// The counter frequency in Hz (CNTFRQ_EL0).
#[inline(always)]
pub fn counter_frequency() -> u64 {
    cntfrq_el0::read()
}

/// MPIDR_EL1 affinity fields (Aff3..Aff0) of this CPU.
#[inline(always)]
pub fn mpidr() -> u64 {
    mpidr_el1::read().affinity()
}
