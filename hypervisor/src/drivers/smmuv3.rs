//! The physical SMMUv3: bring-up, the stream table, the command and event
//! queues, on top of the pure pieces in `smmu::` (register values, STE and
//! command encodings, event decoding, queue rings, stream table plan).
//!
//! Bring-up follows IHI 0070, 3.5/6.3 and the initialization sequence its
//! register descriptions imply: global bypass set to abort before anything
//! else, the SMMU disabled, every STE abort before the table is installed,
//! queues programmed, queues enabled, all cached configuration and TLBs
//! invalidated, then SMMUEN. Every wait is bounded by [`POLL_BUDGET`].
//!
//! A non-coherent SMMU (SMMU_IDR0.COHACC == 0) is given non-cacheable
//! table, queue and walk attributes, and everything it reads is cleaned to
//! the point of coherency after the CPU writes it (the stage-2 tables of an
//! attached partition included: that is the caller's part).
//!
//! Lock order: the stream table lock, then the command queue lock. The
//! event queue lock is taken alone.

use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use spin::Mutex;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

use crate::arch::cache::clean_invalidate;
use crate::mm::{PhysAddr, Vmid};
use crate::smmu::queue::{
    CommandQueue, CommandQueueHw, EventQueue, EventQueueHw, COMMAND_BYTES, EVENT_BYTES,
};
use crate::smmu::regs::{
    Cacheability, CmdqBase, CmdqCons, CmdqProd, Cr0, Cr1, Cr2, EventqBase, EventqCons, EventqProd,
    Gbpa, Gerror, IrqCtrl, Shareability, StrtabBase,
};
use crate::smmu::ste_update::{self, StreamTableMemory};
use crate::smmu::stream_table::{l1_descriptor, SteLocation, StreamTableFormat, L2_TABLE_BYTES};
use crate::smmu::{Command, Event, Ring, S2Config, SmmuError, SmmuFeatures, Ste, StreamTablePlan};

/// Polls of a register before a wait gives up and reports the SMMU wedged.
pub const POLL_BUDGET: u32 = 10_000_000;
/// log2 of the command queue entries we ask for (256 commands, 4 KiB).
const CMDQ_LOG2: u8 = 8;
/// log2 of the event queue entries we ask for (128 events, 4 KiB).
const EVTQ_LOG2: u8 = 7;
/// Most events one `drain_events` call hands out.
pub const EVENT_DRAIN_MAX: usize = 64;

register_structs! {
    /// The SMMU's registers the driver uses, in its two 64 KiB pages
    /// (IHI 0070, 6.2 "Register formats": page 0 at +0, page 1 at +64 KiB).
    SmmuRegs {
        (0x0_0000 => idr: [ReadOnly<u32>; 6]),
        (0x0_0018 => iidr: ReadOnly<u32>),
        (0x0_001c => aidr: ReadOnly<u32>),
        (0x0_0020 => cr0: ReadWrite<u32>),
        (0x0_0024 => cr0ack: ReadOnly<u32>),
        (0x0_0028 => cr1: ReadWrite<u32>),
        (0x0_002c => cr2: ReadWrite<u32>),
        (0x0_0030 => _reserved0),
        (0x0_0040 => statusr: ReadOnly<u32>),
        (0x0_0044 => gbpa: ReadWrite<u32>),
        (0x0_0048 => _reserved1),
        (0x0_0050 => irq_ctrl: ReadWrite<u32>),
        (0x0_0054 => irq_ctrlack: ReadOnly<u32>),
        (0x0_0058 => _reserved2),
        (0x0_0060 => gerror: ReadOnly<u32>),
        (0x0_0064 => gerrorn: ReadWrite<u32>),
        (0x0_0068 => gerror_irq_cfg0: ReadWrite<u64>),
        (0x0_0070 => _reserved3),
        (0x0_0080 => strtab_base: ReadWrite<u64>),
        (0x0_0088 => strtab_base_cfg: ReadWrite<u32>),
        (0x0_008c => _reserved4),
        (0x0_0090 => cmdq_base: ReadWrite<u64>),
        (0x0_0098 => cmdq_prod: ReadWrite<u32>),
        (0x0_009c => cmdq_cons: ReadWrite<u32>),
        (0x0_00a0 => eventq_base: ReadWrite<u64>),
        (0x0_00a8 => _reserved5),
        (0x0_00b0 => eventq_irq_cfg0: ReadWrite<u64>),
        (0x0_00b8 => _reserved6),
        (0x0_00d0 => priq_irq_cfg0: ReadWrite<u64>),
        (0x0_00d8 => _reserved7),
        (0x1_00a8 => eventq_prod: ReadWrite<u32>),
        (0x1_00ac => eventq_cons: ReadWrite<u32>),
        (0x1_00b0 => @END),
    }
}

/// The SMMU's registers, shared by the CPUs.
#[derive(Clone, Copy)]
struct Regs {
    regs: &'static SmmuRegs,
}

// SAFETY: the SMMU takes register accesses from any CPU; what needs
// ordering (the queue PROD/CONS protocols, GERRORN) is serialised by the
// driver's locks, and set-up happens once before the driver is shared.
unsafe impl Send for Regs {}
// SAFETY: as above.
unsafe impl Sync for Regs {}

impl core::ops::Deref for Regs {
    type Target = SmmuRegs;

    fn deref(&self) -> &SmmuRegs {
        self.regs
    }
}

impl Regs {
    /// The registers of the SMMU at `base`.
    ///
    /// # Safety
    /// `base` must map the SMMU's 128 KiB of registers as device memory,
    /// for good.
    unsafe fn at(base: usize) -> Self {
        Self {
            // SAFETY: the caller's contract; the block is accessed only
            // through volatile register cells.
            regs: unsafe { &*(base as *const SmmuRegs) },
        }
    }

    /// The base address (for log lines).
    fn base(self) -> usize {
        core::ptr::from_ref(self.regs) as usize
    }

    /// Polls `register` until `done` holds for its value, at most [`POLL_BUDGET`] times.
    fn wait(
        register: &impl Readable<T = u32>,
        name: &'static str,
        wanted: u32,
        done: impl Fn(u32) -> bool,
    ) -> Result<(), SmmuError> {
        let mut seen = register.get();
        for _ in 0..POLL_BUDGET {
            if done(seen) {
                return Ok(());
            }
            core::hint::spin_loop();
            seen = register.get();
        }
        if done(seen) {
            return Ok(());
        }
        Err(SmmuError::AckTimeout {
            register: name,
            wanted,
            seen,
        })
    }

    /// Writes SMMU_CR0 and waits for SMMU_CR0ACK to show the same enables.
    fn set_cr0(self, cr0: Cr0) -> Result<(), SmmuError> {
        // Table and queue memory writes must be visible before an enable.
        crate::arch::sysreg::dsb_sy();
        self.cr0.set(cr0.0);
        Self::wait(&self.cr0ack, "SMMU_CR0ACK", cr0.0, |ack| ack == cr0.0)
    }

    /// SMMU_GBPA update procedure: wait for Update clear, write the new
    /// value with Update set, wait for the SMMU to clear Update.
    fn set_gbpa(self, gbpa: Gbpa) -> Result<(), SmmuError> {
        Self::wait(&self.gbpa, "SMMU_GBPA.Update", 0, |v| !Gbpa(v).update())?;
        self.gbpa.set(gbpa.with_update(true).0);
        Self::wait(&self.gbpa, "SMMU_GBPA.Update", 0, |v| !Gbpa(v).update())
    }
}

/// Writes `words` at physical (identity-mapped) address `pa`, in order,
/// each a single 64-bit store.
fn write_dwords(pa: u64, words: &[u64]) {
    for (i, word) in words.iter().enumerate() {
        // SAFETY: `pa` is memory this driver allocated for an SMMU
        // structure (identity mapped at EL2) and the callers keep
        // `pa + 8 * words.len()` inside it.
        unsafe { core::ptr::write_volatile((pa as *mut u64).add(i), *word) };
    }
}

/// Reads `N` dwords at physical (identity-mapped) address `pa`.
fn read_dwords<const N: usize>(pa: u64) -> [u64; N] {
    let mut out = [0; N];
    for (i, word) in out.iter_mut().enumerate() {
        // SAFETY: as in `write_dwords`.
        *word = unsafe { core::ptr::read_volatile((pa as *const u64).add(i)) };
    }
    out
}

/// The stream table's memory: identity-mapped RAM this driver allocated.
struct TableMemory {
    coherent: bool,
}

impl StreamTableMemory for TableMemory {
    fn read(&mut self, pa: u64) -> u64 {
        read_dwords::<1>(pa)[0]
    }

    fn write(&mut self, pa: u64, words: &[u64]) {
        write_dwords(pa, words);
        if !self.coherent {
            clean_invalidate(pa, 8 * words.len() as u64);
        }
    }

    fn barrier(&mut self) {
        crate::arch::sysreg::dsb_sy();
    }
}

/// The command queue's memory and registers.
struct CmdqHw {
    regs: Regs,
    queue: u64,
    coherent: bool,
}

impl CommandQueueHw for CmdqHw {
    fn write_entry(&mut self, index: u32, entry: [u64; 2]) {
        let at = self.queue + u64::from(index) * COMMAND_BYTES;
        write_dwords(at, &entry);
        if !self.coherent {
            clean_invalidate(at, COMMAND_BYTES);
        }
    }

    fn read_entry(&mut self, index: u32) -> [u64; 2] {
        read_dwords(self.queue + u64::from(index) * COMMAND_BYTES)
    }

    fn write_prod(&mut self, prod: CmdqProd) {
        // The commands must reach memory (or the point the SMMU snoops)
        // before the SMMU sees the new PROD.
        crate::arch::sysreg::dsb_sy();
        self.regs.cmdq_prod.set(prod.0);
    }

    fn read_cons(&mut self) -> CmdqCons {
        CmdqCons(self.regs.cmdq_cons.get())
    }

    fn active_gerror(&mut self) -> Gerror {
        Gerror::active(
            Gerror(self.regs.gerror.get()),
            Gerror(self.regs.gerrorn.get()),
        )
    }

    fn ack_gerror(&mut self, errors: Gerror) {
        // A repaired command must be visible before the SMMU resumes.
        crate::arch::sysreg::dsb_sy();
        let gerrorn = self.regs.gerrorn.get();
        self.regs.gerrorn.set(gerrorn ^ errors.0);
    }

    fn relax(&mut self) {
        core::hint::spin_loop();
    }
}

/// The event queue's memory and registers.
struct EvtqHw {
    regs: Regs,
    queue: u64,
    coherent: bool,
}

impl EventQueueHw for EvtqHw {
    fn read_prod(&mut self) -> EventqProd {
        let prod = EventqProd(self.regs.eventq_prod.get());
        // Records are read only after PROD said they are there.
        crate::arch::sysreg::dsb_sy();
        prod
    }

    fn read_entry(&mut self, index: u32) -> [u64; 4] {
        let at = self.queue + u64::from(index) * EVENT_BYTES;
        if !self.coherent {
            // Drop any stale line so the read sees what the SMMU wrote.
            clean_invalidate(at, EVENT_BYTES);
        }
        read_dwords(at)
    }

    fn write_cons(&mut self, cons: EventqCons) {
        // Every record read completes before the SMMU may overwrite it.
        crate::arch::sysreg::dsb_sy();
        self.regs.eventq_cons.set(cons.0);
    }
}

/// The stream table as allocated.
struct StreamTable {
    plan: StreamTablePlan,
    /// Physical address of the linear table or of level 1.
    base: u64,
    /// Level-2 tables by level-1 index (two-level only); 0 = none yet.
    l2: Vec<u64>,
}

impl StreamTable {
    /// Physical address of the STE of `sid`.
    fn ste_address(&self, sid: u32) -> Result<Option<u64>, SmmuError> {
        Ok(match self.plan.locate(sid)? {
            SteLocation::Linear { offset } => Some(self.base + offset),
            SteLocation::TwoLevel {
                l1_index,
                l2_offset,
            } => match self.l2.get(l1_index as usize) {
                Some(&l2) if l2 != 0 => Some(l2 + l2_offset),
                _ => None,
            },
        })
    }
}

/// A physical SMMUv3, enabled, every StreamID aborting until attached.
pub struct SmmuV3 {
    regs: Regs,
    features: SmmuFeatures,
    coherent: bool,
    streams: Mutex<StreamTable>,
    cmdq: Mutex<CommandQueue<CmdqHw>>,
    evtq: Mutex<EventQueue<EvtqHw>>,
    event_overflows: AtomicU32,
}

impl SmmuV3 {
    /// Probes and brings up the SMMU whose registers `base` maps, taking
    /// the stream table and queues from `alloc(size, align)`. On return the
    /// SMMU translates, every StreamID's STE aborts, and SMMU_GBPA.ABORT
    /// is set, so no transaction bypasses it even if it is disabled.
    ///
    /// # Safety
    /// `base` must map the SMMU's MMIO (both 64 KiB pages) as device
    /// memory, nothing else may drive this SMMU, and `alloc` must return
    /// memory that is identity mapped at EL2 and used for nothing else.
    pub unsafe fn probe(
        base: usize,
        alloc: &mut dyn FnMut(u64, u64) -> Option<PhysAddr>,
    ) -> Result<Self, SmmuError> {
        // SAFETY: `probe`'s contract.
        let regs = unsafe { Regs::at(base) };
        let idr = core::array::from_fn(|n| regs.idr[n].get());
        let features = SmmuFeatures::from_idr(idr)?;
        let coherent = features.coherent;

        // Traffic aborts, not bypasses, while the SMMU is disabled; then
        // disable it (firmware or a previous life may have enabled it).
        let gbpa = Gbpa(regs.gbpa.get());
        regs.set_gbpa(gbpa.with_abort(true))?;
        regs.set_cr0(Cr0(0))?;
        regs.irq_ctrl.set(IrqCtrl(0).0);
        Regs::wait(&regs.irq_ctrlack, "SMMU_IRQ_CTRLACK", 0, |v| v == 0)?;
        if features.msi {
            // No MSI address: the wired interrupts signal.
            regs.gerror_irq_cfg0.set(0);
            regs.eventq_irq_cfg0.set(0);
            regs.priq_irq_cfg0.set(0);
        }
        // Acknowledge what a previous life left in SMMU_GERROR.
        regs.gerrorn.set(regs.gerror.get());

        let (cache, share) = if coherent {
            (Cacheability::WriteBack, Shareability::InnerShareable)
        } else {
            (Cacheability::NonCacheable, Shareability::OuterShareable)
        };
        regs.cr1.set(Cr1::uniform(cache, share).0);
        // Record out-of-range StreamIDs; ignore broadcast TLB maintenance:
        // the hypervisor invalidates the SMMU's TLBs by command.
        regs.cr2.set(Cr2(0).with_recinvsid(true).with_ptm(true).0);

        let streams = Self::build_stream_table(&features, alloc)?;
        regs.strtab_base
            .set(StrtabBase::at(streams.base).with_ra(true).0);
        regs.strtab_base_cfg.set(streams.plan.base_cfg().0);

        let cmdq_ring = Ring::new(CMDQ_LOG2.min(features.cmdq_log2))?;
        let cmdq_bytes = COMMAND_BYTES << cmdq_ring.log2();
        let cmdq = alloc_zeroed(alloc, cmdq_bytes, "command queue", coherent)?;
        regs.cmdq_base.set(
            CmdqBase(0)
                .with_ra(true)
                .with_addr(cmdq >> 5)
                .with_log2size(u64::from(cmdq_ring.log2()))
                .0,
        );
        regs.cmdq_prod.set(CmdqProd(0).0);
        regs.cmdq_cons.set(CmdqCons(0).0);

        let evtq_ring = Ring::new(EVTQ_LOG2.min(features.evtq_log2))?;
        let evtq_bytes = EVENT_BYTES << evtq_ring.log2();
        let evtq = alloc_zeroed(alloc, evtq_bytes, "event queue", coherent)?;
        regs.eventq_base.set(
            EventqBase(0)
                .with_wa(true)
                .with_addr(evtq >> 5)
                .with_log2size(u64::from(evtq_ring.log2()))
                .0,
        );
        regs.eventq_prod.set(EventqProd(0).0);
        regs.eventq_cons.set(EventqCons(0).0);

        // Queues on, one at a time, each acknowledged.
        let cr0 = Cr0(0).with_cmdqen(true);
        regs.set_cr0(cr0)?;
        let cr0 = cr0.with_eventqen(true);
        regs.set_cr0(cr0)?;

        let mut queue = CommandQueue::new(
            CmdqHw {
                regs,
                queue: cmdq,
                coherent,
            },
            cmdq_ring,
        );
        // Nothing cached from a previous configuration survives.
        let mut invalidate = vec![Command::CfgiAll];
        if features.hyp {
            invalidate.push(Command::TlbiEl2All);
        }
        invalidate.push(Command::TlbiNsnhAll);
        queue.submit(&invalidate, POLL_BUDGET)?;

        regs.set_cr0(cr0.with_smmuen(true))?;
        Ok(Self {
            regs,
            features,
            coherent,
            streams: Mutex::new(streams),
            cmdq: Mutex::new(queue),
            evtq: Mutex::new(EventQueue::new(
                EvtqHw {
                    regs,
                    queue: evtq,
                    coherent,
                },
                evtq_ring,
            )),
            event_overflows: AtomicU32::new(0),
        })
    }

    /// Allocates the stream table: a linear table of abort STEs, or a
    /// level 1 of empty descriptors (their StreamIDs abort until
    /// `prepare_stream` gives them a level-2 table of abort STEs).
    fn build_stream_table(
        features: &SmmuFeatures,
        alloc: &mut dyn FnMut(u64, u64) -> Option<PhysAddr>,
    ) -> Result<StreamTable, SmmuError> {
        let plan = StreamTablePlan::new(features);
        let bytes = plan.table_bytes();
        let base = alloc(bytes.max(4096), plan.table_align().max(4096))
            .ok_or(SmmuError::OutOfMemory("stream table"))?
            .raw();
        match plan.format {
            StreamTableFormat::Linear => fill_abort(base, bytes),
            StreamTableFormat::TwoLevel => {
                for i in 0..u64::from(plan.l1_entries()) {
                    write_dwords(base + 8 * i, &[0]);
                }
            }
        }
        if !features.coherent {
            clean_invalidate(base, bytes);
        }
        Ok(StreamTable {
            plan,
            base,
            l2: vec![0; plan.l1_entries() as usize],
        })
    }

    /// What the SMMU implements.
    pub fn features(&self) -> &SmmuFeatures {
        &self.features
    }

    /// The stream table's layout.
    pub fn stream_table_plan(&self) -> StreamTablePlan {
        self.streams.lock().plan
    }

    /// Makes sure `sid` has an STE: on a two-level table, allocates its
    /// level-2 table (256 abort STEs) on first use. Needed before
    /// `attach_stage2`; a no-op on a linear table.
    pub fn prepare_stream(
        &self,
        sid: u32,
        alloc: &mut dyn FnMut(u64, u64) -> Option<PhysAddr>,
    ) -> Result<(), SmmuError> {
        let mut streams = self.streams.lock();
        let SteLocation::TwoLevel { l1_index, .. } = streams.plan.locate(sid)? else {
            return Ok(());
        };
        if streams.l2[l1_index as usize] != 0 {
            return Ok(());
        }
        let l2 = alloc(L2_TABLE_BYTES, L2_TABLE_BYTES)
            .ok_or(SmmuError::OutOfMemory("level-2 stream table"))?
            .raw();
        let slot = streams.base + 8 * u64::from(l1_index);
        streams.l2[l1_index as usize] = l2;
        ste_update::install_level2(
            &mut self.memory(),
            l2,
            L2_TABLE_BYTES,
            slot,
            l1_descriptor(l2),
            sid,
            &mut |c| self.submit(c),
        )
    }

    /// Translates `sid`'s DMA through stage 2 `cfg` (checked and adapted
    /// by `S2Config::for_smmu`: S2PS capped to the OAS, non-cacheable walks
    /// on a non-coherent SMMU, whose stage-2 tables the caller must then
    /// clean to the point of coherency after every change). The STE is written
    /// while it aborts (dwords 1..7 first, then dword 0 with V and Config
    /// in one 64-bit store) and then invalidated (CMD_CFGI_STE, CMD_SYNC),
    /// so the SMMU never sees half an STE.
    pub fn attach_stage2(&self, sid: u32, cfg: &S2Config) -> Result<(), SmmuError> {
        let ste = Ste::stage2(&cfg.for_smmu(&self.features)?);
        let streams = self.streams.lock();
        let at = streams
            .ste_address(sid)?
            .ok_or(SmmuError::StreamNotPrepared { sid })?;
        ste_update::install_ste(&mut self.memory(), at, sid, &ste, &mut |c| self.submit(c))
    }

    /// Makes `sid`'s STE abort again and invalidates it: once this returns,
    /// no new transaction from `sid` is translated. (TLB entries of the
    /// VMID stay until `invalidate_vmid`.)
    pub fn detach(&self, sid: u32) -> Result<(), SmmuError> {
        let streams = self.streams.lock();
        let Some(at) = streams.ste_address(sid)? else {
            // No level-2 table: the StreamID already aborts.
            return Ok(());
        };
        ste_update::abort_ste(&mut self.memory(), at, sid, &mut |c| self.submit(c))
    }

    /// Drops every TLB entry of `vmid` (CMD_TLBI_S12_VMALL, CMD_SYNC).
    pub fn invalidate_vmid(&self, vmid: Vmid) -> Result<(), SmmuError> {
        self.submit(&[Command::TlbiS12Vmall { vmid }])
    }

    /// Hands the pending events to `f` (at most [`EVENT_DRAIN_MAX`] per
    /// call, oldest first), tells the SMMU they are consumed and
    /// acknowledges an overflow (counted in `event_overflows`). Returns
    /// how many were handed out; call again while `events_pending`.
    pub fn drain_events(&self, f: &mut dyn FnMut(Event)) -> usize {
        let drained = self.evtq.lock().drain(EVENT_DRAIN_MAX, f);
        if drained.overflowed || drained.resynced {
            self.event_overflows.fetch_add(1, Ordering::Relaxed);
        }
        drained.events
    }

    /// Whether events wait in the queue.
    pub fn events_pending(&self) -> bool {
        self.evtq.lock().pending()
    }

    /// Times the event queue overflowed (events were lost) since probe.
    pub fn event_overflows(&self) -> u32 {
        self.event_overflows.load(Ordering::Relaxed)
    }

    /// The active global errors (SMMU_GERROR ^ SMMU_GERRORN), acknowledged,
    /// or `None`. CMDQ_ERR is reported but acknowledged by the command
    /// queue, which first replaces the refused command.
    pub fn take_gerror(&self) -> Option<u32> {
        // Under the command queue lock: it acknowledges CMDQ_ERR too.
        let _queue = self.cmdq.lock();
        let gerrorn = self.regs.gerrorn.get();
        let active = Gerror::active(Gerror(self.regs.gerror.get()), Gerror(gerrorn));
        if active.0 == 0 {
            return None;
        }
        let ack = active.with_cmdq_err(false);
        if ack.0 != 0 {
            self.regs.gerrorn.set(gerrorn ^ ack.0);
        }
        Some(active.0)
    }

    /// Enables the event queue and global error interrupts (wired), and
    /// waits (bounded) for SMMU_IRQ_CTRLACK.
    pub fn event_irq_enable(&self) {
        let ctrl = IrqCtrl(0).with_eventq_irqen(true).with_gerror_irqen(true);
        self.regs.irq_ctrl.set(ctrl.0);
        if let Err(e) = Regs::wait(&self.regs.irq_ctrlack, "SMMU_IRQ_CTRLACK", ctrl.0, |v| {
            v == ctrl.0
        }) {
            log::warn!(
                "SMMU at {:#x}: interrupts not enabled: {e}",
                self.regs.base()
            );
        }
    }

    /// Checks the SMMU is as `probe` left it: translating, both queues on,
    /// bypass aborting, and the command queue completing a CMD_SYNC.
    pub fn self_check(&self) -> Result<(), SmmuError> {
        let wanted = Cr0(0)
            .with_smmuen(true)
            .with_cmdqen(true)
            .with_eventqen(true);
        let ack = self.regs.cr0ack.get();
        if ack & wanted.0 != wanted.0 {
            return Err(SmmuError::AckTimeout {
                register: "SMMU_CR0ACK",
                wanted: wanted.0,
                seen: ack,
            });
        }
        let gbpa = self.regs.gbpa.get();
        if !Gbpa(gbpa).abort() {
            return Err(SmmuError::AckTimeout {
                register: "SMMU_GBPA",
                wanted: Gbpa(0).with_abort(true).0,
                seen: gbpa,
            });
        }
        self.submit(&[])
    }

    /// Issues `commands` and a CMD_SYNC and waits for them to complete.
    fn submit(&self, commands: &[Command]) -> Result<(), SmmuError> {
        Ok(self.cmdq.lock().submit(commands, POLL_BUDGET)?)
    }

    /// The stream table's memory.
    fn memory(&self) -> TableMemory {
        TableMemory {
            coherent: self.coherent,
        }
    }
}

/// Fills `bytes` at `pa` with abort STEs.
fn fill_abort(pa: u64, bytes: u64) {
    let abort = Ste::abort();
    for at in (0..bytes).step_by(Ste::BYTES as usize) {
        write_dwords(pa + at, &abort.0);
    }
}

/// Allocates `bytes` (at least 4 KiB) aligned to their size, zeroed and,
/// for a non-coherent SMMU, cleaned.
fn alloc_zeroed(
    alloc: &mut dyn FnMut(u64, u64) -> Option<PhysAddr>,
    bytes: u64,
    what: &'static str,
    coherent: bool,
) -> Result<u64, SmmuError> {
    let size = bytes.max(4096);
    let pa = alloc(size, size).ok_or(SmmuError::OutOfMemory(what))?.raw();
    // SAFETY: fresh memory from `alloc`, identity mapped, ours.
    unsafe { core::ptr::write_bytes(pa as *mut u8, 0, size as usize) };
    if !coherent {
        clean_invalidate(pa, size);
    }
    Ok(pa)
}
