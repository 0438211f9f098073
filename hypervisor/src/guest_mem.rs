//! Access to a guest's memory by IPA, as the hypervisor's emulation code
//! sees it. The real implementation walks the partition's stage-2 mapping
//! and refuses anything outside the partition's RAM; tests use a fake.

use crate::mm::Ipa;

/// Why a guest memory access failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestMemError {
    /// Part of `[ipa, ipa + len)` is not RAM of this partition.
    NotRam { ipa: Ipa, len: usize },
}

/// Guest memory as seen through the partition's stage-2 translation.
pub trait GuestMemory {
    /// Reads `buf.len()` bytes at `ipa`.
    fn read(&self, ipa: Ipa, buf: &mut [u8]) -> Result<(), GuestMemError>;
    /// Writes `buf` at `ipa`.
    fn write(&mut self, ipa: Ipa, buf: &[u8]) -> Result<(), GuestMemError>;

    /// Reads a little-endian u64 at `ipa`.
    fn read_u64(&self, ipa: Ipa) -> Result<u64, GuestMemError> {
        let mut b = [0u8; 8];
        self.read(ipa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Writes a little-endian u64 at `ipa`.
    fn write_u64(&mut self, ipa: Ipa, value: u64) -> Result<(), GuestMemError> {
        self.write(ipa, &value.to_le_bytes())
    }
}

/// A guest memory made of one contiguous RAM region held in a `Vec`, for tests.
#[cfg(test)]
pub struct FakeGuestMemory {
    /// IPA of the first byte.
    pub base: Ipa,
    /// The bytes.
    pub bytes: alloc::vec::Vec<u8>,
}

#[cfg(test)]
impl FakeGuestMemory {
    /// A zero-filled RAM region of `size` bytes at `base`.
    pub fn new(base: Ipa, size: usize) -> Self {
        Self {
            base,
            bytes: alloc::vec![0; size],
        }
    }

    fn offset(&self, ipa: Ipa, len: usize) -> Result<usize, GuestMemError> {
        let err = GuestMemError::NotRam { ipa, len };
        let off = ipa.raw().checked_sub(self.base.raw()).ok_or(err)?;
        let off = usize::try_from(off).map_err(|_| err)?;
        let end = off.checked_add(len).ok_or(err)?;
        if end > self.bytes.len() {
            return Err(err);
        }
        Ok(off)
    }
}

#[cfg(test)]
impl GuestMemory for FakeGuestMemory {
    fn read(&self, ipa: Ipa, buf: &mut [u8]) -> Result<(), GuestMemError> {
        let off = self.offset(ipa, buf.len())?;
        buf.copy_from_slice(&self.bytes[off..off + buf.len()]);
        Ok(())
    }

    fn write(&mut self, ipa: Ipa, buf: &[u8]) -> Result<(), GuestMemError> {
        let off = self.offset(ipa, buf.len())?;
        self.bytes[off..off + buf.len()].copy_from_slice(buf);
        Ok(())
    }
}
