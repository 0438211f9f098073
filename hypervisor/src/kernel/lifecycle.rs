//! A partition's life on the hardware: building it, loading, starting,
//! stopping and resetting it, and the status lines about it. The order of
//! the steps is decided in [`crate::partition::lifecycle`] (pure,
//! host-tested); [`Steps`] carries out each step on one partition, from
//! one of its own vCPUs (its VMID loaded, as the stage-2 TLB maintenance
//! of the release needs).

use super::partition::{BackendState, BootFrames, BuildError, Models, Partition};
use super::{cpus, percpu};
use crate::gicv4::{ItsFootprint, RoutedState};
use crate::ids::{PartitionId, VcpuIndex};
use crate::manifest::PartitionConfig;
use crate::mm::{PhysAddr, Vmid};
use crate::partition::lifecycle::{self, Footprint, Machine, ReleaseStep, RunState};
use alloc::string::String;
use core::sync::atomic::{AtomicBool, Ordering};

/// Builds partition `id` with its subsystems' first state (vGIC, vITSs,
/// virtual PCI bridge, software-path routing config).
pub fn build(
    id: PartitionId,
    config: PartitionConfig,
    ram_pa: PhysAddr,
    vmid: Vmid,
) -> Result<Partition, BuildError> {
    let vcpus = config.cpus.len();
    let passthrough = super::vits::passthrough_devices(id, &config.pci);
    let models = Models {
        vgic: super::vgic::new_vgic(vcpus).map_err(BuildError::Vgic)?,
        vits: super::vits::new_all(id, vcpus, &passthrough, config.its)
            .map_err(BuildError::Vgic)?,
        pci: super::pci::build_bridge(&config.pci).map_err(BuildError::Pci)?,
        routed: RoutedState::new(super::msi_route::config(
            id,
            &config.name,
            passthrough.iter().map(|&(_, phys)| phys),
        )),
    };
    Partition::new(id, config, ram_pa, vmid, BootFrames, models)
}

/// Loads the next life: releases the last one, builds fresh models,
/// copies the images and the device tree into guest RAM and attaches
/// the functions' DMA ([`crate::partition::lifecycle::load`]).
pub fn load(p: &Partition) -> Result<(), BuildError> {
    let boot = p.control.lock().boot_count;
    lifecycle::load(&Steps(p), boot)
}

/// Makes vCPU 0 pending at the entry point with x0 = the device tree.
pub fn start(p: &Partition) {
    p.life.started();
    let mut control = p.control.lock();
    control.run = RunState::Running;
    control
        .power
        .start(p.config.kernel.ipa.raw(), p.dtb_ipa.raw());
    let boot = control.boot_count;
    drop(control);
    log_its_footprint(p, format_args!("at start (boot {boot})"));
    crate::arch::sysreg::sev();
    // A CPU whose partition was stopped waits in WFI, which an event
    // does not end: an interrupt does.
    if let Some(cpu) = p.cpu_of(VcpuIndex::new(0)) {
        let index = cpu;
        if index != percpu::current_index()
            && percpu::get(index)
                .online
                .load(core::sync::atomic::Ordering::Acquire)
        {
            cpus::kick(index);
        }
    }
}

/// What the partition holds on the physical ITS, from the bookkeeping
/// of both paths: the software path's MAPD'd functions, mapped events
/// and their LPIs and routes; the GICv4 backend's VMAPTI'd events and
/// the vPEs, doorbells and functions set up at boot.
pub fn its_footprint(p: &Partition) -> ItsFootprint {
    let mut f = ItsFootprint {
        guest_routes: super::msi_route::routes_to(p.id.index()),
        ..ItsFootprint::default()
    };
    let count = |f: &mut ItsFootprint, backend: &BackendState| {
        let events = backend.routed.event_count();
        f.guest_devices = backend.routed.device_count();
        f.guest_events = events;
        f.guest_lpis = events;
        // A vITS trap takes the GICv4 state out of its slot under the
        // first vITS's lock: with that lock held, the state is there.
        if let Some(state) = backend.gicv4.as_ref() {
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
    };
    match p.vits_locks(0) {
        Some(locks) => {
            let mut held = locks.lock();
            let (_, _, backend) = held.split();
            count(&mut f, &backend.lock());
        }
        None => count(&mut f, &p.backend_alone()),
    }
    f
}

/// Logs the partition's physical ITS footprint and the machine's LPI
/// and frame usage, for partitions with passthrough functions (the
/// reset scenario compares these lines across lives).
pub fn log_its_footprint(p: &Partition, when: core::fmt::Arguments<'_>) {
    if p.pci.is_none() {
        return;
    }
    log::info!(
        "partition {}: physical ITS footprint {when}: {}; machine: LPIs in use {}, free frames {} KiB, heap live {} bytes",
        p.name(),
        its_footprint(p),
        super::irq::lpis_in_use(),
        super::machine::free_frame_bytes() >> 10,
        super::heap::live_bytes()
    );
}

/// Stops the partition: every vCPU leaves the guest and parks
/// ([`crate::partition::lifecycle::stop`]).
pub fn stop(p: &Partition, reason: &str) {
    lifecycle::stop(&Steps(p), reason);
}

/// Logs each vCPU's counters (its physical CPU's, since boot).
pub fn log_counters(p: &Partition) {
    super::smmu::log_faults(p);
    super::console::log_output_counters(p);
    for (v, &cpu) in p.config.cpus.iter().enumerate() {
        log::info!(
            "partition {}: vCPU {v} (CPU {}): {}",
            p.name(),
            cpu.get(),
            percpu::get(cpu).exits
        );
    }
}

/// The counters and, with passthrough functions, what the partition
/// holds on the physical ITS now (the console's Ctrl-]).
pub fn log_status(p: &Partition) {
    let (run, boot) = {
        let control = p.control.lock();
        (control.run, control.boot_count)
    };
    log::info!("partition {}: {run:?}, boot {boot}", p.name());
    log_counters(p);
    log_its_footprint(p, format_args!("now"));
}

/// Resets the partition from one of its vCPUs: parks the others, reloads
/// the images and device tree, and restarts vCPU 0
/// ([`crate::partition::lifecycle::reset`]).
pub fn reset(p: &Partition, reason: &str) {
    lifecycle::reset(&Steps(p), reason);
}

/// Called when a partition stops: when none is left, the machine powers off.
pub fn partition_stopped() {
    static POWERING_OFF: AtomicBool = AtomicBool::new(false);
    let all = super::partition::all().iter().all(|p| {
        // Stopped, and done releasing its devices (another CPU may be
        // tearing a partition down that is already marked stopped).
        p.control.lock().run == RunState::Stopped && p.life.is_released()
    });
    // Two partitions may stop at once on two CPUs: one of them powers off.
    if all && !POWERING_OFF.swap(true, Ordering::AcqRel) {
        crate::println!("hypervisor: all partitions stopped; powering off");
        super::machine::firmware_system_off();
    }
}

/// One partition, as the lifecycle's machine.
pub struct Steps<'a>(pub &'a Partition);

impl Machine for Steps<'_> {
    type Error = BuildError;

    fn change_run_state(&self, change: fn(RunState) -> Option<RunState>) -> Option<u32> {
        let p = self.0;
        let mut control = p.control.lock();
        control.run = change(control.run)?;
        control.power.all_off();
        p.life.end_epoch();
        Some(control.boot_count)
    }

    fn set_run_state(&self, state: RunState) {
        self.0.control.lock().run = state;
    }

    fn kick_others(&self) {
        let me = percpu::current_index();
        for &cpu in &self.0.config.cpus {
            if cpu != me {
                cpus::kick(cpu);
            }
        }
    }

    fn wait_others_parked(&self) -> bool {
        let me = percpu::current_index();
        for &cpu in &self.0.config.cpus {
            if cpu != me && !cpus::wait_parked(cpu) {
                log::error!(
                    "partition {}: CPU {} did not leave the guest; stopping the partition",
                    self.0.name(),
                    cpu.get()
                );
                return false;
            }
        }
        true
    }

    fn release_skipped(&self) {
        log::error!(
            "partition {}: its devices are left as they are (a CPU is still in EL2 for it)",
            self.0.name()
        );
    }

    fn release(&self, step: ReleaseStep) {
        let p = self.0;
        match step {
            ReleaseStep::DetachDma => super::smmu::detach(p),
            ReleaseStep::MaskMsix => super::msix::mask_all(p),
            ReleaseStep::TeardownSoftwareRoutes => super::msi_route::teardown(p),
            ReleaseStep::TeardownGicv4 => super::vits::gicv4_teardown(p),
            ReleaseStep::ResetBridge => reset_bridge(p),
        }
    }

    fn log_footprint(&self, when: Footprint, boot: u32) {
        let when = match when {
            Footprint::BeforeTeardown => "before",
            Footprint::AfterTeardown => "after",
        };
        log_its_footprint(self.0, format_args!("{when} teardown (boot {boot})"));
    }

    fn fresh_models(&self) -> Result<(), BuildError> {
        let p = self.0;
        let fresh = super::vits::new_all(
            p.id,
            p.config.cpus.len(),
            &super::vits::passthrough_devices(p.id, &p.config.pci),
            p.config.its,
        )
        .map_err(BuildError::Vgic)?;
        p.replace_vits(fresh);
        *p.vgic.lock() = super::vgic::new_vgic(p.config.cpus.len()).map_err(BuildError::Vgic)?;
        super::vgicv2::reset(p);
        p.reset_console();
        Ok(())
    }

    fn copy_images(&self, boot: u32) -> Result<(), BuildError> {
        copy_images(self.0, boot)
    }

    fn attach_dma(&self) {
        // The guest, not yet running, cannot have enabled bus mastering
        // (the release turned it off).
        super::smmu::attach(self.0);
    }

    fn start(&self) {
        start(self.0);
    }

    fn next_boot(&self) -> u32 {
        let mut control = self.0.control.lock();
        control.boot_count += 1;
        control.boot_count
    }

    fn stopped(&self, reason: &str) {
        let p = self.0;
        log::info!("partition {}: stopped ({reason})", p.name());
        log_counters(p);
        p.life.mark_released();
        partition_stopped();
    }

    fn resetting(&self, reason: &str, boot: u32) {
        log::info!("partition {}: reset ({reason}), boot {boot}", self.0.name());
    }

    fn restart_failed(&self, error: &BuildError) {
        log::error!("partition {}: restart failed: {error}", self.0.name());
    }
}

/// The virtual bridge reset (physical decode, bus mastering, MSI and
/// MSI-X off) and every BAR mapping out of stage 2.
fn reset_bridge(p: &Partition) {
    let Some(bridge) = &p.pci else { return };
    super::irq::with_pci(|ecam, _| bridge.lock().reset(ecam));
    let pair = p.bar_mappings();
    let mut held = pair.lock();
    let (mapped, s2) = held.split();
    let mut s2 = s2.lock();
    for m in mapped.drain(..) {
        if let Err(e) = s2.unmap(m.guest.start, m.guest.size) {
            log::error!(
                "partition {}: unmapping BAR{} of {}: {e:?}",
                p.name(),
                m.bar,
                m.physical
            );
        }
    }
}

/// Copies the kernel (and initrd) of life `boot` from the bundle and the
/// generated device tree into guest RAM (cleaned to the point of
/// coherency: the guest starts with its MMU and caches off).
fn copy_images(p: &Partition, boot: u32) -> Result<(), BuildError> {
    let bundle = super::machine::bundle();
    let kernel = bundle
        .get(&p.config.kernel.image)
        .ok_or_else(|| BuildError::MissingImage(p.config.kernel.image.clone()))?;
    let initrd = match &p.config.initrd {
        Some(initrd) => Some((
            initrd.ipa,
            bundle
                .get(&initrd.image)
                .ok_or_else(|| BuildError::MissingImage(initrd.image.clone()))?
                .data,
        )),
        None => None,
    };
    let ram = p.config.ram.ipa.raw()..p.config.ram.ipa.raw() + p.config.ram.size;
    let placement = crate::boot::guest_image::place(
        kernel.data,
        p.config.kernel.format,
        p.config.kernel.ipa.raw(),
        initrd.map(|(ipa, data)| (ipa.raw(), data.len() as u64)),
        ram.clone(),
        p.dtb_ipa.raw()..ram.end,
    )
    .map_err(BuildError::Layout)?;
    if boot == 0 {
        if let crate::boot::guest_image::ImageKind::Arm64 { image_size, .. } = placement.kind {
            log::info!(
                "partition {}: {} is an arm64 Linux Image: {:#x} bytes reserved at IPA {:#x}",
                p.name(),
                p.config.kernel.image,
                image_size,
                placement.kernel.start
            );
        }
    }
    p.write_ram(p.config.kernel.ipa.raw(), kernel.data);
    let mut initrd_range = None;
    if let Some((ipa, data)) = initrd {
        p.write_ram(ipa.raw(), data);
        initrd_range = Some((ipa, data.len() as u64));
    }
    let dtb = super::guest::device_tree(p, boot, initrd_range).map_err(BuildError::DeviceTree)?;
    if !p.write_ram(p.dtb_ipa.raw(), &dtb) {
        return Err(BuildError::DeviceTree(String::from("larger than 2 MiB")));
    }
    // Instruction fetches of the guest must see the freshly copied code.
    // SAFETY: invalidating the instruction cache has no effect on data.
    unsafe { core::arch::asm!("ic ialluis", "dsb ish", "isb", options(nostack)) };
    Ok(())
}
