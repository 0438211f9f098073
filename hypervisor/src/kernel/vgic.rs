//! The hardware half of each partition's virtual GICv3: list registers
//! and ICH_* registers around every guest entry and exit, the trapped
//! distributor/redistributor frames and SGI/DIR registers, the EL1
//! virtual and physical timers forwarded with the HW bit (their pending
//! state read back from the physical redistributor), and the physical side of the vGIC's
//! actions. The model itself is `crate::vgic` (pure, host-tested).
//!
//! Order on every trap (IHI 0069, 11.2 "list registers"): `fold` the LRs
//! the guest ran with back into the model first, then handle the trap,
//! then `flush` a new LR image just before entering the guest again.

use super::irq::{self, FORWARDED_PPIS};
use super::partition::Partition;
use crate::arch::sysreg;
use crate::console::log_limit::Kind;
use crate::drivers::gicv3::cpu_interface;
use crate::guest::trap::MmioAccess;
use crate::ids::{PhysIntId, VcpuIndex, VirtIntId};
use crate::layout;
use crate::mm::Ipa;
use crate::sysreg::{IchHcrEl2, IchVmcrEl2, IchVtrEl2};
use crate::vgic::{Action, Actions, PhysicalIrqState, Vgic, VgicConfig, MAX_LRS};

/// SPIs each partition's distributor offers.
const NUM_SPIS: u16 = 64;
/// Bound on LPIs pending on one vCPU (software path).
const MAX_PENDING_LPIS: usize = crate::partition::budget::PENDING_LPIS_PER_VCPU;

/// ICC_SGI1R_EL1, ICC_ASGI1R_EL1, ICC_SGI0R_EL1, ICC_DIR_EL1 as a trapped
/// access names them.
mod sysreg_enc {
    use crate::guest::trap::SysRegEncoding;
    pub const ICC_SGI1R: SysRegEncoding = SysRegEncoding::new(3, 0, 12, 11, 5);
    pub const ICC_ASGI1R: SysRegEncoding = SysRegEncoding::new(3, 0, 12, 11, 6);
    pub const ICC_SGI0R: SysRegEncoding = SysRegEncoding::new(3, 0, 12, 11, 7);
    pub const ICC_DIR: SysRegEncoding = SysRegEncoding::new(3, 0, 12, 11, 1);
}

/// ICH_VTR_EL2 (the same on every CPU), read once: it is consulted on
/// every guest entry and exit.
fn vtr() -> u64 {
    static VTR: spin::Once<u64> = spin::Once::new();
    *VTR.call_once(|| sysreg::ich_vtr_el2::read().0)
}

/// The list registers this CPU implements (ICH_VTR_EL2.ListRegs + 1).
pub fn num_lrs() -> usize {
    IchVtrEl2(vtr()).lr_count().min(MAX_LRS)
}

/// The vGIC configuration of a partition with `vcpus` vCPUs.
pub fn config(vcpus: usize) -> VgicConfig {
    let vtr = if cpu_interface::is_ready() {
        IchVtrEl2(vtr())
    } else {
        IchVtrEl2(0).with_pribits(4)
    };
    VgicConfig {
        num_vcpus: vcpus as u16,
        num_spis: NUM_SPIS,
        lpi_id_bits: 16,
        priority_bits: (vtr.pribits() + 1) as u8,
        max_pending_lpis: MAX_PENDING_LPIS,
        dist_base: layout::GICD.start,
        redist_base: layout::GICR.start,
    }
}

/// A new vGIC for `vcpus` vCPUs, with both EL1 timers linked to their PPIs.
pub fn new_vgic(vcpus: usize) -> Result<Vgic, alloc::string::String> {
    let mut vgic = Vgic::new(config(vcpus)).map_err(|e| alloc::format!("{e:?}"))?;
    for ppi in FORWARDED_PPIS {
        let not_ppi = || alloc::format!("{ppi} is not a PPI");
        let (virt, phys) = (VirtIntId::new(ppi), PhysIntId::new(ppi));
        vgic.link_hw(virt.ok_or_else(not_ppi)?, phys.ok_or_else(not_ppi)?)
            .map_err(|e| alloc::format!("{e:?}"))?;
    }
    Ok(vgic)
}

/// The physical side of a partition's hardware-linked interrupts: each
/// vCPU's PPIs on the redistributor of the CPU that runs it.
struct PhysicalRedistributors<'a>(&'a Partition);

impl PhysicalIrqState for PhysicalRedistributors<'_> {
    fn pending(&self, vcpu: VcpuIndex, intid: PhysIntId) -> bool {
        intid.get() < 32
            && self
                .0
                .cpu_of(vcpu)
                .and_then(irq::redistributor)
                .is_some_and(|rd| rd.is_pending_private(intid.get()))
    }
}

/// Disables and deactivates the forwarded PPIs on this CPU's
/// redistributor (vCPU start, and a CPU leaving its guest: a timer line
/// left asserted must not interrupt EL2 while no vCPU runs here).
pub fn quiesce_forwarded_ppis(cpu: crate::ids::CpuIndex) {
    if super::vgicv2::quiesce_forwarded_ppis() {
        return;
    }
    if let Some(rd) = irq::redistributor(cpu) {
        for ppi in FORWARDED_PPIS {
            rd.disable_private(ppi);
            rd.deactivate_private(ppi);
        }
    }
}

fn read_lr(n: usize) -> u64 {
    sysreg::ich_lr::read(n)
}

fn write_lr(n: usize, value: u64) {
    sysreg::ich_lr::write(n, value)
}

/// On every exit: the LRs the guest ran with go back into the model.
pub fn fold(partition: &Partition, vcpu: VcpuIndex) {
    if super::vgicv2::fold(partition, vcpu) {
        return;
    }
    if !cpu_interface::is_ready() {
        return;
    }
    let n = num_lrs();
    let mut lrs = [0u64; MAX_LRS];
    for (i, lr) in lrs.iter_mut().enumerate().take(n) {
        *lr = read_lr(i);
    }
    let hcr = sysreg::ich_hcr_el2::read().0;
    let vmcr = sysreg::ich_vmcr_el2::read().0;
    let result = partition.vgic.lock().fold(vcpu, &lrs[..n], hcr, vmcr);
    apply(partition, vcpu, result);
}

/// Before every entry: the best pending interrupts into the LRs.
pub fn flush(partition: &Partition, vcpu: VcpuIndex) {
    if super::vgicv2::flush(partition, vcpu) {
        return;
    }
    if !cpu_interface::is_ready() {
        return;
    }
    let n = num_lrs();
    let image = partition.vgic.lock().flush(vcpu, n);
    match image {
        Ok(image) => {
            for i in 0..n {
                write_lr(i, image.lrs[i]);
            }
            // ICH_HCR_EL2.TDIR exists only with ICH_VTR_EL2.TDS.
            let tds = IchVtrEl2(vtr()).tds();
            let hcr = if tds {
                image.hcr
            } else {
                image.hcr & !crate::vgic::hcr::TDIR
            };
            sysreg::ich_hcr_el2::write(IchHcrEl2(hcr));
        }
        Err(e) => log::error!(
            "partition {}: vCPU {}: vGIC flush: {e:?}",
            partition.name(),
            vcpu.get()
        ),
    }
    crate::arch::sysreg::isb();
}

/// Clears the LRs and leaves the virtual interface on (vCPU start/reset).
pub fn clear_lrs() {
    if super::vgicv2::clear_lrs() {
        return;
    }
    if !cpu_interface::is_ready() {
        return;
    }
    for i in 0..num_lrs() {
        write_lr(i, 0);
    }
    sysreg::ich_hcr_el2::write(IchHcrEl2(0).with_en(true));
    sysreg::ich_vmcr_el2::write(IchVmcrEl2(0));
    // No active priority left from a previous life (ICH_AP1R<n>_EL2; with
    // 5 priority bits only AP1R0 exists, the others are RES0/absent).
    sysreg::ich_ap1r0_el2::write(0);
}

/// A trapped access to the vGIC's frames.
pub fn mmio(partition: &Partition, vcpu: VcpuIndex, access: MmioAccess, value: u64) -> u64 {
    if let Some(v) = super::vgicv2::mmio(partition, vcpu, access, value) {
        return v;
    }
    let (result, actions, fault) = {
        let mut vgic = partition.vgic.lock();
        let (result, actions) = if access.write {
            (
                0,
                vgic.mmio_write(vcpu, Ipa(access.ipa.raw()), access.size, value),
            )
        } else {
            let phys = PhysicalRedistributors(partition);
            (
                vgic.mmio_read_with(vcpu, Ipa(access.ipa.raw()), access.size, &phys),
                Actions::new(),
            )
        };
        (result, actions, vgic.take_fault_report())
    };
    if let Some(bad) = fault {
        // The architecture's answer is RAZ/WI; say so once, count the rest.
        log::warn!(
            "partition {}: vCPU {}: vGIC: {} of {} bytes at reserved or read-only IPA {}: RAZ/WI (logged once, further ones only counted)",
            partition.name(),
            bad.vcpu.get(),
            if bad.write { "write" } else { "read" },
            bad.size,
            bad.ipa
        );
    }
    apply(partition, vcpu, Ok(actions));
    result
}

/// A trapped GIC system register (SGI generation, DIR). Returns false if
/// `encoding` is not one of them.
pub fn sysreg(
    partition: &Partition,
    vcpu: VcpuIndex,
    encoding: crate::guest::trap::SysRegEncoding,
    value: u64,
) -> bool {
    let result = match encoding {
        sysreg_enc::ICC_SGI1R | sysreg_enc::ICC_ASGI1R => {
            partition.vgic.lock().send_sgi(vcpu, value)
        }
        // Group 0 SGIs: the guest's interrupts are all Group 1; ignored.
        sysreg_enc::ICC_SGI0R => Ok(Actions::new()),
        // IHI 0069, 12.2.9: a DIR write of a special INTID (1020-1023) or
        // of a reserved one is ignored.
        sysreg_enc::ICC_DIR => match VirtIntId::new((value & 0xff_ffff) as u32) {
            Some(intid) => partition.vgic.lock().deactivate(vcpu, intid),
            None => Ok(Actions::new()),
        },
        _ => return false,
    };
    apply(partition, vcpu, result);
    true
}

/// Drives the virtual console's interrupt line (level-sensitive SPI
/// [`crate::layout::CONSOLE_SPI`]) to `high`.
pub fn set_console_line(partition: &Partition, me: VcpuIndex, high: bool) {
    let intid = const { VirtIntId::from_const(32 + crate::layout::CONSOLE_SPI) };
    let result = partition.vgic.lock().set_line(me, intid, high);
    apply(partition, me, result);
}

/// Drives the virtual console's line from outside the partition's own
/// trap path (typed input arriving on whichever CPU took it).
pub fn set_console_line_from(
    partition: &Partition,
    running: Option<(&Partition, VcpuIndex)>,
    high: bool,
) {
    let intid = const { VirtIntId::from_const(32 + crate::layout::CONSOLE_SPI) };
    let result = partition
        .vgic
        .lock()
        .set_line(VcpuIndex::new(0), intid, high);
    // No kick for the vCPU running here: it takes it on this very entry.
    let me = running
        .filter(|(r, _)| r.id == partition.id)
        .map(|(_, v)| v);
    apply_as(partition, me, result);
}

/// A hardware-linked interrupt (an EL1 timer) taken at EL2 while
/// `vcpu` ran: pending in the model; the guest's deactivation ends it.
pub fn inject_forwarded(partition: &Partition, vcpu: VcpuIndex, intid: u32) {
    let Some(intid) = VirtIntId::new(intid) else {
        return;
    };
    let result = partition.vgic.lock().inject(vcpu, intid);
    apply(partition, vcpu, result);
}

/// Carries out what the model asked for (kicks and hardware actions).
pub fn apply_actions(partition: &Partition, me: VcpuIndex, actions: Actions) {
    apply(partition, me, Ok(actions));
}

/// Carries out what the model asked for.
fn apply(partition: &Partition, me: VcpuIndex, result: Result<Actions, crate::vgic::VgicError>) {
    apply_as(partition, Some(me), result)
}

/// [`apply`] from `me`, or from outside any vCPU of the partition (`None`:
/// every vCPU in the kick set is kicked).
fn apply_as(
    partition: &Partition,
    me: Option<VcpuIndex>,
    result: Result<Actions, crate::vgic::VgicError>,
) {
    let actions = match result {
        Ok(a) => a,
        Err(e) => {
            let (level, n) = partition
                .guest_log
                .warning(Kind::VgicRefused, log::Level::Warn);
            log::log!(
                level,
                "partition {}: vCPU {me:?}: vGIC: {e:?} ({n} so far)",
                partition.name()
            );
            return;
        }
    };
    for vcpu in actions.kick.iter() {
        if Some(vcpu) != me {
            if let Some(cpu) = partition.cpu_of(vcpu) {
                super::cpus::kick(cpu);
            }
        }
    }
    for action in actions.hardware {
        match action {
            Action::EnablePhys { vcpu, intid } | Action::DisablePhys { vcpu, intid } => {
                let enable = matches!(action, Action::EnablePhys { .. });
                let rd = partition.cpu_of(vcpu).and_then(irq::redistributor);
                match rd {
                    Some(rd) if intid.get() < 32 => {
                        if enable {
                            rd.enable_private(intid.get())
                        } else {
                            rd.disable_private(intid.get())
                        }
                    }
                    _ => log::warn!(
                        "partition {}: no physical interrupt {} to {}",
                        partition.name(),
                        intid.get(),
                        if enable { "enable" } else { "disable" }
                    ),
                }
            }
            Action::DeactivatePhys { vcpu, intid } => {
                if let Some(rd) = partition.cpu_of(vcpu).and_then(irq::redistributor) {
                    rd.deactivate_private(intid.get());
                }
            }
            Action::LpisEnabled { vcpu, enabled } => pending_table(partition, me, vcpu, enabled),
            Action::RoutePhys { .. } | Action::LpiConfigChanged { .. } => {}
        }
    }
}

/// GICR_CTLR.EnableLPIs of `vcpu` changed: its pending table in guest
/// memory becomes the model's pending state (0 -> 1), or receives it back
/// (1 -> 0). See `crate::vgic::pending_table`. Software-path LPIs only: on
/// GICv4 a passthrough vLPI's pending state stays in the vPE's VPT (the
/// hypervisor's memory, which the guest never sees), see
/// docs/vgic-conformance.md.
fn pending_table(partition: &Partition, me: Option<VcpuIndex>, vcpu: VcpuIndex, enabled: bool) {
    let mut mem = super::partition::PartitionMemory(partition);
    let (result, faults) = {
        let mut vgic = partition.vgic.lock();
        let result = if enabled {
            // The guest may have written its table with non-cacheable
            // attributes (GICR_PENDBASER.InnerCache, or its MMU off): drop
            // any line the hypervisor's cacheable view holds of it first.
            // (The store path cleans what it writes: `write_ram`.)
            if let Ok(Some((first, bytes))) = vgic.pending_table_span(vcpu) {
                if let Some(ptr) = partition.ram_slice(first, bytes) {
                    crate::arch::cache::clean_invalidate(ptr as u64, bytes);
                }
            }
            let propbaser = vgic.propbaser(vcpu).unwrap_or(0);
            let table = crate::vgic::GuestLpiTable::new(&mem, propbaser, vgic.config().lpi_id_bits);
            vgic.load_pending_table(vcpu, &mem, &table)
        } else {
            vgic.store_pending_table(vcpu, &mut mem)
        };
        (result, vgic.counters().pending_table_faults)
    };
    match result {
        Ok((actions, done)) => {
            if done.unreadable && faults == 1 {
                // UNPREDICTABLE in the architecture: ignored; said once.
                log::warn!(
                    "partition {}: vCPU {}: GICR_PENDBASER names memory outside the partition's RAM: pending table ignored (logged once, further ones only counted)",
                    partition.name(),
                    vcpu.get()
                );
            }
            log::debug!(
                "partition {}: vCPU {}: EnableLPIs {}: pending table {} ({} LPIs, {} bytes{})",
                partition.name(),
                vcpu.get(),
                u8::from(enabled),
                if enabled { "loaded" } else { "stored" },
                done.lpis,
                done.bytes,
                if done.skipped_ptz {
                    ", PTZ: not read"
                } else {
                    ""
                }
            );
            apply_as(partition, me, Ok(actions));
        }
        Err(e) => {
            let (level, n) = partition
                .guest_log
                .warning(Kind::VgicRefused, log::Level::Warn);
            log::log!(
                level,
                "partition {}: vCPU {}: vGIC: {e:?} ({n} so far)",
                partition.name(),
                vcpu.get()
            );
        }
    }
}

/// LPI `vintid` of `vcpu` made pending in `partition`'s vGIC (a passthrough
/// MSI taken at EL2 on the software path); `running` is what this CPU runs.
pub fn set_lpi_pending_from(
    partition: &Partition,
    running: Option<(&Partition, VcpuIndex)>,
    vcpu: VcpuIndex,
    vintid: VirtIntId,
) {
    let mem = super::partition::PartitionMemory(partition);
    let result = {
        let mut vgic = partition.vgic.lock();
        match vgic.lpi_table(vcpu, &mem) {
            Ok(table) => vgic.set_lpi_pending(vcpu, vintid, &table),
            Err(e) => Err(e),
        }
    };
    // No kick for the vCPU running here: it takes it on this very entry.
    let me = running
        .filter(|(r, _)| r.id == partition.id)
        .map(|(_, v)| v);
    apply_as(partition, me, result);
}
