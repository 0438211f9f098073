//! The hardware steps of a partition's lifecycle: the order is decided in
//! [`crate::partition::lifecycle`] (pure, host-tested); [`Steps`] carries
//! out each step on one partition, from one of its own vCPUs (its VMID
//! loaded, as the stage-2 TLB maintenance of the release needs).

use super::partition::{BuildError, Partition};
use super::{cpus, percpu};
use crate::guest::vuart::VirtualUart;
use crate::partition::lifecycle::{Footprint, Machine, ReleaseStep, RunState};
use alloc::string::String;
use core::sync::atomic::Ordering;

/// One partition, as the lifecycle's machine.
pub struct Steps<'a>(pub &'a Partition);

impl Machine for Steps<'_> {
    type Error = BuildError;

    fn change_run_state(&self, change: fn(RunState) -> Option<RunState>) -> Option<u32> {
        let p = self.0;
        let mut control = p.control.lock();
        control.run = change(control.run)?;
        control.power.all_off();
        p.epoch.fetch_add(1, Ordering::AcqRel);
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

    fn release(&self, step: ReleaseStep) {
        let p = self.0;
        match step {
            ReleaseStep::DetachDma => super::smmu::detach(p),
            ReleaseStep::MaskMsix => {
                super::msix::mask_all(p);
                p.msix_warned.store(false, Ordering::Relaxed);
                p.msi_warned.store(false, Ordering::Relaxed);
            }
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
        self.0
            .log_its_footprint(format_args!("{when} teardown (boot {boot})"));
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
        for (slot, vits) in p.vits.iter().zip(fresh) {
            *slot.lock() = vits;
        }
        *p.vgic.lock() = super::vgic::new_vgic(p.config.cpus.len()).map_err(BuildError::Vgic)?;
        super::vgicv2::reset(p);
        *p.console.lock() = VirtualUart::new();
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
        self.0.start();
    }

    fn next_boot(&self) -> u32 {
        let mut control = self.0.control.lock();
        control.boot_count += 1;
        control.boot_count
    }

    fn stopped(&self, reason: &str) {
        let p = self.0;
        log::info!("partition {}: stopped ({reason})", p.name());
        p.log_counters();
        // SeqCst, with the load in `partition_stopped`: of two partitions
        // finishing their stops at once, at least one sees the other released.
        p.released.store(true, Ordering::SeqCst);
        super::partition_stopped();
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
