//! Guest accesses to the vITS frames: the 64 KiB control frame and the
//! 64 KiB translation frame (IHI 0069, the ITS register map).
//!
//! 32-bit registers take 32-bit accesses, 64-bit registers take 64-bit or
//! 32-bit (half) accesses, GITS_TRANSLATER takes 16-bit or 32-bit writes.
//! Anything else, and every reserved offset, reads as zero and ignores
//! writes; no access panics.

use super::backend::VitsBackend;
use super::regs::{offset, AccessWidth, Part, Registers, CTLR_ENABLED, CWRITER_RETRY};
use super::regs::{FRAME_SIZE, QUEUE_OFFSET_MASK};
use super::Vits;
use crate::guest_mem::GuestMemory;
use crate::ids::EventId;

/// Span of the eight GITS_BASER<n> registers.
const BASER_SPAN: u64 = 8 * 8;

impl Vits {
    /// A guest read of `width` at `offset` from the vITS base.
    ///
    /// Reading GITS_CREADR first continues queued work, so a guest polling
    /// CREADR drains a queue longer than one trap's budget.
    pub fn mmio_read<M, B>(
        &mut self,
        offset: u64,
        width: AccessWidth,
        mem: &M,
        backend: &mut B,
    ) -> u64
    where
        M: GuestMemory + ?Sized,
        B: VitsBackend + ?Sized,
    {
        if let Some(part) = Part::of(offset::CREADR, offset, width) {
            self.process_queue(mem, backend);
            return part.read(self.regs.creadr_value());
        }
        self.read_register(offset, width).unwrap_or(0)
    }

    /// A guest write of `value` (`width` wide) at `offset` from the vITS base.
    pub fn mmio_write<M, B>(
        &mut self,
        offset: u64,
        width: AccessWidth,
        value: u64,
        mem: &M,
        backend: &mut B,
    ) where
        M: GuestMemory + ?Sized,
        B: VitsBackend + ?Sized,
    {
        if offset >= FRAME_SIZE {
            return;
        }
        if offset == offset::TRANSLATER {
            self.write_translater(width, value, backend);
            return;
        }
        if offset == offset::CTLR && width == AccessWidth::Word {
            let enable = value & u64::from(CTLR_ENABLED) != 0;
            let was = self.regs.enabled;
            self.regs.enabled = enable;
            if enable && !was {
                // Commands queued while disabled run now.
                self.process_queue(mem, backend);
            }
            return;
        }
        if let Some(part) = Part::of(offset::CBASER, offset, width) {
            self.regs.write_cbaser(part, value);
            return;
        }
        if let Some(part) = Part::of(offset::CWRITER, offset, width) {
            self.write_cwriter(part, value, mem, backend);
            return;
        }
        if (offset::BASER..offset::BASER + BASER_SPAN).contains(&offset) {
            let n = (offset - offset::BASER) / 8;
            if let Some(part) = Part::of(offset::BASER + n * 8, offset, width) {
                if let Some(table) = self.regs.write_baser(n, part, value) {
                    self.drop_table(table, backend);
                    backend.sync();
                }
            }
        }
        // Everything else is read-only or reserved: writes are ignored.
    }

    /// The value of a register without side effects, None if RAZ.
    fn read_register(&self, offset: u64, width: AccessWidth) -> Option<u64> {
        let word = width == AccessWidth::Word;
        match offset {
            offset::CTLR if word => Some(u64::from(self.regs.ctlr())),
            offset::IIDR if word => Some(u64::from(Registers::iidr())),
            o if (offset::ID_REGS..offset::ID_REGS + 0x30).contains(&o) && word && o % 4 == 0 => {
                Registers::id_reg(o).map(u64::from)
            }
            _ => {
                let typer = Registers::typer(&self.config);
                for (base, value) in [
                    (offset::TYPER, typer),
                    (offset::CBASER, self.regs.cbaser),
                    (offset::CWRITER, self.regs.cwriter),
                ] {
                    if let Some(part) = Part::of(base, offset, width) {
                        return Some(part.read(value));
                    }
                }
                if (offset::BASER..offset::BASER + BASER_SPAN).contains(&offset) {
                    let n = (offset - offset::BASER) / 8;
                    let part = Part::of(offset::BASER + n * 8, offset, width)?;
                    return Some(part.read(self.regs.baser(n)));
                }
                None
            }
        }
    }

    /// GITS_CWRITER: a new end of the queue, and Retry to restart a stalled
    /// queue (IHI 0069, GITS_CWRITER).
    fn write_cwriter<M, B>(&mut self, part: Part, value: u64, mem: &M, backend: &mut B)
    where
        M: GuestMemory + ?Sized,
        B: VitsBackend + ?Sized,
    {
        if part == Part::High {
            // Bits [63:32] are RES0.
            return;
        }
        let new_offset = value & QUEUE_OFFSET_MASK;
        self.regs.cwriter = new_offset;
        // An offset beyond the queue is CONSTRAINED UNPREDICTABLE
        // (GITS_CWRITER); this ITS takes the first choice: the queue is
        // invalid and nothing runs until CWRITER is written in range.
        if new_offset >= self.regs.queue_size() {
            if self.errors.record_register() {
                log::warn!(
                    "vITS {}.{}: GITS_CWRITER {:#x} beyond the {:#x}-byte queue ignored",
                    self.config.partition.get(),
                    self.config.index,
                    new_offset,
                    self.regs.queue_size()
                );
            }
            return;
        }
        if value & CWRITER_RETRY != 0 {
            self.regs.stall = None;
        }
        self.process_queue(mem, backend);
    }

    /// GITS_TRANSLATER written by a CPU: an MSI carrying the configured CPU
    /// DeviceID, with the EventID as data.
    fn write_translater<B: VitsBackend + ?Sized>(
        &mut self,
        width: AccessWidth,
        value: u64,
        backend: &mut B,
    ) {
        let event = match width {
            AccessWidth::Half => value & 0xFFFF,
            AccessWidth::Word => value & 0xFFFF_FFFF,
            _ => return,
        };
        let Some(device) = self.config.cpu_device_id else {
            return;
        };
        // A dropped MSI is counted in send_msi; the writer learns nothing.
        let _ = self.send_msi(device, EventId::new(event as u32), backend);
    }
}
