//! CPUs, the PSCI firmware interface and the architected timer.
//!
//! Bindings: Linux `Documentation/devicetree/bindings/arm/cpus.yaml`,
//! `arm/psci.yaml` and `timer/arm,arch_timer.yaml`.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::decode::{self, bad, missing};
use super::gic::GicInterrupt;
use super::tree::{NodeIdx, Tree};
use super::PlatformError;
use crate::mm::addr::PhysAddr;

/// The MPIDR affinity fields a cpu node's `reg` may carry (Aff3, Aff2..Aff0).
const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// How firmware expects a secondary CPU to be started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnableMethod {
    /// No `enable-method` (usually the boot CPU).
    None,
    /// PSCI CPU_ON.
    Psci,
    /// Spin table: write the entry point to `release_address`, then SEV.
    SpinTable {
        /// The `cpu-release-addr` the CPU polls.
        release_address: PhysAddr,
    },
    /// Any other method, by name.
    Other(String),
}

/// One CPU from `/cpus`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cpu {
    /// Path of the node, for messages.
    pub node: String,
    /// MPIDR_EL1 affinity (Aff3 in bits 39:32, Aff2..Aff0 in bits 23:0).
    pub mpidr: u64,
    /// How to start it.
    pub enable_method: EnableMethod,
    /// False if the node's `status` is not "okay".
    pub available: bool,
}

/// The instruction a PSCI call uses (psci.yaml `method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciConduit {
    /// HVC: firmware at EL2 (not usable by a hypervisor that owns EL2).
    Hvc,
    /// SMC: firmware at EL3 (or emulated by QEMU when it gives us EL2).
    Smc,
}

/// The PSCI firmware interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Psci {
    /// Path of the node, for messages.
    pub node: String,
    /// HVC or SMC.
    pub conduit: PsciConduit,
    /// The `compatible` strings, newest first (e.g. arm,psci-1.0, arm,psci-0.2).
    pub compatible: Vec<String>,
    /// PSCI 0.1 only: the firmware-specific CPU_ON function ID.
    pub cpu_on_v0_1: Option<u32>,
}

impl Psci {
    /// Whether the firmware implements the standard function IDs (PSCI >= 0.2).
    pub fn has_standard_ids(&self) -> bool {
        self.compatible
            .iter()
            .any(|c| c == "arm,psci-0.2" || c == "arm,psci-1.0")
    }
}

/// The architected timer's per-CPU interrupts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timer {
    /// Secure EL1 physical timer (absent on trees that name interrupts without it).
    pub secure_phys: Option<GicInterrupt>,
    /// Non-secure EL1 physical timer (CNTP).
    pub phys: GicInterrupt,
    /// EL1 virtual timer (CNTV): what a guest's timer raises.
    pub virt: GicInterrupt,
    /// EL2 physical timer (CNTHP): the hypervisor's own timer.
    pub hyp_phys: GicInterrupt,
    /// EL2 virtual timer (CNTHV, with VHE), if listed.
    pub hyp_virt: Option<GicInterrupt>,
    /// `clock-frequency`, only for firmware that leaves CNTFRQ_EL0 unset.
    pub clock_frequency: Option<u32>,
}

/// The `compatible` of the first cpu node (the core's model).
pub(crate) fn model(tree: &Tree) -> Option<String> {
    let cpus = tree.find_path("/cpus")?;
    tree.node(cpus)
        .children
        .iter()
        .find(|&&c| tree.string(c, "device_type") == Some("cpu"))
        .and_then(|&c| tree.string(c, "compatible"))
        .map(String::from)
}

/// Reads every cpu node under `/cpus`.
pub(crate) fn parse_cpus(tree: &Tree) -> Result<Vec<Cpu>, PlatformError> {
    let cpus = tree
        .find_path("/cpus")
        .ok_or(PlatformError::MissingNode { node: "/cpus" })?;
    if !(1..=2).contains(&decode::address_cells(tree, cpus)?) {
        return Err(bad(
            tree,
            cpus,
            "#address-cells",
            "must be 1 or 2 (cpus.yaml)",
        ));
    }
    let mut found: Vec<Cpu> = Vec::new();
    for &child in &tree.node(cpus).children {
        if tree.string(child, "device_type") != Some("cpu") {
            continue; // cpu-map, l2-cache and other helpers
        }
        let (address, _) = *decode::raw_reg(tree, child)?
            .first()
            .ok_or_else(|| missing(tree, child, "reg"))?;
        let mpidr = u64::try_from(address)
            .ok()
            .filter(|m| m & !MPIDR_AFFINITY_MASK == 0)
            .ok_or_else(|| bad(tree, child, "reg", "bits outside the MPIDR affinity fields"))?;
        if found.iter().any(|cpu| cpu.mpidr == mpidr) {
            return Err(bad(tree, child, "reg", "MPIDR listed twice"));
        }
        found.push(Cpu {
            node: tree.path(child),
            mpidr,
            enable_method: enable_method(tree, child)?,
            available: tree.is_available(child),
        });
    }
    if found.is_empty() {
        return Err(PlatformError::MissingNode {
            node: "/cpus/cpu (device_type \"cpu\")",
        });
    }
    Ok(found)
}

fn enable_method(tree: &Tree, cpu: NodeIdx) -> Result<EnableMethod, PlatformError> {
    Ok(match tree.string(cpu, "enable-method") {
        None => EnableMethod::None,
        Some("psci") => EnableMethod::Psci,
        Some("spin-table") => {
            let address = decode::u64_prop(tree, cpu, "cpu-release-addr")?;
            let address = address.ok_or_else(|| missing(tree, cpu, "cpu-release-addr"))?;
            EnableMethod::SpinTable {
                release_address: PhysAddr(address),
            }
        }
        Some(other) => EnableMethod::Other(other.to_string()),
    })
}

/// Reads the PSCI node, if the firmware has one.
pub(crate) fn parse_psci(tree: &Tree) -> Result<Option<Psci>, PlatformError> {
    let compatibles = ["arm,psci-1.0", "arm,psci-0.2", "arm,psci"];
    let Some(node) = tree
        .find_compatible(&compatibles)
        .find(|&n| tree.is_available(n))
    else {
        return Ok(None);
    };
    let conduit = match tree.string(node, "method") {
        Some("hvc") => PsciConduit::Hvc,
        Some("smc") => PsciConduit::Smc,
        Some(_) => return Err(bad(tree, node, "method", "neither \"hvc\" nor \"smc\"")),
        None => return Err(missing(tree, node, "method")),
    };
    Ok(Some(Psci {
        node: tree.path(node),
        conduit,
        compatible: tree.strings(node, "compatible").map(String::from).collect(),
        cpu_on_v0_1: decode::u32_prop(tree, node, "cpu_on")?,
    }))
}

/// Reads the architected timer node.
pub(crate) fn parse_timer(tree: &Tree, gic: NodeIdx) -> Result<Timer, PlatformError> {
    let node = tree
        .find_compatible(&["arm,armv8-timer", "arm,armv7-timer"])
        .find(|&n| tree.is_available(n))
        .ok_or(PlatformError::MissingNode {
            node: "timer (arm,armv8-timer)",
        })?;
    let interrupts = decode::interrupts(tree, node, gic)?;
    // arch_timer.yaml: positional order, unless interrupt-names says otherwise.
    let mut names: Vec<&str> = tree.strings(node, "interrupt-names").collect();
    if names.is_empty() {
        names = Vec::from(["sec-phys", "phys", "virt", "hyp-phys", "hyp-virt"]);
    }
    let named = |name: &str| {
        names
            .iter()
            .position(|&n| n == name)
            .and_then(|i| interrupts.get(i).copied())
    };
    let required = |name: &str| {
        named(name).ok_or_else(|| bad(tree, node, "interrupts", "lacks phys, virt or hyp-phys"))
    };
    Ok(Timer {
        secure_phys: named("sec-phys"),
        phys: required("phys")?,
        virt: required("virt")?,
        hyp_phys: required("hyp-phys")?,
        hyp_virt: named("hyp-virt"),
        clock_frequency: decode::u32_prop(tree, node, "clock-frequency")?,
    })
}
