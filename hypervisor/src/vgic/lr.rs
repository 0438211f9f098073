//! The values the virtual CPU interface is programmed with: ICH_LR<n>_EL2,
//! ICH_HCR_EL2 and the bits of ICH_VMCR_EL2 the scheduler reads (IHI 0069,
//! 12.4: the ICH_* register descriptions). Pure bit layouts.

/// The state field of a list register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LrState {
    /// Invalid: the register is free (the interrupt was deactivated).
    Invalid,
    /// Pending.
    Pending,
    /// Active.
    Active,
    /// Pending and active.
    PendingActive,
}

impl LrState {
    /// The state for a pending/active pair.
    pub fn from_flags(pending: bool, active: bool) -> Self {
        match (pending, active) {
            (false, false) => Self::Invalid,
            (true, false) => Self::Pending,
            (false, true) => Self::Active,
            (true, true) => Self::PendingActive,
        }
    }

    /// Whether the state includes pending.
    pub fn pending(self) -> bool {
        matches!(self, Self::Pending | Self::PendingActive)
    }

    /// Whether the state includes active.
    pub fn active(self) -> bool {
        matches!(self, Self::Active | Self::PendingActive)
    }

    fn bits(self) -> u64 {
        match self {
            Self::Invalid => 0,
            Self::Pending => 1,
            Self::Active => 2,
            Self::PendingActive => 3,
        }
    }
}

/// An ICH_LR<n>_EL2 value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListRegister(pub u64);

impl ListRegister {
    const STATE_SHIFT: u32 = 62;
    const HW: u64 = 1 << 61;
    const GROUP: u64 = 1 << 60;
    const PRIORITY_SHIFT: u32 = 48;
    const PINTID_SHIFT: u32 = 32;
    const PINTID_MASK: u64 = 0x1fff;
    /// EOI maintenance request; only meaningful when HW is 0 (bit 41).
    const EOI: u64 = 1 << 41;

    /// A software interrupt: the hypervisor owns its whole life cycle.
    /// `eoi` asks for a maintenance interrupt when the guest deactivates it.
    pub fn software(vintid: u32, priority: u8, group1: bool, state: LrState, eoi: bool) -> Self {
        let mut v = Self::common(vintid, priority, group1, state);
        if eoi {
            v |= Self::EOI;
        }
        Self(v)
    }

    /// A hardware-linked interrupt: the guest's deactivation also
    /// deactivates physical `pintid` (IHI 0069, 4.9: HW = 1).
    pub fn hardware(vintid: u32, pintid: u32, priority: u8, group1: bool, state: LrState) -> Self {
        let pintid = (u64::from(pintid) & Self::PINTID_MASK) << Self::PINTID_SHIFT;
        Self(Self::common(vintid, priority, group1, state) | Self::HW | pintid)
    }

    fn common(vintid: u32, priority: u8, group1: bool, state: LrState) -> u64 {
        (state.bits() << Self::STATE_SHIFT)
            | if group1 { Self::GROUP } else { 0 }
            | (u64::from(priority) << Self::PRIORITY_SHIFT)
            | u64::from(vintid)
    }

    /// The state field.
    pub fn state(self) -> LrState {
        match self.0 >> Self::STATE_SHIFT {
            0 => LrState::Invalid,
            1 => LrState::Pending,
            2 => LrState::Active,
            _ => LrState::PendingActive,
        }
    }

    /// vINTID, the INTID the guest sees.
    pub fn vintid(self) -> u32 {
        self.0 as u32
    }

    /// pINTID, if HW is set.
    pub fn pintid(self) -> Option<u32> {
        self.hw()
            .then_some(((self.0 >> Self::PINTID_SHIFT) & Self::PINTID_MASK) as u32)
    }

    /// HW: hardware-linked.
    pub fn hw(self) -> bool {
        self.0 & Self::HW != 0
    }

    /// Group 1.
    pub fn group1(self) -> bool {
        self.0 & Self::GROUP != 0
    }

    /// The priority field.
    pub fn priority(self) -> u8 {
        (self.0 >> Self::PRIORITY_SHIFT) as u8
    }

    /// The EOI maintenance bit (software interrupts only).
    pub fn eoi(self) -> bool {
        !self.hw() && self.0 & Self::EOI != 0
    }

    /// A copy with the EOI maintenance bit set (no effect when HW is set).
    pub fn with_eoi(self) -> Self {
        if self.hw() {
            self
        } else {
            Self(self.0 | Self::EOI)
        }
    }
}

/// ICH_HCR_EL2 bits as the scheduler's raw `u64` images carry them; the
/// register's definition is [`crate::sysreg::IchHcrEl2`].
pub mod hcr {
    use crate::sysreg::IchHcrEl2;

    /// En: the virtual CPU interface is enabled.
    pub const EN: u64 = IchHcrEl2(0).with_en(true).0;
    /// UIE: maintenance interrupt when at most one list register is valid.
    pub const UIE: u64 = IchHcrEl2(0).with_uie(true).0;
    /// LRENPIE: maintenance interrupt while EOIcount is not 0.
    pub const LRENPIE: u64 = IchHcrEl2(0).with_lrenpie(true).0;
    /// NPIE: maintenance interrupt when no list register is pending.
    pub const NPIE: u64 = IchHcrEl2(0).with_npie(true).0;
    /// TDIR: trap ICV_DIR_EL1 writes to EL2 (FEAT_GICv3_TDIR).
    pub const TDIR: u64 = IchHcrEl2(0).with_tdir(true).0;
    /// Where EOIcount sits.
    pub const EOICOUNT_SHIFT: u32 = IchHcrEl2(0).with_eoicount(1).0.trailing_zeros();

    /// The EOIcount field of a read-back ICH_HCR_EL2 value: deactivations
    /// of interrupts no list register held.
    pub fn eoi_count(hcr: u64) -> u32 {
        IchHcrEl2(hcr).eoicount() as u32
    }
}

/// ICH_VMCR_EL2 bits the scheduler needs; the register's definition is
/// [`crate::sysreg::IchVmcrEl2`].
pub mod vmcr {
    /// VEOIM: the guest split priority drop and deactivation (ICC_CTLR_EL1.EOImode).
    pub const VEOIM: u64 = crate::sysreg::IchVmcrEl2(0).with_veoim(true).0;
}
