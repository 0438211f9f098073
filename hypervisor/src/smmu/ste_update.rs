//! The order in which the stream table is changed under a running SMMU
//! (IHI 0070, 3.21 "Structure access rules and update procedures"): the
//! SMMU may fetch an STE or a level-1 descriptor at any time, reads each
//! 64-bit word single-copy atomically, and caches what it fetched until
//! told otherwise by CMD_CFGI_STE. So an STE is only ever changed while it
//! aborts, with dword 0 (V and Config) written last, and a level-1
//! descriptor only points at a level-2 table already full of abort STEs.

use super::{Command, SmmuError, Ste};

/// The stream table's memory as the driver sees it.
pub trait StreamTableMemory {
    /// Reads the 64-bit word at `pa`.
    fn read(&mut self, pa: u64) -> u64;
    /// Writes `words` from `pa` on, in order, each one 64-bit store, and
    /// cleans them to the point of coherency if the SMMU does not snoop.
    fn write(&mut self, pa: u64, words: &[u64]);
    /// A DSB: every write so far is visible to the SMMU before any later one.
    fn barrier(&mut self);
}

/// Issues commands and a CMD_SYNC, returning once they completed.
pub type Submit<'a> = &'a mut dyn FnMut(&[Command]) -> Result<(), SmmuError>;

/// Makes the STE of `sid` at `at` `ste`: first abort (and forgotten by the
/// SMMU) if it is anything else, then dwords 1..7, a barrier, dword 0, and
/// CMD_CFGI_STE + CMD_SYNC. A fetch at any moment sees either an abort STE
/// or the whole new one.
pub fn install_ste(
    mem: &mut dyn StreamTableMemory,
    at: u64,
    sid: u32,
    ste: &Ste,
    submit: Submit<'_>,
) -> Result<(), SmmuError> {
    let abort = Ste::abort().0[0];
    if mem.read(at) != abort {
        mem.write(at, &[abort]);
        mem.barrier();
        submit(&[Command::CfgiSte { sid, leaf: true }])?;
    }
    mem.write(at + 8, &ste.0[1..]);
    mem.barrier();
    mem.write(at, &ste.0[..1]);
    mem.barrier();
    submit(&[Command::CfgiSte { sid, leaf: true }])
}

/// Makes the STE of `sid` at `at` abort, waits until the SMMU forgot the
/// old one, then clears the rest (ignored while Config = abort) so no
/// stale VMID or table address stays in memory.
pub fn abort_ste(
    mem: &mut dyn StreamTableMemory,
    at: u64,
    sid: u32,
    submit: Submit<'_>,
) -> Result<(), SmmuError> {
    let abort = Ste::abort();
    mem.write(at, &abort.0[..1]);
    mem.barrier();
    submit(&[Command::CfgiSte { sid, leaf: true }])?;
    mem.write(at + 8, &abort.0[1..]);
    mem.barrier();
    Ok(())
}

/// Fills the level-2 table at `l2` (`bytes` long) with abort STEs, then
/// points the level-1 descriptor at `l1_slot` to it (`descriptor`), and
/// invalidates what the SMMU cached for `sid` including the descriptor
/// (CMD_CFGI_STE with Leaf = 0).
pub fn install_level2(
    mem: &mut dyn StreamTableMemory,
    l2: u64,
    bytes: u64,
    l1_slot: u64,
    descriptor: u64,
    sid: u32,
    submit: Submit<'_>,
) -> Result<(), SmmuError> {
    let abort = Ste::abort();
    let mut at = l2;
    while at < l2 + bytes {
        mem.write(at, &abort.0);
        at += Ste::BYTES;
    }
    mem.barrier();
    mem.write(l1_slot, &[descriptor]);
    mem.barrier();
    submit(&[Command::CfgiSte { sid, leaf: false }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smmu::S2Config;
    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;

    /// What the driver did, in order.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Op {
        Write(u64, Vec<u64>),
        Barrier,
    }

    /// Memory that an SMMU may read at any barrier: records the operations
    /// and what a fetch of the STE at `watch` would have seen each time.
    #[derive(Default)]
    struct Fake {
        words: BTreeMap<u64, u64>,
        ops: Vec<Op>,
        watch: u64,
        seen: Vec<Ste>,
    }

    impl Fake {
        fn ste_at(&self, at: u64) -> Ste {
            let mut raw = [0; 8];
            for (i, word) in raw.iter_mut().enumerate() {
                *word = self.words.get(&(at + 8 * i as u64)).copied().unwrap_or(0);
            }
            Ste(raw)
        }
    }

    impl StreamTableMemory for Fake {
        fn read(&mut self, pa: u64) -> u64 {
            self.words.get(&pa).copied().unwrap_or(0)
        }
        fn write(&mut self, pa: u64, words: &[u64]) {
            for (i, w) in words.iter().enumerate() {
                self.words.insert(pa + 8 * i as u64, *w);
                // The SMMU may fetch between any two stores.
                let ste = self.ste_at(self.watch);
                self.seen.push(ste);
            }
            self.ops.push(Op::Write(pa, words.to_vec()));
        }
        fn barrier(&mut self) {
            self.ops.push(Op::Barrier);
        }
    }

    fn cfg(vmid: u16) -> S2Config {
        S2Config {
            vmid: crate::mm::Vmid::from_const(vmid),
            ttb: 0x4000_0000,
            t0sz: 24,
            sl0: 1,
            ps: 2,
            ir: 1,
            or: 1,
            sh: 3,
        }
    }

    /// Whether a fetch of `ste` is harmless: an abort STE (whatever the
    /// other dwords hold) or exactly one of the `allowed` STEs.
    fn harmless(ste: &Ste, allowed: &[Ste]) -> bool {
        (ste.valid() && ste.config() == 0) || allowed.contains(ste)
    }

    #[test]
    fn install_over_abort_writes_dword0_last_then_invalidates() {
        let at = 0x1000;
        let mut mem = Fake {
            watch: at,
            ..Fake::default()
        };
        mem.write(at, &Ste::abort().0);
        mem.ops.clear();
        mem.seen.clear();
        let ste = Ste::stage2(&cfg(5));
        let mut submitted = Vec::new();
        install_ste(&mut mem, at, 7, &ste, &mut |c| {
            submitted.push(c.to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!(
            mem.ops,
            [
                Op::Write(at + 8, ste.0[1..].to_vec()),
                Op::Barrier,
                Op::Write(at, ste.0[..1].to_vec()),
                Op::Barrier,
            ]
        );
        assert_eq!(submitted, [[Command::CfgiSte { sid: 7, leaf: true }]]);
        assert_eq!(mem.ste_at(at), ste);
        assert!(mem.seen.iter().all(|s| harmless(s, &[ste])));
    }

    #[test]
    fn replacing_a_live_ste_goes_through_abort_and_an_invalidation() {
        let at = 0x2000;
        let old = Ste::stage2(&cfg(1));
        let new = Ste::stage2(&cfg(2));
        let mut mem = Fake {
            watch: at,
            ..Fake::default()
        };
        mem.write(at, &old.0);
        mem.seen.clear();
        let mut log = Vec::new();
        install_ste(&mut mem, at, 3, &new, &mut |c| {
            log.push(c.to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!(
            log.len(),
            2,
            "one CFGI_STE after abort, one after the new STE"
        );
        assert_eq!(mem.ste_at(at), new);
        // No fetch ever saw a mix of the old and the new configuration.
        assert!(
            mem.seen.iter().all(|s| harmless(s, &[old, new])),
            "{:#x?}",
            mem.seen
        );
    }

    #[test]
    fn a_failed_invalidation_stops_before_the_new_ste_goes_live() {
        let at = 0x3000;
        let mut mem = Fake {
            watch: at,
            ..Fake::default()
        };
        mem.write(at, &Ste::stage2(&cfg(1)).0);
        let err = install_ste(&mut mem, at, 3, &Ste::stage2(&cfg(2)), &mut |_| {
            Err(SmmuError::OutOfMemory("test"))
        });
        assert!(err.is_err());
        // Left aborting, not half-written.
        assert!(harmless(&mem.ste_at(at), &[]));
    }

    #[test]
    fn abort_invalidates_before_clearing_the_rest() {
        let at = 0x4000;
        let mut mem = Fake {
            watch: at,
            ..Fake::default()
        };
        let live = Ste::stage2(&cfg(9));
        mem.write(at, &live.0);
        mem.ops.clear();
        mem.seen.clear();
        let mut calls = 0;
        abort_ste(&mut mem, at, 4, &mut |c| {
            assert_eq!(c, [Command::CfgiSte { sid: 4, leaf: true }]);
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(calls, 1);
        assert_eq!(mem.ops[0], Op::Write(at, Vec::from([1])));
        assert_eq!(mem.ste_at(at), Ste::abort());
        assert!(mem.seen.iter().all(|s| harmless(s, &[live])));
    }

    #[test]
    fn a_level2_table_is_full_of_abort_stes_before_level1_points_at_it() {
        let (l2, l1_slot) = (0x10_0000, 0x8000);
        let mut mem = Fake::default();
        let mut log = Vec::new();
        install_level2(
            &mut mem,
            l2,
            4 * Ste::BYTES,
            l1_slot,
            l2 | 9,
            0x42,
            &mut |c| {
                log.push(c.to_vec());
                Ok(())
            },
        )
        .unwrap();
        let descriptor_write = mem
            .ops
            .iter()
            .position(|op| matches!(op, Op::Write(pa, _) if *pa == l1_slot))
            .unwrap();
        assert_eq!(mem.ops[descriptor_write - 1], Op::Barrier);
        for i in 0..4 {
            assert_eq!(mem.ste_at(l2 + i * Ste::BYTES), Ste::abort());
        }
        assert_eq!(mem.words[&l1_slot], l2 | 9);
        assert_eq!(
            log,
            [[Command::CfgiSte {
                sid: 0x42,
                leaf: false
            }]]
        );
    }
}
