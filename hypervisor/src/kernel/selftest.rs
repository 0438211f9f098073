//! Hardware self-tests of the physical ITS and GICv4 paths, selected by
//! the hypervisor's own command line (`/chosen/bootargs` of the host tree,
//! e.g. QEMU `-append "selftest=its"`), driving QEMU's `edu` device
//! (PCI 1234:11e8: writing BAR0 + 0x60 sends its MSI).
//!
//! - `selftest=its`: the hypervisor maps edu's MSI to a physical LPI
//!   (MAPD/MAPC/MAPTI), takes it at EL2, DISCARDs it and shows it no longer
//!   arrives. Then boot continues.
//! - `selftest=gicv4`: the hypervisor maps edu's event to vINTID 8192 of a
//!   vPE standing for vCPU 0 of the first partition (VMAPP/VMAPTI, with a
//!   doorbell LPI), makes that vPE resident whenever the vCPU runs, and
//!   maps edu's BAR0 into the partition at [`EDU_IPA`]. The guest triggers
//!   the device and takes the vLPI through ICV_IAR1_EL1; the vendor
//!   hypercall [`hypercall::SELFTEST_DOORBELL`] makes the vPE non-resident,
//!   triggers edu from EL2 and waits for the doorbell LPI there.

use super::{boot, irq, percpu};
use crate::drivers::gicv3::cpu_interface;
use crate::gic::its_cmd::ItsCommand;
use crate::ids::PhysIntId;
use crate::mm::{Ipa, PhysAddr, Stage2Access, Stage2Attributes};
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Once;

/// Where the partition sees edu's BAR0 in the gicv4 self-test.
pub const EDU_IPA: Ipa = Ipa(0x1000_0000);
/// The vINTID the guest receives.
pub const VINTID: u32 = 8192;
/// edu's interrupt-raise register.
const EDU_RAISE: u64 = 0x60;
/// edu's interrupt-acknowledge register.
const EDU_ACK: u64 = 0x64;
/// The vPE ID of the self-test's vPE.
const VPE_ID: u16 = 0;

/// Vendor-specific hypervisor service calls (SMCCC OEN 6).
pub mod hypercall {
    /// Returns the calling vCPU's count of exits to the hypervisor.
    pub const EXIT_COUNT: u32 = 0xc600_0001;
    /// gicv4 self-test: make the vPE non-resident, trigger edu from EL2, wait
    /// for the doorbell, make it resident again. Returns 0 if the doorbell came.
    pub const SELFTEST_DOORBELL: u32 = 0xc600_0002;
    /// Returns the calling vCPU's count of GICv4 doorbells taken.
    pub const DOORBELL_COUNT: u32 = 0xc600_0003;
}

/// The gicv4 self-test's state, once set up.
struct Gicv4 {
    edu_bar: PhysAddr,
    doorbell: PhysIntId,
    vprop: PhysAddr,
    vpt: PhysAddr,
    id_bits_field: u8,
    cpu: usize,
}

static GICV4: Once<Gicv4> = Once::new();
/// Doorbells taken at EL2 (for the log and the test).
static DOORBELLS: AtomicU64 = AtomicU64::new(0);

/// Runs the self-test named on the command line, if any.
pub fn run(cmdline: &str) {
    let Some(name) = cmdline
        .split_whitespace()
        .find_map(|a| a.strip_prefix("selftest="))
    else {
        return;
    };
    let result = match name {
        "its" => its_lpi(),
        "gicv4" => gicv4_setup(),
        other => Err(alloc::format!("unknown self-test {other:?}")),
    };
    match result {
        Ok(()) => crate::println!("selftest {name}: set up"),
        Err(e) => crate::println!("selftest {name}: FAILED: {e}"),
    }
}

/// edu's BDF, requester ID and BAR0 (CPU address), with decode and bus
/// mastering enabled and its MSI pointed at the ITS with EventID 0.
fn edu() -> Result<(crate::pci::Bdf, PhysAddr), alloc::string::String> {
    let its = irq::its().ok_or("no ITS")?;
    irq::with_pci(|ecam, devices| {
        let d = devices
            .iter()
            .find(|d| d.function.vendor_id == 0x1234 && d.function.device_id == 0x11e8)
            .ok_or_else(|| alloc::string::String::from("no edu device (add -device edu)"))?;
        let bar = d
            .bar(0)
            .and_then(|b| b.cpu_address)
            .ok_or_else(|| alloc::string::String::from("edu BAR0 unassigned"))?;
        let msi = d
            .capabilities
            .msi
            .ok_or_else(|| alloc::string::String::from("edu has no MSI capability"))?;
        let message = crate::pci::MsiMessage {
            address: its.translater().raw(),
            data: 0,
            vectors_log2: 0,
            mask: 0,
            enable: true,
        };
        msi.program(ecam, d.bdf(), &message)
            .map_err(|e| alloc::format!("{e:?}"))?;
        // COMMAND: memory space and bus master (an MSI is a DMA write).
        let cmd = crate::pci::ConfigAccess::read32(ecam, d.bdf(), 0x4);
        crate::pci::ConfigAccess::write32(ecam, d.bdf(), 0x4, (cmd & 0xffff) | 0b110);
        Ok::<_, alloc::string::String>((d.bdf(), bar))
    })
    .ok_or_else(|| alloc::string::String::from("no PCI host bridge"))?
}

fn write_edu(bar: PhysAddr, offset: u64, value: u32) {
    // SAFETY: BAR0 of edu, mapped as device memory by `map_bar`.
    unsafe { core::ptr::write_volatile((bar.raw() + offset) as *mut u32, value) };
}

fn map_bar(bar: PhysAddr) -> Result<(), alloc::string::String> {
    super::early::map_device(bar.raw(), 0x10_0000)
        .map_err(|e| alloc::format!("mapping edu BAR0: {e:?}"))
}

/// Polls this CPU's interface for `intid` (IRQs stay masked at EL2; IAR
/// still acknowledges). Returns whether it arrived within the bound.
fn poll_for(intid: PhysIntId) -> bool {
    for _ in 0..200_000 {
        let got = cpu_interface::acknowledge();
        if !(1020..8192).contains(&got) {
            cpu_interface::end_of_interrupt(got);
            cpu_interface::deactivate(got);
            if got == intid.0 {
                return true;
            }
        }
        core::hint::spin_loop();
    }
    false
}

fn itt(its: &crate::drivers::its::Its, event_bits: u32) -> Result<PhysAddr, alloc::string::String> {
    let bytes = (u64::from(its.typer().itt_entry_bytes()) << event_bits).max(256);
    boot::alloc_frames(bytes.next_multiple_of(4096), 4096)
        .ok_or_else(|| "no memory for an ITT".into())
}

/// `selftest=its`: edu's MSI as a physical LPI taken at EL2, then DISCARD.
fn its_lpi() -> Result<(), alloc::string::String> {
    let its = irq::its().ok_or("no ITS")?;
    let (bdf, bar) = edu()?;
    map_bar(bar)?;
    let device_id = irq::phys_device_id(bdf)
        .ok_or("edu has no msi-map entry")?
        .0;
    its.prepare_device(device_id, &mut |s, a| boot::alloc_frames(s, a))
        .map_err(|e| alloc::format!("{e}"))?;
    let itt = itt(its, 1)?;
    let lpi = irq::allocate_lpi(0xa0).ok_or("no LPI")?;
    let me = percpu::current_index();
    let rdbase = irq::rdbase(me).ok_or("no redistributor")?;
    let map = [
        ItsCommand::Mapd {
            device_id,
            size: 0,
            itt_addr: itt.raw(),
            valid: true,
        },
        ItsCommand::Mapti {
            device_id,
            event_id: 0,
            intid: lpi.0,
            icid: me as u16,
        },
        ItsCommand::Inv {
            device_id,
            event_id: 0,
        },
    ];
    its.submit(&map, ItsCommand::Sync { rdbase })
        .map_err(|e| alloc::format!("{e}"))?;
    write_edu(bar, EDU_RAISE, 1);
    if !poll_for(lpi) {
        return Err(alloc::format!(
            "LPI {} from edu (DeviceID {device_id:#x}) never arrived",
            lpi.0
        ));
    }
    crate::println!("selftest its: edu {bdf} (DeviceID {device_id:#x}) EventID 0 -> LPI {} taken at EL2 on CPU {me}", lpi.0);
    write_edu(bar, EDU_ACK, 1);
    its.submit(
        &[ItsCommand::Discard {
            device_id,
            event_id: 0,
        }],
        ItsCommand::Sync { rdbase },
    )
    .map_err(|e| alloc::format!("{e}"))?;
    write_edu(bar, EDU_RAISE, 1);
    if poll_for(lpi) {
        return Err(alloc::format!("LPI {} still arrived after DISCARD", lpi.0));
    }
    write_edu(bar, EDU_ACK, 1);
    crate::println!(
        "selftest its: after DISCARD, edu's MSI no longer raises LPI {}",
        lpi.0
    );
    its.submit(
        &[ItsCommand::Mapd {
            device_id,
            size: 0,
            itt_addr: 0,
            valid: false,
        }],
        ItsCommand::Sync { rdbase },
    )
    .map_err(|e| alloc::format!("{e}"))?;
    Ok(())
}

/// `selftest=gicv4`: a vPE for vCPU 0 of the first partition, edu's event
/// mapped to it with VMAPTI, edu's BAR0 mapped into the partition.
fn gicv4_setup() -> Result<(), alloc::string::String> {
    let its = irq::its().ok_or("no ITS")?;
    if !its.typer().virtual_lpis() {
        return Err("the ITS has no virtual LPI support (GICv3): nothing to test".into());
    }
    let partition = boot::partitions().first().ok_or("no partition")?;
    let cpu = partition
        .config
        .cpus
        .first()
        .ok_or("partition without CPU")?
        .0 as usize;
    let (bdf, bar) = edu()?;
    map_bar(bar)?;
    let device_id = irq::phys_device_id(bdf)
        .ok_or("edu has no msi-map entry")?
        .0;
    its.prepare_device(device_id, &mut |s, a| boot::alloc_frames(s, a))
        .map_err(|e| alloc::format!("{e}"))?;
    // The VM's vLPI property table and the vPE's pending table, 16 ID bits.
    let layout =
        crate::gic::lpi::LpiTableLayout::new(16, 16).map_err(|e| alloc::format!("{e:?}"))?;
    let vprop = boot::alloc_frames(layout.property_bytes.next_multiple_of(4096), 4096)
        .ok_or("no memory")?;
    let vpt = boot::alloc_frames(layout.pending_bytes.next_multiple_of(0x1_0000), 0x1_0000)
        .ok_or("no memory")?;
    // SAFETY: fresh RAM, identity-mapped, ours.
    unsafe {
        core::ptr::write_bytes(vprop.raw() as *mut u8, 0, layout.property_bytes as usize);
        core::ptr::write_bytes(vpt.raw() as *mut u8, 0, layout.pending_bytes as usize);
        // vINTID 8192: priority 0xa0, enabled (IHI 0069 5.1.1 byte format).
        core::ptr::write_volatile(
            vprop.raw() as *mut u8,
            crate::gic::lpi::lpi_config_byte(0xa0, true),
        );
    }
    super::early::clean_invalidate(vprop.raw(), layout.property_bytes);
    super::early::clean_invalidate(vpt.raw(), layout.pending_bytes);
    let doorbell = irq::allocate_lpi(0x80).ok_or("no LPI for the doorbell")?;
    let rdbase = irq::rdbase(cpu).ok_or("no redistributor")?;
    let itt = itt(its, 1)?;
    let cmds = [
        ItsCommand::Mapd {
            device_id,
            size: 0,
            itt_addr: itt.raw(),
            valid: true,
        },
        ItsCommand::Vmapp {
            vpe_id: VPE_ID,
            rdbase,
            vpt_addr: vpt.raw(),
            vpt_size: layout.id_bits_field(),
            valid: true,
        },
        ItsCommand::Vmapti {
            device_id,
            event_id: 0,
            vpe_id: VPE_ID,
            vintid: VINTID,
            db_intid: doorbell.0,
        },
    ];
    its.submit(&cmds, ItsCommand::Vsync { vpe_id: VPE_ID })
        .map_err(|e| alloc::format!("{e}"))?;
    // The partition reaches edu's registers directly: no exit per access.
    let mut s2 = partition.stage2();
    s2.map(
        EDU_IPA,
        bar,
        0x10_0000,
        Stage2Attributes::device(Stage2Access::ReadWrite),
    )
    .map_err(|e| alloc::format!("mapping edu into {}: {e:?}", partition.name()))?;
    GICV4.call_once(|| Gicv4 {
        edu_bar: bar,
        doorbell,
        vprop,
        vpt,
        id_bits_field: layout.id_bits_field(),
        cpu,
    });
    crate::println!(
        "selftest gicv4: edu {bdf} (DeviceID {device_id:#x}) EventID 0 -> vPE {VPE_ID} vINTID {VINTID} (doorbell LPI {}), vPE on CPU {cpu} for partition {} vCPU 0, edu BAR0 at IPA {}",
        doorbell.0,
        partition.name(),
        EDU_IPA
    );
    Ok(())
}

/// Called as a vCPU is entered on `cpu`: makes the self-test's vPE resident there.
pub fn on_vcpu_entry(cpu: usize) {
    if let Some(t) = GICV4.get().filter(|t| t.cpu == cpu) {
        if let Some(rd) = irq::redistributor(cpu) {
            if !rd.make_vpe_resident(t.vprop, t.id_bits_field, t.vpt) {
                log::error!("selftest gicv4: GICR_VPENDBASER.Dirty did not clear");
            }
        }
    }
}

/// The doorbell hypercall: non-resident, trigger, doorbell at EL2, resident.
pub fn doorbell_call() -> i64 {
    let cpu = percpu::current_index();
    let Some(t) = GICV4.get().filter(|t| t.cpu == cpu) else {
        return crate::psci::ret::NOT_SUPPORTED;
    };
    let Some(rd) = irq::redistributor(cpu) else {
        return crate::psci::ret::NOT_SUPPORTED;
    };
    let (clean, pending_before) = rd.make_vpe_nonresident();
    write_edu(t.edu_bar, EDU_RAISE, 1);
    let rang = poll_for(t.doorbell);
    if rang {
        DOORBELLS.fetch_add(1, Ordering::Relaxed);
    }
    crate::println!(
        "selftest gicv4: vPE {VPE_ID} non-resident (Dirty cleared: {clean}, PendingLast before: {pending_before}); edu triggered; doorbell LPI {} {} at EL2",
        t.doorbell.0,
        if rang { "taken" } else { "NOT taken" }
    );
    if !rd.make_vpe_resident(t.vprop, t.id_bits_field, t.vpt) {
        log::error!("selftest gicv4: GICR_VPENDBASER.Dirty did not clear");
    }
    if rang {
        0
    } else {
        -1
    }
}
