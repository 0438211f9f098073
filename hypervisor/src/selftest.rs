//! Hardware self-tests of the physical ITS and GICv4 paths, and the test
//! hypercalls, built only with the `selftest` cargo feature (the test
//! images). The self-tests are selected by the hypervisor's own command
//! line (`/chosen/bootargs` of the host tree, e.g. QEMU `-append
//! "selftest=its"`), driving QEMU's `edu` device (PCI 1234:11e8: writing
//! BAR0 + 0x60 sends its MSI).
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
//! - `selftest=vmovp`: the gicv4 set-up plus edu's EventID 1 mapped to
//!   vINTID 8193 (raised only by the ITS INT command). The hypercall
//!   [`hypercall::SELFTEST_VMOVP`] (from vCPU 0, on CPU 0) makes the vPE
//!   non-resident, leaves vINTID 8192 pending in its virtual pending table
//!   (its doorbell taken on CPU 0), moves the vPE to CPU 1's redistributor
//!   with [`crate::kernel::gicv4::move_vpe`], and INTs EventID 1: its doorbell must
//!   ring on CPU 1, not CPU 0. CPU 1 takes it while running vCPU 1 and
//!   makes the vPE resident there, so vCPU 1 takes both vLPIs; a later
//!   MSI from edu reaches vCPU 1 with no exit.

use crate::drivers::gicv3::cpu_interface;
use crate::gic::its_cmd::ItsCommand;
use crate::gicv4::{PassthroughConfig, PassthroughDevice, PassthroughState, VpeConfig};
use crate::ids::PhysIntId;
use crate::ids::{PartitionId, PhysDeviceId, VcpuIndex, VpeId};
use crate::kernel::hooks::Hooks;
use crate::kernel::{irq, machine, percpu};
use crate::mm::{Ipa, PhysAddr, Stage2Access, Stage2Attributes};
use alloc::collections::BTreeMap;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use spin::{Mutex, Once};

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
/// vmovp self-test: the vINTID of edu's EventID 1, raised by an ITS INT.
pub const VINTID_INT: u32 = 8193;
/// vmovp self-test: the CPU the vPE moves to.
const VMOVP_TARGET: crate::ids::CpuIndex = crate::ids::CpuIndex::from_const(1);

/// Vendor-specific hypervisor service calls (SMCCC OEN 6).
pub mod hypercall {
    /// Returns the calling vCPU's count of exits to the hypervisor.
    pub const EXIT_COUNT: u32 = 0xc600_0001;
    /// gicv4 self-test: make the vPE non-resident, trigger edu from EL2, wait
    /// for the doorbell, make it resident again. Returns 0 if the doorbell came.
    pub const SELFTEST_DOORBELL: u32 = 0xc600_0002;
    /// Returns the calling vCPU's count of GICv4 doorbells taken.
    pub const DOORBELL_COUNT: u32 = 0xc600_0003;
    /// vmovp self-test: the move (see the module doc). Returns 0 if every
    /// step the hypervisor can see went as expected.
    pub const SELFTEST_VMOVP: u32 = 0xc600_0004;
    /// vmovp self-test: the self-test doorbells taken on CPUs 0-3, 16 bits each.
    pub const SELFTEST_DOORBELLS: u32 = 0xc600_0005;
}

/// The test hypercall `function`'s result, or `None` if it is not one.
/// The exit and doorbell counts let the test guests check "no exit" and
/// "the doorbell rang" claims; the others drive the self-tests above.
pub fn hypercall(function: u32) -> Option<i64> {
    let exits = &percpu::get(percpu::current_index()).exits;
    Some(match function {
        hypercall::EXIT_COUNT => exits.total.load(Ordering::Relaxed) as i64,
        hypercall::DOORBELL_COUNT => exits.doorbells.load(Ordering::Relaxed) as i64,
        hypercall::SELFTEST_DOORBELL => doorbell_call(),
        hypercall::SELFTEST_VMOVP => vmovp_call(),
        hypercall::SELFTEST_DOORBELLS => doorbells_call(),
        _ => return None,
    })
}

/// The gicv4 self-test's state, once set up.
struct Gicv4 {
    edu_bar: PhysAddr,
    device_id: u32,
    doorbell: PhysIntId,
    vprop: PhysAddr,
    vpt: PhysAddr,
    id_bits_field: u8,
    /// The CPU whose redistributor the vPE is mapped to (VMOVP changes it).
    cpu: AtomicUsize,
    /// The vPE as the passthrough backend records it (vmovp self-test).
    state: Mutex<Option<PassthroughState>>,
    /// Whether this is the vmovp self-test.
    vmovp: bool,
}

static GICV4: Once<Gicv4> = Once::new();
/// Doorbells taken at EL2 (for the log and the test).
static DOORBELLS: AtomicU64 = AtomicU64::new(0);
/// vmovp self-test: its doorbells taken, per CPU.
static DOORBELLS_ON: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

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
        "gicv4" => gicv4_setup(false),
        "vmovp" => gicv4_setup(true),
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
    crate::kernel::early::map_device(bar.raw(), 0x10_0000)
        .map_err(|e| alloc::format!("mapping edu BAR0: {e:?}"))
}

/// Polls this CPU's interface for `intid` (IRQs stay masked at EL2; IAR
/// still acknowledges). Returns whether it arrived within the bound.
fn poll_for(intid: PhysIntId) -> bool {
    for _ in 0..200_000 {
        if let Some(got) = cpu_interface::acknowledge() {
            cpu_interface::end_of_interrupt(got);
            cpu_interface::deactivate(got);
            if got == intid {
                return true;
            }
        }
        core::hint::spin_loop();
    }
    false
}

fn itt(its: &crate::drivers::its::Its, event_bits: u32) -> Result<PhysAddr, alloc::string::String> {
    let bytes = (u64::from(its.typer().itt_entry_bytes()) << event_bits).max(256);
    machine::alloc_frames(bytes.next_multiple_of(4096), 4096)
        .ok_or_else(|| "no memory for an ITT".into())
}

/// `selftest=its`: edu's MSI as a physical LPI taken at EL2, then DISCARD.
fn its_lpi() -> Result<(), alloc::string::String> {
    let its = irq::its().ok_or("no ITS")?;
    let (bdf, bar) = edu()?;
    map_bar(bar)?;
    let device_id = irq::phys_device_id(bdf)
        .ok_or("edu has no msi-map entry")?
        .get();
    its.prepare_device(device_id, &mut |s, a| machine::alloc_frames(s, a))
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
            intid: lpi.get(),
            icid: me.get(),
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
            lpi.get()
        ));
    }
    crate::println!("selftest its: edu {bdf} (DeviceID {device_id:#x}) EventID 0 -> LPI {} taken at EL2 on CPU {me}", lpi.get());
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
        return Err(alloc::format!(
            "LPI {} still arrived after DISCARD",
            lpi.get()
        ));
    }
    write_edu(bar, EDU_ACK, 1);
    crate::println!(
        "selftest its: after DISCARD, edu's MSI no longer raises LPI {}",
        lpi.get()
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
/// mapped to it with VMAPTI, edu's BAR0 mapped into the partition. With
/// `vmovp`, also EventID 1 -> [`VINTID_INT`] and the backend's record of
/// the vPE.
fn gicv4_setup(vmovp: bool) -> Result<(), alloc::string::String> {
    let its = irq::its().ok_or("no ITS")?;
    if !its.typer().virtual_lpis() {
        return Err("the ITS has no virtual LPI support (GICv3): nothing to test".into());
    }
    let partition = crate::kernel::partition::all()
        .first()
        .ok_or("no partition")?;
    let cpu = *partition
        .config
        .cpus
        .first()
        .ok_or("partition without CPU")?;
    let (bdf, bar) = edu()?;
    map_bar(bar)?;
    let device_id = irq::phys_device_id(bdf)
        .ok_or("edu has no msi-map entry")?
        .get();
    its.prepare_device(device_id, &mut |s, a| machine::alloc_frames(s, a))
        .map_err(|e| alloc::format!("{e}"))?;
    // The VM's vLPI property table and the vPE's pending table, 16 ID bits.
    let layout =
        crate::gic::lpi::LpiTableLayout::new(16, 16).map_err(|e| alloc::format!("{e:?}"))?;
    let vprop = machine::alloc_frames(layout.property_bytes.next_multiple_of(4096), 4096)
        .ok_or("no memory")?;
    let vpt = machine::alloc_frames(layout.pending_bytes.next_multiple_of(0x1_0000), 0x1_0000)
        .ok_or("no memory")?;
    // SAFETY: fresh RAM, identity-mapped, ours.
    unsafe {
        core::ptr::write_bytes(vprop.raw() as *mut u8, 0, layout.property_bytes as usize);
        core::ptr::write_bytes(vpt.raw() as *mut u8, 0, layout.pending_bytes as usize);
        // vINTIDs 8192 and 8193: priority 0xa0, enabled (IHI 0069 5.1.1
        // byte format).
        for index in 0..2 {
            core::ptr::write_volatile(
                (vprop.raw() as *mut u8).add(index),
                crate::gic::lpi::lpi_config_byte(0xa0, true),
            );
        }
    }
    crate::arch::cache::clean_invalidate(vprop.raw(), layout.property_bytes);
    crate::arch::cache::clean_invalidate(vpt.raw(), layout.pending_bytes);
    let doorbell = irq::allocate_lpi(0x80).ok_or("no LPI for the doorbell")?;
    let rdbase = irq::rdbase(cpu).ok_or("no redistributor")?;
    let itt = itt(its, 1)?;
    let mut cmds = alloc::vec![
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
            db_intid: doorbell.get(),
        },
    ];
    let mut state = None;
    if vmovp {
        cmds.push(ItsCommand::Vmapti {
            device_id,
            event_id: 1,
            vpe_id: VPE_ID,
            vintid: VINTID_INT,
            db_intid: doorbell.get(),
        });
        let mut devices = BTreeMap::new();
        devices.insert(
            PhysDeviceId::new(device_id),
            PassthroughDevice { event_id_bits: 1 },
        );
        let config = PassthroughConfig {
            partition: PartitionId::new(partition.id.get()),
            vpes: alloc::vec![VpeConfig {
                vpe: VpeId::new(VPE_ID),
                doorbell,
                rdbase,
            }],
            devices,
            vlpi_id_bits: 16,
            max_batch: 8,
        };
        state = Some(PassthroughState::new(config).map_err(|e| alloc::format!("{e:?}"))?);
    }
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
        device_id,
        doorbell,
        vprop,
        vpt,
        id_bits_field: layout.id_bits_field(),
        cpu: AtomicUsize::new(cpu.index()),
        state: Mutex::new(state),
        vmovp,
    });
    crate::println!(
        "selftest {}: edu {bdf} (DeviceID {device_id:#x}) EventID 0 -> vPE {VPE_ID} vINTID {VINTID}{} (doorbell LPI {}), vPE on CPU {cpu} for partition {} vCPU 0, edu BAR0 at IPA {}",
        if vmovp { "vmovp" } else { "gicv4" },
        if vmovp { ", EventID 1 -> vINTID 8193" } else { "" },
        doorbell.get(),
        partition.name(),
        EDU_IPA
    );
    Ok(())
}

/// Called as a vCPU is entered on `cpu`: makes the self-test's vPE resident there.
pub fn on_vcpu_entry(cpu: crate::ids::CpuIndex) {
    if let Some(t) = GICV4
        .get()
        .filter(|t| t.cpu.load(Ordering::Acquire) == cpu.index())
    {
        if let Some(rd) = irq::redistributor(cpu) {
            if !rd.make_vpe_resident(t.vprop, t.id_bits_field, t.vpt) {
                log::error!("selftest gicv4: GICR_VPENDBASER.Dirty did not clear");
            }
        }
    }
}

/// The doorbell hypercall: non-resident, trigger, doorbell at EL2, resident.
fn doorbell_call() -> i64 {
    let cpu = percpu::current_index();
    let Some(t) = GICV4
        .get()
        .filter(|t| t.cpu.load(Ordering::Acquire) == cpu.index())
    else {
        return crate::guest::psci::ret::NOT_SUPPORTED;
    };
    let Some(rd) = irq::redistributor(cpu) else {
        return crate::guest::psci::ret::NOT_SUPPORTED;
    };
    let (clean, pending_before) = rd.make_vpe_nonresident();
    write_edu(t.edu_bar, EDU_RAISE, 1);
    let rang = poll_for(t.doorbell);
    if rang {
        DOORBELLS.fetch_add(1, Ordering::Relaxed);
    }
    crate::println!(
        "selftest gicv4: vPE {VPE_ID} non-resident (Dirty cleared: {clean}, PendingLast before: {pending_before}); edu triggered; doorbell LPI {} {} at EL2",
        t.doorbell.get(),
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

/// Whether `vintid` is pending in the self-test vPE's virtual pending
/// table, as memory holds it (meaningful while the vPE is not resident:
/// GICR_VPENDBASER.Dirty == 0 then says the table is complete).
fn vpt_pending(t: &Gicv4, vintid: u32) -> bool {
    let byte = t.vpt.raw() + u64::from(vintid / 8);
    crate::arch::cache::clean_invalidate(byte, 1);
    // SAFETY: inside the vPE's pending table (16 ID bits: 8 KiB), which
    // the hypervisor allocated and owns.
    let value = unsafe { core::ptr::read_volatile(byte as *const u8) };
    value & (1 << (vintid % 8)) != 0
}

/// The vmovp hypercall, from vCPU 0 on the vPE's CPU (IRQs masked in the
/// guest): non-resident, edu's MSI left pending (doorbell here), VMOVP to
/// [`VMOVP_TARGET`], then an INT whose doorbell must ring there, not here.
/// Returns 0, or a negative step number for the first check that failed.
fn vmovp_call() -> i64 {
    let from = percpu::current_index();
    let Some(t) = GICV4
        .get()
        .filter(|t| t.vmovp && t.cpu.load(Ordering::Acquire) == from.index())
    else {
        return crate::guest::psci::ret::NOT_SUPPORTED;
    };
    let Some(rd) = irq::redistributor(from) else {
        return crate::guest::psci::ret::NOT_SUPPORTED;
    };
    // 1. Not resident here; edu's MSI becomes a pending bit of the VPT
    //    and rings the doorbell on this (the old) redistributor.
    let (clean, _) = rd.make_vpe_nonresident();
    write_edu(t.edu_bar, EDU_RAISE, 1);
    let rang_here = poll_for(t.doorbell);
    if rang_here {
        count_doorbell(from);
    }
    let pending_before = vpt_pending(t, VINTID);
    crate::println!(
        "selftest vmovp: vPE {VPE_ID} non-resident on CPU {from} (Dirty cleared: {clean}); edu triggered; doorbell LPI {} {} on CPU {from} (old redistributor); vINTID {VINTID} pending in the vPE's VPT: {pending_before}",
        t.doorbell.get(),
        if rang_here { "taken" } else { "NOT taken" },
    );
    if !(clean && rang_here && pending_before) {
        return -1;
    }
    // 2. The move. The vPE's record says CPU 1 from here on, so CPU 1
    //    makes it resident when its doorbell arrives there.
    let moved = {
        let mut guard = t.state.lock();
        let Some(state) = guard.as_mut() else {
            return -2;
        };
        crate::kernel::gicv4::move_vpe(state, VcpuIndex::new(0), t.vpt, from, VMOVP_TARGET)
    };
    let moved = match moved {
        Ok(moved) => moved,
        Err(e) => {
            crate::println!("selftest vmovp: FAILED: moving vPE {VPE_ID}: {e}");
            return -2;
        }
    };
    let pending_after = vpt_pending(t, VINTID);
    crate::println!(
        "selftest vmovp: VMOVP vPE {} RDbase {:#x} -> {:#x} (CPU {from} -> CPU {VMOVP_TARGET}) and VSYNC: {} commands; vINTID {VINTID} still pending in the VPT: {pending_after}",
        moved.vpe.get(),
        moved.from.0,
        moved.to.0,
        moved.commands
    );
    t.cpu.store(VMOVP_TARGET.index(), Ordering::Release);
    if !pending_after || moved.commands == 0 {
        return -3;
    }
    // 3. A second vLPI, from the ITS itself: the vPE is not resident
    //    anywhere, so its doorbell rings where the vPE table now points.
    let its = match irq::its() {
        Some(its) => its,
        None => return -4,
    };
    let int = [ItsCommand::Int {
        device_id: t.device_id,
        event_id: 1,
    }];
    if its
        .submit(&int, ItsCommand::Vsync { vpe_id: VPE_ID })
        .is_err()
    {
        return -4;
    }
    let rang_old = poll_for(t.doorbell);
    crate::println!(
        "selftest vmovp: INT edu EventID 1 (vINTID {VINTID_INT}) after the move: doorbell on CPU {from} (old redistributor): {}",
        if rang_old { "TAKEN" } else { "none" }
    );
    if rang_old {
        count_doorbell(from);
        return -5;
    }
    0
}

/// Counts a vmovp self-test doorbell taken on `cpu` (CPUs 0-3 counted).
fn count_doorbell(cpu: crate::ids::CpuIndex) {
    if let Some(count) = DOORBELLS_ON.get(cpu.index()) {
        count.fetch_add(1, Ordering::Relaxed);
    }
}

/// The vmovp self-test's doorbells per CPU (0-3), 16 bits each.
fn doorbells_call() -> i64 {
    let mut packed = 0u64;
    for (cpu, count) in DOORBELLS_ON.iter().enumerate() {
        packed |= (count.load(Ordering::Relaxed) & 0xffff) << (16 * cpu);
    }
    packed as i64
}

/// A physical LPI taken at EL2 while a vCPU runs: if it is the vmovp
/// self-test's doorbell, counts it for this CPU and, if the vPE now lives
/// here, makes it resident (as a vCPU's wake-up would). Returns whether it
/// was that doorbell.
pub fn on_doorbell(intid: u32) -> bool {
    let Some(t) = GICV4.get().filter(|t| t.vmovp && t.doorbell.get() == intid) else {
        return false;
    };
    let cpu = percpu::current_index();
    count_doorbell(cpu);
    let here = t.cpu.load(Ordering::Acquire) == cpu.index();
    let resident = here
        && irq::redistributor(cpu)
            .is_some_and(|rd| rd.make_vpe_resident(t.vprop, t.id_bits_field, t.vpt));
    crate::println!(
        "selftest vmovp: doorbell LPI {intid} taken on CPU {cpu}{}",
        if resident {
            "; vPE made resident here (new redistributor)"
        } else {
            ""
        }
    );
    true
}

/// The self-tests' calls on the kernel's paths, installed at boot.
pub static HOOKS: Hooks = Hooks {
    before_load: run,
    on_vcpu_entry,
    hypercall,
    on_doorbell,
};
