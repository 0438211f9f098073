//! The physical ITS (register access; the command queue and tables come
//! with the ITS driver proper).

/// GITS_TYPER's offset in the ITS control frame.
const GITS_TYPER: usize = 0x8;

/// Reads GITS_TYPER of the ITS at `base`.
///
/// # Safety
/// `base` must map an ITS control frame as device memory.
pub unsafe fn read_typer(base: usize) -> u64 {
    // SAFETY: the caller guarantees the mapping; GITS_TYPER is read-only.
    unsafe { core::ptr::read_volatile((base + GITS_TYPER) as *const u64) }
}
