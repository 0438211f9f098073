//! Guest RAM for the targets that drive a vITS: one region at [`RAM_BASE`],
//! reached only through the hypervisor's `GuestMemory` trait, as a
//! partition's stage 2 would give it.

use hypervisor::guest_mem::{GuestMemError, GuestMemory};
use hypervisor::mm::Ipa;

/// IPA of the first byte of [`Ram`].
pub const RAM_BASE: u64 = 0x4000_0000;

/// One RAM region at [`RAM_BASE`]; accesses outside it are `NotRam`.
pub struct Ram(pub Vec<u8>);

impl Ram {
    fn range(&self, ipa: Ipa, len: usize) -> Result<std::ops::Range<usize>, GuestMemError> {
        let err = GuestMemError::NotRam { ipa, len };
        let start = ipa.raw().checked_sub(RAM_BASE).ok_or(err)?;
        let start = usize::try_from(start).map_err(|_| err)?;
        let end = start.checked_add(len).ok_or(err)?;
        if end > self.0.len() {
            return Err(err);
        }
        Ok(start..end)
    }
}

impl GuestMemory for Ram {
    fn read(&self, ipa: Ipa, buf: &mut [u8]) -> Result<(), GuestMemError> {
        let range = self.range(ipa, buf.len())?;
        buf.copy_from_slice(&self.0[range]);
        Ok(())
    }
    fn write(&mut self, ipa: Ipa, buf: &[u8]) -> Result<(), GuestMemError> {
        let range = self.range(ipa, buf.len())?;
        self.0[range].copy_from_slice(buf);
        Ok(())
    }
}
