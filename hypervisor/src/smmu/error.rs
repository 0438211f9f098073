//! Why an SMMU could not be used, or refused a request.

use core::fmt;

use super::queue::QueueError;
use crate::mm::Vmid;

/// Errors of the SMMUv3 layer, carrying what a log reader needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmmuError {
    /// The SMMU lacks a feature the hypervisor needs (the IDR field is named).
    MissingFeature(&'static str),
    /// The SMMU has a feature the driver cannot work with (the IDR field is named).
    Unsupported(&'static str),
    /// SMMU_IDR5.OAS holds a reserved encoding.
    ReservedOas(u8),
    /// A VMID wider than the SMMU's VMIDs (IDR0.VMID16).
    VmidTooLarge {
        /// The VMID asked for.
        vmid: Vmid,
        /// VMID bits the SMMU has.
        bits: u8,
    },
    /// A field of VTCR_EL2 the SMMU cannot use as given.
    BadVtcr {
        /// The field's name.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// The stage-2 output or input size exceeds the SMMU's OAS.
    SizeExceedsOas {
        /// What exceeds it ("IPA" or "root table address").
        what: &'static str,
        /// Its size in bits.
        bits: u8,
        /// The SMMU's OAS in bits.
        oas_bits: u8,
    },
    /// The stage-2 root table is not aligned as its (concatenated) size needs.
    TtbMisaligned {
        /// Physical address of the root.
        ttb: u64,
        /// Alignment needed, in bytes.
        align: u64,
    },
    /// A StreamID the stream table does not cover.
    StreamIdTooLarge {
        /// The StreamID.
        sid: u32,
        /// StreamID bits the table covers.
        bits: u8,
    },
    /// A StreamID whose level-2 stream table was never allocated
    /// (`SmmuV3::prepare_stream` must come first on a two-level table).
    StreamNotPrepared {
        /// The StreamID.
        sid: u32,
    },
    /// No physical memory for one of the SMMU's structures.
    OutOfMemory(&'static str),
    /// A register acknowledgement never came within the poll budget: the
    /// SMMU is wedged or absent.
    AckTimeout {
        /// The register waited on.
        register: &'static str,
        /// The value it should have reached.
        wanted: u32,
        /// The value it had when the budget ran out.
        seen: u32,
    },
    /// The command queue refused or did not finish a batch.
    CommandQueue(QueueError),
}

impl fmt::Display for SmmuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::MissingFeature(what) => write!(f, "SMMU lacks {what}"),
            Self::Unsupported(what) => {
                write!(f, "SMMU has {what}, which this driver does not support")
            }
            Self::ReservedOas(oas) => write!(f, "SMMU_IDR5.OAS {oas:#x} is reserved"),
            Self::VmidTooLarge { vmid, bits } => {
                write!(f, "VMID {vmid} does not fit the SMMU's {bits}-bit VMIDs")
            }
            Self::BadVtcr { field, value } => {
                write!(f, "VTCR_EL2.{field} = {value:#x} is not usable by the SMMU")
            }
            Self::SizeExceedsOas {
                what,
                bits,
                oas_bits,
            } => write!(
                f,
                "stage-2 {what} of {bits} bits exceeds the SMMU's OAS of {oas_bits} bits"
            ),
            Self::TtbMisaligned { ttb, align } => {
                write!(f, "stage-2 root {ttb:#x} is not aligned to {align:#x}")
            }
            Self::StreamIdTooLarge { sid, bits } => {
                write!(f, "StreamID {sid:#x} is beyond the {bits}-bit stream table")
            }
            Self::StreamNotPrepared { sid } => write!(
                f,
                "StreamID {sid:#x} has no level-2 stream table (prepare_stream first)"
            ),
            Self::OutOfMemory(what) => write!(f, "no memory for the SMMU {what}"),
            Self::AckTimeout {
                register,
                wanted,
                seen,
            } => write!(
                f,
                "SMMU wedged: {register} stayed {seen:#x}, waiting for {wanted:#x}"
            ),
            Self::CommandQueue(e) => write!(f, "SMMU command queue: {e}"),
        }
    }
}

impl From<QueueError> for SmmuError {
    fn from(e: QueueError) -> Self {
        Self::CommandQueue(e)
    }
}
