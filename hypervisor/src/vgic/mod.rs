//! The virtual GICv3 of one partition: distributor and
//! redistributor emulation, interrupt state, list-register scheduling and
//! SGIs between vCPUs. Pure: the kernel reads the hardware (trapped MMIO,
//! ICH_LR<n>_EL2, ICH_HCR_EL2, ICH_VMCR_EL2, ICC_SGI1R_EL1), passes the
//! values in, and applies what comes back ([`Actions`], [`LrImage`]).
//!
//! The guest sees a GICv3 with a single security state (GICD_CTLR.DS = 1),
//! affinity routing always on, and no VLPI frames:
//! - `dist`: the distributor frame (IHI 0069, 12.9);
//! - `redist`: each vCPU's RD_base and SGI_base frames (IHI 0069, 12.10-12.11);
//! - `ops`: per-interrupt operations shared by both;
//! - `lpi`: sparse per-vCPU LPI pending state and the property-table cache;
//! - `sched`: list-register scheduling and folding;
//! - `sgi`: ICC_SGI1R_EL1 routing.
//!
//! The kernel's calls, per vCPU: on every exit [`Vgic::fold`] (with the
//! LRs, ICH_HCR_EL2 and ICH_VMCR_EL2 read back), then the trap's handler
//! ([`Vgic::mmio_read`]/[`Vgic::mmio_write`] for the frames,
//! [`Vgic::send_sgi`] for ICC_SGI1R_EL1, [`Vgic::deactivate`] for a trapped
//! ICV_DIR_EL1, [`Vgic::inject`] for a hardware-linked interrupt taken at
//! EL2), and before every entry [`Vgic::flush`], writing the [`LrImage`].
#![forbid(unsafe_code)]

mod access;
mod action;
mod config;
mod dist;
mod hwstate;
mod irq;
mod lpi;
mod lr;
mod ops;
mod pending_table;
mod redist;
mod sched;
mod sgi;

#[cfg(test)]
mod tests;

pub use action::{Action, Actions, VcpuMask};
pub use config::{
    ConfigError, VgicConfig, DIST_SIZE, MAX_LRS, MAX_SPIS, MAX_VCPUS, REDIST_STRIDE, SGI_FRAME,
};
pub use dist::offset as gicd_offset;
pub use hwstate::{NoPhysicalState, PhysicalIrqState};
pub use lpi::{GuestLpiTable, LpiConfig, LpiConfigSource, Slice};
pub use lr::{hcr, vmcr, ListRegister, LrState};
pub use pending_table::{TableTransfer, MAX_TABLE_BYTES};
pub use redist::offset as gicr_offset;
pub use sched::LrImage;
pub use sgi::{decode_sgi1r, SgiRequest};

use alloc::vec::Vec;

use crate::ids::{VcpuIndex, VirtIntId};
use crate::mm::Ipa;
use irq::Irq;
use lpi::LpiState;
use redist::RedistRegs;
use sched::Slot;

/// One partition's virtual GICv3.
#[derive(Clone, Debug)]
pub struct Vgic {
    config: VgicConfig,
    /// GICD_CTLR.EnableGrp0.
    grp0_enabled: bool,
    /// GICD_CTLR.EnableGrp1.
    grp1_enabled: bool,
    /// SPI state, index = INTID - 32.
    spis: Vec<Irq>,
    /// Bit i set: SPI 32 + i may want a list register (pending, active or
    /// listed). Set whenever the SPI's state is borrowed mutably
    /// (`irq_mut`), cleared by `flush` once the SPI is idle, so the walk
    /// every exit makes over the SPIs (`gather`) visits only these: an SPI
    /// never set here is in its reset state and wants no register.
    spi_busy: Vec<u64>,
    /// GICD_IROUTER<n> as written (masked), index = INTID - 32.
    routes: Vec<u64>,
    vcpus: Vec<VcpuState>,
    counters: VgicCounters,
    first_fault: Option<BadAccess>,
    fault_reported: bool,
}

/// The per-vCPU half: banked SGIs and PPIs, the redistributor registers,
/// LPI pending state, and what its list registers were given.
#[derive(Clone, Debug)]
struct VcpuState {
    private: [Irq; 32],
    redist: RedistRegs,
    lpis: LpiState,
    slots: Vec<Slot>,
    /// ICH_VMCR_EL2.VEOIM as of the last fold.
    eoi_mode: bool,
    /// Between a flush and its fold.
    in_guest: bool,
}

/// Why a kernel call into the vGIC was refused (guest input never errs:
/// it is RAZ/WI and counted instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VgicError {
    /// The configuration is unusable.
    Config(ConfigError),
    /// The vCPU index is not one of this partition's.
    NoSuchVcpu(VcpuIndex),
    /// The INTID is not one this call handles in this partition.
    NoSuchInterrupt(VirtIntId),
    /// The vCPU's LPI pending set is full; the LPI was dropped and counted.
    LpiPendingFull { vcpu: VcpuIndex, intid: VirtIntId },
    /// The list-register count is 0 or above [`MAX_LRS`], or does not match.
    ListRegisters(usize),
    /// `flush` was called twice without a `fold` in between.
    FlushWithoutFold(VcpuIndex),
}

/// Guest accesses the vGIC answered RAZ/WI because they were not valid,
/// and other things worth a log line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VgicCounters {
    /// Accesses with a width or alignment the register does not support.
    pub bad_width: u64,
    /// Accesses to reserved or unimplemented offsets.
    pub reserved: u64,
    /// Accesses at an IPA outside every vGIC frame.
    pub outside: u64,
    /// SGI targets that name no vCPU of the partition.
    pub sgi_no_target: u64,
    /// LPIs dropped because a vCPU's pending set was full.
    pub lpi_overflows: u64,
    /// LPI property-table entries the vGIC could not read.
    pub lpi_unreadable: u64,
    /// Pending tables (GICR_PENDBASER) the vGIC could not read or write
    /// when EnableLPIs changed (outside the partition's RAM).
    pub pending_table_faults: u64,
}

/// The first invalid guest access, kept for one log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadAccess {
    /// The vCPU that made it.
    pub vcpu: VcpuIndex,
    /// The IPA.
    pub ipa: Ipa,
    /// Access size in bytes.
    pub size: u8,
    /// Write or read.
    pub write: bool,
}

impl Vgic {
    /// A vGIC in its reset state, or why `config` is unusable.
    pub fn new(config: VgicConfig) -> Result<Self, VgicError> {
        config.validate().map_err(VgicError::Config)?;
        let mut private = [Irq::default(); 32];
        for sgi in private.iter_mut().take(16) {
            *sgi = Irq::sgi();
        }
        let vcpus = (0..config.num_vcpus)
            .map(|_| VcpuState {
                private,
                redist: RedistRegs::new(),
                lpis: LpiState::new(config.max_pending_lpis),
                slots: Vec::new(),
                eoi_mode: false,
                in_guest: false,
            })
            .collect();
        let spis = usize::from(config.num_spis);
        Ok(Self {
            config,
            grp0_enabled: false,
            grp1_enabled: false,
            spis: alloc::vec![Irq::default(); spis],
            spi_busy: alloc::vec![0; spis.div_ceil(64)],
            routes: alloc::vec![0; spis],
            vcpus,
            counters: VgicCounters::default(),
            first_fault: None,
            fault_reported: false,
        })
    }

    /// The configuration this vGIC was built with.
    pub fn config(&self) -> &VgicConfig {
        &self.config
    }

    /// What was counted so far.
    pub fn counters(&self) -> &VgicCounters {
        &self.counters
    }

    /// The first invalid guest access, returned once so the kernel logs it
    /// once; later ones only count.
    pub fn take_fault_report(&mut self) -> Option<BadAccess> {
        if self.fault_reported {
            return None;
        }
        let report = self.first_fault;
        self.fault_reported = report.is_some();
        report
    }

    /// Whether `ipa` falls in the distributor or a redistributor frame.
    pub fn contains(&self, ipa: Ipa) -> bool {
        access::decode_frame(&self.config, ipa).is_some()
    }

    fn vcpu(&self, vcpu: VcpuIndex) -> Result<&VcpuState, VgicError> {
        self.vcpus
            .get(vcpu.index())
            .ok_or(VgicError::NoSuchVcpu(vcpu))
    }

    fn vcpu_mut(&mut self, vcpu: VcpuIndex) -> Result<&mut VcpuState, VgicError> {
        self.vcpus
            .get_mut(vcpu.index())
            .ok_or(VgicError::NoSuchVcpu(vcpu))
    }

    /// Records an invalid access for the counters and the one log line.
    fn fault(&mut self, vcpu: VcpuIndex, ipa: Ipa, size: u8, write: bool) {
        if self.first_fault.is_none() {
            self.first_fault = Some(BadAccess {
                vcpu,
                ipa,
                size,
                write,
            });
        }
    }
}
