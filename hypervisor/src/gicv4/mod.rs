//! PCI passthrough MSIs on the physical ITS: with GICv4 direct injection,
//! the backend of
//! the virtual ITS that turns a guest's intent for the events of its
//! passed-through devices into GICv4 commands on the physical ITS, so
//! their MSIs arrive as virtual LPIs with no hypervisor code on the path.
//!
//! - `config`: what the kernel fixes per partition (vPEs, doorbells,
//!   owned physical devices): the only IDs a physical command may name;
//! - `sink`: the narrow interface to the physical ITS and the VM's vLPI
//!   property table, implemented by the kernel;
//! - `backend`: [`Gicv4Backend`], the [`crate::vits::VitsBackend`] that
//!   batches VMAPTI, VMOVI, DISCARD, INT, CLEAR, INV and VINVALL per trap;
//! - `vmovp`: the GICv4.0 VMOVP sequence that moves a vPE to another
//!   redistributor, and [`PassthroughState::move_vpe`];
//! - `routed`: the GICv3 software path, the second backend over the same
//!   queue trait and ownership check: [`RoutedBackend`] gives each guest
//!   mapping of a passthrough event a physical LPI the kernel routes at EL2;
//! - `footprint`: [`ItsFootprint`], what a partition holds on the physical
//!   ITS (both paths), logged and checked around every teardown.
#![forbid(unsafe_code)]

mod backend;
mod config;
mod footprint;
mod routed;
mod sink;
mod vmovp;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod routed_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod vmovp_tests;

pub use backend::{
    Gicv4Backend, PassthroughState, PassthroughStats, PhysMapping, Refusal, TeardownReport,
};
pub use config::{
    owned_event, PassthroughConfig, PassthroughConfigError, PassthroughDevice, VpeConfig,
};
pub use footprint::ItsFootprint;
pub use routed::{
    Collection, LpiRouting, RouteError, RoutedBackend, RoutedConfig, RoutedEvent, RoutedState,
    RoutedStats, RoutedTeardown,
};
pub use sink::{PhysItsQueue, PhysItsSink, SinkError};
pub use vmovp::{plan as plan_vmovp, VmovpError, VmovpForm, VmovpSequencer, VmovpStep, VpeMove};
