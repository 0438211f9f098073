//! The trap decoder (`trap.rs`): any ESR_EL2, FAR_EL2 and HPFAR_EL2 a
//! guest can make the hardware report, and the abort injection built from
//! any guest PSTATE and vector base.
//!
//! Asserts: the IPA keeps FAR's page offset and fits 52 bits; an MMIO
//! access has an architected size and register; loads and stores never
//! carry bits beyond the access (or beyond 32 bits for a W register);
//! immediates and fields are the syndrome's; an injected abort enters the
//! guest's vector table at one of its four synchronous entries, in EL1h
//! with DAIF masked, with an abort class and IL set.

use hypervisor::guest::trap::{decode, ec, inject_external_abort, TrapCause};

use crate::input::Input;

/// One fuzz input: three register values, a register value to load or
/// store, then an injection's inputs.
pub fn run(data: &[u8]) {
    let mut input = Input(data);
    loop {
        let esr = input.u64();
        let far = input.u64();
        let hpfar = input.u64();
        let raw = input.u64();
        check_decode(esr, far, hpfar, raw);
        check_injection(&mut input);
        if input.is_empty() {
            break;
        }
    }
}

fn check_decode(esr: u64, far: u64, hpfar: u64, raw: u64) {
    let class = (esr >> 26) & 0x3f;
    let iss = esr & 0x1ff_ffff;
    match decode(esr, far, hpfar) {
        TrapCause::Mmio(access) => {
            assert_eq!(class, ec::DABT_LOWER);
            assert_ne!(iss & (1 << 24), 0, "MMIO needs ISV");
            check_ipa(access.ipa.raw(), far);
            assert!(matches!(access.size, 1 | 2 | 4 | 8), "{access:?}");
            assert!(access.reg <= 31, "{access:?}");
            assert_eq!(access.write, iss & (1 << 6) != 0);
            let bits = u32::from(access.size) * 8;
            let store = access.store_value(raw);
            assert!(
                bits == 64 || store >> bits == 0,
                "{access:?} store {store:#x}"
            );
            let load = access.load_value(raw);
            if !access.reg64 {
                assert!(load <= u64::from(u32::MAX), "{access:?} load {load:#x}");
            }
            if !access.sign_extend && bits < 64 {
                assert!(load >> bits == 0, "{access:?} load {load:#x}");
            }
            // The accessed bytes always come through unchanged.
            let low = if bits == 64 {
                u64::MAX
            } else {
                (1 << bits) - 1
            };
            let low = if access.reg64 { low } else { low & 0xffff_ffff };
            assert_eq!(load & low, raw & low, "{access:?}");
        }
        TrapCause::DataAbortNoSyndrome { ipa, write, dfsc } => {
            assert_eq!(class, ec::DABT_LOWER);
            assert_eq!(iss & (1 << 24), 0);
            check_ipa(ipa.raw(), far);
            assert_eq!(write, iss & (1 << 6) != 0);
            assert!(dfsc <= 0x3f);
        }
        TrapCause::InstructionAbort { ipa } => {
            assert_eq!(class, ec::IABT_LOWER);
            check_ipa(ipa.raw(), far);
        }
        TrapCause::Hvc(imm) => {
            assert_eq!(class, ec::HVC64);
            assert_eq!(u64::from(imm), iss & 0xffff);
        }
        TrapCause::Smc(imm) => {
            assert_eq!(class, ec::SMC64);
            assert_eq!(u64::from(imm), iss & 0xffff);
        }
        TrapCause::SysReg {
            encoding,
            reg,
            read,
        } => {
            assert_eq!(class, ec::SYSREG);
            // Only Op0/Op2/Op1/CRn/CRm: never Rt or the direction.
            assert_eq!(encoding.bits() & !0x3f_fc1e, 0, "{encoding:?}");
            assert_eq!(u64::from(encoding.bits()), iss & 0x3f_fc1e);
            assert!(reg <= 31);
            assert_eq!(read, iss & 1 != 0);
        }
        TrapCause::Wfx => assert_eq!(class, ec::WFX),
        TrapCause::Other { ec } => {
            assert_eq!(u64::from(ec), class);
            let handled = [
                ec::DABT_LOWER,
                ec::IABT_LOWER,
                ec::HVC64,
                ec::SMC64,
                ec::SYSREG,
                ec::WFX,
            ];
            assert!(!handled.contains(&class), "class {class:#x} not decoded");
        }
    }
}

/// HPFAR_EL2.FIPA gives IPA[51:12]; FAR_EL2 the page offset.
fn check_ipa(ipa: u64, far: u64) {
    assert_eq!(ipa & 0xfff, far & 0xfff);
    assert_eq!(ipa >> 52, 0, "{ipa:#x}");
}

fn check_injection(input: &mut Input) {
    let instruction = input.bool();
    let write = input.bool();
    let elr = input.u64();
    let spsr = input.u64();
    let far = input.u64();
    let vbar = input.u64();
    let injection = inject_external_abort(instruction, write, elr, spsr, far, vbar);
    let offset = injection.elr_el2.wrapping_sub(vbar);
    assert!(matches!(offset, 0x000 | 0x200 | 0x400), "{offset:#x}");
    // ARM ARM D1.10.2: from EL0 (AArch64) the lower-EL entry; from EL1 the
    // current-EL entry of the stack pointer in use.
    let from_el0 = spsr & 0b1100 == 0;
    assert_eq!(offset == 0x400, from_el0);
    let class = injection.esr_el1 >> 26;
    let expected = match (instruction, from_el0) {
        (false, false) => ec::DABT_CURRENT,
        (false, true) => ec::DABT_LOWER,
        (true, false) => ec::IABT_CURRENT,
        (true, true) => ec::IABT_LOWER,
    };
    assert_eq!(class, expected);
    assert_ne!(injection.esr_el1 & (1 << 25), 0, "IL");
    assert_eq!(
        injection.esr_el1 & 0x3f,
        0b01_0000,
        "synchronous external abort"
    );
    assert_eq!(injection.esr_el1 & (1 << 6) != 0, write && !instruction);
    assert_eq!(injection.spsr_el2, 0x3c5, "EL1h, DAIF masked");
    assert_eq!(
        (injection.elr_el1, injection.spsr_el1, injection.far_el1),
        (elr, spsr, far)
    );
}
