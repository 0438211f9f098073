//! The partition lifecycle as a state machine: which run-state changes
//! are allowed, and in which order stop, reset and load touch the
//! hardware. The kernel supplies the hardware steps through [`Machine`];
//! everything here is the order, which the host tests pin.
//!
//! The ordering facts (each step's reason is the hardware's):
//! - releasing a partition's devices starts by detaching its DMA in the
//!   SMMU (STEs abort, its VMID invalidated): from then on nothing the
//!   devices still do reaches memory that is about to be reused;
//! - then every physical MSI-X vector is masked while the functions still
//!   decode, before anything can turn their MSI-X off;
//! - then the physical ITS is emptied of the old life: the software path's
//!   routes (DISCARD, MAPD V=0, LPIs and ITTs freed) and the GICv4
//!   backend's vLPI mappings (DISCARD), so that no MSI of the old life can
//!   become pending in the fresh models a load creates;
//! - only then the virtual bridge is reset (decode, bus mastering, MSI off)
//!   and the BARs leave stage 2;
//! - a load releases first, then builds fresh models, copies the images
//!   and the device tree, and attaches the DMA last, when the guest (not
//!   yet running) cannot have enabled bus mastering;
//! - a stop or reset marks the run state and bumps the epoch under the
//!   control lock before kicking the other CPUs, so every CPU that sees the
//!   kick also sees the new epoch;
//! - a stop or reset then waits until every other CPU of the partition has
//!   left EL2's handling of its vCPU (parked in its run loop), not just
//!   been kicked: a CPU still in a trap handler may be using the vITS, the
//!   routes or the bridge the release tears down. A CPU that never leaves
//!   keeps the partition's devices as they are (nothing is torn down under
//!   it): a reset stops the partition instead, a stop ends unreleased;
//! - a stop during a reset is refused: the reset under way decides the
//!   partition's fate (its kick parks the stopping vCPU), so the two never
//!   tear down at once nor wait for each other.
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Whether a partition runs. `Resetting` keeps a second reset or a stop
/// from starting while one is under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Not running: before its first start, or stopped for good.
    Stopped,
    /// Its vCPUs may run.
    Running,
    /// Between SYSTEM_RESET and the restart.
    Resetting,
}

impl RunState {
    /// The state a stop moves to: only a running partition stops (a second
    /// stop does nothing; a reset under way finishes on its own).
    pub fn stop(self) -> Option<RunState> {
        (self == RunState::Running).then_some(RunState::Stopped)
    }

    /// The state a reset moves to; only a running partition resets.
    pub fn reset(self) -> Option<RunState> {
        (self == RunState::Running).then_some(RunState::Resetting)
    }
}

/// The lifecycle's counters and flags that CPUs read without the control
/// lock: the epoch (which life a vCPU entered the guest in), the guest
/// fault count, and whether a stop has released everything. One per
/// partition; the lifecycle changes them, the trap paths read them.
#[derive(Debug, Default)]
pub struct Life {
    /// Bumped on every stop or reset.
    epoch: AtomicU64,
    /// Guest faults answered with an injected abort or undefined
    /// instruction, over all lives.
    faults: AtomicU64,
    /// Set once a stop has released everything; cleared by a start.
    released: AtomicBool,
}

impl Life {
    /// Epoch 0, no fault, not released (never started).
    pub const fn new() -> Self {
        Self {
            epoch: AtomicU64::new(0),
            faults: AtomicU64::new(0),
            released: AtomicBool::new(false),
        }
    }

    /// The current epoch, to record when a vCPU enters the guest (under the
    /// control lock, so that a stop or reset either sees it in the guest or
    /// finds nothing pending for it).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Whether a vCPU that entered the guest in `entered` may stay: no stop
    /// or reset since.
    pub fn is_current(&self, entered: u64) -> bool {
        self.epoch() == entered
    }

    /// A stop or reset: every vCPU that entered in an older epoch must
    /// leave the guest and park. Bumped under the control lock, before the
    /// kick, so every CPU that sees the kick sees the new epoch.
    pub fn end_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Counts one guest fault; returns its number (1-based).
    pub fn count_fault(&self) -> u64 {
        self.faults
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1)
    }

    /// A start: the partition holds devices again.
    pub fn started(&self) {
        self.released.store(false, Ordering::Release);
    }

    /// A stop released everything (after the run state became `Stopped`).
    pub fn mark_released(&self) {
        // SeqCst, with the load in `is_released`: of two partitions
        // finishing their stops at once, at least one sees the other
        // released.
        self.released.store(true, Ordering::SeqCst);
    }

    /// Whether a stop released everything since the last start. The
    /// machine powers off only when every partition is stopped *and*
    /// released.
    pub fn is_released(&self) -> bool {
        self.released.load(Ordering::SeqCst)
    }
}

/// One hardware step of releasing a partition's devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseStep {
    /// SMMU: the functions' STEs abort, the VMID is invalidated.
    DetachDma,
    /// Every physical MSI-X vector masked.
    MaskMsix,
    /// The software path's physical ITS mappings torn down.
    TeardownSoftwareRoutes,
    /// The GICv4 backend's vLPI mappings discarded.
    TeardownGicv4,
    /// The virtual bridge reset (functions quiesced) and its BARs unmapped.
    ResetBridge,
}

/// The release steps, in the order the hardware needs (module doc).
pub const RELEASE_ORDER: [ReleaseStep; 5] = [
    ReleaseStep::DetachDma,
    ReleaseStep::MaskMsix,
    ReleaseStep::TeardownSoftwareRoutes,
    ReleaseStep::TeardownGicv4,
    ReleaseStep::ResetBridge,
];

/// What the lifecycle asks of the hardware and of the partition's state;
/// the kernel implements it for a running partition, tests record it.
pub trait Machine {
    /// Why a load failed.
    type Error;
    /// Sets the run state under the control lock if `change` allows it;
    /// on success also powers every vCPU off and bumps the epoch, and
    /// returns the boot count. `None`: the change was refused.
    fn change_run_state(&self, change: fn(RunState) -> Option<RunState>) -> Option<u32>;
    /// Sets the run state back (a reset that could not park the CPUs).
    fn set_run_state(&self, state: RunState);
    /// Kicks every other CPU of the partition out of the guest.
    fn kick_others(&self);
    /// Waits (bounded) for every other CPU of the partition to leave EL2's
    /// handling of its vCPU (parked); false (and a log line naming it) if
    /// one did not.
    fn wait_others_parked(&self) -> bool;
    /// A CPU did not park: the devices are left as they are (log line).
    fn release_skipped(&self);
    /// Runs one release step.
    fn release(&self, step: ReleaseStep);
    /// Logs what the partition holds on the physical ITS (`when`, boot).
    fn log_footprint(&self, when: Footprint, boot: u32);
    /// Fresh vGIC, vITS and console models.
    fn fresh_models(&self) -> Result<(), Self::Error>;
    /// Copies the images and the device tree of life `boot` into RAM.
    fn copy_images(&self, boot: u32) -> Result<(), Self::Error>;
    /// Attaches the functions' DMA to the partition's DMA stage 2.
    fn attach_dma(&self);
    /// Makes vCPU 0 pending at the entry point and runs the partition.
    fn start(&self);
    /// Increments the boot count and returns the new one.
    fn next_boot(&self) -> u32;
    /// The partition stopped: log, mark released, maybe power off.
    fn stopped(&self, reason: &str);
    /// A reset is under way (log line), for life `boot`.
    fn resetting(&self, reason: &str, boot: u32);
    /// A restart failed (log line).
    fn restart_failed(&self, error: &Self::Error);
}

/// When a footprint line is logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Footprint {
    /// Before the release at the end of a life.
    BeforeTeardown,
    /// After it: nothing the guest made may be left.
    AfterTeardown,
}

/// Releases the partition's devices in [`RELEASE_ORDER`].
pub fn release<M: Machine>(m: &M) {
    for step in RELEASE_ORDER {
        m.release(step);
    }
}

/// The end of life `boot`: release, with the footprint logged around it.
fn end_of_life<M: Machine>(m: &M, boot: u32) {
    m.log_footprint(Footprint::BeforeTeardown, boot);
    release(m);
    m.log_footprint(Footprint::AfterTeardown, boot);
}

/// Loads life `boot`: the old life released first, then fresh models, the
/// images, and the DMA attached last.
pub fn load<M: Machine>(m: &M, boot: u32) -> Result<(), M::Error> {
    release(m);
    m.fresh_models()?;
    m.copy_images(boot)?;
    m.attach_dma();
    Ok(())
}

/// Stops a running partition for good (a second stop, or one during a
/// reset, does nothing): the other CPUs parked, then the devices released.
pub fn stop<M: Machine>(m: &M, reason: &str) {
    let Some(boot) = m.change_run_state(RunState::stop) else {
        return;
    };
    m.kick_others();
    if m.wait_others_parked() {
        end_of_life(m, boot);
    } else {
        m.release_skipped();
    }
    m.stopped(reason);
}

/// Resets a running partition from one of its vCPUs: the others parked,
/// the devices released, the next life loaded and started. A CPU that
/// never leaves the guest, or a failed load, stops the partition instead.
pub fn reset<M: Machine>(m: &M, reason: &str) {
    let Some(ended) = m.change_run_state(RunState::reset) else {
        return;
    };
    m.kick_others();
    if !m.wait_others_parked() {
        // Nothing is released under a CPU still in EL2.
        m.set_run_state(RunState::Stopped);
        m.release_skipped();
        m.stopped("reset failed");
        return;
    }
    end_of_life(m, ended);
    let boot = m.next_boot();
    m.resetting(reason, boot);
    match load(m, boot) {
        Ok(()) => m.start(),
        Err(e) => {
            m.restart_failed(&e);
            // The others are still parked (nothing started): the half-loaded
            // life is released like any other.
            m.set_run_state(RunState::Stopped);
            end_of_life(m, boot);
            m.stopped("restart failed");
        }
    }
}

#[cfg(test)]
mod tests;
