//! The SMMUv3 in the running hypervisor (docs/dma-isolation.md): probed at
//! boot before any partition starts, it confines the DMA of each
//! partition's PCI functions to that partition's RAM and its MSI doorbell.
//!
//! - Every StreamID starts as abort (the driver's probe).
//! - Per partition with PCI functions, a *DMA stage 2*: a second stage-2
//!   table, in the CPUs' format (so the SMMU takes the partition's VTCR_EL2
//!   as is, `S2Config::from_vtcr`), mapping exactly the partition's RAM
//!   (IPA -> PA) and the physical GITS_TRANSLATER page at an IOVA equal to
//!   its physical address, which is the doorbell address the hypervisor
//!   programs into the functions' MSI and MSI-X (`msix::target`). Nothing
//!   else: no GIC frame, no BAR, no other partition's RAM.
//! - `attach` points the partition's StreamIDs at it (before the guest can
//!   enable bus mastering); `detach` makes them abort and invalidates the
//!   partition's VMID in the SMMU's TLBs, before its memory is reused.
//! - The event queue's interrupt drains the faults, each blamed on the
//!   partition that owns its StreamID ([`crate::smmu::dma_faults`]).

use super::machine::platform;
use super::partition::{BootFrames, Partition, IPA_BITS};
use crate::arch::mmu::IdentityTables;
use crate::drivers::smmuv3::SmmuV3;
use crate::mm::{PhysAddr, Stage2, Stage2PageTable, Vmid};
use crate::smmu::dma_faults::{DmaFault, DmaFaultLog, LogDecision};
use crate::smmu::dma_stage2;
use crate::smmu::S2Config;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use spin::{Mutex, Once};

/// What the kernel needs of an SMMUv3 driver: stream table entries for a
/// partition's StreamIDs, TLB invalidation by VMID, and its fault events.
pub trait DmaTranslator: Send + Sync {
    /// The banner line after a successful probe (base, features, StreamID bits).
    fn describe(&self) -> String;
    /// Whether the SMMU can translate stage 2 (else it cannot confine DMA).
    fn has_stage2(&self) -> bool;
    /// Makes sure `sid` has an STE (a level-2 stream table on first use).
    fn prepare_stream(&self, sid: u32) -> Result<(), String>;
    /// STE of `sid`: stage 2 with VMID `vmid`, root `root`, in the format
    /// VTCR_EL2 value `vtcr` describes; CFGI_STE and CMD_SYNC.
    fn attach_stage2(&self, sid: u32, vmid: Vmid, root: PhysAddr, vtcr: u64) -> Result<(), String>;
    /// STE of `sid` back to abort; CFGI_STE and CMD_SYNC.
    fn detach(&self, sid: u32) -> Result<(), String>;
    /// TLBI_S12_VMALL for `vmid`, CMD_SYNC.
    fn invalidate_vmid(&self, vmid: Vmid) -> Result<(), String>;
    /// Hands every queued event to `f` as a fault; returns how many.
    fn drain_faults(&self, f: &mut dyn FnMut(DmaFault)) -> usize;
    /// GERROR bits newly set (acknowledged), if any.
    fn take_gerror(&self) -> Option<u32>;
    /// Turns on the event queue's wired interrupt.
    fn event_irq_enable(&self);
}

/// The probed SMMU, if the machine has one with stage 2.
static SMMU: Once<&'static dyn DmaTranslator> = Once::new();
/// Set once at boot: whether an SMMU confines every PCI function's DMA.
static CONFINES_DMA: Once<bool> = Once::new();
/// The event queue's and global error's INTIDs (0: none).
static EVENT_INTID: AtomicU32 = AtomicU32::new(0);
static GERROR_INTID: AtomicU32 = AtomicU32::new(0);
/// Per partition (by index), its DMA domain, if it has PCI functions.
static DOMAINS: Once<Vec<Option<DmaDomain>>> = Once::new();

/// A partition's DMA stage 2 and the StreamIDs that use it.
struct DmaDomain {
    /// The partition's VMID (tags the SMMU's TLB entries).
    vmid: Vmid,
    /// The table's root and format (the partition's VTCR_EL2).
    root: PhysAddr,
    vtcr: u64,
    /// The StreamIDs of the partition's functions.
    stream_ids: Vec<u32>,
    /// The table, kept for the partition's life (its frames stay in use).
    _table: Stage2PageTable<IdentityTables<BootFrames>>,
    /// The faults the SMMU reported for these StreamIDs.
    faults: Mutex<DmaFaultLog>,
}

/// Whether an SMMU with stage 2 was found and probed: then every PCI
/// function's DMA goes through its partition's DMA stage 2, and the
/// manifest needs neither identity mapping nor `dma = "unconfined"`.
pub fn confines_dma() -> bool {
    CONFINES_DMA.get().copied().unwrap_or(false)
}

/// Maps and probes the first SMMU of the device tree (all StreamIDs abort,
/// then SMMUEN) and prints what it is. Called on the boot CPU after the
/// frame allocator exists and before the manifest is validated.
pub fn init() {
    let Some(node) = platform().smmus.first() else {
        CONFINES_DMA.call_once(|| false);
        return;
    };
    let base = node.registers.start.raw();
    if let Err(e) = super::early::map_device(base, node.registers.size) {
        super::machine::fatal(format_args!("cannot map the SMMU at {base:#x}: {e:?}"));
    }
    let smmu = match probe(base) {
        Ok(s) => s,
        Err(e) => {
            crate::println!("SMMU     at {base:#x} not used ({e}): PCI DMA is not confined");
            CONFINES_DMA.call_once(|| false);
            return;
        }
    };
    crate::println!("SMMU     {}", smmu.describe());
    if !smmu.has_stage2() {
        crate::println!("SMMU     without stage 2: PCI DMA is not confined");
        CONFINES_DMA.call_once(|| false);
        return;
    }
    EVENT_INTID.store(
        node.eventq.and_then(|i| i.intid()).map_or(0, |i| i.get()),
        Ordering::Relaxed,
    );
    GERROR_INTID.store(
        node.gerror.and_then(|i| i.intid()).map_or(0, |i| i.get()),
        Ordering::Relaxed,
    );
    SMMU.call_once(|| smmu);
    CONFINES_DMA.call_once(|| true);
}

/// The SMMU's wired SPIs to enable (event queue, global error), once it
/// confines DMA.
pub fn interrupts() -> impl Iterator<Item = u32> {
    [
        EVENT_INTID.load(Ordering::Relaxed),
        GERROR_INTID.load(Ordering::Relaxed),
    ]
    .into_iter()
    .filter(|&i| i >= 32 && SMMU.get().is_some())
}

/// Turns on the SMMU's event interrupt generation (after the GIC routes it).
pub fn enable_event_interrupt() {
    if let Some(smmu) = SMMU.get() {
        smmu.event_irq_enable();
    }
}

/// Builds every partition's DMA stage 2. Called once after the partitions
/// exist, before any starts; a function with no StreamID on the SMMU stops
/// the boot (its DMA would not be confined).
pub fn build_domains(partitions: &[Partition]) {
    if SMMU.get().is_none() {
        DOMAINS.call_once(Vec::new);
        return;
    }
    let mut domains = Vec::new();
    for p in partitions {
        match build_domain(p) {
            Ok(d) => domains.push(d),
            Err(e) => {
                super::machine::fatal(format_args!("partition {}: DMA stage 2: {e}", p.name()))
            }
        }
    }
    DOMAINS.call_once(|| domains);
}

/// The StreamID the SMMU in use knows PCI function `bdf` by (the first
/// host bridge's `iommu-map`); `None` without an SMMU confining DMA, or
/// if the map has no entry for it.
pub fn stream_id(bdf: crate::pci::Bdf) -> Option<u32> {
    SMMU.get()?;
    let phandle = platform().smmus.first()?.phandle?;
    platform()
        .pci
        .first()?
        .stream_id(bdf.requester_id(), phandle)
}

fn build_domain(p: &Partition) -> Result<Option<DmaDomain>, String> {
    if p.config.pci.is_empty() {
        return Ok(None);
    }
    let mut stream_ids = Vec::new();
    for &bdf in &p.config.pci {
        let sid = stream_id(bdf)
            .ok_or_else(|| format!("PCI function {bdf} has no StreamID on the SMMU (iommu-map)"))?;
        SMMU.get()
            .ok_or("no SMMU")?
            .prepare_stream(sid)
            .map_err(|e| format!("StreamID {sid:#x}: {e}"))?;
        stream_ids.push(sid);
    }
    let regime = Stage2::new(IPA_BITS).map_err(|e| format!("{e:?}"))?;
    let mut table = Stage2PageTable::new(regime, IdentityTables::stage2(BootFrames))
        .map_err(|_| "out of memory for the root table")?;
    let doorbell = super::msix::target().map(|t| t.physical_doorbell);
    let plan = dma_stage2::plan(p.config.ram.ipa, p.ram_pa, p.config.ram.size, doorbell)
        .map_err(|e| format!("{e}"))?;
    for m in plan.into_iter().flatten() {
        table
            .map(m.ipa, m.pa, m.size, m.attributes)
            .map_err(|e| format!("mapping {}: {e:?}", m.what))?;
    }
    log::info!(
        "partition {}: DMA stage 2 at {}: RAM IPA {} -> PA {} ({} MiB) and the ITS doorbell page; StreamIDs {:x?}, VMID {}",
        p.name(),
        table.root(),
        p.config.ram.ipa,
        p.ram_pa,
        p.config.ram.size >> 20,
        stream_ids,
        p.vmid
    );
    Ok(Some(DmaDomain {
        vmid: p.vmid,
        root: table.root(),
        vtcr: p.vtcr,
        stream_ids,
        _table: table,
        faults: Mutex::new(DmaFaultLog::new()),
    }))
}

fn domain(p: &Partition) -> Option<&'static DmaDomain> {
    DOMAINS.get()?.get(p.id.index())?.as_ref()
}

/// Points the partition's StreamIDs at its DMA stage 2 (STE, CFGI_STE,
/// CMD_SYNC). Called before the partition's guest runs, so before it can
/// turn on bus mastering.
pub fn attach(p: &Partition) {
    let (Some(smmu), Some(d)) = (SMMU.get(), domain(p)) else {
        return;
    };
    for &sid in &d.stream_ids {
        if let Err(e) = smmu.attach_stage2(sid, d.vmid, d.root, d.vtcr) {
            // The STE stays abort: the function's DMA fails, nothing leaks.
            log::error!(
                "partition {}: SMMU StreamID {sid:#x} not attached: {e}",
                p.name()
            );
        }
    }
}

/// Makes the partition's StreamIDs abort and drops every translation the
/// SMMU cached for its VMID (STE abort, CFGI_STE, TLBI_S12_VMALL,
/// CMD_SYNC): after this, no DMA of its functions reaches memory, and its
/// RAM may be reused. Called first on stop and reset.
pub fn detach(p: &Partition) {
    let (Some(smmu), Some(d)) = (SMMU.get(), domain(p)) else {
        return;
    };
    for &sid in &d.stream_ids {
        if let Err(e) = smmu.detach(sid) {
            log::error!(
                "partition {}: SMMU StreamID {sid:#x} not detached: {e}",
                p.name()
            );
        }
    }
    if let Err(e) = smmu.invalidate_vmid(d.vmid) {
        log::error!("partition {}: SMMU TLBI for VMID {}: {e}", p.name(), d.vmid);
    }
}

/// Whether `intid` is one of the SMMU's interrupts.
pub fn is_interrupt(intid: u32) -> bool {
    intid >= 32
        && (EVENT_INTID.load(Ordering::Relaxed) == intid
            || GERROR_INTID.load(Ordering::Relaxed) == intid)
}

/// The SMMU's interrupt, taken at EL2 on the boot CPU: global errors are
/// logged, every event is drained and blamed on its partition.
pub fn on_interrupt() {
    let Some(smmu) = SMMU.get() else { return };
    if let Some(gerror) = smmu.take_gerror() {
        log::error!("SMMU global error: GERROR {gerror:#x}");
    }
    smmu.drain_faults(&mut record);
}

/// Once per second per stream at most, after the stream's first fault.
fn log_interval() -> u64 {
    crate::arch::sysreg::counter_frequency()
}

fn record(fault: DmaFault) {
    let owner = DOMAINS.get().and_then(|all| {
        all.iter().enumerate().find_map(|(i, d)| {
            d.as_ref()
                .filter(|d| d.stream_ids.contains(&fault.stream_id))
                .map(|d| (i, d))
        })
    });
    let Some((index, domain)) = owner else {
        log::warn!("SMMU event for a StreamID no partition owns: {fault}");
        return;
    };
    let now = crate::arch::sysreg::counter();
    let decision = domain.faults.lock().record(fault, now, log_interval());
    let name = super::partition::all().get(index).map_or("?", |p| p.name());
    match decision {
        LogDecision::First => log::warn!(
            "partition {name}: DMA fault: {fault}: stopped by the SMMU (this StreamID's further faults are rate-limited)"
        ),
        LogDecision::Again { suppressed } => log::warn!(
            "partition {name}: DMA fault: {fault}: stopped by the SMMU ({suppressed} more since the last line)"
        ),
        LogDecision::Quiet => {}
    }
}

/// The partition's DMA fault counters, for `Ctrl-]` and the stop lines.
pub fn log_faults(p: &Partition) {
    if let Some(d) = domain(p) {
        log::info!("partition {}: {}", p.name(), *d.faults.lock());
    }
}

/// Probes the SMMUv3 at `base` (mapped): all STEs abort, GBPA abort, SMMUEN.
fn probe(base: u64) -> Result<&'static dyn DmaTranslator, String> {
    let mut alloc = |size: u64, align: u64| super::machine::alloc_frames(size, align);
    // SAFETY: the device tree names an SMMUv3 at `base`, which `init` mapped
    // as device memory (both 64 KiB pages); nothing else drives it; the
    // frame allocator's memory is identity-mapped at EL2 and given to the
    // SMMU's tables and queues only.
    let smmu = unsafe { SmmuV3::probe(base as usize, &mut alloc) }.map_err(|e| format!("{e}"))?;
    Ok(alloc::boxed::Box::leak(alloc::boxed::Box::new(smmu)))
}

/// The SMMUv3 driver behind the kernel's narrow interface.
impl DmaTranslator for SmmuV3 {
    fn describe(&self) -> String {
        let f = self.features();
        format!(
            "v3 probed: stage 2 {}, {}-bit StreamIDs ({} stream table), {}-bit VMIDs, OAS {} bits{}",
            if f.stage2 { "yes" } else { "NO" },
            f.sid_bits,
            if f.two_level_stream_table { "2-level" } else { "linear" },
            f.vmid_bits,
            f.oas_bits,
            if f.coherent { ", coherent" } else { "" }
        )
    }

    fn has_stage2(&self) -> bool {
        self.features().stage2
    }

    fn prepare_stream(&self, sid: u32) -> Result<(), String> {
        let mut alloc = |size: u64, align: u64| super::machine::alloc_frames(size, align);
        SmmuV3::prepare_stream(self, sid, &mut alloc).map_err(|e| format!("{e}"))
    }

    fn attach_stage2(&self, sid: u32, vmid: Vmid, root: PhysAddr, vtcr: u64) -> Result<(), String> {
        // A PS above the SMMU's OAS (QEMU: the CPU's 48 bits against 44)
        // is capped by the driver (`S2Config::for_smmu`): every address the
        // DMA stage 2 maps lies below both.
        let config = S2Config::from_vtcr(vmid, root.raw(), vtcr).map_err(|e| format!("{e}"))?;
        SmmuV3::attach_stage2(self, sid, &config).map_err(|e| format!("{e}"))
    }

    fn detach(&self, sid: u32) -> Result<(), String> {
        SmmuV3::detach(self, sid).map_err(|e| format!("{e}"))
    }

    fn invalidate_vmid(&self, vmid: Vmid) -> Result<(), String> {
        SmmuV3::invalidate_vmid(self, vmid).map_err(|e| format!("{e}"))
    }

    fn drain_faults(&self, f: &mut dyn FnMut(DmaFault)) -> usize {
        self.drain_events(&mut |event| f(DmaFault::from_event(&event)))
    }

    fn take_gerror(&self) -> Option<u32> {
        SmmuV3::take_gerror(self)
    }

    fn event_irq_enable(&self) {
        SmmuV3::event_irq_enable(self)
    }
}
