//! The flood scenario of issue 12, on the GICv4 board and on GICv3
//! (`-gicv3`): partition alpha floods its virtual ITS past every cap,
//! makes the hypervisor log in a loop, then re-takes an abort forever;
//! partition beta meanwhile counts its own edu's MSIs (one per 250 ms
//! round) and its virtual timer's ticks (every 10 ms) and prints the
//! exact counts each round.
//!
//! What must hold: beta takes every MSI it sent exactly once and no other
//! interrupt, its ticks keep coming (bounded below, not timed exactly),
//! its lines keep appearing while alpha floods, the machine stays up
//! (beta goes on after alpha's end), the hypervisor's lines about alpha
//! stay few (rate-limited), and alpha ends either stopped with a clear
//! reason or still running in its loop.
//!
//! The guest side is `guests/testguest/src/guest/flood_tests.rs`; the
//! manifest `boards/qemu-virt/tests/flood.toml`.

use crate::qemu::Outcome;
use crate::scenarios::{expect, lines_of, no_failures, Scenario};
use std::time::Duration;

/// The GICv3 machine of the `-gicv3` variant.
const GICV3: &str = "virt,gic-version=3,virtualization=on,iommu=smmuv3";
/// One edu for each partition (alpha 00:01.0, beta 00:02.0).
const EDUS: &[&str] = &["-device", "edu,addr=1", "-device", "edu,addr=2"];
/// What alpha does (tests/flood.toml's bootargs): devices, events per
/// device, and the collection IDs its vITS allows (16-bit CIDbits).
const DEVICES: u32 = 64;
const EVENTS: u32 = 128;
const COLLECTION_IDS: u32 = 65536;
/// beta's timer period, in ms of counter time.
const TICK_MS: u64 = 10;
/// beta's round lines that must appear between alpha's flood start and
/// end markers (the flood lasts well over 5 s of counter time; a round is
/// 250 ms).
const MIN_ROUNDS_DURING_FLOOD: usize = 4;
/// beta's rounds after alpha's end (its stop line) before the run ends.
const ROUNDS_AFTER_STOP: usize = 4;
/// beta's rounds after alpha entered its abort loop after which alpha
/// counts as "still running" (30 s of counter time).
const ROUNDS_STILL_RUNNING: usize = 120;
/// Most hypervisor lines about alpha in the whole run: every kind of
/// guest-triggered line rate-limited (the first few, then powers of two)
/// stays far below this; one line per command, fault or access would not.
const MAX_HYPERVISOR_LINES_ABOUT_ALPHA: usize = 400;

/// The scenarios.
pub(crate) fn scenarios() -> Vec<Scenario> {
    let flood = |name, machine| Scenario {
        name,
        manifest: "tests/flood.toml",
        machine,
        qemu_args: EDUS,
        // The flood is bounded by counter time (about 7 s, longer when
        // loaded); the abort loop's 10,000 faults take up to a minute on a
        // loaded machine.
        timeout: Duration::from_secs(240),
        stop_when: |out| {
            out.contains("] FAIL")
                || rounds_after(out, "partition alpha: stopped") >= ROUNDS_AFTER_STOP
                || rounds_after(out, "[alpha] stuck: faulting at") >= ROUNDS_STILL_RUNNING
        },
        check: check_flood,
    };
    vec![
        flood(
            "flood-one-partition-floods-vits-and-logs-neighbour-loses-no-msi-or-tick",
            None,
        ),
        flood(
            "flood-one-partition-floods-vits-and-logs-neighbour-loses-no-msi-or-tick-gicv3",
            Some(GICV3),
        ),
    ]
}

/// One of beta's round lines: `flood-neighbour: round N: MSIs sent S
/// taken T other O; timer ticks K in E ms (one every 10 ms)`.
#[derive(Debug, PartialEq, Eq)]
struct Round {
    round: u64,
    sent: u64,
    taken: u64,
    other: u64,
    ticks: u64,
    elapsed_ms: u64,
}

impl Round {
    /// Parses a line of beta (without its `[beta] ` prefix).
    fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("flood-neighbour: round ")?;
        let n: Vec<u64> = rest
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect();
        let [round, sent, taken, other, ticks, elapsed_ms, ..] = n[..] else {
            return None;
        };
        Some(Self {
            round,
            sent,
            taken,
            other,
            ticks,
            elapsed_ms,
        })
    }
}

/// beta's round lines in `out`.
fn rounds(out: &str) -> Vec<Round> {
    lines_of(out, "beta")
        .into_iter()
        .filter_map(Round::parse)
        .collect()
}

/// How many round lines beta printed after the first line containing `marker`.
fn rounds_after(out: &str, marker: &str) -> usize {
    out.find(marker).map_or(0, |at| rounds(&out[at..]).len())
}

/// The hypervisor's log records (`[hv cpuN] LEVEL ...`, a record's
/// continuation lines not counted) about partition alpha: naming it, or
/// its vITS (`vITS 0.n`: alpha is partition 0).
fn hypervisor_lines_about_alpha(out: &str) -> usize {
    out.lines()
        .filter(|l| l.starts_with("[hv cpu"))
        .filter(|l| l.contains("partition alpha") || l.contains(" vITS 0."))
        .count()
}

fn check_flood(o: &Outcome) -> Result<(), String> {
    check_output(&o.output)
}

/// The checks on the captured console `out`.
fn check_output(out: &str) -> Result<(), String> {
    no_failures(out)?;
    // alpha did the whole flood, every cap check included.
    for line in [
        format!("[alpha] PASS flood: MAPC of all {COLLECTION_IDS} collection IDs done, queue not stalled"),
        format!("[alpha] PASS flood: MAPD of {DEVICES} devices done;"),
        format!("[alpha] PASS flood: MAPTI of {} events done;", DEVICES * EVENTS),
        "vITS rounds (MOVALL x2, INT of every event, MOVALL x2, MAPC retarget of IDs 0..256, MAPD V=0 of every device and back)".to_string(),
        "turns of log-triggering accesses".to_string(),
    ] {
        expect(out, &line)?;
    }
    let start = out
        .find("[alpha] flood: start at ")
        .ok_or("alpha did not say when its flood started")?;
    let end = out
        .find("[alpha] flood: end at ")
        .ok_or("alpha did not say when its flood ended")?;
    // beta kept printing while alpha flooded.
    let during = rounds(&out[start..end]).len();
    if during < MIN_ROUNDS_DURING_FLOOD {
        return Err(format!(
            "beta printed {during} round lines while alpha flooded, expected at least {MIN_ROUNDS_DURING_FLOOD}"
        ));
    }
    // Every round: each MSI sent taken exactly once by the round's end,
    // nothing else; once a second has passed, ticks at no less than a
    // quarter of their rate (QEMU's emulation under load delivers about
    // half of them without any flood).
    let all = rounds(out);
    for (i, r) in all.iter().enumerate() {
        let want_ticks = if r.elapsed_ms < 1000 {
            0
        } else {
            r.elapsed_ms / TICK_MS / 4
        };
        if r.round != i as u64 + 1 || r.sent != r.round {
            return Err(format!("beta's round lines are out of order at {r:?}"));
        }
        if r.taken != r.sent || r.other != 0 {
            return Err(format!(
                "beta round {}: sent {} MSIs, took {} (and {} other interrupts); expected each exactly once",
                r.round, r.sent, r.taken, r.other
            ));
        }
        if r.ticks < want_ticks {
            return Err(format!(
                "beta round {}: {} timer ticks in {} ms, expected at least {want_ticks} (one every {TICK_MS} ms, a quarter of the rate)",
                r.round, r.ticks, r.elapsed_ms
            ));
        }
    }
    // alpha ended stopped with a reason (after its flood), or still runs
    // its loop; either way the machine is up: beta goes on.
    let stops: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("partition alpha: stopped"))
        .collect();
    match stops[..] {
        [stop] => {
            let reason = stop
                .split_once("stopped (")
                .and_then(|(_, r)| r.strip_suffix(')'))
                .unwrap_or("");
            if reason.is_empty() {
                return Err(format!("alpha stopped without a reason: {stop}"));
            }
            let at = out.find(stop).unwrap_or(0);
            if at < end {
                return Err(format!(
                    "alpha was stopped during its flood ({stop}), before it reached its abort loop"
                ));
            }
            let after = rounds(&out[at..]).len();
            if after < ROUNDS_AFTER_STOP {
                return Err(format!(
                    "beta printed {after} round lines after alpha stopped, expected {ROUNDS_AFTER_STOP}"
                ));
            }
        }
        [] => {
            let after = rounds_after(out, "[alpha] stuck: faulting at");
            if after < ROUNDS_STILL_RUNNING {
                return Err(format!(
                    "alpha neither stopped nor was seen in its abort loop for {ROUNDS_STILL_RUNNING} of beta's rounds ({after})"
                ));
            }
        }
        _ => return Err(format!("alpha stopped more than once: {stops:?}")),
    }
    // The hypervisor's lines about alpha are rate-limited.
    let lines = hypervisor_lines_about_alpha(out);
    if lines > MAX_HYPERVISOR_LINES_ABOUT_ALPHA {
        return Err(format!(
            "{lines} hypervisor lines about alpha, expected at most {MAX_HYPERVISOR_LINES_ABOUT_ALPHA} (rate-limited)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// beta's round line `n` (sent = n), with `taken`, `other` and ticks
    /// at 60% of their rate over `n` x 250 ms.
    fn round(n: u64, taken: u64, other: u64) -> String {
        let ms = n * 250;
        format!(
            "[beta] flood-neighbour: round {n}: MSIs sent {n} taken {taken} other {other}; timer ticks {} in {ms} ms (one every 10 ms)\n",
            ms / TICK_MS * 6 / 10
        )
    }

    /// A run that passes: alpha's flood lines between beta's rounds 2 and
    /// 9, its stop after round 10, rounds to 14; `edit` may change a part.
    fn run(edit: impl Fn(&str, String) -> String) -> String {
        let mut out = String::from("[hv cpu0] INFO  partition alpha: CPUs [0, 1]\n");
        let alpha = [
            "[alpha] flood: start at 600 ms: 65536 collection IDs".to_string(),
            format!("[alpha] PASS flood: MAPC of all {COLLECTION_IDS} collection IDs done, queue not stalled; ..."),
            format!("[alpha] PASS flood: MAPD of {DEVICES} devices done; ..."),
            format!("[alpha] PASS flood: MAPTI of {} events done; ...", DEVICES * EVENTS),
            "[alpha] PASS flood: 1 vITS rounds (MOVALL x2, INT of every event, MOVALL x2, MAPC retarget of IDs 0..256, MAPD V=0 of every device and back) by 9 ms".to_string(),
            "[alpha] PASS flood: 9 turns of log-triggering accesses in 3000 ms".to_string(),
            "[alpha] flood: end at 2600 ms".to_string(),
            "[alpha] stuck: faulting at 0x44000000".to_string(),
        ];
        for n in 1..=14u64 {
            out += &edit("round", round(n, n, 0));
            if n == 2 {
                out += &edit("flood", alpha[..6].join("\n") + "\n");
            }
            if n == 9 {
                out += &edit("end", alpha[6..].join("\n") + "\n");
            }
            if n == 10 {
                out += &edit(
                    "stop",
                    "[hv cpu0] INFO  partition alpha: stopped (stuck re-taking the same exception)\n"
                        .to_string(),
                );
            }
        }
        out
    }

    #[test]
    fn a_round_line_parses() {
        let r = Round::parse(
            "flood-neighbour: round 7: MSIs sent 7 taken 7 other 0; timer ticks 170 in 1753 ms (one every 10 ms)",
        );
        assert_eq!(
            r,
            Some(Round {
                round: 7,
                sent: 7,
                taken: 7,
                other: 0,
                ticks: 170,
                elapsed_ms: 1753
            })
        );
        assert_eq!(Round::parse("flood-neighbour: start at 3 ms"), None);
    }

    #[test]
    fn a_run_as_the_issue_wants_passes() {
        assert_eq!(check_output(&run(|_, s| s)), Ok(()));
    }

    #[test]
    fn a_lost_an_extra_or_a_foreign_msi_fails() {
        for (taken, other) in [(4, 0), (6, 0), (5, 1)] {
            let out = run(|_, s| {
                if s.contains("round 5:") {
                    round(5, taken, other)
                } else {
                    s
                }
            });
            let e = check_output(&out).unwrap_err();
            assert!(e.contains("beta round 5: sent 5 MSIs"), "{e}");
        }
    }

    #[test]
    fn too_few_ticks_fail() {
        // Round 6: 1500 ms, so at least 37 ticks.
        let out = run(|_, s| s.replace("timer ticks 90 in 1500 ms", "timer ticks 36 in 1500 ms"));
        let e = check_output(&out).unwrap_err();
        assert!(e.contains("36 timer ticks in 1500 ms"), "{e}");
        let out = run(|_, s| s.replace("timer ticks 90 in 1500 ms", "timer ticks 37 in 1500 ms"));
        assert_eq!(check_output(&out), Ok(()));
    }

    #[test]
    fn a_neighbour_silent_during_the_flood_fails() {
        // alpha's end right after its start: no round of beta between.
        let out = run(|what, s| match what {
            "flood" => s + "[alpha] flood: end at 2600 ms\n[alpha] stuck: faulting at 0x44000000\n",
            "end" => String::new(),
            _ => s,
        });
        let e = check_output(&out).unwrap_err();
        assert!(
            e.contains("beta printed 0 round lines while alpha flooded"),
            "{e}"
        );
    }

    #[test]
    fn a_stop_without_reason_during_the_flood_or_a_machine_that_went_down_fails() {
        let no_reason = run(|what, s| {
            if what == "stop" {
                "[hv cpu0] INFO  partition alpha: stopped\n".into()
            } else {
                s
            }
        });
        assert!(check_output(&no_reason)
            .unwrap_err()
            .contains("without a reason"));
        let early = run(|what, s| match what {
            "stop" => String::new(),
            "flood" => s + "[hv cpu0] INFO  partition alpha: stopped (fatal exception)\n",
            _ => s,
        });
        assert!(check_output(&early)
            .unwrap_err()
            .contains("stopped during its flood"));
        let down = run(|what, s| {
            let n = Round::parse(s.trim_start_matches("[beta] ").trim_end()).map(|r| r.round);
            match (what, n) {
                ("round", Some(12..)) => String::new(),
                _ => s,
            }
        });
        assert!(check_output(&down)
            .unwrap_err()
            .contains("after alpha stopped"));
        let panic = run(|what, s| {
            if what == "stop" {
                s + "PANIC at hypervisor/src/x.rs:1\n"
            } else {
                s
            }
        });
        assert!(check_output(&panic).is_err());
    }

    #[test]
    fn a_flooder_still_in_its_loop_passes_only_when_watched_long_enough() {
        let watched = |rounds: u64| {
            let mut out = run(|what, s| if what == "stop" { String::new() } else { s });
            for n in 15..15 + rounds {
                out += &round(n, n, 0);
            }
            check_output(&out)
        };
        assert_eq!(watched(ROUNDS_STILL_RUNNING as u64), Ok(()));
        assert!(watched(10).unwrap_err().contains("neither stopped"));
    }

    #[test]
    fn an_unlimited_log_or_a_missing_flood_step_fails() {
        let loud = run(|what, s| {
            if what == "end" {
                "[hv cpu1] WARN  partition alpha: PCI config write refused: BadWidth\n"
                    .repeat(MAX_HYPERVISOR_LINES_ABOUT_ALPHA)
                    + &s
            } else {
                s
            }
        });
        assert!(check_output(&loud).unwrap_err().contains("rate-limited"));
        let short = run(|what, s| {
            if what == "flood" {
                s.replace("MAPD of 64 devices", "MAPD of 63 devices")
            } else {
                s
            }
        });
        assert!(check_output(&short)
            .unwrap_err()
            .contains("MAPD of 64 devices"));
    }
}
