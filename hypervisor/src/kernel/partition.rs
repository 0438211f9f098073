//! A partition's state as data: its RAM, stage-2 tables, vCPU power
//! states, and each subsystem's state behind its own lock, with the
//! accessors that encode the lock order; and the table of all partitions
//! with the physical CPU each vCPU runs on. No subsystem logic: the
//! subsystems (`vgic.rs`, `vits.rs`, `pci.rs`, ...) act on this state, and
//! `lifecycle.rs` builds it, starts, stops and resets it.

use crate::arch::mmu::{FrameSource, IdentityTables};
use crate::gicv4::{PassthroughState, RoutedState};
use crate::guest::psci::PowerStates;
use crate::guest::vuart::VirtualUart;
use crate::guest_mem::{GuestMemError, GuestMemory};
use crate::ids::{CpuIndex, PartitionId, VcpuIndex};
use crate::manifest::PartitionConfig;
use crate::mm::{Ipa, PhysAddr, Stage2, Stage2Access, Stage2Attributes, Stage2PageTable, Vmid};
use crate::partition::locks::{Fan, Ordered};
use alloc::string::String;
use alloc::vec::Vec;
use spin::{Mutex, Once};

pub use crate::partition::lifecycle::{Life, RunState};

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
///   only through [`Partition::vits_locks`];
/// - `vits[0]` -> `backend` (the GICv4 backend's state or the software
///   path's routing state) -> `vgic`, the physical ITS queue, LPI
///   allocator and property table, the frame allocator (by type: the
///   vITS's rights to `vgic` and `backend` both come from
///   [`Partition::vits_locks`]; `backend` alone, with nothing else taken
///   meanwhile, through [`Partition::backend_alone`]);
/// - `pci_mappings` -> the stage 2 (by type: [`Partition::bar_mappings`]);
///   `pci` is never held while they are taken;
/// - `console` -> `vgic` (the UART's interrupt line follows its level
///   under the console lock), and `console` -> the physical console's
///   `MUX` -> `UART` (a log line written under it); `kernel/console.rs`'s
///   `DRAIN` is taken before a console, never under one. The console is
///   reached only through [`Partition::console`], by `kernel/console.rs`.
///
/// The `vits` -> `vgic`, `vits` -> `backend` and `pci_mappings` -> stage-2
/// pairs are enforced by type ([`crate::partition::locks`]); `backend` ->
/// `vgic`, `console` -> `vgic` and the others are checked by review.
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
    /// The virtual console (its PL011 and TX ring). Reached only through
    /// [`Partition::console`] (`kernel/console.rs`'s paths) and replaced
    /// whole by [`Partition::reset_console`].
    console: Mutex<VirtualUart>,
    /// The virtual GICv3 (model; `kernel::vgic` drives the hardware half).
    pub vgic: Mutex<crate::vgic::Vgic>,
    /// The virtual ITSs (`[partition.its] count`; the first receives the
    /// passthrough functions' MSIs). Lock one before `vgic`, never after,
    /// and never two at once. Reached only through
    /// [`Partition::vits_locks`] (and replaced whole by
    /// [`Partition::replace_vits`]).
    vits: Vec<Mutex<crate::vits::Vits>>,
    /// The virtual PCI host bridge of the passthrough functions, if any.
    pub pci: Option<Mutex<crate::pci::VirtualHostBridge>>,
    /// The BAR mappings currently in stage 2 (lock after `pci`, before the
    /// stage 2; reached only with it, through [`Partition::bar_mappings`]).
    pci_mappings: Mutex<Vec<crate::pci::BarMapping>>,
    /// GICv4 direct injection of the passthrough functions' MSIs, once set
    /// up (after the ITS); absent on GICv3 hosts (software path).
    pub gicv4: Once<Option<Gicv4>>,
    /// The first vITS's backend state (GICv4 or software path). After a
    /// vITS lock: [`Partition::vits_locks`]; alone:
    /// [`Partition::backend_alone`].
    backend: Mutex<BackendState>,
    /// The lifecycle's lock-free state: the epoch (a vCPU that entered the
    /// guest in an older one must leave it and park), the guest fault
    /// count, and whether a stop released everything.
    pub life: Life,
    /// The lines this partition's guest can make the hypervisor log,
    /// counted and rate-limited by kind (`console::log_limit`).
    pub guest_log: crate::console::log_limit::GuestLog,
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

/// The subsystems' state a partition starts with (built by
/// `lifecycle::build`, which knows the subsystems).
pub struct Models {
    /// The virtual GICv3.
    pub vgic: crate::vgic::Vgic,
    /// The virtual ITSs.
    pub vits: Vec<crate::vits::Vits>,
    /// The virtual PCI host bridge, if the partition has functions.
    pub pci: Option<crate::pci::VirtualHostBridge>,
    /// The GICv3 software path's state.
    pub routed: RoutedState,
}

/// The state of the backend behind the first vITS, under one lock taken
/// after a vITS lock.
pub struct BackendState {
    /// The GICv3 software path's state: passthrough functions MAPD'd on
    /// the physical ITS this life and their events' physical LPIs (used
    /// only without GICv4).
    pub routed: RoutedState,
    /// The GICv4 backend's persistent state, once set up (taken out for
    /// the length of a trap).
    pub gicv4: Option<PassthroughState>,
}

/// One partition's GICv4 resources (write-once; the backend's state is in
/// [`BackendState::gicv4`]).
pub struct Gicv4 {
    /// The VM's vLPI property table (GICR_VPROPBASER).
    pub vprop: PhysAddr,
    /// Its size in bytes.
    pub vprop_bytes: u64,
    /// GICR_VPROPBASER.IDbits.
    pub id_bits_field: u8,
    /// Each vCPU's virtual pending table (GICR_VPENDBASER).
    pub vpts: Vec<PhysAddr>,
    /// Each vCPU's doorbell (a physical LPI the ITS raises for a vLPI that
    /// arrives while the vPE is not resident).
    pub doorbells: Vec<u32>,
}

/// The IPA size every partition's stage 2 is built for.
pub const IPA_BITS: u32 = 40;

impl Partition {
    /// Builds partition `id` around its subsystems' first state `models`:
    /// maps `ram_pa` at the configured IPA in a new stage 2 with VMID
    /// `vmid` (tables from `frames`).
    pub fn new(
        id: PartitionId,
        config: PartitionConfig,
        ram_pa: PhysAddr,
        vmid: Vmid,
        frames: BootFrames,
        models: Models,
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
            vgic: Mutex::new(models.vgic),
            vits: models.vits.into_iter().map(Mutex::new).collect(),
            pci: models.pci.map(Mutex::new),
            pci_mappings: Mutex::new(Vec::new()),
            gicv4: Once::new(),
            backend: Mutex::new(BackendState {
                routed: models.routed,
                gicv4: None,
            }),
            life: Life::new(),
            guest_log: crate::console::log_limit::RateLimit::new(),
            config,
        })
    }

    /// The stage-2 tables, locked. Mapping into unmapped IPA space needs no
    /// TLB maintenance; anything else goes through the table memory's
    /// invalidation, which assumes this partition's VMID is loaded.
    pub fn stage2(&self) -> spin::MutexGuard<'_, Stage2Tables> {
        self.stage2.lock()
    }

    /// The virtual console, locked: for `kernel/console.rs` (guest
    /// accesses, the drain, typed input, its counters), which takes it
    /// after `DRAIN` or alone, never `DRAIN` under it; under it only the
    /// vGIC (the console's line) and a log line (`MUX` -> `UART`).
    pub fn console(&self) -> spin::MutexGuard<'_, VirtualUart> {
        self.console.lock()
    }

    /// A load: a fresh virtual console (its lock alone).
    pub fn reset_console(&self) {
        *self.console.lock() = VirtualUart::new();
    }

    /// The BAR mappings and the stage-2 tables in their lock order: the
    /// only way to the mappings (always changed with the tables). The
    /// tables alone are [`Partition::stage2`].
    pub fn bar_mappings(&self) -> Ordered<'_, Vec<crate::pci::BarMapping>, Stage2Tables> {
        Ordered::new(&self.pci_mappings, &self.stage2)
    }

    /// vITS `index` with the two locks taken under it: the vGIC (software
    /// injection) and the backend state (`FanLocked::split` gives the vITS
    /// and the right to lock each; take `backend` before `vgic`).
    pub fn vits_locks(
        &self,
        index: usize,
    ) -> Option<Fan<'_, crate::vits::Vits, crate::vgic::Vgic, BackendState>> {
        Some(Fan::new(self.vits.get(index)?, &self.vgic, &self.backend))
    }

    /// How many vITSs the partition has.
    pub fn vits_count(&self) -> usize {
        self.vits.len()
    }

    /// A load: each vITS replaced by its fresh model (one lock at a time).
    pub fn replace_vits(&self, fresh: Vec<crate::vits::Vits>) {
        for (slot, vits) in self.vits.iter().zip(fresh) {
            *slot.lock() = vits;
        }
    }

    /// The backend state alone, for a user that holds no vITS lock and
    /// takes none while holding it (the software path's release, a vPE
    /// move): it then cannot deadlock against a vITS trap.
    pub fn backend_alone(&self) -> spin::MutexGuard<'_, BackendState> {
        self.backend.lock()
    }

    /// Boot: GICv4 direct injection for this partition, if set up (once):
    /// its resources and the backend's first state.
    pub fn install_gicv4(&self, gicv4: Option<(Gicv4, PassthroughState)>) {
        let (resources, state) = match gicv4 {
            Some((g, state)) => (Some(g), Some(state)),
            None => (None, None),
        };
        self.backend.lock().gicv4 = state;
        self.gicv4.call_once(|| resources);
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

    /// Whether the partition is stopped for good (powered off or faulted).
    pub fn is_stopped(&self) -> bool {
        self.control.lock().run == RunState::Stopped
    }

    /// The physical CPU that runs `vcpu`.
    pub fn cpu_of(&self, vcpu: VcpuIndex) -> Option<CpuIndex> {
        self.config.cpus.get(vcpu.index()).copied()
    }
}

/// Guest memory as the vITS and vGIC see it: the partition's RAM, nothing else.
pub struct PartitionMemory<'a>(pub &'a Partition);

impl GuestMemory for PartitionMemory<'_> {
    fn read(&self, ipa: Ipa, buf: &mut [u8]) -> Result<(), GuestMemError> {
        let ptr = self
            .0
            .ram_slice(ipa.raw(), buf.len() as u64)
            .ok_or(GuestMemError::NotRam {
                ipa,
                len: buf.len(),
            })?;
        // SAFETY: `ram_slice` checked the range lies in the partition's RAM,
        // identity-mapped at EL2.
        unsafe { core::ptr::copy_nonoverlapping(ptr, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write(&mut self, ipa: Ipa, buf: &[u8]) -> Result<(), GuestMemError> {
        if self.0.write_ram(ipa.raw(), buf) {
            Ok(())
        } else {
            Err(GuestMemError::NotRam {
                ipa,
                len: buf.len(),
            })
        }
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

static PARTITIONS: Once<Vec<Partition>> = Once::new();
static ASSIGNMENT: Once<Vec<Option<(usize, VcpuIndex)>>> = Once::new();

/// All partitions.
pub fn all() -> &'static [Partition] {
    PARTITIONS.get().map_or(&[], Vec::as_slice)
}

/// The partition and vCPU that physical CPU `cpu` runs, if any.
pub fn assignment(cpu: CpuIndex) -> Option<(&'static Partition, VcpuIndex)> {
    let (p, v) = (*ASSIGNMENT.get()?.get(cpu.index())?)?;
    Some((&all()[p], v))
}

/// Boot: the partitions (once).
pub(super) fn install_partitions(partitions: Vec<Partition>) {
    PARTITIONS.call_once(|| partitions);
}

/// Boot: which physical CPU runs which (partition, vCPU) (once).
pub(super) fn install_assignment(assignment: Vec<Option<(usize, VcpuIndex)>>) {
    ASSIGNMENT.call_once(|| assignment);
}
