//! Pure SMMUv3 definitions (Arm IHI 0070): register values, the feature
//! probe, stream table entries, commands, events, queue rings and the
//! stream table plan. No MMIO here; the driver in `drivers::smmuv3` puts
//! these on the hardware, and everything below is tested on the host.
#![forbid(unsafe_code)]

pub mod command;
pub mod dma_faults;
pub mod dma_stage2;
pub mod event;
pub mod features;
pub mod queue;
pub mod regs;
pub mod ste;
pub mod ste_update;
pub mod stream_table;

mod error;

pub use command::{Command, SyncSignal};
pub use error::SmmuError;
pub use event::{Event, EventKind, FaultClass};
pub use features::SmmuFeatures;
pub use queue::{QueueError, Ring};
pub use ste::{S2Config, Ste};
pub use stream_table::StreamTablePlan;
