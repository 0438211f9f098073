//! The physical interrupt machinery the kernel owns: each CPU's
//! redistributor, LPIs (property table, INTID allocator), the ITS with one
//! collection per CPU and its command queue as a sink ([`ItsQueue`]), the
//! timer PPIs forwarded to vCPUs, and the PCI devices found behind the
//! host bridge.

use super::{early, machine, percpu};
use crate::boot::platform::Gic;
use crate::drivers::ecam::Ecam;
use crate::drivers::gicv3::lpi::PropertyTable;
use crate::drivers::gicv3::Redistributor;
use crate::drivers::its::Its;
use crate::gic::its_cmd::{ItsCommand, RdBase};
use crate::gic::lpi::{LpiAllocator, LpiTableLayout};
use crate::gicv4::{PhysItsQueue, PhysItsSink, SinkError};
use crate::ids::{PhysIntId, VcpuIndex, VirtIntId};
use crate::vgic::LpiConfig;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use spin::{Mutex, Once};

/// LPI INTID bits the hypervisor uses (16: INTIDs 8192..65535).
const LPI_ID_BITS: u32 = 16;

static REDISTRIBUTORS: [AtomicUsize; crate::arch::MAX_CPUS] =
    [const { AtomicUsize::new(0) }; crate::arch::MAX_CPUS];
static PROPERTIES: Mutex<Option<PropertyTable>> = Mutex::new(None);
static LPIS: Mutex<Option<LpiAllocator>> = Mutex::new(None);
static ITS: Once<Its> = Once::new();
static PCI: Once<Mutex<(Ecam, Vec<crate::pci::PciDevice>)>> = Once::new();

fn alloc(size: u64, align: u64) -> Option<crate::mm::PhysAddr> {
    machine::alloc_frames(size.next_multiple_of(4096), align.max(4096))
}

/// The calling CPU's redistributor, once `init_cpu` found it.
pub fn redistributor(cpu: crate::ids::CpuIndex) -> Option<Redistributor> {
    let base = REDISTRIBUTORS.get(cpu.index())?.load(Ordering::Acquire);
    // SAFETY: the base was found by `Redistributor::find` in a mapped region.
    (base != 0).then(|| unsafe { Redistributor::from_base(base) })
}

/// The ITS, if the platform has one and it came up.
pub fn its() -> Option<&'static Its> {
    ITS.get()
}

/// Allocates a physical LPI, configured with `priority` and enabled.
pub fn allocate_lpi(priority: u8) -> Option<PhysIntId> {
    let intid = LPIS.lock().as_mut()?.allocate().ok()?;
    PROPERTIES.lock().as_ref()?.configure(intid, priority, true);
    Some(intid)
}

/// Returns a physical LPI to the allocator, disabled.
pub fn free_lpi(intid: PhysIntId) {
    configure_lpi(intid, 0xa0, false);
    if let Some(a) = LPIS.lock().as_mut() {
        let _ = a.free(intid);
    }
}

/// Physical LPIs handed out and not freed (0 without LPIs).
pub fn lpis_in_use() -> u64 {
    LPIS.lock().as_ref().map_or(0, |a| a.in_use())
}

/// Sets the configuration byte of a physical LPI (follow with an INV).
pub fn configure_lpi(intid: PhysIntId, priority: u8, enabled: bool) {
    if let Some(p) = PROPERTIES.lock().as_ref() {
        p.configure(intid, priority, enabled);
    }
}

/// How the ITS names CPU `cpu`'s redistributor (GITS_TYPER.PTA).
pub fn rdbase(cpu: crate::ids::CpuIndex) -> Option<RdBase> {
    let its = its()?;
    let rd = redistributor(cpu)?;
    Some(if its.typer().pta() {
        RdBase(rd.base() as u64 >> 16)
    } else {
        RdBase(u64::from(rd.processor_number()))
    })
}

/// Boot CPU, after the distributor: the LPI property table and allocator.
pub fn init_lpis() {
    let Gic::V3(_) = &machine::platform().gic else {
        return;
    };
    let Ok(layout) = LpiTableLayout::new(LPI_ID_BITS, LPI_ID_BITS) else {
        return;
    };
    let Some(props) = PropertyTable::new(layout, &mut alloc) else {
        log::error!("no memory for the LPI property table: LPIs disabled");
        return;
    };
    *PROPERTIES.lock() = Some(props);
    *LPIS.lock() = LpiAllocator::new(LPI_ID_BITS, 64).ok();
}

/// Every CPU: remember its redistributor and enable its LPIs.
pub fn init_cpu(rd: &Redistributor) {
    let cpu = percpu::current_index();
    REDISTRIBUTORS[cpu.index()].store(rd.base(), Ordering::Release);
    if !rd.typer().plpis() {
        return; // GICR_TYPER.PLPIS == 0: no physical LPIs
    }
    if let Some(props) = PROPERTIES.lock().as_mut() {
        if !rd.enable_lpis(props, &mut alloc) {
            log::warn!("CPU {cpu}: LPIs were already enabled (left as found) or no memory for the pending table");
        }
    }
}

/// Boot CPU, after every CPU's redistributor is up: the ITS, with
/// collection `i` mapped to CPU `i`.
pub fn init_its() {
    let Gic::V3(gic) = &machine::platform().gic else {
        return;
    };
    let Some(desc) = gic.its.first() else { return };
    // SAFETY: boot.rs mapped the ITS frames as device memory; nothing else drives it.
    let its = match unsafe { Its::init(desc.registers.start.raw() as usize, &mut alloc) } {
        Ok(its) => ITS.call_once(|| its),
        Err(e) => {
            log::error!("ITS at {}: {e}; MSIs unavailable", desc.registers.start);
            return;
        }
    };
    let cpus = machine::platform().cpus.len().min(crate::arch::MAX_CPUS);
    let mut maps = Vec::new();
    for cpu in crate::ids::CpuIndex::all().take(cpus) {
        if let Some(rd) = rdbase(cpu) {
            maps.push(ItsCommand::Mapc {
                icid: cpu.get(),
                rdbase: rd,
                valid: true,
            });
        }
    }
    let Some(sync) = rdbase(crate::ids::CpuIndex::FIRST).map(|rdbase| ItsCommand::Sync { rdbase })
    else {
        return;
    };
    match its.submit(&maps, sync) {
        Ok(()) => crate::println!(
            "ITS      enabled: {} collections (one per CPU), {} tables",
            maps.len(),
            its.tables.len()
        ),
        Err(e) => log::error!("ITS: mapping collections: {e}"),
    }
}

/// Boot CPU: enumerate the first PCIe host bridge, place its BARs.
pub fn init_pci() {
    let Some(bridge) = machine::platform().pci.first() else {
        return;
    };
    if let Err(e) = early::map_device(bridge.ecam.start.raw(), bridge.ecam.size) {
        log::error!("cannot map the ECAM at {}: {e:?}", bridge.ecam.start);
        return;
    }
    // SAFETY: mapped just above; the host bridge belongs to the hypervisor.
    let mut ecam = unsafe {
        Ecam::new(
            bridge.ecam.start.raw() as usize,
            bridge.ecam.size,
            bridge.first_bus,
        )
    };
    match crate::pci::discover(&mut ecam, bridge) {
        Ok(devices) => {
            for d in &devices {
                let f = &d.function;
                crate::print!(
                    "PCI      {} {:04x}:{:04x} class {:02x}{:02x}{:02x}",
                    d.bdf(),
                    f.vendor_id,
                    f.device_id,
                    f.class.base,
                    f.class.sub,
                    f.class.prog_if
                );
                for b in &d.bars {
                    let size = b.bar.size;
                    let (unit, amount) = if size < 1024 {
                        ("bytes", size)
                    } else {
                        ("KiB", size >> 10)
                    };
                    let io = if b.bar.kind == crate::pci::BarKind::Io {
                        "I/O "
                    } else {
                        ""
                    };
                    match b.cpu_address {
                        Some(cpu) => {
                            crate::print!(", BAR{} {io}{cpu} ({amount} {unit})", b.bar.index)
                        }
                        None => crate::print!(
                            ", BAR{} {io}unplaced ({amount} {unit}: no host window for it)",
                            b.bar.index
                        ),
                    }
                }
                crate::println!(
                    "{}{}",
                    if d.capabilities.msi.is_some() {
                        ", MSI"
                    } else {
                        ""
                    },
                    if d.capabilities.msix.is_some() {
                        ", MSI-X"
                    } else {
                        ""
                    }
                );
            }
            PCI.call_once(|| Mutex::new((ecam, devices)));
        }
        Err(e) => log::error!("PCI: {e:?}"),
    }
}

/// The physical ITS DeviceID of PCI function `bdf`, by the host bridge's
/// `msi-map` (the requester ID itself on QEMU virt); `None` if the map has
/// no entry for it.
pub fn phys_device_id(bdf: crate::pci::Bdf) -> Option<crate::ids::PhysDeviceId> {
    let bridge = machine::platform().pci.first()?;
    bridge
        .device_id(bdf.requester_id())
        .map(crate::ids::PhysDeviceId::new)
}

/// Runs `f` with the config-space accessor and the devices found.
pub fn with_pci<R>(f: impl FnOnce(&mut Ecam, &[crate::pci::PciDevice]) -> R) -> Option<R> {
    let mut guard = PCI.get()?.lock();
    let (ecam, devices) = &mut *guard;
    Some(f(ecam, devices))
}

/// The virtual timer's PPI (EL1 virtual timer, INTID 27), forwarded to the
/// guest with the HW bit so that its deactivation reaches the hardware.
pub const VTIMER_INTID: u32 = 27;
/// The EL1 physical timer's PPI (INTID 30): the guest owns CNTP_*
/// (CNTHCTL_EL2.EL1PCEN) and its device tree names this PPI; forwarded
/// like the virtual timer. The hypervisor itself uses neither timer.
pub const PTIMER_INTID: u32 = 30;
/// The PPIs forwarded to the vCPU running on a CPU, HW-linked 1:1.
pub const FORWARDED_PPIS: [u32; 2] = [VTIMER_INTID, PTIMER_INTID];
/// EventID bits of the ITT the hypervisor gives a passthrough function.
pub const EVENT_BITS: u32 = 8;

/// The physical ITS's command queue alone, for commands that touch no
/// vLPI table (VMOVP and its VSYNC; the software path's MAPD, MAPTI, MOVI
/// and DISCARD).
pub struct ItsQueue;

impl PhysItsQueue for ItsQueue {
    fn submit(&mut self, commands: &[ItsCommand], sync: ItsCommand) -> Result<(), SinkError> {
        let its = its().ok_or(SinkError::Queue(
            crate::gic::its_queue::QueueError::BadSize(0),
        ))?;
        its.submit(commands, sync).map_err(|e| match e {
            crate::drivers::its::ItsError::Queue(q) => SinkError::Queue(q),
            _ => SinkError::Queue(crate::gic::its_queue::QueueError::BadSize(0)),
        })
    }
}

impl PhysItsSink for ItsQueue {
    fn set_vlpi_config(&mut self, vintid: VirtIntId, _config: LpiConfig) -> Result<(), SinkError> {
        Err(SinkError::PropertyTable { vintid })
    }

    fn guest_lpi_config(&mut self, _vcpu: VcpuIndex, _vintid: VirtIntId) -> Option<LpiConfig> {
        None
    }
}
