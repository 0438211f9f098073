//! The SMMUv3 in the running hypervisor: probed at boot before any
//! partition starts, it confines the DMA of each partition's PCI functions
//! to that partition's RAM and MSI doorbell (docs/dma-isolation.md).

use spin::Once;

/// Set once at boot: whether an SMMU confines every PCI function's DMA.
static CONFINES_DMA: Once<bool> = Once::new();

/// Whether an SMMU with stage 2 was found and probed: then every PCI
/// function's DMA goes through its partition's DMA stage 2, and the
/// manifest needs neither identity mapping nor `dma = "unconfined"`.
pub fn confines_dma() -> bool {
    CONFINES_DMA.get().copied().unwrap_or(false)
}
