//! The machine as the host device tree describes it: RAM, reserved memory,
//! CPUs, PSCI, the GIC, the timer, the console, PCIe host bridges and what
//! the boot loader passed in `/chosen`.
//!
//! Nothing about a board is hard-coded in the kernel: everything comes from
//! [`Platform::from_fdt`]. The tree is the boot loader's (trusted), but it is
//! still read with bounds checks throughout, so a corrupt blob gives an error
//! naming the node and property rather than a panic.
#![forbid(unsafe_code)]

mod console;
mod cpu;
mod decode;
pub mod early;
mod gic;
mod pci;
mod smmu;
mod tree;

#[cfg(test)]
mod early_tests;
#[cfg(test)]
mod multi_bridge_tests;
#[cfg(test)]
mod nop_tests;
#[cfg(test)]
mod tests;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

pub use console::{Console, UartKind};
pub use cpu::{Cpu, EnableMethod, Psci, PsciConduit, Timer};
pub use gic::{Gic, GicInterrupt, GicV2, GicV3, InterruptKind, Its};
pub use pci::{MsiMapEntry, PciHostBridge, PciSpace, PciWindow};
pub use smmu::{IommuMapEntry, Smmu};
pub use tree::TreeError;

use crate::mm::addr::{PhysAddr, Range};
use tree::Tree;

/// Why the host device tree could not be turned into a [`Platform`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlatformError {
    /// The blob is not a well-formed flattened device tree.
    Malformed(TreeError),
    /// A node the hypervisor needs is absent (described, e.g. "/cpus").
    MissingNode {
        /// Which node, by path or compatible string.
        node: &'static str,
    },
    /// A node lacks a property the hypervisor needs.
    MissingProperty {
        /// Path of the node.
        node: String,
        /// The property's name.
        property: &'static str,
    },
    /// A property is present but its value is unusable.
    BadProperty {
        /// Path of the node.
        node: String,
        /// The property's name.
        property: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(e) => write!(
                f,
                "device tree malformed at byte {:#x}: {}",
                e.offset, e.reason
            ),
            Self::MissingNode { node } => write!(f, "device tree has no {node}"),
            Self::MissingProperty { node, property } => {
                write!(f, "device tree node {node}: missing property {property}")
            }
            Self::BadProperty {
                node,
                property,
                reason,
            } => {
                write!(f, "device tree node {node}: property {property}: {reason}")
            }
        }
    }
}

/// A reserved physical range: a `/memreserve/` entry or a `/reserved-memory` child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReservedRegion {
    /// "/memreserve/" or the child's path.
    pub name: String,
    /// The range the hypervisor must not hand out.
    pub range: Range<PhysAddr>,
    /// `no-map`: not even a cacheable mapping may cover it.
    pub no_map: bool,
}

/// Everything the hypervisor needs to know about the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// Root `model` (or the first root `compatible` if there is none).
    pub model: String,
    /// Root `compatible` strings, most specific first.
    pub compatible: Vec<String>,
    /// RAM from every `device_type = "memory"` node, sorted by address.
    pub memory: Vec<Range<PhysAddr>>,
    /// Memory the firmware keeps for itself.
    pub reserved: Vec<ReservedRegion>,
    /// The CPUs, in `/cpus` order.
    pub cpus: Vec<Cpu>,
    /// The first cpu node's `compatible` (e.g. "arm,cortex-a72"), for the banner.
    pub cpu_model: Option<String>,
    /// The PSCI interface, if the firmware offers one.
    pub psci: Option<Psci>,
    /// The interrupt controller.
    pub gic: Gic,
    /// The architected timer's interrupts.
    pub timer: Timer,
    /// The console UART from `/chosen/stdout-path`, if any.
    pub console: Option<Console>,
    /// ECAM PCIe host bridges.
    pub pci: Vec<PciHostBridge>,
    /// SMMUv3s (`arm,smmu-v3`), which translate the DMA of PCI functions
    /// their bridge's `iommu-map` sends to them.
    pub smmus: Vec<Smmu>,
    /// `/chosen` `linux,initrd-start`..`linux,initrd-end`, if the loader placed one.
    pub initrd: Option<Range<PhysAddr>>,
    /// `/chosen` `bootargs`, if any.
    pub bootargs: Option<String>,
}

impl Platform {
    /// Describes the machine from the flattened device tree `dtb`.
    pub fn from_fdt(dtb: &[u8]) -> Result<Platform, PlatformError> {
        let tree = Tree::parse(dtb).map_err(PlatformError::Malformed)?;
        let gic_node = gic::find(&tree)?;
        let cpus = cpu::parse_cpus(&tree)?;
        let psci = cpu::parse_psci(&tree)?;
        if psci.is_none() && cpus.iter().any(|c| c.enable_method == EnableMethod::Psci) {
            return Err(PlatformError::MissingNode {
                node: "psci node (cpus use enable-method \"psci\")",
            });
        }
        let compatible: Vec<String> = tree.strings(0, "compatible").map(String::from).collect();
        let model = tree
            .string(0, "model")
            .or(compatible.first().map(String::as_str))
            .unwrap_or("unknown");
        let chosen = tree.find_path("/chosen");
        Ok(Platform {
            model: model.to_string(),
            memory: memory(&tree)?,
            reserved: reserved(&tree)?,
            compatible,
            cpu_model: cpu::model(&tree),
            cpus,
            psci,
            gic: gic::parse(&tree, gic_node)?,
            timer: cpu::parse_timer(&tree, gic_node)?,
            console: console::parse(&tree, gic_node)?,
            pci: pci::parse_all(&tree)?,
            smmus: smmu::parse_all(&tree, gic_node)?,
            initrd: chosen.map(|c| initrd(&tree, c)).transpose()?.flatten(),
            bootargs: chosen
                .and_then(|c| tree.string(c, "bootargs"))
                .map(String::from),
        })
    }

    /// Total RAM in bytes.
    pub fn memory_size(&self) -> u64 {
        self.memory.iter().map(|r| r.size).sum()
    }
}

/// RAM: `reg` of every available node with `device_type = "memory"`.
fn memory(tree: &Tree) -> Result<Vec<Range<PhysAddr>>, PlatformError> {
    let mut ranges = Vec::new();
    for node in 0..tree.nodes.len() {
        if tree.string(node, "device_type") == Some("memory") && tree.is_available(node) {
            ranges.extend(decode::reg(tree, node)?.into_iter().filter(|r| r.size != 0));
        }
    }
    if ranges.is_empty() {
        return Err(PlatformError::MissingNode {
            node: "memory node (device_type \"memory\")",
        });
    }
    ranges.sort_by_key(|r| r.start);
    Ok(ranges)
}

/// `/memreserve/` plus the statically placed `/reserved-memory` children
/// (reserved-memory.yaml; dynamic ones, with only `size`, are the OS's to place).
fn reserved(tree: &Tree) -> Result<Vec<ReservedRegion>, PlatformError> {
    let mut regions: Vec<ReservedRegion> = tree
        .reservations
        .iter()
        .map(|&(start, size)| ReservedRegion {
            name: "/memreserve/".to_string(),
            range: Range {
                start: PhysAddr(start),
                size,
            },
            no_map: false,
        })
        .collect();
    if let Some(parent) = tree.find_path("/reserved-memory") {
        for &child in &tree.node(parent).children {
            if tree.prop(child, "reg").is_none() || !tree.is_available(child) {
                continue;
            }
            for range in decode::reg(tree, child)? {
                let no_map = tree.prop(child, "no-map").is_some();
                regions.push(ReservedRegion {
                    name: tree.path(child),
                    range,
                    no_map,
                });
            }
        }
    }
    Ok(regions)
}

/// The initrd the boot loader placed (chosen.yaml: 32- or 64-bit cells).
fn initrd(tree: &Tree, chosen: tree::NodeIdx) -> Result<Option<Range<PhysAddr>>, PlatformError> {
    let start = decode::u64_prop(tree, chosen, "linux,initrd-start")?;
    let end = decode::u64_prop(tree, chosen, "linux,initrd-end")?;
    match (start, end) {
        (None, None) => Ok(None),
        (Some(start), Some(end)) if end >= start => Ok(Some(Range {
            start: PhysAddr(start),
            size: end - start,
        })),
        (Some(_), Some(_)) => Err(decode::bad(
            tree,
            chosen,
            "linux,initrd-end",
            "below linux,initrd-start",
        )),
        (None, Some(_)) => Err(decode::missing(tree, chosen, "linux,initrd-start")),
        (Some(_), None) => Err(decode::missing(tree, chosen, "linux,initrd-end")),
    }
}

/// A byte count printed in the largest exact binary unit.
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
            if self.0 != 0 && self.0 & ((1u64 << shift) - 1) == 0 {
                return write!(f, "{} {unit}", self.0 >> shift);
            }
        }
        write!(f, "{:#x} bytes", self.0)
    }
}

/// `start (size)`, the banner's way of showing a range.
fn span(range: &Range<PhysAddr>) -> impl fmt::Display + '_ {
    struct Span<'r>(&'r Range<PhysAddr>);
    impl fmt::Display for Span<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{} ({})", self.0.start, Size(self.0.size))
        }
    }
    Span(range)
}

/// The boot banner: one line per piece of hardware.
impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "machine  {} [{}]",
            self.model,
            self.compatible.join(", ")
        )?;
        for range in &self.memory {
            writeln!(f, "RAM      {}", span(range))?;
        }
        for region in &self.reserved {
            writeln!(
                f,
                "reserved {} {}{}",
                span(&region.range),
                region.name,
                if region.no_map { " no-map" } else { "" }
            )?;
        }
        write!(f, "CPUs     {}:", self.cpus.len())?;
        for cpu in &self.cpus {
            write!(f, " {:#x}", cpu.mpidr)?;
        }
        match &self.cpu_model {
            Some(model) => writeln!(f, " ({model})")?,
            None => writeln!(f)?,
        }
        if let Some(psci) = &self.psci {
            writeln!(
                f,
                "PSCI     {:?} [{}]",
                psci.conduit,
                psci.compatible.join(", ")
            )?;
        }
        match &self.gic {
            Gic::V3(gic) => {
                write!(f, "GIC      v3 GICD {}, GICR", span(&gic.distributor))?;
                for region in &gic.redistributor_regions {
                    write!(f, " {}", span(region))?;
                }
                writeln!(f)?;
                for its in &gic.its {
                    writeln!(f, "ITS      {}", span(&its.registers))?;
                }
            }
            Gic::V2(gic) => {
                write!(
                    f,
                    "GIC      v2 GICD {}, GICC {}",
                    span(&gic.distributor),
                    span(&gic.cpu_interface)
                )?;
                if let (Some(gich), Some(gicv)) = (&gic.hyp_interface, &gic.virtual_cpu_interface) {
                    write!(f, ", GICH {}, GICV {}", span(gich), span(gicv))?;
                }
                writeln!(f)?;
            }
        }
        if let Some(maintenance) = self.gic.maintenance() {
            writeln!(f, "GIC      maintenance {maintenance}")?;
        }
        let timer = &self.timer;
        writeln!(
            f,
            "timer    phys {}, virt {}, hyp {}",
            timer.phys, timer.virt, timer.hyp_phys
        )?;
        if let Some(console) = &self.console {
            let compatible = console
                .compatible
                .first()
                .map(String::as_str)
                .unwrap_or("?");
            write!(f, "console  {compatible} {}", span(&console.registers))?;
            if let Some(hz) = console.clock_hz {
                write!(f, ", {hz} Hz")?;
            }
            writeln!(f)?;
        }
        for bridge in &self.pci {
            write!(
                f,
                "PCIe     ECAM {} buses {}-{}",
                span(&bridge.ecam),
                bridge.first_bus,
                bridge.last_bus
            )?;
            for window in &bridge.windows {
                let window_range = Range {
                    start: window.cpu_address,
                    size: window.size,
                };
                write!(f, ", {:?} {}", window.space, span(&window_range))?;
            }
            writeln!(f)?;
        }
        for smmu in &self.smmus {
            write!(f, "SMMU     v3 {}", span(&smmu.registers))?;
            for (name, irq) in [("eventq", smmu.eventq), ("gerror", smmu.gerror)] {
                if let Some(irq) = irq {
                    write!(f, ", {name} {irq}")?;
                }
            }
            writeln!(f, "{}", if smmu.dma_coherent { ", coherent" } else { "" })?;
        }
        if self.smmus.is_empty() && !self.pci.is_empty() {
            writeln!(f, "SMMU     none: DMA of PCI functions is not confined")?;
        }
        if let Some(initrd) = &self.initrd {
            writeln!(f, "initrd   {}", span(initrd))?;
        }
        Ok(())
    }
}
