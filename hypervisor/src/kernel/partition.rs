//! A running partition: its RAM, stage-2 tables, vCPU power states and
//! virtual console, and its lifecycle (start, stop, reset) across the
//! physical CPUs it owns.

use super::lifecycle::Steps;
use super::percpu;
use crate::arch::mmu::{FrameSource, IdentityTables};
use crate::gicv4::ItsFootprint;
use crate::guest::psci::PowerStates;
use crate::guest::vuart::VirtualUart;
use crate::ids::{CpuIndex, PartitionId, VcpuIndex};
use crate::manifest::PartitionConfig;
use crate::mm::{Ipa, PhysAddr, Stage2, Stage2Access, Stage2Attributes, Stage2PageTable, Vmid};
use crate::partition::lifecycle;
use crate::partition::locks::Ordered;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use spin::Mutex;

pub use crate::partition::lifecycle::RunState;

/// State changed under the partition's lock.
pub struct Control {
    /// Lifecycle state.
    pub run: RunState,
    /// vCPU power states (PSCI).
    pub power: PowerStates,
    /// How many times the partition has been (re)started, from 0.
    pub boot_count: u32,
}

/// One partition: its configuration, memory and stage 2, and each
/// subsystem's state behind its own lock.
///
/// Lock order, where two of one partition's locks are held at once (take
/// the left one first; a partition never takes another's locks, and none
/// is held across a kick, a `wait_parked` or a guest entry):
/// - `control` alone;
/// - `vits[i]` -> `vgic` (software injection reaches the vGIC from inside
///   a vITS command; the vGIC never calls back): by type, both are held
///   only through [`Partition::vits_and_vgic`];
/// - `vits[0]` -> the GICv4 backend state (`gicv4`), and `vits[i]` ->
///   `routed` -> the physical ITS queue, LPI
///   allocator and property table, the frame allocator;
/// - `pci` -> `pci_mappings` -> the stage 2 (the last two by type:
///   [`Partition::bar_mappings`]);
/// - `console` -> the physical console.
///
/// The `vits` -> `vgic` and `pci_mappings` -> stage-2 pairs are enforced
/// by type ([`crate::partition::locks::Ordered`]); the other orders are
/// checked by review.
pub struct Partition {
    /// Index in the manifest.
    pub id: PartitionId,
    /// What the manifest says.
    pub config: PartitionConfig,
    /// Physical address backing the RAM at `config.ram.ipa`.
    pub ram_pa: PhysAddr,
    /// The stage-2 root table.
    pub stage2_root: PhysAddr,
    /// The stage-2 tables, for mappings added after boot (passthrough MMIO).
    stage2: Mutex<Stage2Tables>,
    /// VTCR_EL2 for this partition.
    pub vtcr: u64,
    /// The partition's VMID.
    pub vmid: Vmid,
    /// IPA of the guest's device tree.
    pub dtb_ipa: Ipa,
    /// Lifecycle and vCPU power, under a lock.
    pub control: Mutex<Control>,
    /// The virtual console.
    pub console: Mutex<VirtualUart>,
    /// The virtual GICv3 (model; `kernel::vgic` drives the hardware half).
    pub vgic: Mutex<crate::vgic::Vgic>,
    /// The virtual ITSs (`[partition.its] count`; the first receives the
    /// passthrough functions' MSIs). Lock one before `vgic`, never after,
    /// and never two at once.
    pub vits: Vec<Mutex<crate::vits::Vits>>,
    /// The virtual PCI host bridge of the passthrough functions, if any.
    pub pci: Option<Mutex<crate::pci::VirtualHostBridge>>,
    /// The BAR mappings currently in stage 2 (lock after `pci`, before the
    /// stage 2; reached only with it, through [`Partition::bar_mappings`]).
    pci_mappings: Mutex<Vec<crate::pci::BarMapping>>,
    /// GICv4 direct injection of the passthrough functions' MSIs, once set
    /// up (after the ITS); absent on GICv3 hosts (software path).
    pub gicv4: spin::Once<Option<super::gicv4::Gicv4>>,
    /// The GICv3 software path's state: passthrough functions MAPD'd on
    /// the physical ITS this life and their events' physical LPIs (used
    /// only without GICv4).
    pub routed: Mutex<crate::gicv4::RoutedState>,
    /// Bumped on every stop or reset: a vCPU that entered the guest in an
    /// older epoch must leave it and park.
    pub epoch: AtomicU64,
    /// Guest faults answered with an injected abort or undefined
    /// instruction (accesses outside the partition, unhandled traps).
    pub faults: AtomicU64,
    /// A bad guest access to an MSI-X page was logged in this life.
    pub msix_warned: AtomicBool,
    /// An MSI held disabled (bad guest address or EventID) was logged in this life.
    pub msi_warned: AtomicBool,
    /// Guest-driven routine lines (MSI programmed, MSI-X control), rate-limited.
    pub msi_log: crate::console::log_limit::RateLimit<2>,
    /// Set once a stop has released everything (after `run` became
    /// `Stopped`, which happens first); cleared by `start`. The machine
    /// powers off only when every partition is stopped *and* released.
    pub released: AtomicBool,
}

/// Why a partition could not be built.
#[derive(Debug)]
pub enum BuildError {
    /// No RAM or table memory left.
    OutOfMemory(&'static str),
    /// The stage-2 regime or mapping was refused.
    Stage2(String),
    /// An image named by the manifest is not in the bundle.
    MissingImage(String),
    /// The guest device tree could not be generated.
    DeviceTree(String),
    /// The virtual GIC could not be configured.
    Vgic(String),
    /// The passthrough PCI functions could not be set up.
    Pci(String),
    /// The images do not fit the partition's RAM layout.
    Layout(crate::boot::guest_image::LayoutError),
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::OutOfMemory(what) => write!(f, "out of memory for {what}"),
            Self::Stage2(e) => write!(f, "stage 2: {e}"),
            Self::MissingImage(name) => write!(f, "image {name:?} is not in the boot bundle"),
            Self::DeviceTree(e) => write!(f, "guest device tree: {e}"),
            Self::Layout(e) => write!(f, "{e}"),
            Self::Vgic(e) => write!(f, "virtual GIC: {e}"),
            Self::Pci(e) => write!(f, "PCI passthrough: {e}"),
        }
    }
}

/// The IPA size every partition's stage 2 is built for.
pub const IPA_BITS: u32 = 40;

impl Partition {
    /// Builds partition `id`: maps `ram_pa` at the configured IPA in a new
    /// stage 2 with VMID `vmid` (tables from `frames`).
    pub fn new(
        id: PartitionId,
        config: PartitionConfig,
        ram_pa: PhysAddr,
        vmid: Vmid,
        frames: BootFrames,
    ) -> Result<Self, BuildError> {
        let regime =
            Stage2::new(IPA_BITS).map_err(|e| BuildError::Stage2(alloc::format!("{e:?}")))?;
        let vtcr = regime
            .vtcr_el2(crate::arch::mmu::pa_range(), crate::arch::mmu::vmid_16bit())
            .map_err(|e| BuildError::Stage2(alloc::format!("{e:?}")))?;
        let mut s2 = Stage2PageTable::new(regime, IdentityTables::stage2(frames))
            .map_err(|_| BuildError::OutOfMemory("stage-2 root"))?;
        s2.map(
            config.ram.ipa,
            ram_pa,
            config.ram.size,
            Stage2Attributes::normal(Stage2Access::ReadWrite, false),
        )
        .map_err(|e| BuildError::Stage2(alloc::format!("mapping RAM: {e:?}")))?;
        // The device tree goes in the last 2 MiB of RAM (arm64 booting.rst: at most 2 MiB, 8-byte aligned).
        let dtb_ipa = Ipa(config.ram.ipa.raw() + config.ram.size - (2 << 20));
        let vcpus = config.cpus.len();
        let passthrough = super::vits::passthrough_devices(id, &config.pci);
        Ok(Self {
            id,
            ram_pa,
            stage2_root: s2.root(),
            stage2: Mutex::new(s2),
            vtcr,
            vmid,
            dtb_ipa,
            control: Mutex::new(Control {
                run: RunState::Stopped,
                power: PowerStates::new(vcpus),
                boot_count: 0,
            }),
            console: Mutex::new(VirtualUart::new()),
            vgic: Mutex::new(super::vgic::new_vgic(vcpus).map_err(BuildError::Vgic)?),
            vits: super::vits::new_all(id, vcpus, &passthrough, config.its)
                .map_err(BuildError::Vgic)?
                .into_iter()
                .map(Mutex::new)
                .collect(),
            pci: super::pci::build_bridge(&config.pci)
                .map_err(BuildError::Pci)?
                .map(Mutex::new),
            pci_mappings: Mutex::new(Vec::new()),
            gicv4: spin::Once::new(),
            routed: Mutex::new(crate::gicv4::RoutedState::new(super::msi_route::config(
                id,
                &config.name,
                passthrough.iter().map(|&(_, phys)| phys),
            ))),
            epoch: AtomicU64::new(0),
            faults: AtomicU64::new(0),
            msix_warned: AtomicBool::new(false),
            msi_warned: AtomicBool::new(false),
            msi_log: crate::console::log_limit::RateLimit::new(),
            released: AtomicBool::new(false),
            config,
        })
    }

    /// The stage-2 tables, locked. Mapping into unmapped IPA space needs no
    /// TLB maintenance; anything else goes through the table memory's
    /// invalidation, which assumes this partition's VMID is loaded.
    pub fn stage2(&self) -> spin::MutexGuard<'_, Stage2Tables> {
        self.stage2.lock()
    }

    /// The BAR mappings and the stage-2 tables in their lock order: the
    /// only way to the mappings (always changed with the tables). The
    /// tables alone are [`Partition::stage2`].
    pub fn bar_mappings(&self) -> Ordered<'_, Vec<crate::pci::BarMapping>, Stage2Tables> {
        Ordered::new(&self.pci_mappings, &self.stage2)
    }

    /// vITS `index` and the vGIC in their lock order: the only way to hold
    /// both (vITS first; `Locked::split` gives the vITS and the right to
    /// lock the vGIC under it). The vGIC alone is `vgic.lock()`.
    pub fn vits_and_vgic(
        &self,
        index: usize,
    ) -> Option<Ordered<'_, crate::vits::Vits, crate::vgic::Vgic>> {
        Some(Ordered::new(self.vits.get(index)?, &self.vgic))
    }

    /// The partition's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Whether `[ipa, ipa + len)` lies in the partition's RAM.
    pub fn ipa_in_ram(&self, ipa: u64, len: u64) -> bool {
        let base = self.config.ram.ipa.raw();
        ipa >= base
            && ipa
                .checked_add(len)
                .is_some_and(|end| end <= base + self.config.ram.size)
    }

    /// A pointer to `len` bytes of guest RAM at `ipa`, if they all lie in it.
    pub fn ram_slice(&self, ipa: u64, len: u64) -> Option<*const u8> {
        self.ipa_in_ram(ipa, len)
            .then(|| self.ram_ptr(ipa) as *const u8)
    }

    /// The hypervisor's pointer to guest RAM at `ipa` (identity-mapped EL2).
    fn ram_ptr(&self, ipa: u64) -> *mut u8 {
        (self.ram_pa.raw() + (ipa - self.config.ram.ipa.raw())) as *mut u8
    }

    /// Copies `bytes` into guest RAM at `ipa` (checked to lie inside it).
    pub fn write_ram(&self, ipa: u64, bytes: &[u8]) -> bool {
        if !self.ipa_in_ram(ipa, bytes.len() as u64) {
            return false;
        }
        // SAFETY: the range is inside this partition's RAM, which is
        // identity-mapped at EL2 and owned by the partition.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ram_ptr(ipa), bytes.len()) };
        crate::arch::cache::clean_invalidate(self.ram_ptr(ipa) as u64, bytes.len() as u64);
        true
    }

    /// The physical CPU that runs `vcpu`.
    pub fn cpu_of(&self, vcpu: VcpuIndex) -> Option<CpuIndex> {
        self.config.cpus.get(vcpu.get() as usize).copied()
    }

    /// Loads the next life: releases the last one, builds fresh models,
    /// copies the images and the device tree into guest RAM and attaches
    /// the functions' DMA ([`crate::partition::lifecycle::load`]).
    pub fn load(&self) -> Result<(), BuildError> {
        let boot = self.control.lock().boot_count;
        lifecycle::load(&Steps(self), boot)
    }

    /// Makes vCPU 0 pending at the entry point with x0 = the device tree.
    pub fn start(&self) {
        self.released.store(false, Ordering::Release);
        let mut control = self.control.lock();
        control.run = RunState::Running;
        control
            .power
            .start(self.config.kernel.ipa.raw(), self.dtb_ipa.raw());
        let boot = control.boot_count;
        drop(control);
        self.log_its_footprint(format_args!("at start (boot {boot})"));
        crate::arch::sysreg::sev();
        // A CPU whose partition was stopped waits in WFI, which an event
        // does not end: an interrupt does.
        if let Some(cpu) = self.cpu_of(VcpuIndex::new(0)) {
            let index = cpu;
            if index != super::percpu::current_index()
                && super::percpu::get(index)
                    .online
                    .load(core::sync::atomic::Ordering::Acquire)
            {
                super::cpus::kick(index);
            }
        }
    }

    /// What the partition holds on the physical ITS, from the bookkeeping
    /// of both paths: the software path's MAPD'd functions, mapped events
    /// and their LPIs and routes; the GICv4 backend's VMAPTI'd events and
    /// the vPEs, doorbells and functions set up at boot.
    pub fn its_footprint(&self) -> ItsFootprint {
        let (devices, events) = {
            let routed = self.routed.lock();
            (routed.device_count(), routed.event_count())
        };
        let mut f = ItsFootprint {
            guest_devices: devices,
            guest_events: events,
            guest_lpis: events,
            guest_routes: super::msi_route::routes_to(self.id.get() as usize),
            ..ItsFootprint::default()
        };
        if let Some(Some(g)) = self.gicv4.get() {
            // A vITS trap takes the backend's state out of its slot under
            // the first vITS's lock: with that lock held, the state is there.
            let _vits = self.vits.first().map(|v| v.lock());
            if let Some(state) = g.state.lock().as_ref() {
                let config = state.config();
                f.guest_events += state.mapped_count();
                f.standing_devices = config.devices.len();
                f.standing_vpes = config.vpes.len();
                f.standing_doorbells = config
                    .vpes
                    .iter()
                    .filter(|v| v.doorbell.get() != crate::gic::its_cmd::NO_DOORBELL)
                    .count();
            }
        }
        f
    }

    /// Logs the partition's physical ITS footprint and the machine's LPI
    /// and frame usage, for partitions with passthrough functions (the
    /// reset scenario compares these lines across lives).
    pub fn log_its_footprint(&self, when: core::fmt::Arguments<'_>) {
        if self.pci.is_none() {
            return;
        }
        log::info!(
            "partition {}: physical ITS footprint {when}: {}; machine: LPIs in use {}, free frames {} KiB, heap live {} bytes",
            self.name(),
            self.its_footprint(),
            super::irq::lpis_in_use(),
            super::machine::free_frame_bytes() >> 10,
            super::heap::live_bytes()
        );
    }

    /// Whether the partition is stopped for good (powered off or faulted).
    pub fn is_stopped(&self) -> bool {
        self.control.lock().run == RunState::Stopped
    }

    /// Stops the partition: every vCPU leaves the guest and parks
    /// ([`crate::partition::lifecycle::stop`]).
    pub fn stop(&self, reason: &str) {
        lifecycle::stop(&Steps(self), reason);
    }

    /// Logs each vCPU's counters (its physical CPU's, since boot).
    pub fn log_counters(&self) {
        super::smmu::log_faults(self);
        super::console::log_output_counters(self);
        for (v, &cpu) in self.config.cpus.iter().enumerate() {
            log::info!(
                "partition {}: vCPU {v} (CPU {}): {}",
                self.name(),
                cpu.get(),
                percpu::get(cpu).exits
            );
        }
    }

    /// The counters and, with passthrough functions, what the partition
    /// holds on the physical ITS now (the console's Ctrl-]).
    pub fn log_status(&self) {
        let (run, boot) = {
            let control = self.control.lock();
            (control.run, control.boot_count)
        };
        log::info!("partition {}: {run:?}, boot {boot}", self.name());
        self.log_counters();
        self.log_its_footprint(format_args!("now"));
    }

    /// Resets the partition from one of its vCPUs: parks the others, reloads
    /// the images and device tree, and restarts vCPU 0
    /// ([`crate::partition::lifecycle::reset`]).
    pub fn reset(&self, reason: &str) {
        lifecycle::reset(&Steps(self), reason);
    }
}

/// A partition's stage-2 tables.
pub type Stage2Tables = Stage2PageTable<IdentityTables<BootFrames>>;

/// Partition RAM and stage-2 tables come from the boot frame allocator.
pub struct BootFrames;

impl FrameSource for BootFrames {
    fn frames(&mut self, count: usize) -> Option<PhysAddr> {
        let size = count as u64 * crate::mm::PAGE_SIZE;
        super::machine::alloc_frames(size, size)
    }
}
