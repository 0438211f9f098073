//! The boot sequence: on the boot CPU, from the device tree to running
//! partitions; on each secondary, from CPU_ON to its first vCPU. What it
//! builds for the whole machine it installs in [`super::machine`].

use super::halt::halt;
use super::machine::{self, alloc_frames, fatal, platform};
use super::partition::{self, all as partitions};
use super::{console, early, lifecycle, percpu};
use crate::boot::bundle::Bundle;
use crate::boot::platform::{Gic, Platform};
use crate::drivers::gicv3::{cpu_interface, Distributor, Redistributor, SGI_KICK};
use crate::ids::{PartitionId, VcpuIndex};
use crate::manifest::{Manifest, Region, ValidationContext};
use crate::mm::addr::Range;
use crate::mm::frame::FrameAllocator;
use crate::mm::vmid::{VmidAllocator, VmidWidth};
use crate::mm::PhysAddr;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

/// Bytes of the heap the hypervisor boots with (in BSS); the manifest's
/// `[hypervisor] heap` adds the rest from RAM (`heap::grow_from_ram`).
const HEAP_SIZE: usize = crate::manifest::BOOT_HEAP_BYTES;

#[repr(C, align(4096))]
struct HeapSpace([u8; HEAP_SIZE]);
static mut HEAP_SPACE: HeapSpace = HeapSpace([0; HEAP_SIZE]);

/// The boot CPU's path from the device tree to running partitions.
pub fn primary(dtb: usize) -> ! {
    let Some(early) = early::init(dtb) else {
        halt()
    };
    // SAFETY: the heap space is a static buffer used for nothing else.
    unsafe { super::heap::init(core::ptr::addr_of_mut!(HEAP_SPACE) as usize, HEAP_SIZE) };
    if let Some(uart) = early.uart {
        // SAFETY: the tree names this UART as the console; early::init mapped it.
        unsafe { console::init(uart.base.0 as usize, uart.kind) };
    }
    crate::println!(
        "\nhypervisor {}: static partitioning for aarch64, starting at EL2",
        env!("CARGO_PKG_VERSION")
    );
    // SAFETY: the device tree stays untouched in RAM for the hypervisor's life.
    let dtb_bytes: &'static [u8] = unsafe { early::dtb_bytes(dtb) }.unwrap_or_default();
    let dtb_size = dtb_bytes.len();
    let platform = match Platform::from_fdt(dtb_bytes) {
        Ok(p) => machine::install_platform(p),
        Err(e) => fatal(format_args!("device tree: {e}")),
    };
    let me = crate::arch::sysreg::mpidr();
    let boot_index = platform
        .cpus
        .iter()
        .position(|c| c.mpidr == me)
        .and_then(crate::ids::CpuIndex::from_index)
        .unwrap_or_default();
    percpu::init_current(boot_index);
    crate::println!("{platform}");
    init_gic(platform);
    let bundle = load_bundle(platform);
    init_frames(platform, dtb as u64, dtb_size as u64);
    super::irq::init_lpis();
    init_gic_cpu();
    super::irq::init_pci();
    super::smmu::init();
    let manifest = load_manifest(platform, bundle, dtb as u64, dtb_size as u64);
    super::heap::grow_from_ram(&manifest.hypervisor);
    build_partitions(manifest);
    super::vgicv2::setup_partitions();
    check_exclusive_pci_ids();
    enable_console_input(platform);
    start_secondaries();
    super::irq::init_its();
    if super::irq::its().is_some() {
        crate::println!("GICv4    {}", super::gicv4::direct_injection());
    }
    // After the ITS: the DMA stage 2 maps its doorbell page.
    super::smmu::build_domains(partitions());
    enable_smmu_interrupts();
    for p in partitions() {
        match super::gicv4::setup(p) {
            Ok(g) => {
                if g.is_some() {
                    let vpes = p.config.cpus.len();
                    crate::println!(
                        "partition {}: passthrough MSIs by GICv4 direct injection ({vpes} vPE{})",
                        p.name(),
                        if vpes == 1 { "" } else { "s" }
                    );
                }
                p.install_gicv4(g);
            }
            Err(e) => fatal(format_args!("partition {}: GICv4 set-up: {e}", p.name())),
        }
    }
    super::hooks::before_load(platform.bootargs.as_deref().unwrap_or(""));
    for p in partitions() {
        // Every partition is loaded before any starts: a bad image layout
        // stops the boot before a guest runs.
        if let Err(e) = lifecycle::load(p) {
            fatal(format_args!("partition {}: {e}", p.name()));
        }
    }
    for p in partitions() {
        lifecycle::start(p);
    }
    super::vcpu::run(boot_index)
}

/// Refuses to start if PCI functions of different partitions share a
/// DeviceID (their MSIs) or a StreamID (their DMA).
fn check_exclusive_pci_ids() {
    let mut functions = alloc::vec::Vec::new();
    for p in partitions() {
        for &bdf in &p.config.pci {
            functions.push(crate::pci::AssignedFunction {
                partition: p.name(),
                bdf,
                device_id: super::irq::phys_device_id(bdf).map(|d| d.get()),
                stream_id: super::smmu::stream_id(bdf),
            });
        }
    }
    if let Err(e) = crate::pci::check_exclusive_ids(&functions) {
        fatal(format_args!("{e}"));
    }
}

/// A secondary CPU's path into its run loop.
pub fn secondary(index: usize) -> ! {
    // CPU_ON is only issued for indexes below CpuIndex::COUNT.
    let Some(index) = crate::ids::CpuIndex::from_index(index) else {
        loop {
            core::hint::spin_loop();
        }
    };
    early::enable_on_secondary();
    percpu::init_current(index);
    init_gic_cpu();
    super::vcpu::run(index)
}

fn init_gic(platform: &Platform) {
    match &platform.gic {
        Gic::V3(gic) => {
            let d = gic.distributor;
            map(d.start.raw(), d.size, "GIC distributor");
            for r in &gic.redistributor_regions {
                map(r.start.raw(), r.size, "GIC redistributors");
            }
            // SAFETY: mapped just above as device memory; the tree names it.
            let gicd =
                machine::install_gicd(|| unsafe { Distributor::new(d.start.raw() as usize) });
            if !gicd.init(crate::arch::sysreg::mpidr()) {
                fatal(format_args!(
                    "GIC distributor did not complete its register writes"
                ));
            }
            let (mut redists, mut vlpis) = (0, true);
            for r in &gic.redistributor_regions {
                let stride = gic.redistributor_stride.unwrap_or(0) as usize;
                // SAFETY: mapped above as device memory; the tree names the region.
                let (n, v) = unsafe {
                    Redistributor::survey(r.start.raw() as usize, r.size as usize, stride)
                };
                redists += n;
                vlpis &= v;
            }
            crate::println!(
                "GIC      GICv{} (GICD_PIDR2.ArchRev {}), {} redistributors{}, {} SPIs",
                if gicd.arch_rev() >= 4 && vlpis { 4 } else { 3 },
                gicd.arch_rev(),
                redists,
                if vlpis { " with virtual LPIs" } else { "" },
                gicd.lines().saturating_sub(32)
            );
            for its in &gic.its {
                map(its.registers.start.raw(), its.registers.size, "ITS");
                // SAFETY: mapped just above; GITS_TYPER is a read-only ID register.
                let typer =
                    unsafe { crate::drivers::its::read_typer(its.registers.start.raw() as usize) };
                crate::println!("ITS      {}: {}", its.registers.start, typer);
            }
        }
        Gic::V2(gic) => super::gicv2_host::init(gic),
    }
}

/// Typed input for the partitions: the console UART's SPI, routed to this
/// (the boot) CPU. Without a GICv3 or an SPI the console stays output-only.
fn enable_console_input(platform: &Platform) {
    let (Some(gicd), Some(console)) = (machine::gicd(), platform.console.as_ref()) else {
        return;
    };
    let Some(irq) = console
        .interrupt
        .filter(|i| matches!(i.kind, crate::boot::platform::InterruptKind::Spi))
    else {
        log::info!("console has no SPI: typed input is not read");
        return;
    };
    if console.kind != crate::boot::platform::UartKind::Pl011 {
        return;
    }
    let Some(intid) = irq.intid().map(crate::ids::PhysIntId::get) else {
        return;
    };
    console::enable_input(intid);
    gicd.enable_spi(intid, !irq.is_level());
    if let Some(first) = partitions().first() {
        crate::println!(
            "console: typed input goes to partition {} (Ctrl-\\ switches partitions, Ctrl-] prints the hypervisor's counters)",
            first.name()
        );
    }
}

/// The SMMU's event queue and global error SPIs, routed to this (the
/// boot) CPU, whose interrupt path drains them (`smmu::on_interrupt`).
fn enable_smmu_interrupts() {
    let Some(gicd) = machine::gicd() else { return };
    for intid in super::smmu::interrupts() {
        // Wired SMMU interrupts are edge-triggered (IHI 0070, 3.18).
        gicd.enable_spi(intid, true);
    }
    super::smmu::enable_event_interrupt();
}

/// The redistributor and CPU interface of the calling CPU.
fn init_gic_cpu() {
    let Gic::V3(gic) = &platform().gic else {
        super::gicv2_host::init_cpu();
        return;
    };
    let me = crate::arch::sysreg::mpidr();
    let stride = gic.redistributor_stride.unwrap_or(0) as usize;
    let found = gic.redistributor_regions.iter().find_map(|r| {
        // SAFETY: init_gic mapped every redistributor region as device memory.
        unsafe { Redistributor::find(r.start.raw() as usize, r.size as usize, stride, me) }
    });
    let Some(rd) = found else {
        log::error!("no redistributor for MPIDR {me:#x}");
        return;
    };
    if !rd.init() {
        log::error!("redistributor at {:#x} did not wake up", rd.base());
    }
    rd.enable_private(SGI_KICK);
    // The vGIC's maintenance interrupt (list registers to refill, EOIs of
    // interrupts not in a list register).
    if let Some(m) = gic.maintenance.and_then(|m| m.intid()) {
        rd.enable_private(m.get());
    }
    cpu_interface::init();
    super::irq::init_cpu(&rd);
}

fn map(base: u64, size: u64, what: &str) {
    if let Err(e) = early::map_device(base, size) {
        fatal(format_args!("cannot map the {what} at {base:#x}: {e:?}"));
    }
}

fn load_bundle(platform: &Platform) -> &'static Bundle<'static> {
    let Some(initrd) = platform.initrd else {
        fatal(format_args!(
            "no boot bundle: the loader passed no initrd (build with `cargo xtask build`)"
        ));
    };
    // SAFETY: the loader placed the bundle there; the frame allocator
    // reserves it, so it stays untouched.
    let bytes: &'static [u8] = unsafe {
        core::slice::from_raw_parts(initrd.start.raw() as *const u8, initrd.size as usize)
    };
    match Bundle::parse(bytes) {
        Ok(b) => machine::install_bundle(b),
        Err(e) => fatal(format_args!("{e}")),
    }
}

fn init_frames(platform: &Platform, dtb: u64, dtb_size: u64) {
    let mut frames = FrameAllocator::new();
    for r in &platform.memory {
        let _ = frames.add_ram(*r);
    }
    let (image_start, image_end) = early::image_range();
    let mut reserved = alloc::vec![
        Range {
            start: PhysAddr(image_start),
            size: image_end - image_start
        },
        Range {
            start: PhysAddr(dtb),
            size: dtb_size
        },
    ];
    reserved.extend(platform.initrd);
    reserved.extend(platform.reserved.iter().map(|r| r.range));
    reserved.extend(super::spin_table::reserved(platform));
    for r in reserved {
        let _ = frames.reserve(r);
    }
    machine::install_frames(frames);
}

fn load_manifest(
    platform: &Platform,
    bundle: &Bundle<'static>,
    dtb: u64,
    dtb_size: u64,
) -> Manifest {
    let text = match bundle.manifest() {
        Ok(t) => t,
        Err(e) => fatal(format_args!("{e}")),
    };
    let (image_start, image_end) = early::image_range();
    // The same ranges the frame allocator keeps out (init_frames).
    let mut reserved_ranges: Vec<(&str, Range<PhysAddr>)> = alloc::vec![
        (
            "hypervisor image",
            Range {
                start: PhysAddr(image_start),
                size: image_end - image_start
            }
        ),
        (
            "device tree",
            Range {
                start: PhysAddr(dtb),
                size: dtb_size
            }
        ),
    ];
    reserved_ranges.extend(platform.initrd.map(|r| ("boot bundle", r)));
    reserved_ranges.extend(
        platform
            .reserved
            .iter()
            .map(|r| ("reserved memory", r.range)),
    );
    let reserved: Vec<Region<'_, PhysAddr>> = reserved_ranges
        .iter()
        .map(|(name, range)| Region {
            name,
            range: *range,
        })
        .collect();
    let image_size = |name: &str| bundle.get(name).map(|e| e.data.len() as u64);
    let pci_devices: Vec<crate::pci::Bdf> =
        super::irq::with_pci(|_, devices| devices.iter().map(|d| d.bdf()).collect())
            .unwrap_or_default();
    let ctx = ValidationContext {
        cpu_count: platform.cpus.len().min(crate::arch::MAX_CPUS),
        ram: &platform.memory,
        reserved: &reserved,
        image_size: &image_size,
        ipa_bits: super::partition::IPA_BITS,
        device_windows: &crate::layout::device_windows(),
        pci_devices: &pci_devices,
        dma_confined: super::smmu::confines_dma(),
    };
    match Manifest::load(text, &ctx) {
        Ok(m) => m,
        Err(e) => fatal(format_args!("{e}")),
    }
}

fn build_partitions(manifest: Manifest) {
    let vmid_bits = crate::arch::sysreg::id_aa64mmfr1_el1::read().vmidbits() as u8;
    let mut vmids = VmidAllocator::new(VmidWidth::from_id_field(vmid_bits));
    let mut assignment = alloc::vec![None; platform().cpus.len()];
    let mut parts = Vec::new();
    for (i, config) in manifest.partitions.into_iter().enumerate() {
        let ram = if config.identity_mapped {
            let range = Range {
                start: PhysAddr(config.ram.ipa.raw()),
                size: config.ram.size,
            };
            machine::alloc_frames_at(range).then_some(range.start)
        } else {
            alloc_frames(config.ram.size, 2 << 20)
        };
        let Some(ram_pa) = ram else {
            fatal(format_args!(
                "partition {}: not enough free RAM for {} MiB",
                config.name,
                config.ram.size >> 20
            ));
        };
        for (v, cpu) in config.cpus.iter().enumerate() {
            assignment[cpu.index()] = Some((i, VcpuIndex::new(v as u16)));
        }
        let name = config.name.clone();
        let vmid = match vmids.alloc() {
            Ok(v) => v,
            Err(e) => fatal(format_args!("partition {name}: no VMID left ({e:?})")),
        };
        let (heap_before, frames_before) = (super::heap::live_bytes(), machine::free_frame_bytes());
        match lifecycle::build(PartitionId::new(i as u16), config, ram_pa, vmid) {
            Ok(p) => {
                // The hypervisor's own memory for this partition (bench figures).
                crate::println!(
                    "partition {name}: hypervisor memory: heap {} bytes, frames {} KiB (stage 2, tables), {} vCPUs",
                    super::heap::live_bytes().saturating_sub(heap_before),
                    frames_before.saturating_sub(machine::free_frame_bytes()) >> 10,
                    p.config.cpus.len()
                );
                let cpus: Vec<u16> = p.config.cpus.iter().map(|c| c.get()).collect();
                let dma = if p.config.pci.is_empty() {
                    ""
                } else if super::smmu::confines_dma() {
                    ", DMA confined by the SMMU"
                } else {
                    ", DMA UNCONFINED: its PCI functions can reach all memory"
                };
                crate::println!(
                    "partition {name}: CPUs {cpus:?}, RAM IPA {} -> PA {} ({} MiB), VMID {vmid}, guest {}{dma}",
                    p.config.ram.ipa,
                    ram_pa,
                    p.config.ram.size >> 20,
                    p.config.kernel.image
                );
                parts.push(p);
            }
            Err(e) => fatal(format_args!("partition {name}: {e}")),
        }
    }
    partition::install_partitions(parts);
    for p in partitions() {
        super::pci::map_bars(p);
    }
    partition::install_assignment(assignment);
    crate::println!(
        "heap: {} bytes live of {} once the partitions are built",
        super::heap::live_bytes(),
        super::heap::total_bytes()
    );
}

extern "C" {
    /// The PSCI CPU_ON entry point in boot.rs.
    fn secondary_entry();
}

/// Starts every other CPU of the platform with PSCI CPU_ON.
fn start_secondaries() {
    let platform = machine::platform();
    let me = percpu::current_index();
    for (index, cpu) in crate::ids::CpuIndex::all().zip(&platform.cpus) {
        if index == me || !cpu.available {
            continue;
        }
        if super::spin_table::uses_spin_table(platform, index.index()) {
            if let Err(e) = super::spin_table::release(platform, index.index()) {
                log::error!("CPU {index} (MPIDR {:#x}): spin table: {e}", cpu.mpidr);
            }
            continue;
        }
        let entry = secondary_entry as *const () as u64;
        match machine::firmware_cpu_on(cpu.mpidr, entry, u64::from(index.get())) {
            Ok(()) => {}
            Err(code) => log::error!(
                "CPU {index} (MPIDR {:#x}): PSCI CPU_ON failed ({code})",
                cpu.mpidr
            ),
        }
    }
    for (index, cpu) in crate::ids::CpuIndex::all().zip(&platform.cpus) {
        if index == me || !cpu.available {
            continue;
        }
        // Up to 2 s of the system counter: emulated CPUs can be slow to start.
        let deadline =
            crate::arch::sysreg::counter() + 2 * crate::arch::sysreg::counter_frequency();
        let online = loop {
            if percpu::get(index).online.load(Ordering::Acquire) {
                break true;
            }
            if crate::arch::sysreg::counter() > deadline {
                break false;
            }
            core::hint::spin_loop();
        };
        if !online {
            log::warn!("CPU {index} did not come online");
        }
    }
}
