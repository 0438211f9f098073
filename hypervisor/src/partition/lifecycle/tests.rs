//! The lifecycle's orderings, against a machine that records each call.

use super::*;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

/// One recorded call.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    RunState(RunState),
    Kick,
    WaitParked,
    Release(ReleaseStep),
    Footprint(Footprint, u32),
    FreshModels,
    CopyImages(u32),
    AttachDma,
    Start,
    Stopped(String),
    Resetting(u32),
    RestartFailed,
    ReleaseSkipped,
}

struct Recorder {
    run: Cell<RunState>,
    boot: Cell<u32>,
    parks: bool,
    load_fails: bool,
    calls: RefCell<Vec<Call>>,
}

impl Recorder {
    fn new(run: RunState) -> Self {
        Self {
            run: Cell::new(run),
            boot: Cell::new(0),
            parks: true,
            load_fails: false,
            calls: RefCell::new(Vec::new()),
        }
    }

    fn record(&self, call: Call) {
        self.calls.borrow_mut().push(call);
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    fn position(&self, call: &Call) -> usize {
        self.calls()
            .iter()
            .position(|c| c == call)
            .unwrap_or_else(|| panic!("{call:?} not in {:?}", self.calls()))
    }
}

impl Machine for Recorder {
    type Error = ();

    fn change_run_state(&self, change: fn(RunState) -> Option<RunState>) -> Option<u32> {
        let next = change(self.run.get())?;
        self.run.set(next);
        self.record(Call::RunState(next));
        Some(self.boot.get())
    }
    fn set_run_state(&self, state: RunState) {
        self.run.set(state);
        self.record(Call::RunState(state));
    }
    fn kick_others(&self) {
        self.record(Call::Kick);
    }
    fn wait_others_parked(&self) -> bool {
        self.record(Call::WaitParked);
        self.parks
    }
    fn release_skipped(&self) {
        self.record(Call::ReleaseSkipped);
    }
    fn release(&self, step: ReleaseStep) {
        self.record(Call::Release(step));
    }
    fn log_footprint(&self, when: Footprint, boot: u32) {
        self.record(Call::Footprint(when, boot));
    }
    fn fresh_models(&self) -> Result<(), ()> {
        self.record(Call::FreshModels);
        Ok(())
    }
    fn copy_images(&self, boot: u32) -> Result<(), ()> {
        self.record(Call::CopyImages(boot));
        if self.load_fails {
            Err(())
        } else {
            Ok(())
        }
    }
    fn attach_dma(&self) {
        self.record(Call::AttachDma);
    }
    fn start(&self) {
        self.run.set(RunState::Running);
        self.record(Call::Start);
    }
    fn next_boot(&self) -> u32 {
        self.boot.set(self.boot.get() + 1);
        self.boot.get()
    }
    fn stopped(&self, reason: &str) {
        self.record(Call::Stopped(reason.into()));
    }
    fn resetting(&self, _reason: &str, boot: u32) {
        self.record(Call::Resetting(boot));
    }
    fn restart_failed(&self, _error: &()) {
        self.record(Call::RestartFailed);
    }
}

fn releases() -> Vec<Call> {
    RELEASE_ORDER.iter().map(|s| Call::Release(*s)).collect()
}

#[test]
fn release_detaches_dma_first_and_resets_the_bridge_after_the_its_is_empty() {
    let m = Recorder::new(RunState::Running);
    release(&m);
    assert_eq!(
        m.calls(),
        [
            Call::Release(ReleaseStep::DetachDma),
            Call::Release(ReleaseStep::MaskMsix),
            Call::Release(ReleaseStep::TeardownSoftwareRoutes),
            Call::Release(ReleaseStep::TeardownGicv4),
            Call::Release(ReleaseStep::ResetBridge),
        ]
    );
}

#[test]
fn load_releases_the_old_life_before_fresh_models_and_attaches_dma_last() {
    let m = Recorder::new(RunState::Stopped);
    load(&m, 0).unwrap();
    let mut expected = releases();
    expected.extend([Call::FreshModels, Call::CopyImages(0), Call::AttachDma]);
    assert_eq!(m.calls(), expected);
}

#[test]
fn stop_marks_the_state_before_kicking_and_releases_between_footprints() {
    let m = Recorder::new(RunState::Running);
    stop(&m, "SYSTEM_OFF");
    let mut expected = vec![
        Call::RunState(RunState::Stopped),
        Call::Kick,
        Call::WaitParked,
        Call::Footprint(Footprint::BeforeTeardown, 0),
    ];
    expected.extend(releases());
    expected.extend([
        Call::Footprint(Footprint::AfterTeardown, 0),
        Call::Stopped("SYSTEM_OFF".into()),
    ]);
    assert_eq!(m.calls(), expected);
}

#[test]
fn stop_waits_for_the_others_to_park_before_releasing_anything() {
    let m = Recorder::new(RunState::Running);
    stop(&m, "SYSTEM_OFF");
    assert!(m.position(&Call::Kick) < m.position(&Call::WaitParked));
    let first_release = m
        .calls()
        .iter()
        .position(|c| matches!(c, Call::Release(_) | Call::Footprint(..)))
        .unwrap();
    assert!(m.position(&Call::WaitParked) < first_release);
}

#[test]
fn a_stop_whose_cpu_never_parks_releases_nothing() {
    let mut m = Recorder::new(RunState::Running);
    m.parks = false;
    stop(&m, "SYSTEM_OFF");
    assert_eq!(
        m.calls(),
        [
            Call::RunState(RunState::Stopped),
            Call::Kick,
            Call::WaitParked,
            Call::ReleaseSkipped,
            Call::Stopped("SYSTEM_OFF".into()),
        ]
    );
}

#[test]
fn a_stop_during_a_reset_is_refused_and_touches_nothing() {
    let m = Recorder::new(RunState::Resetting);
    stop(&m, "fatal exception");
    assert!(m.calls().is_empty());
    assert_eq!(m.run.get(), RunState::Resetting);
}

#[test]
fn a_second_stop_does_nothing() {
    let m = Recorder::new(RunState::Stopped);
    stop(&m, "again");
    assert!(m.calls().is_empty());
}

#[test]
fn reset_parks_the_others_before_releasing_then_loads_the_next_life() {
    let m = Recorder::new(RunState::Running);
    reset(&m, "PSCI SYSTEM_RESET");
    let calls = m.calls();
    assert_eq!(calls[0], Call::RunState(RunState::Resetting));
    assert!(m.position(&Call::Kick) < m.position(&Call::WaitParked));
    assert!(m.position(&Call::WaitParked) < m.position(&Call::Release(ReleaseStep::DetachDma)));
    // The ending life's footprint is logged with its boot count (0), the
    // next life loads as boot 1 and starts last.
    assert!(calls.contains(&Call::Footprint(Footprint::AfterTeardown, 0)));
    assert!(
        m.position(&Call::Footprint(Footprint::AfterTeardown, 0)) < m.position(&Call::Resetting(1))
    );
    assert!(m.position(&Call::Resetting(1)) < m.position(&Call::FreshModels));
    assert_eq!(calls.last(), Some(&Call::Start));
    assert!(m.position(&Call::AttachDma) < m.position(&Call::Start));
    assert_eq!(m.run.get(), RunState::Running);
}

#[test]
fn only_a_running_partition_resets() {
    for state in [RunState::Stopped, RunState::Resetting] {
        let m = Recorder::new(state);
        reset(&m, "again");
        assert!(m.calls().is_empty(), "{state:?}");
    }
}

#[test]
fn a_cpu_that_never_parks_stops_the_partition_without_a_restart() {
    let mut m = Recorder::new(RunState::Running);
    m.parks = false;
    reset(&m, "PSCI SYSTEM_RESET");
    let calls = m.calls();
    assert!(m.position(&Call::WaitParked) < m.position(&Call::RunState(RunState::Stopped)));
    assert_eq!(calls.last(), Some(&Call::Stopped("reset failed".into())));
    assert!(!calls.contains(&Call::Start));
    assert!(!calls.contains(&Call::FreshModels));
    // Nothing is torn down under the CPU that is still in EL2.
    assert!(calls.contains(&Call::ReleaseSkipped));
    assert!(!calls.iter().any(|c| matches!(c, Call::Release(_))));
    assert_eq!(m.run.get(), RunState::Stopped);
}

#[test]
fn a_failed_restart_stops_the_partition_and_releases_again() {
    let mut m = Recorder::new(RunState::Running);
    m.load_fails = true;
    reset(&m, "PSCI SYSTEM_RESET");
    let calls = m.calls();
    assert!(!calls.contains(&Call::Start));
    assert!(m.position(&Call::RestartFailed) < m.position(&Call::RunState(RunState::Stopped)));
    assert_eq!(calls.last(), Some(&Call::Stopped("restart failed".into())));
    // The half-loaded life is released too: DetachDma comes after the copy.
    let last_detach = calls
        .iter()
        .rposition(|c| *c == Call::Release(ReleaseStep::DetachDma))
        .unwrap();
    assert!(last_detach > m.position(&Call::CopyImages(1)));
}

#[test]
fn run_state_changes() {
    assert_eq!(RunState::Running.stop(), Some(RunState::Stopped));
    assert_eq!(RunState::Resetting.stop(), None);
    assert_eq!(RunState::Stopped.stop(), None);
    assert_eq!(RunState::Running.reset(), Some(RunState::Resetting));
    assert_eq!(RunState::Resetting.reset(), None);
    assert_eq!(RunState::Stopped.reset(), None);
}

#[test]
fn an_epoch_ends_with_each_stop_or_reset() {
    let life = Life::new();
    let entered = life.epoch();
    assert!(life.is_current(entered));
    life.end_epoch();
    assert!(!life.is_current(entered), "a vCPU of the old life parks");
    assert!(life.is_current(life.epoch()));
}

#[test]
fn faults_are_numbered_from_one_across_lives() {
    let life = Life::new();
    assert_eq!(life.count_fault(), 1);
    life.end_epoch();
    assert_eq!(life.count_fault(), 2);
}

#[test]
fn released_from_a_stop_until_the_next_start() {
    let life = Life::new();
    assert!(!life.is_released(), "never started, never released");
    life.mark_released();
    assert!(life.is_released());
    life.started();
    assert!(!life.is_released());
}
