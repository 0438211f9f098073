//! LPI pending tables as an OS (or firmware handing over) uses them
//! (IHI 0069, 5.1.2): bits written into a redistributor's pending table before
//! GICR_CTLR.EnableLPIs is set are LPIs pending once it is, each delivered
//! exactly once; clearing EnableLPIs leaves the pending state in the
//! table; enabling again delivers it. No ITS is involved: the pending
//! table alone makes them pending (IHI 0069, 5.1.2). Holds on bare QEMU's
//! GICv3/v4 (the oracle) and in a partition alike.

use super::gic;
use super::psci;
use super::vgic_tests::{settle, wait_until};
use super::vits_tests::its::{self, LpiTables, FIRST_LPI};
use core::sync::atomic::{AtomicU32, Ordering};

/// LPIs delivered as soon as EnableLPIs is set (priority 0xa0).
const PROMPT: [u32; 4] = [FIRST_LPI + 1, FIRST_LPI + 77, FIRST_LPI + 1000, 16383];
/// An LPI whose priority (0xe0) the PMR (0xd0) holds back: still pending
/// when EnableLPIs is cleared.
const HELD: u32 = FIRST_LPI + 500;
/// Interrupts taken per LPI of [`PROMPT`] and [`HELD`] (index 4).
static TAKEN: [AtomicU32; 5] = [const { AtomicU32::new(0) }; 5];
/// Interrupts with any other INTID.
static OTHER: AtomicU32 = AtomicU32::new(0);

fn handler(intid: u32) {
    let slot = PROMPT
        .iter()
        .position(|&l| l == intid)
        .or((intid == HELD).then_some(4));
    match slot {
        Some(i) => TAKEN[i].fetch_add(1, Ordering::AcqRel),
        None => OTHER.fetch_add(1, Ordering::AcqRel),
    };
    gic::eoir1(intid);
}

fn counts() -> [u32; 5] {
    core::array::from_fn(|i| TAKEN[i].load(Ordering::Acquire))
}

/// Whether `intid`'s bit is set in the pending table at `table`.
fn bit(table: usize, intid: u32) -> bool {
    // SAFETY: the table is ours (8 KiB of a 64 KiB pool page).
    let byte = unsafe { core::ptr::read_volatile((table + intid as usize / 8) as *const u8) };
    byte & (1 << (intid % 8)) != 0
}

fn set_bit(table: usize, intid: u32) {
    let at = (table + intid as usize / 8) as *mut u8;
    // SAFETY: the table is ours and EnableLPIs is 0: it is ours to write.
    unsafe { core::ptr::write_volatile(at, core::ptr::read_volatile(at) | 1 << (intid % 8)) };
}

/// pending-table: see the module comment.
pub fn run() -> ! {
    const W: &str = "pending-table";
    let gic = check!(W, its::discover_its(0));
    check!(W, gic.dist_enable());
    let me = super::mpidr();
    let Some(rd) = gic.redist_of(me) else {
        fail!("{W}: no redistributor with the affinity of MPIDR {me:#x}")
    };
    check!(W, its::redist_wake(&rd));
    gic::cpu_init();
    gic::mask_irqs();
    gic::set_hook(Some(handler));
    let tables = check!(W, LpiTables::new(1));
    for intid in PROMPT {
        tables.set(intid, 0xa0, true);
    }
    tables.set(HELD, 0xe0, true);
    let table = tables.pending_table(0);
    for intid in PROMPT.iter().copied().chain([HELD]) {
        set_bit(table, intid);
    }
    its::dsb();
    gic::set_pmr(0xd0);
    check!(W, tables.enable_on(&rd, 0));
    gic::unmask_irqs();
    let all = wait_until(500, || counts()[..4].iter().all(|&c| c >= 1));
    settle(50);
    gic::mask_irqs();
    let c = counts();
    let other = OTHER.load(Ordering::Acquire);
    if !all || c != [1, 1, 1, 1, 0] || other != 0 {
        fail!("{W}: after EnableLPIs: taken {c:?} (LPIs {PROMPT:?}, then {HELD}), {other} others; want [1, 1, 1, 1, 0] and 0");
    }
    println!("PASS {W}: 4 LPIs whose bits were written into the pending table before EnableLPIs taken exactly once each; LPI {HELD} held back by the PMR not taken");

    let before = check!(W, tables.disable_on(&rd));
    let ces = u32::from(before & (1 << 1) != 0);
    let left: [bool; 5] =
        core::array::from_fn(|i| bit(table, PROMPT.get(i).copied().unwrap_or(HELD)));
    if left != [false, false, false, false, true] {
        fail!("{W}: pending table after clearing EnableLPIs (LPIs {PROMPT:?}, then {HELD}): {left:?}; want only {HELD} set");
    }
    println!("PASS {W}: EnableLPIs cleared (CES {ces}): the pending table shows LPI {HELD} still pending, the delivered ones clear");
    gic::set_pmr(0xff);
    gic::unmask_irqs();
    settle(50);
    gic::mask_irqs();
    if counts() != [1, 1, 1, 1, 0] {
        fail!(
            "{W}: an LPI was taken while EnableLPIs was 0: {:?}",
            counts()
        );
    }
    check!(W, tables.enable_on(&rd, 0));
    gic::unmask_irqs();
    let held = wait_until(500, || counts()[4] >= 1);
    settle(50);
    gic::mask_irqs();
    let c = counts();
    if !held || c != [1, 1, 1, 1, 1] || OTHER.load(Ordering::Acquire) != 0 {
        fail!("{W}: after EnableLPIs again: taken {c:?}; want [1, 1, 1, 1, 1]");
    }
    println!("PASS {W}: nothing taken while EnableLPIs was 0; set again, LPI {HELD} from the table taken exactly once");
    println!("PASS {W}: done");
    psci::system_off()
}
