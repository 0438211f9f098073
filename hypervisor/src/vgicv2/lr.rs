//! The GICv2 virtual interface control registers the scheduler writes and
//! reads back (IHI 0048B, 5.3: GICH_HCR, GICH_VTR, GICH_MISR, GICH_LRn).
//! Pure bit layouts: 32-bit list registers, unlike GICv3's 64-bit ICH_LR.

use crate::vgic::LrState;

/// A GICH_LRn value (IHI 0048B, 5.3.9).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListRegisterV2(pub u32);

impl ListRegisterV2 {
    /// VirtualID, bits [9:0]: the INTID the guest acknowledges.
    const VIRTUAL_ID_MASK: u32 = 0x3ff;
    /// PhysicalID, bits [19:10], when HW = 1.
    const PHYSICAL_ID_SHIFT: u32 = 10;
    /// CPUID, bits [12:10], when HW = 0: the source CPU of an SGI.
    const CPUID_SHIFT: u32 = 10;
    const CPUID_MASK: u32 = 0x7;
    /// EOI, bit 19, when HW = 0: maintenance interrupt on deactivation.
    const EOI: u32 = 1 << 19;
    /// Priority, bits [27:23]: the top 5 bits of the 8-bit priority.
    const PRIORITY_SHIFT: u32 = 23;
    /// State, bits [29:28].
    const STATE_SHIFT: u32 = 28;
    /// Grp1, bit 30.
    const GROUP1: u32 = 1 << 30;
    /// HW, bit 31: deactivation also deactivates the physical interrupt.
    const HW: u32 = 1 << 31;

    /// A software interrupt. `source` is the sending CPU of an SGI (0-7;
    /// ignored for other INTIDs); `eoi` asks for a maintenance interrupt
    /// when the guest deactivates it (level-sensitive lines re-sampled).
    pub fn software(vintid: u16, source: u8, priority: u8, state: LrState, eoi: bool) -> Self {
        let mut value = Self::common(vintid, priority, state);
        if vintid < 16 {
            value |= (u32::from(source) & Self::CPUID_MASK) << Self::CPUID_SHIFT;
        }
        if eoi {
            value |= Self::EOI;
        }
        Self(value)
    }

    /// A hardware-linked interrupt: the guest's deactivation also
    /// deactivates physical `pintid` (IHI 0048B, 5.3.9: HW = 1; PhysicalID
    /// must be a PPI or SPI, 16-1019).
    pub fn hardware(vintid: u16, pintid: u16, priority: u8, state: LrState) -> Self {
        let physical = (u32::from(pintid) & Self::VIRTUAL_ID_MASK) << Self::PHYSICAL_ID_SHIFT;
        Self(Self::common(vintid, priority, state) | Self::HW | physical)
    }

    fn common(vintid: u16, priority: u8, state: LrState) -> u32 {
        let state = match state {
            LrState::Invalid => 0,
            LrState::Pending => 1,
            LrState::Active => 2,
            LrState::PendingActive => 3,
        };
        // Group 0: a GICv2 guest's interrupts are Group 0 (GICD_IGROUPR
        // reads as zero); with GICV_CTLR.FIQEn clear they arrive as vIRQs.
        (u32::from(vintid) & Self::VIRTUAL_ID_MASK)
            | (u32::from(priority >> 3) << Self::PRIORITY_SHIFT)
            | (state << Self::STATE_SHIFT)
    }

    /// The VirtualID field.
    pub fn vintid(self) -> u16 {
        (self.0 & Self::VIRTUAL_ID_MASK) as u16
    }

    /// The CPUID field (an SGI's source), meaningful when HW = 0.
    pub fn source(self) -> u8 {
        ((self.0 >> Self::CPUID_SHIFT) & Self::CPUID_MASK) as u8
    }

    /// The PhysicalID field, when HW = 1.
    pub fn pintid(self) -> Option<u16> {
        self.hw()
            .then_some(((self.0 >> Self::PHYSICAL_ID_SHIFT) & Self::VIRTUAL_ID_MASK) as u16)
    }

    /// The priority, widened back to 8 bits (low 3 bits zero).
    pub fn priority(self) -> u8 {
        (((self.0 >> Self::PRIORITY_SHIFT) & 0x1f) as u8) << 3
    }

    /// The State field.
    pub fn state(self) -> LrState {
        LrState::from_flags(
            self.0 & (1 << Self::STATE_SHIFT) != 0,
            self.0 & (2 << Self::STATE_SHIFT) != 0,
        )
    }

    /// The HW bit.
    pub fn hw(self) -> bool {
        self.0 & Self::HW != 0
    }

    /// The EOI bit (HW = 0 only).
    pub fn eoi(self) -> bool {
        !self.hw() && self.0 & Self::EOI != 0
    }

    /// The Grp1 bit.
    pub fn group1(self) -> bool {
        self.0 & Self::GROUP1 != 0
    }
}

/// GICH_HCR bits (IHI 0048B, 5.3.1).
pub mod hcr {
    /// En: the virtual CPU interface is enabled.
    pub const EN: u32 = 1 << 0;
    /// UIE: maintenance interrupt while at most one list register is valid.
    pub const UIE: u32 = 1 << 1;
    /// LRENPIE: maintenance interrupt while EOICount is non-zero.
    pub const LRENPIE: u32 = 1 << 2;
    /// NPIE: maintenance interrupt while no list register is pending.
    pub const NPIE: u32 = 1 << 3;
    /// EOICount, bits [31:27]: EOIs that found no list register.
    pub const EOICOUNT_SHIFT: u32 = 27;
}

/// GICH_MISR bits (IHI 0048B, 5.3.4): why the maintenance interrupt fired.
pub mod misr {
    /// EOI: a list register with EOI = 1 was deactivated (see GICH_EISRn).
    pub const EOI: u32 = 1 << 0;
    /// U: underflow (UIE set, at most one valid list register).
    pub const U: u32 = 1 << 1;
    /// LRENP: EOICount non-zero (LRENPIE set).
    pub const LRENP: u32 = 1 << 2;
    /// NP: no pending list register (NPIE set).
    pub const NP: u32 = 1 << 3;
}

/// GICH_VTR (IHI 0048B, 5.3.2): the implemented list registers and
/// priority bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vtr(pub u32);

impl Vtr {
    /// ListRegs + 1: how many list registers exist (1-64).
    pub fn list_registers(self) -> usize {
        (self.0 & 0x3f) as usize + 1
    }

    /// PRIbits + 1: implemented priority bits (GICv2: 5).
    pub fn priority_bits(self) -> u32 {
        ((self.0 >> 29) & 0x7) + 1
    }
}
