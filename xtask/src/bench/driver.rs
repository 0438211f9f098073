//! A guest's side of the vITS, on the host: RAM in a `Vec`, the command
//! queue and the Device and Collection tables set up as Linux's ITS driver
//! does, and commands announced through GITS_CWRITER.

use hypervisor::gic::its_cmd::ItsCommand;
use hypervisor::guest_mem::{GuestMemError, GuestMemory};
use hypervisor::mm::Ipa;
use hypervisor::vits::{offset, AccessWidth, Vits, VitsBackend, VitsConfig, COMMAND_SIZE};

/// IPA of the guest RAM the bench gives the vITS.
const RAM_BASE: u64 = 0x4000_0000;
/// 4 MiB: queue, Device table, Collection table.
const RAM_SIZE: usize = 0x40_0000;
/// The command queue: 1 MiB (the largest GITS_CBASER allows), 32,768 commands.
const QUEUE: u64 = RAM_BASE;
/// GITS_CBASER.Size: 256 pages of 4 KiB.
const QUEUE_PAGES: u64 = 256;
/// Device table: flat, 8 pages of 64 KiB = 65,536 eight-byte entries.
const DEVICE_TABLE: u64 = RAM_BASE + 0x10_0000;
/// Collection table: one 64 KiB page.
const COLLECTION_TABLE: u64 = RAM_BASE + 0x18_0000;
/// Where ITTs would go (the vITS never reads them).
pub const ITT_BASE: u64 = RAM_BASE + 0x20_0000;
/// GITS_BASER<n>/GITS_CBASER.Valid.
const VALID: u64 = 1 << 63;
/// GITS_BASER<n>.Page_Size = 64 KiB.
const PAGE_64K: u64 = 0b10 << 8;
/// GITS_CREADR/GITS_CWRITER offset bits.
const OFFSET_MASK: u64 = 0x000F_FFE0;
/// Most commands [`Driver::submit`] puts in the queue at once (half of it).
const CHUNK: usize = 16_384;

/// Guest RAM as one `Vec` (the hypervisor's `FakeGuestMemory` is test-only).
pub struct VecMemory {
    bytes: Vec<u8>,
}

impl VecMemory {
    fn range(&self, ipa: Ipa, len: usize) -> Result<std::ops::Range<usize>, GuestMemError> {
        let error = GuestMemError::NotRam { ipa, len };
        let start = ipa.raw().checked_sub(RAM_BASE).ok_or(error)?;
        let start = usize::try_from(start).map_err(|_| error)?;
        let end = start.checked_add(len).ok_or(error)?;
        if end > self.bytes.len() {
            return Err(error);
        }
        Ok(start..end)
    }
}

impl GuestMemory for VecMemory {
    fn read(&self, ipa: Ipa, buf: &mut [u8]) -> Result<(), GuestMemError> {
        let range = self.range(ipa, buf.len())?;
        buf.copy_from_slice(&self.bytes[range]);
        Ok(())
    }

    fn write(&mut self, ipa: Ipa, buf: &[u8]) -> Result<(), GuestMemError> {
        let range = self.range(ipa, buf.len())?;
        self.bytes[range].copy_from_slice(buf);
        Ok(())
    }
}

pub use hypervisor::vits::NullBackend;

/// One vITS driven the way a guest drives it.
pub struct Driver<B> {
    /// The vITS under measurement.
    pub vits: Vits,
    /// Its guest memory.
    pub mem: VecMemory,
    /// Where its effects go.
    pub backend: B,
    /// The guest's idea of GITS_CWRITER: where the next command goes.
    cwriter: u64,
}

impl<B: VitsBackend> Driver<B> {
    /// A vITS for `config` with tables and queue set up and the ITS enabled.
    pub fn new(config: VitsConfig, backend: B) -> Result<Self, String> {
        let vits = Vits::new(config).map_err(|e| format!("vITS config: {e:?}"))?;
        let mem = VecMemory {
            bytes: vec![0; RAM_SIZE],
        };
        let mut driver = Self {
            vits,
            mem,
            backend,
            cwriter: 0,
        };
        driver.write(offset::BASER, VALID | PAGE_64K | DEVICE_TABLE | 7);
        driver.write(offset::BASER + 8, VALID | PAGE_64K | COLLECTION_TABLE);
        driver.write(offset::CBASER, VALID | QUEUE | (QUEUE_PAGES - 1));
        driver.vits.mmio_write(
            offset::CTLR,
            AccessWidth::Word,
            1,
            &driver.mem,
            &mut driver.backend,
        );
        Ok(driver)
    }

    /// A 64-bit guest write to a vITS register.
    fn write(&mut self, offset: u64, value: u64) {
        self.vits.mmio_write(
            offset,
            AccessWidth::Double,
            value,
            &self.mem,
            &mut self.backend,
        );
    }

    /// Writes `commands` into the queue after the last ones, without telling the ITS.
    pub fn enqueue(&mut self, commands: &[ItsCommand]) {
        let size = QUEUE_PAGES * 0x1000;
        for command in commands {
            for (i, word) in command.encode().iter().enumerate() {
                let ipa = Ipa(QUEUE + self.cwriter + 8 * i as u64);
                self.mem.write_u64(ipa, *word).expect("the queue is in RAM");
            }
            self.cwriter = (self.cwriter + COMMAND_SIZE) % size;
        }
    }

    /// The guest's one GITS_CWRITER write announcing what `enqueue` added (one trap).
    pub fn kick(&mut self) {
        self.write(offset::CWRITER, self.cwriter);
    }

    /// One guest read of GITS_CREADR (one trap; it continues queued work).
    pub fn read_creadr(&mut self) -> u64 {
        self.vits.mmio_read(
            offset::CREADR,
            AccessWidth::Double,
            &self.mem,
            &mut self.backend,
        )
    }

    /// Whether a CREADR value says the queue is drained up to our CWRITER.
    pub fn drained(&self, creadr: u64) -> bool {
        creadr & OFFSET_MASK == self.cwriter
    }

    /// Submits `commands` like a guest (enqueue, CWRITER, poll CREADR until
    /// drained), in chunks the queue holds; every command must succeed.
    pub fn submit(&mut self, commands: &[ItsCommand]) -> Result<(), String> {
        let errors = self.vits.errors().total_commands();
        for chunk in commands.chunks(CHUNK) {
            self.enqueue(chunk);
            self.kick();
            loop {
                let creadr = self.read_creadr();
                if self.drained(creadr) {
                    break;
                }
                if let Some(stall) = self.vits.stall() {
                    return Err(format!("vITS queue stalled: {stall:?}"));
                }
            }
        }
        self.check_no_errors(errors)
    }

    /// Errs if commands failed since the error count was `before`.
    pub fn check_no_errors(&self, before: u64) -> Result<(), String> {
        let now = self.vits.errors().total_commands();
        if now != before {
            return Err(format!(
                "{} vITS command(s) were skipped as errors: the bench's commands are wrong",
                now - before
            ));
        }
        if let Some(stall) = self.vits.stall() {
            return Err(format!("vITS queue stalled: {stall:?}"));
        }
        Ok(())
    }
}
