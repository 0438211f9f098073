//! What a partition's DMA stage 2 maps (docs/dma-isolation.md): exactly
//! its RAM (IPA -> PA, normal memory) and the page of the physical ITS
//! doorbell (GITS_TRANSLATER) at an IOVA equal to its physical address,
//! which is what the hypervisor programs into the functions' MSI and MSI-X.
//! Nothing else. The kernel (`kernel/smmu.rs`) builds the table from this
//! plan.
#![forbid(unsafe_code)]

use core::fmt;

use crate::mm::{Ipa, PhysAddr, Stage2Access, Stage2Attributes, PAGE_SIZE};

/// One mapping of a DMA stage 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaMapping {
    /// What it is, for an error message ("RAM", "the ITS doorbell").
    pub what: &'static str,
    /// Input address (IOVA = IPA).
    pub ipa: Ipa,
    /// Output address.
    pub pa: PhysAddr,
    /// Bytes.
    pub size: u64,
    /// Memory type and access.
    pub attributes: Stage2Attributes,
}

/// Why a partition's DMA stage 2 cannot be planned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaPlanError {
    /// The doorbell page, mapped at its physical address, would fall in
    /// the partition's RAM IPA range.
    DoorbellInRam {
        /// The doorbell's page.
        page: u64,
    },
}

impl fmt::Display for DmaPlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DoorbellInRam { page } => write!(
                f,
                "the ITS doorbell page {page:#x} lies in the partition's RAM (IPA); move ram.ipa"
            ),
        }
    }
}

/// The mappings of the DMA stage 2 of a partition whose RAM is `ram_size`
/// bytes at `ram_ipa` (backed at `ram_pa`), with the physical ITS doorbell
/// at `doorbell` if MSIs go to one: RAM first, then the doorbell's page.
pub fn plan(
    ram_ipa: Ipa,
    ram_pa: PhysAddr,
    ram_size: u64,
    doorbell: Option<PhysAddr>,
) -> Result<[Option<DmaMapping>; 2], DmaPlanError> {
    let ram = DmaMapping {
        what: "RAM",
        ipa: ram_ipa,
        pa: ram_pa,
        size: ram_size,
        attributes: Stage2Attributes::normal(Stage2Access::ReadWrite, false),
    };
    let Some(doorbell) = doorbell else {
        return Ok([Some(ram), None]);
    };
    let page = doorbell.raw() & !(PAGE_SIZE - 1);
    if page.wrapping_sub(ram_ipa.raw()) < ram_size {
        return Err(DmaPlanError::DoorbellInRam { page });
    }
    let doorbell = DmaMapping {
        what: "the ITS doorbell",
        ipa: Ipa(page),
        pa: PhysAddr(page),
        size: PAGE_SIZE,
        attributes: Stage2Attributes::device(Stage2Access::ReadWrite),
    };
    Ok([Some(ram), Some(doorbell)])
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM_IPA: Ipa = Ipa(0x4000_0000);
    const RAM_PA: PhysAddr = PhysAddr(0x8000_0000);
    const MIB: u64 = 1 << 20;

    #[test]
    fn ram_then_the_doorbells_page_identity_mapped_as_device() {
        let [ram, doorbell] = plan(RAM_IPA, RAM_PA, 64 * MIB, Some(PhysAddr(0x0808_0040))).unwrap();
        let ram = ram.unwrap();
        assert_eq!((ram.ipa, ram.pa, ram.size), (RAM_IPA, RAM_PA, 64 * MIB));
        assert_eq!(
            ram.attributes,
            Stage2Attributes::normal(Stage2Access::ReadWrite, false)
        );
        let doorbell = doorbell.unwrap();
        // GITS_TRANSLATER is at offset 0x40 of its page: the page is mapped.
        assert_eq!(doorbell.ipa, Ipa(0x0808_0000));
        assert_eq!(doorbell.pa, PhysAddr(0x0808_0000));
        assert_eq!(doorbell.size, PAGE_SIZE);
        assert_eq!(
            doorbell.attributes,
            Stage2Attributes::device(Stage2Access::ReadWrite)
        );
    }

    #[test]
    fn without_a_doorbell_only_ram() {
        let [ram, doorbell] = plan(RAM_IPA, RAM_PA, MIB, None).unwrap();
        assert_eq!(ram.unwrap().what, "RAM");
        assert_eq!(doorbell, None);
    }

    #[test]
    fn a_doorbell_page_inside_ram_is_refused_at_either_edge() {
        let end = RAM_IPA.raw() + 64 * MIB;
        for at in [RAM_IPA.raw(), RAM_IPA.raw() + 0x40, end - PAGE_SIZE + 0x40] {
            let err = plan(RAM_IPA, RAM_PA, 64 * MIB, Some(PhysAddr(at))).unwrap_err();
            assert_eq!(
                err,
                DmaPlanError::DoorbellInRam {
                    page: at & !(PAGE_SIZE - 1)
                }
            );
        }
        assert!(err_text(end - PAGE_SIZE).contains("lies in the partition's RAM"));
        // The pages just outside are fine.
        for at in [end, RAM_IPA.raw() - PAGE_SIZE + 0x40] {
            assert!(plan(RAM_IPA, RAM_PA, 64 * MIB, Some(PhysAddr(at))).is_ok());
        }
    }

    fn err_text(at: u64) -> alloc::string::String {
        alloc::format!(
            "{}",
            plan(RAM_IPA, RAM_PA, 64 * MIB, Some(PhysAddr(at))).unwrap_err()
        )
    }
}
