//! Where the hypervisor's instructions go: an instruction profile of EL2
//! from QEMU's own execution log, no hypervisor change needed.
//!
//! QEMU runs the unmodified bench configuration with `-d
//! exec,nochain,in_asm` restricted (`-dfilter`) to the hypervisor's code:
//! `in_asm` prints every translation block (TB) of hypervisor code once,
//! with its instructions, and `exec` with `nochain` prints a line every
//! time a TB is executed. The instructions of each executed TB are then
//! attributed to the function (ELF symbol) holding its address. One exit
//! is the stretch of one CPU's TBs from a lower-EL vector (`el2_vectors` +
//! 0x400 synchronous, + 0x480 IRQ) to the TB of `guest_resume`, which ends
//! in the ERET. Exits are classified by what they executed: an IRQ exit
//! of the software MSI path, a hypercall, a trapped WFI (a TB holding a
//! `wfi` instruction; its count spans the wait and the wake-up's handling
//! until the guest resumes: the instructions executed at EL2 per wake).
//!
//! Deterministic: the same code gives the same counts (the guest's inputs
//! are the same every boot; nothing at EL2 polls on wall time on these
//! paths). Inlined functions count in their caller.

use super::report::{median, Figure, Report};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Time bound of one profiled boot (logging slows QEMU down).
pub const TIMEOUT: Duration = Duration::from_secs(240);

/// A function symbol of the hypervisor ELF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub address: u64,
    pub size: u64,
    pub name: String,
}

/// The hypervisor's symbols, by address, and the span of its code.
pub struct Symbols {
    by_address: Vec<Symbol>,
}

impl Symbols {
    /// The functions (and assembly labels) of an ELF64 little-endian file.
    pub fn from_elf(elf: &[u8]) -> Option<Self> {
        // Functions, and the assembly's labels (NOTYPE) in a section.
        let mut by_address: Vec<Symbol> = elf_symbols(elf)?
            .into_iter()
            .filter(|(kind, _)| *kind == 2 || *kind == 0)
            .map(|(_, s)| s)
            .collect();
        // Functions first among symbols at one address.
        by_address.sort_by_key(|s| (s.address, s.size == 0));
        by_address.dedup_by_key(|s| s.address);
        Some(Self { by_address })
    }

    /// The address of the symbol called `name`.
    pub fn address(&self, name: &str) -> Option<u64> {
        self.by_address
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.address)
    }

    /// The function holding `address`.
    pub fn function(&self, address: u64) -> &str {
        let at = self.by_address.partition_point(|s| s.address <= address);
        match at.checked_sub(1).and_then(|i| self.by_address.get(i)) {
            Some(s) => &s.name,
            None => "?",
        }
    }

    /// [lowest, highest) address of the code symbols.
    pub fn span(&self) -> Option<(u64, u64)> {
        let first = self.by_address.first()?;
        let last = self.by_address.last()?;
        Some((first.address, last.address + last.size.max(4)))
    }
}

/// The size of the data object whose demangled name is `name`.
pub fn object_size(elf: &[u8], name: &str) -> Option<u64> {
    elf_symbols(elf)?
        .into_iter()
        .find(|(kind, s)| *kind == 1 && s.name == name)
        .map(|(_, s)| s.size)
}

/// Every named, defined symbol of an ELF64 little-endian file with its
/// type (STT_*), names demangled.
fn elf_symbols(elf: &[u8]) -> Option<Vec<(u8, Symbol)>> {
    {
        let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
        let u32_at = |at: usize| Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?));
        let u64_at = |at: usize| Some(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?));
        if elf.get(..4)? != b"\x7fELF" || *elf.get(4)? != 2 {
            return None;
        }
        let shoff = usize::try_from(u64_at(0x28)?).ok()?;
        let (shsize, shnum) = (usize::from(u16_at(0x3a)?), usize::from(u16_at(0x3c)?));
        let section = |i: usize| -> Option<(u32, usize, usize, u32)> {
            let at = shoff + i * shsize;
            Some((
                u32_at(at + 4)?,
                usize::try_from(u64_at(at + 0x18)?).ok()?,
                usize::try_from(u64_at(at + 0x20)?).ok()?,
                u32_at(at + 0x28)?,
            ))
        };
        let mut by_address = Vec::new();
        for i in 0..shnum {
            let (kind, offset, size, link) = section(i)?;
            if kind != 2 {
                continue; // SHT_SYMTAB only
            }
            let (_, str_offset, str_size, _) = section(usize::try_from(link).ok()?)?;
            let strings = elf.get(str_offset..str_offset + str_size)?;
            for at in (offset..offset + size).step_by(24) {
                let name = usize::try_from(u32_at(at)?).ok()?;
                let info = *elf.get(at + 4)?;
                let shndx = u16_at(at + 6)?;
                let (address, size) = (u64_at(at + 8)?, u64_at(at + 16)?);
                let kind = info & 0xf;
                if shndx == 0 || kind > 2 || address == 0 {
                    continue;
                }
                let raw = strings.get(name..)?;
                let end = raw.iter().position(|&b| b == 0)?;
                let raw = std::str::from_utf8(&raw[..end]).ok()?;
                if raw.is_empty() || raw.starts_with('$') || raw.starts_with(".L") {
                    continue;
                }
                by_address.push((
                    kind,
                    Symbol {
                        address,
                        size,
                        name: demangle(raw),
                    },
                ));
            }
        }
        Some(by_address)
    }
}

/// A legacy-mangled Rust symbol (`_ZN...17h<hash>E`) as a path, without
/// the hash; other names as they are.
pub fn demangle(raw: &str) -> String {
    let Some(mut rest) = raw.strip_prefix("_ZN") else {
        return raw.to_string();
    };
    let mut parts = Vec::new();
    while let Some(len_end) = rest.find(|c: char| !c.is_ascii_digit()) {
        let Ok(len) = rest[..len_end].parse::<usize>() else {
            break;
        };
        let Some(part) = rest.get(len_end..len_end + len) else {
            break;
        };
        parts.push(part);
        rest = &rest[len_end + len..];
    }
    if parts
        .last()
        .is_some_and(|p| p.len() == 17 && p.starts_with('h'))
    {
        parts.pop();
    }
    let joined = parts.join("::");
    joined
        .replace("$LT$", "<")
        .replace("$GT$", ">")
        .replace("$u20$", " ")
        .replace("$RF$", "&")
        .replace("$C$", ",")
        .replace("$u7b$", "{")
        .replace("$u7d$", "}")
        .replace("..", "::")
}

/// One exit: from a lower-EL vector to the ERET back into the guest.
#[derive(Debug, Default, Clone)]
pub struct Exit {
    /// Taken through the IRQ vector (else synchronous).
    pub irq: bool,
    /// It executed a WFI at EL2 (a trapped WFI under `wfi = "doorbell"`).
    pub waited: bool,
    /// Instructions executed at EL2.
    pub instructions: u64,
    /// Instructions per function.
    pub by_function: BTreeMap<String, u64>,
}

impl Exit {
    /// Whether it ran a function whose name contains `part`.
    pub fn ran(&self, part: &str) -> bool {
        self.by_function.keys().any(|f| f.contains(part))
    }
}

/// The exits of one logged boot.
pub fn exits(log: &Path, symbols: &Symbols) -> Result<Vec<Exit>, String> {
    let vectors = symbols
        .address("el2_vectors")
        .ok_or("no el2_vectors symbol")?;
    let resume = symbols
        .address("guest_resume")
        .ok_or("no guest_resume symbol")?;
    let file = std::fs::File::open(log).map_err(|e| format!("{}: {e}", log.display()))?;
    // Instructions of each translated block, and whether it holds a WFI.
    let mut blocks: HashMap<u64, (u64, bool)> = HashMap::new();
    let mut current: Option<u64> = None;
    let mut open: HashMap<u32, Exit> = HashMap::new();
    let mut done = Vec::new();
    for line in BufReader::new(file).split(b'\n') {
        let line = line.map_err(|e| format!("{}: {e}", log.display()))?;
        let line = String::from_utf8_lossy(&line);
        if let Some((cpu, pc)) = parse_trace(&line) {
            current = None;
            if pc == vectors + 0x400 || pc == vectors + 0x480 {
                open.insert(
                    cpu,
                    Exit {
                        irq: pc == vectors + 0x480,
                        ..Exit::default()
                    },
                );
            }
            let Some(exit) = open.get_mut(&cpu) else {
                continue;
            };
            let (n, wfi) = blocks.get(&pc).copied().unwrap_or((0, false));
            exit.instructions += n;
            exit.waited |= wfi;
            *exit
                .by_function
                .entry(symbols.function(pc).to_string())
                .or_default() += n;
            if (resume..resume + 0x40).contains(&pc) {
                if let Some(exit) = open.remove(&cpu) {
                    done.push(exit);
                }
            }
        } else if let Some((address, text)) = parse_insn(&line) {
            let start = *current.get_or_insert(address);
            let entry = blocks.entry(start).or_insert((0, false));
            if start == address {
                *entry = (0, false);
            }
            entry.0 += 1;
            entry.1 |= text.split_whitespace().any(|w| w == "wfi");
        } else if line.starts_with("IN:") {
            current = None;
        }
    }
    Ok(done)
}

/// `Trace <cpu>: <host ptr> [<cs_base>/<pc>/...]` -> (cpu, pc).
fn parse_trace(line: &str) -> Option<(u32, u64)> {
    let rest = line.strip_prefix("Trace ")?;
    let (cpu, rest) = rest.split_once(':')?;
    let fields = rest.split_once('[')?.1;
    let pc = fields.split('/').nth(1)?;
    Some((
        cpu.trim().parse().ok()?,
        u64::from_str_radix(pc.trim_start_matches("0x"), 16).ok()?,
    ))
}

/// `0x<address>:  <encoding>  <mnemonic> ...` -> (address, the rest).
fn parse_insn(line: &str) -> Option<(u64, &str)> {
    let rest = line.strip_prefix("0x")?;
    let (address, text) = rest.split_once(':')?;
    Some((u64::from_str_radix(address, 16).ok()?, text))
}

/// QEMU arguments that log `symbols`' code to `log`.
pub fn log_args(symbols: &Symbols, log: &Path) -> Result<Vec<String>, String> {
    let (start, end) = symbols.span().ok_or("the hypervisor ELF has no symbols")?;
    Ok(vec![
        "-d".into(),
        "exec,nochain,in_asm".into(),
        "-D".into(),
        log.display().to_string(),
        "-dfilter".into(),
        format!("{start:#x}..{:#x}", end - 1),
    ])
}

/// Phases of an exit, by function-name fragments (first match wins), for
/// the breakdown table.
const PHASES: [(&str, &[&str]); 9] = [
    (
        "entry/exit: vectors, guest registers saved and restored, ERET",
        &[
            "el2_vectors",
            "lower_el_trap",
            "guest_resume",
            "handle_lower_el",
        ],
    ),
    (
        "trap decode and dispatch",
        &["trap::decode", "handle_sync", "handle_trap"],
    ),
    (
        "physical interrupt: acknowledge, priority drop, deactivate",
        &["cpu_interface", "take_physical_interrupts"],
    ),
    (
        "route lookup: physical LPI -> partition, vCPU, vINTID",
        &["msi_route", "passthrough_msi"],
    ),
    (
        "vGIC: list registers read back and folded (fold)",
        &["fold"],
    ),
    (
        "vGIC: pending interrupts into the list registers (flush)",
        &["flush", "write_lr"],
    ),
    (
        "vGIC state: pending, priorities, injection",
        &["vgic::", "inject"],
    ),
    ("vITS", &["vits"]),
    ("locks", &["spin::", "lock"]),
];

/// The phase a function belongs to.
pub fn phase(function: &str) -> &'static str {
    PHASES
        .iter()
        .find(|(_, parts)| parts.iter().any(|p| function.contains(p)))
        .map_or("other", |(name, _)| name)
}

/// Per phase and per function, the instructions of `exit`, as table lines.
fn breakdown(what: &str, exit: &Exit) -> String {
    let mut phases: BTreeMap<&str, u64> = BTreeMap::new();
    for (function, n) in &exit.by_function {
        *phases.entry(phase(function)).or_default() += n;
    }
    let mut lines = format!("  {what}: {} instructions at EL2\n", exit.instructions);
    let mut sorted: Vec<_> = phases.into_iter().collect();
    sorted.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
    for (name, n) in sorted {
        lines += &format!("    {n:>6}  {name}\n");
    }
    let mut functions: Vec<_> = exit.by_function.iter().collect();
    functions.sort_by_key(|&(_, n)| std::cmp::Reverse(*n));
    lines += "    by function (inlined code counts in its caller):\n";
    for (function, n) in functions.into_iter().take(12) {
        let short: String = function.chars().take(100).collect();
        lines += &format!("    {n:>6}  {short}\n");
    }
    lines
}

/// The exit whose count is the median of `exits`' (the lower middle).
fn median_exit(exits: &[&Exit]) -> Option<Exit> {
    let mut sorted: Vec<&Exit> = exits.to_vec();
    sorted.sort_by_key(|e| e.instructions);
    sorted
        .get(sorted.len().checked_sub(1)? / 2)
        .map(|e| (*e).clone())
}

/// One profiled configuration: its name, the QEMU command (without the
/// log arguments) and which exits it reports.
pub struct Profiled {
    pub tag: &'static str,
    pub what: String,
    pub command: Command,
}

/// Runs `config` once with the log on, and adds its figures.
pub fn measure(
    symbols: &Symbols,
    config: Profiled,
    logs: &Path,
    done_marker: &str,
    report: &mut Report,
) -> Result<String, String> {
    let log = logs.join(format!("bench-el2-{}.qemu-log", config.tag));
    let console = logs.join(format!("bench-el2-{}.log", config.tag));
    let _ = std::fs::remove_file(&log);
    let mut cmd = config.command;
    cmd.args(log_args(symbols, &log)?);
    let outcome = crate::qemu::run_captured(cmd, TIMEOUT, &|out: &str| {
        out.contains(done_marker) || out.contains("FAIL")
    })?;
    let _ = std::fs::write(&console, &outcome.output);
    if outcome.timed_out || outcome.output.contains("FAIL") {
        return Err(format!(
            "profiled boot did not reach `{done_marker}` (console: {})",
            console.display()
        ));
    }
    let exits = exits(&log, symbols)?;
    // The log is large; the figures and the table keep what it says.
    let _ = std::fs::remove_file(&log);
    let mut table = String::new();
    let mut add = |name: String, kind: &str, chosen: Vec<&Exit>, what: String| {
        let mut counts: Vec<f64> = chosen.iter().map(|e| e.instructions as f64).collect();
        if counts.is_empty() {
            report.push(Figure::missing(
                &name,
                "instructions",
                &what,
                "no such exit in the profiled boot",
            ));
            return;
        }
        let n = counts.len();
        let value = median(&mut counts);
        report.push(Figure::number(
            name.clone(),
            value,
            "instructions",
            format!(
                "{what}; median of {n} exits, {} (QEMU -d exec,nochain,in_asm profile of EL2)",
                config.what
            ),
        ));
        if let Some(exit) = median_exit(&chosen) {
            table += &breakdown(&format!("{name} ({kind}, median of {n})"), &exit);
        }
    };
    match config.tag {
        "gicv3" => {
            // The scenario's only interrupts at EL2 are edu's MSIs (beta's
            // guest has powered off, alpha's guest sets no timer).
            let msis: Vec<&Exit> = exits.iter().filter(|e| e.irq).collect();
            add(
                "gicv3_el2_profile_instructions_per_msi_exit".into(),
                "IRQ exits: the passthrough MSIs",
                msis,
                "instructions executed at EL2 in one exit for a software-path MSI (physical LPI taken at EL2, routed, injected, guest resumed)".into(),
            );
            let calls: Vec<&Exit> = exits
                .iter()
                .filter(|e| !e.irq && e.ran("psci_call"))
                .collect();
            add(
                "gicv3_el2_profile_instructions_per_hypercall".into(),
                "synchronous exits through psci_call",
                calls,
                "instructions executed at EL2 in one hypercall exit (HVC: the exit-count call and the PSCI calls)".into(),
            );
        }
        _ => {
            let waits: Vec<&Exit> = exits.iter().filter(|e| !e.irq && e.waited).collect();
            add(
                format!("wfi_{}_el2_instructions_per_wake", config.tag),
                "trapped WFIs that waited at EL2",
                waits,
                "instructions executed at EL2 for one trapped WFI under wfi = \"doorbell\": the trap, the vPE made non-resident, the WFI at EL2, the doorbell taken, the vPE made resident, the return (the wait itself executes nothing)".into(),
            );
        }
    }
    Ok(table)
}

/// The profiled boots: the passthrough scenario on the GICv3 machine (the
/// software MSI path, hypercalls) and `wfi = "doorbell"` on the board's
/// GICv4 machine (WFI wake-ups); adds their figures and tables.
pub fn measure_all(
    root: &Path,
    board: &crate::board::Board,
    gicv3_machine: &str,
    report: &mut Report,
) -> Result<(), String> {
    crate::qemu::check(&board.qemu)?;
    let artifacts = crate::build::build(root, board)?;
    let dir = artifacts.image.parent().unwrap_or(root).to_path_buf();
    let elf =
        std::fs::read(&artifacts.elf).map_err(|e| format!("{}: {e}", artifacts.elf.display()))?;
    let symbols = Symbols::from_elf(&elf)
        .ok_or_else(|| format!("{}: no ELF64 symbol table", artifacts.elf.display()))?;
    let mut table = String::from(
        "instructions at EL2 per exit (QEMU -d exec,nochain,in_asm profile of the hypervisor's code, one boot each; the instructions of each executed block attributed to its function, inlined code to its caller)\n",
    );

    let bundle = dir.join("bundle-bench-el2-passthrough.bin");
    crate::build::bundle(
        &artifacts,
        &board.dir.join("tests/passthrough.toml"),
        &bundle,
    )?;
    let mut v3 = board.qemu.clone();
    v3.machine = gicv3_machine.into();
    let extra = vec!["-device".to_string(), "edu".to_string()];
    table += &measure(
        &symbols,
        Profiled {
            tag: "gicv3",
            what: format!(
                "the passthrough scenario on -M {} -smp {}",
                v3.machine, v3.smp
            ),
            command: crate::qemu::command(&v3, &artifacts.image, &bundle, &extra),
        },
        &dir,
        "PASS passthrough: MAPTI again",
        report,
    )?;

    let bundle = dir.join("bundle-bench-el2-wfi.bin");
    crate::build::bundle(
        &artifacts,
        &board.dir.join("tests/passthrough-wfi-doorbell.toml"),
        &bundle,
    )?;
    let extra = vec![
        "-device".to_string(),
        "edu,dma_mask=0xffffffffffffffff".to_string(),
    ];
    table += &measure(
        &symbols,
        Profiled {
            tag: "doorbell",
            what: format!(
                "the passthrough-wfi guest, wfi = \"doorbell\", on -M {} -smp {}",
                board.qemu.machine, board.qemu.smp
            ),
            command: crate::qemu::command(&board.qemu, &artifacts.image, &bundle, &extra),
        },
        &dir,
        "PASS passthrough-wfi: round 2",
        report,
    )?;
    report.table(table);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_rust_names_are_demangled() {
        assert_eq!(
            demangle("_ZN10hypervisor6kernel4vcpu11handle_trap17h0123456789abcdefE"),
            "hypervisor::kernel::vcpu::handle_trap"
        );
        assert_eq!(
            demangle(
                "_ZN4core3ptr42drop_in_place$LT$alloc..string..String$GT$17h0123456789abcdefE"
            ),
            "core::ptr::drop_in_place<alloc::string::String>"
        );
        assert_eq!(demangle("guest_resume"), "guest_resume");
    }

    #[test]
    fn trace_and_instruction_lines_are_parsed() {
        assert_eq!(
            parse_trace("Trace 1: 0x7f1234 [00000000/0000000040201400/00000000/ff200000] "),
            Some((1, 0x4020_1400))
        );
        assert_eq!(
            parse_insn("0x40201400:  d503207f  wfi").map(|(a, _)| a),
            Some(0x4020_1400)
        );
        assert_eq!(parse_trace("IN: "), None);
    }

    #[test]
    fn an_exit_spans_vector_to_resume_and_counts_its_blocks() {
        let symbols = Symbols {
            by_address: vec![
                Symbol {
                    address: 0x1000,
                    size: 0x800,
                    name: "el2_vectors".into(),
                },
                Symbol {
                    address: 0x2000,
                    size: 0x10,
                    name: "handle".into(),
                },
                Symbol {
                    address: 0x3000,
                    size: 0x40,
                    name: "guest_resume".into(),
                },
            ],
        };
        let log = "\
IN:
0x00001480:  a9bf07e0  stp x0, x1, [sp, #-16]!
0x00001484:  d2800020  mov x0, #1

IN: handle
0x00002000:  d503207f  wfi
0x00002004:  d65f03c0  ret

IN: guest_resume
0x00003000:  d53e4000  mrs x0, tpidr_el2
0x00003004:  d69f03e0  eret

Trace 0: 0x1 [00000000/0000000000001480/00000000/00000000] 
Trace 0: 0x2 [00000000/0000000000002000/00000000/00000000] 
Trace 0: 0x3 [00000000/0000000000003000/00000000/00000000] 
Trace 0: 0x3 [00000000/0000000000003000/00000000/00000000] 
";
        let path = std::env::temp_dir().join(format!("el2-test-{}.log", std::process::id()));
        std::fs::write(&path, log).unwrap();
        let found = exits(&path, &symbols).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(found.len(), 1);
        assert!(found[0].irq && found[0].waited);
        assert_eq!(found[0].instructions, 6);
        assert_eq!(found[0].by_function.get("handle"), Some(&2));
    }
}
