//! The hypervisor console: one physical UART shared by the hypervisor's
//! log and every partition's virtual UART (`mux`), the partitions' output
//! rings and their fair drain (`output`), and the rate limits on the lines
//! guests can make it print (`log_limit`).

pub mod log_limit;
pub mod mux;
pub mod output;
