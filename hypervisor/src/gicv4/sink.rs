//! The physical ITS as the passthrough backend sees it: a command queue
//! that takes one batch at a time, and the VM's vLPI property table.

use core::fmt;

use crate::gic::its_cmd::ItsCommand;
use crate::gic::its_queue::QueueError;
use crate::ids::{VcpuIndex, VirtIntId};
use crate::vgic::LpiConfig;

/// Why the physical side did not do what it was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkError {
    /// The physical command queue refused or did not finish the batch.
    Queue(QueueError),
    /// The VM's vLPI property table has no byte for `vintid`.
    PropertyTable {
        /// The vINTID whose byte could not be written.
        vintid: VirtIntId,
    },
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Queue(error) => write!(f, "physical ITS queue: {error}"),
            Self::PropertyTable { vintid } => {
                write!(f, "vLPI property table has no entry for {vintid}")
            }
        }
    }
}

/// The physical ITS command queue, as both passthrough backends use it
/// (the GICv4 one and the GICv3 software path, [`super::RoutedBackend`]);
/// implemented by the kernel and by a recording fake in tests.
pub trait PhysItsQueue {
    /// Queues `commands` then `sync` (a VSYNC or SYNC) and waits for the
    /// ITS to consume them: one physical queue round-trip.
    fn submit(&mut self, commands: &[ItsCommand], sync: ItsCommand) -> Result<(), SinkError>;
}

/// The physical ITS and the VM's vLPI tables, as the GICv4 backend needs
/// them, implemented by the kernel (and by a recording fake in tests).
pub trait PhysItsSink: PhysItsQueue {
    /// Writes the configuration byte of `vintid` in the VM's vLPI property
    /// table (the table GICR_VPROPBASER names), cleaned to the point of
    /// coherency so the redistributor's next INV/VINVALL reads it.
    fn set_vlpi_config(&mut self, vintid: VirtIntId, config: LpiConfig) -> Result<(), SinkError>;

    /// The configuration the guest gave `vintid` in the LPI property table
    /// of `vcpu`'s virtual redistributor (its GICR_PROPBASER), or `None`
    /// if the table does not cover it or cannot be read.
    fn guest_lpi_config(&mut self, vcpu: VcpuIndex, vintid: VirtIntId) -> Option<LpiConfig>;
}

impl<S: PhysItsQueue + ?Sized> PhysItsQueue for &mut S {
    fn submit(&mut self, commands: &[ItsCommand], sync: ItsCommand) -> Result<(), SinkError> {
        (**self).submit(commands, sync)
    }
}

impl<S: PhysItsSink + ?Sized> PhysItsSink for &mut S {
    fn set_vlpi_config(&mut self, vintid: VirtIntId, config: LpiConfig) -> Result<(), SinkError> {
        (**self).set_vlpi_config(vintid, config)
    }

    fn guest_lpi_config(&mut self, vcpu: VcpuIndex, vintid: VirtIntId) -> Option<LpiConfig> {
        (**self).guest_lpi_config(vcpu, vintid)
    }
}
