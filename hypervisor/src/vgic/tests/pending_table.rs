//! LPI pending tables: loaded when EnableLPIs goes 0 -> 1 (PTZ honoured),
//! written back when it goes 1 -> 0, bounded, and a bad table ignored.

use super::*;
use crate::guest_mem::{FakeGuestMemory, GuestMemory};

/// Guest RAM: the property table at its start, vCPU 0's pending table at
/// +64 KiB, 128 KiB in all.
const RAM: u64 = 0x4000_0000;
const PEND: u64 = RAM + 0x1_0000;

/// A vGIC whose vCPU 0 has PROPBASER (16 INTID bits) and PENDBASER set,
/// LPIs still disabled, and guest RAM with `enabled` LPIs configured.
fn setup(enabled: &[u32]) -> (Vgic, FakeGuestMemory) {
    let mut g = vgic();
    let mut mem = FakeGuestMemory::new(Ipa(RAM), 0x2_0000);
    for &intid in enabled {
        mem.write(Ipa(RAM + u64::from(intid - 8192)), &[0xa1])
            .unwrap();
    }
    write(&mut g, 0, rd_frame(0) + gicr_offset::PROPBASER, 8, RAM | 15);
    write(&mut g, 0, rd_frame(0) + gicr_offset::PENDBASER, 8, PEND);
    (g, mem)
}

fn set_bit(mem: &mut FakeGuestMemory, table: u64, intid: u32) {
    let at = Ipa(table + u64::from(intid / 8));
    let mut byte = [0u8];
    mem.read(at, &mut byte).unwrap();
    mem.write(at, &[byte[0] | 1 << (intid % 8)]).unwrap();
}

/// The INTIDs whose bits are set in the table at `table` (LPI part).
fn bits(mem: &FakeGuestMemory, table: u64) -> Vec<u32> {
    let mut out = Vec::new();
    let mut buf = alloc::vec![0u8; 0x2000 - 0x400];
    mem.read(Ipa(table + 0x400), &mut buf).unwrap();
    for (i, byte) in buf.iter().enumerate() {
        for b in 0..8 {
            if byte & (1 << b) != 0 {
                out.push(8192 + (i as u32) * 8 + b);
            }
        }
    }
    out
}

/// Writes GICR_CTLR of vCPU 0 and carries out the pending-table action as
/// the kernel does.
fn enable_lpis(g: &mut Vgic, mem: &mut FakeGuestMemory, on: bool) -> TableTransfer {
    let actions = write(g, 0, rd_frame(0) + gicr_offset::CTLR, 4, u64::from(on));
    assert!(actions.hardware.contains(&Action::LpisEnabled {
        vcpu: VcpuIndex::new(0),
        enabled: on
    }));
    let done = if on {
        let table = g.lpi_table(VcpuIndex::new(0), mem).unwrap();
        g.load_pending_table(VcpuIndex::new(0), mem, &table)
            .unwrap()
    } else {
        g.store_pending_table(VcpuIndex::new(0), mem).unwrap()
    };
    done.1
}

fn taken(g: &mut Vgic) -> Vec<u32> {
    let mut all: Vec<u32> = run_guest(g, 0, 4, 16).iter().map(|t| t.intid).collect();
    all.extend(run_guest(g, 0, 4, 16).iter().map(|t| t.intid));
    all.sort_unstable();
    all
}

#[test]
fn bits_written_before_enable_lpis_are_delivered_once_each() {
    let lpis = [8195, 8892, 16000, 65535];
    let (mut g, mut mem) = setup(&lpis);
    for intid in lpis {
        set_bit(&mut mem, PEND, intid);
    }
    // Nothing before EnableLPIs.
    assert!(run_guest(&mut g, 0, 4, 16).is_empty());
    let done = enable_lpis(&mut g, &mut mem, true);
    assert_eq!((done.lpis, done.bytes), (4, 0x2000 - 0x400));
    assert!(!done.skipped_ptz && !done.unreadable);
    assert_eq!(taken(&mut g), lpis);
    assert!(run_guest(&mut g, 0, 4, 16).is_empty(), "each exactly once");
}

#[test]
fn ptz_says_the_table_is_zero_and_it_is_not_read() {
    let (mut g, mut mem) = setup(&[8200]);
    set_bit(&mut mem, PEND, 8200);
    write(
        &mut g,
        0,
        rd_frame(0) + gicr_offset::PENDBASER,
        8,
        PEND | 1 << 62,
    );
    let done = enable_lpis(&mut g, &mut mem, true);
    assert!(done.skipped_ptz);
    assert_eq!((done.lpis, done.bytes), (0, 0));
    assert!(run_guest(&mut g, 0, 4, 16).is_empty());
    // PTZ written in the upper word alone counts too; a later write without it clears it.
    write(&mut g, 0, rd_frame(0) + gicr_offset::CTLR, 4, 0);
    g.store_pending_table(VcpuIndex::new(0), &mut mem).unwrap();
    write(
        &mut g,
        0,
        rd_frame(0) + gicr_offset::PENDBASER + 4,
        4,
        1 << 30,
    );
    assert!(enable_lpis(&mut g, &mut mem, true).skipped_ptz);
    write(&mut g, 0, rd_frame(0) + gicr_offset::CTLR, 4, 0);
    write(&mut g, 0, rd_frame(0) + gicr_offset::PENDBASER, 8, PEND);
    set_bit(&mut mem, PEND, 8200);
    assert_eq!(enable_lpis(&mut g, &mut mem, true).lpis, 1);
}

#[test]
fn clearing_enable_lpis_writes_the_pending_state_back_and_holds_none() {
    let (mut g, mut mem) = setup(&[8200, 8300, 9000]);
    enable_lpis(&mut g, &mut mem, true);
    let table = g.lpi_table(VcpuIndex::new(0), &mem).unwrap();
    for intid in [8200, 8300, 9000] {
        g.set_lpi_pending(VcpuIndex::new(0), VirtIntId::from_const(intid), &table)
            .unwrap();
    }
    // 8300 sits in a list register (written by another vCPU's trap: not folded).
    let image = g.flush(VcpuIndex::new(0), 1).unwrap();
    assert_eq!(image.used, 1);
    // A stale bit the table had before must be cleared by the write-back.
    set_bit(&mut mem, PEND, 10_000);
    let done = enable_lpis(&mut g, &mut mem, false);
    assert_eq!(done.lpis, 3);
    assert_eq!(bits(&mem, PEND), [8200, 8300, 9000]);
    // The listed copy is dropped when its vCPU folds; nothing left in the model.
    g.fold(VcpuIndex::new(0), &image.lrs[..1], 0, 0).unwrap();
    for intid in [8200, 8300, 9000] {
        assert!(!g.lpi_pending(VcpuIndex::new(0), VirtIntId::from_const(intid)));
    }
    // Enabled again (PTZ = 0): the same three, each once.
    let done = enable_lpis(&mut g, &mut mem, true);
    assert_eq!(done.lpis, 3);
    assert_eq!(taken(&mut g), [8200, 8300, 9000]);
    assert!(run_guest(&mut g, 0, 4, 16).is_empty());
}

#[test]
fn a_table_outside_ram_is_ignored_and_counted() {
    let (mut g, mut mem) = setup(&[8200]);
    write(
        &mut g,
        0,
        rd_frame(0) + gicr_offset::PENDBASER,
        8,
        0x7_0000_0000,
    );
    let done = enable_lpis(&mut g, &mut mem, true);
    assert!(done.unreadable);
    assert_eq!(done.lpis, 0);
    assert_eq!(g.counters().pending_table_faults, 1);
    let done = enable_lpis(&mut g, &mut mem, false);
    assert!(done.unreadable);
    assert_eq!(g.counters().pending_table_faults, 2);
    // Partly outside (RAM ends 3 KiB into the LPI bits): the part inside
    // is read, then the rest is given up.
    write(&mut g, 0, rd_frame(0) + gicr_offset::CTLR, 4, 0);
    write(&mut g, 0, rd_frame(0) + gicr_offset::PENDBASER, 8, PEND);
    let mut short = FakeGuestMemory::new(Ipa(RAM), 0x1_1000);
    set_bit(&mut short, PEND, 8200);
    let done = enable_lpis(&mut g, &mut short, true);
    assert!(done.unreadable);
    assert_eq!((done.lpis, done.bytes), (1, 0xc00));
}

#[test]
fn the_table_read_is_bounded_by_propbaser_idbits() {
    let (mut g, mut mem) = setup(&[8200, 16384]);
    // IDbits 13: 14 INTID bits, LPIs 8192..16383: 1 KiB of pending bits.
    write(&mut g, 0, rd_frame(0) + gicr_offset::PROPBASER, 8, RAM | 13);
    set_bit(&mut mem, PEND, 8200);
    set_bit(&mut mem, PEND, 16384);
    let done = enable_lpis(&mut g, &mut mem, true);
    assert_eq!((done.lpis, done.bytes), (1, 0x400));
}
