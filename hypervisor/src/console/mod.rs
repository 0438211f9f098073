//! The hypervisor console: one physical UART shared by the hypervisor's
//! log and every partition's virtual UART (`mux`).

pub mod mux;
