//! A configuration space that behaves like QEMU's devices: read-only and
//! writable bits per dword, BARs that answer the all-ones probe with their
//! size mask, capability lists, and a log of every access.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::cell::RefCell;

use crate::boot::platform::{PciHostBridge, PciSpace, PciWindow};
use crate::mm::addr::PhysAddr;
use crate::pci::regs::{self, cap_id};
use crate::pci::{BarKind, Bdf, ConfigAccess};

/// One recorded access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// read32(bdf, offset).
    Read(Bdf, u16),
    /// write32(bdf, offset, value).
    Write(Bdf, u16, u32),
}

/// One function's 4 KiB of configuration space.
#[derive(Clone)]
pub struct FakeFunction {
    pub config: Vec<u32>,
    wmask: Vec<u32>,
    w1c: Vec<u32>,
    last_cap: Option<u8>,
    last_ext_cap: Option<u16>,
}

impl FakeFunction {
    /// A function with IDs, class (base << 16 | sub << 8 | prog_if) and revision.
    pub fn new(vendor: u16, device: u16, class: u32, revision: u8) -> Self {
        let mut f = FakeFunction {
            config: vec![0; 1024],
            wmask: vec![0; 1024],
            w1c: vec![0; 1024],
            last_cap: None,
            last_ext_cap: None,
        };
        f.set(0x00, u32::from(device) << 16 | u32::from(vendor));
        f.set(0x08, class << 8 | u32::from(revision));
        // COMMAND: I/O, memory, bus master, parity, SERR, INTx disable writable;
        // STATUS error bits write-one-to-clear (PCI LB 3.0, 6.2.2-6.2.3).
        f.wmask[1] = 0x0000_0547;
        f.w1c[1] = 0xf900_0000;
        // Cache line size and latency timer are writable; interrupt line too.
        f.wmask[3] = 0x0000_ffff;
        f.wmask[15] = 0x0000_00ff;
        f.set(0x3c, 0x0100); // INTA#
        f
    }

    pub fn get(&self, offset: u16) -> u32 {
        self.config[usize::from(offset / 4)]
    }

    pub fn set(&mut self, offset: u16, value: u32) {
        self.config[usize::from(offset / 4)] = value;
    }

    fn set_wmask(&mut self, offset: u16, mask: u32) {
        self.wmask[usize::from(offset / 4)] = mask;
    }

    /// Header type byte (layout | 0x80 for multi-function).
    pub fn header_type(mut self, header: u8) -> Self {
        let dword = self.get(0x0c) & !0x00ff_0000 | u32::from(header) << 16;
        self.set(0x0c, dword);
        self
    }

    pub fn subsystem(mut self, vendor: u16, id: u16) -> Self {
        self.set(regs::SUBSYSTEM, u32::from(id) << 16 | u32::from(vendor));
        self
    }

    /// A BAR of `kind` and `size`: the address bits below the size read as zero.
    pub fn bar(mut self, index: u8, kind: BarKind, size: u64) -> Self {
        let offset = regs::bar_offset(index);
        let mask = !(size - 1);
        self.set(offset, kind.flags());
        self.set_wmask(offset, mask as u32 & !kind.flag_mask());
        if let BarKind::Mem64 { .. } = kind {
            self.set_wmask(offset + 4, (mask >> 32) as u32);
        }
        self
    }

    /// Appends a capability with `id` at `offset`, its dwords after the header
    /// dword given in `body`, and the writable bits of each dword in `wmask`
    /// (the header dword first).
    pub fn cap(mut self, offset: u8, id: u8, control: u16, body: &[u32], wmask: &[u32]) -> Self {
        let base = u16::from(offset);
        self.set(base, u32::from(control) << 16 | u32::from(id));
        for (i, dword) in body.iter().enumerate() {
            self.set(base + 4 + 4 * i as u16, *dword);
        }
        for (i, mask) in wmask.iter().enumerate() {
            self.set_wmask(base + 4 * i as u16, *mask);
        }
        match self.last_cap {
            None => {
                self.set(regs::CAPABILITIES_POINTER, u32::from(offset));
                let status = self.get(0x04) | u32::from(regs::status::CAPABILITIES_LIST) << 16;
                self.set(0x04, status);
            }
            Some(previous) => {
                let header = self.get(u16::from(previous)) | u32::from(offset) << 8;
                self.set(u16::from(previous), header);
            }
        }
        self.last_cap = Some(offset);
        self
    }

    /// An MSI capability (PCI LB 3.0, 6.8.1), as QEMU's msi_init builds it.
    pub fn msi(self, offset: u8, vectors_log2: u8, address_64: bool, masking: bool) -> Self {
        let mut control = u16::from(vectors_log2) << 1;
        // Dwords after the header: address, [upper address], data, [mask, pending].
        let mut body = vec![0u32];
        let mut wmask = vec![0x0071_0000, 0xffff_fffc];
        if address_64 {
            control |= 1 << 7;
            body.push(0);
            wmask.push(0xffff_ffff);
        }
        body.push(0);
        wmask.push(0x0000_ffff);
        if masking {
            control |= 1 << 8;
            body.extend([0, 0]);
            wmask.push((1u64 << (1u32 << vectors_log2)).wrapping_sub(1) as u32);
            wmask.push(0);
        }
        self.cap(offset, cap_id::MSI, control, &body, &wmask)
    }

    /// An MSI-X capability (PCI LB 3.0, 6.8.2) with `vectors` entries.
    pub fn msix(self, offset: u8, vectors: u16, table: (u8, u32), pba: (u8, u32)) -> Self {
        let control = vectors - 1;
        let body = [table.1 | u32::from(table.0), pba.1 | u32::from(pba.0)];
        self.cap(offset, cap_id::MSIX, control, &body, &[0xc000_0000])
    }

    /// A PCI Express capability of version 2 and `port_type`.
    pub fn pcie(self, offset: u8, port_type: u8) -> Self {
        let control = u16::from(port_type) << 4 | 2;
        self.cap(offset, cap_id::PCI_EXPRESS, control, &[0; 14], &[])
    }

    /// An extended capability at `offset` (0x100 and above).
    pub fn ext_cap(mut self, offset: u16, id: u16) -> Self {
        self.set(offset, 1 << 16 | u32::from(id));
        if let Some(previous) = self.last_ext_cap {
            let header = self.get(previous) | u32::from(offset) << 20;
            self.set(previous, header);
        }
        self.last_ext_cap = Some(offset);
        self
    }
}

/// A bus of fake functions with an access log.
#[derive(Default)]
pub struct FakeConfigSpace {
    pub functions: BTreeMap<Bdf, FakeFunction>,
    pub log: RefCell<Vec<Access>>,
    /// BAR writes of all ones while memory or I/O decode was on.
    pub sized_while_decoding: usize,
}

impl FakeConfigSpace {
    pub fn with(mut self, bdf: &str, function: FakeFunction) -> Self {
        self.functions
            .insert(bdf.parse().expect("test BDF"), function);
        self
    }

    pub fn function(&self, bdf: &str) -> &FakeFunction {
        &self.functions[&bdf.parse::<Bdf>().expect("test BDF")]
    }

    pub fn function_mut(&mut self, bdf: &str) -> &mut FakeFunction {
        self.functions
            .get_mut(&bdf.parse::<Bdf>().expect("test BDF"))
            .expect("modelled function")
    }

    /// The BDFs any access touched.
    pub fn touched(&self) -> Vec<Bdf> {
        let mut bdfs: Vec<Bdf> = self
            .log
            .borrow()
            .iter()
            .map(|a| match a {
                Access::Read(bdf, _) | Access::Write(bdf, _, _) => *bdf,
            })
            .collect();
        bdfs.sort();
        bdfs.dedup();
        bdfs
    }

    pub fn writes(&self) -> Vec<(Bdf, u16, u32)> {
        self.log
            .borrow()
            .iter()
            .filter_map(|a| match a {
                Access::Write(bdf, offset, value) => Some((*bdf, *offset, *value)),
                Access::Read(..) => None,
            })
            .collect()
    }
}

impl ConfigAccess for FakeConfigSpace {
    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        assert!(
            offset.is_multiple_of(4) && offset < 4096,
            "read32 contract: {offset:#x}"
        );
        self.log.borrow_mut().push(Access::Read(bdf, offset));
        self.functions
            .get(&bdf)
            .map_or(regs::ABSENT, |f| f.get(offset))
    }

    fn write32(&mut self, bdf: Bdf, offset: u16, value: u32) {
        assert!(
            offset.is_multiple_of(4) && offset < 4096,
            "write32 contract: {offset:#x}"
        );
        self.log
            .borrow_mut()
            .push(Access::Write(bdf, offset, value));
        let Some(f) = self.functions.get_mut(&bdf) else {
            return;
        };
        let i = usize::from(offset / 4);
        let is_bar = (regs::BAR0..regs::BAR0 + 24).contains(&offset);
        if is_bar && value == u32::MAX && f.config[1] & 0x3 != 0 {
            self.sized_while_decoding += 1;
        }
        let kept = f.config[i] & !f.wmask[i];
        f.config[i] = (kept | value & f.wmask[i]) & !(value & f.w1c[i]);
    }
}

/// QEMU's generic PCIe host bridge function (gpex-root), 00:00.0.
pub fn gpex_root() -> FakeFunction {
    FakeFunction::new(0x1b36, 0x0008, 0x06_00_00, 0).subsystem(0x1af4, 0x1100)
}

/// `-device virtio-net-pci,disable-legacy=on`: modern only, MSI-X in BAR1,
/// the virtio structures in a 64-bit prefetchable BAR4, vendor capabilities.
pub fn virtio_net() -> FakeFunction {
    let vendor = |f: FakeFunction, offset: u8, next_len: u16| {
        f.cap(
            offset,
            cap_id::VENDOR,
            next_len,
            &[0x0004_0000, 0, 0x1000],
            &[],
        )
    };
    let f = FakeFunction::new(0x1af4, 0x1041, 0x02_00_00, 1)
        .subsystem(0x1af4, 0x1100)
        .bar(
            1,
            BarKind::Mem32 {
                prefetchable: false,
            },
            0x1000,
        )
        .bar(4, BarKind::Mem64 { prefetchable: true }, 0x4000)
        .msix(0x98, 3, (1, 0), (1, 0x800));
    let f = vendor(f, 0x84, 0x0214);
    let f = vendor(f, 0x70, 0x0414);
    let f = vendor(f, 0x60, 0x0310);
    let f = vendor(f, 0x50, 0x0110);
    vendor(f, 0x40, 0x0210)
}

/// `-device edu`: 1 MiB of registers in BAR0, one 64-bit MSI vector.
pub fn edu() -> FakeFunction {
    FakeFunction::new(0x1234, 0x11e8, 0x00_ff_00, 0x10)
        .subsystem(0x1af4, 0x1100)
        .bar(
            0,
            BarKind::Mem32 {
                prefetchable: false,
            },
            1 << 20,
        )
        .msi(0x40, 0, true, false)
}

/// `-device e1000e` (82574L): registers, flash, I/O and the MSI-X BAR.
pub fn e1000e() -> FakeFunction {
    let mem = BarKind::Mem32 {
        prefetchable: false,
    };
    FakeFunction::new(0x8086, 0x10d3, 0x02_00_00, 0)
        .subsystem(0x8086, 0x0000)
        .bar(0, mem, 128 << 10)
        .bar(1, mem, 128 << 10)
        .bar(2, BarKind::Io, 32)
        .bar(3, mem, 16 << 10)
        .cap(
            0xc8,
            cap_id::POWER_MANAGEMENT,
            0x0002,
            &[0],
            &[0, 0x0000_8103],
        )
        .msi(0xd0, 0, true, false)
        .pcie(0xe0, 0)
        .msix(0xa0, 5, (3, 0), (3, 0x2000))
        .ext_cap(0x100, 0x0001)
        .ext_cap(0x140, 0x0003)
}

/// `-device pcie-root-port`: a type 1 header, buses left unconfigured.
pub fn root_port(multi_function: bool) -> FakeFunction {
    let header = regs::header_type::PCI_BRIDGE | if multi_function { 0x80 } else { 0 };
    FakeFunction::new(0x1b36, 0x000c, 0x06_04_00, 0)
        .header_type(header)
        .pcie(0x40, 4)
}

/// QEMU virt with `-device virtio-net-pci,disable-legacy=on -device edu
/// -device e1000e` and two root ports at 04.0 (multifunction=on) and 04.1.
pub fn qemu_virt_bus() -> FakeConfigSpace {
    FakeConfigSpace::default()
        .with("00:00.0", gpex_root())
        .with("00:01.0", virtio_net())
        .with("00:02.0", edu())
        .with("00:03.0", e1000e())
        .with("00:04.0", root_port(true))
        .with("00:04.1", root_port(false))
}

/// QEMU virt's host bridge as its device tree describes it.
pub fn qemu_virt_bridge() -> PciHostBridge {
    bridge_with_windows(vec![
        window(PciSpace::Io, 0x0, 0x3eff_0000, 0x1_0000),
        window(PciSpace::Mem32, 0x1000_0000, 0x1000_0000, 0x2eff_0000),
        window(
            PciSpace::Mem64,
            0x80_0000_0000,
            0x80_0000_0000,
            0x80_0000_0000,
        ),
    ])
}

pub fn window(space: PciSpace, pci: u64, cpu: u64, size: u64) -> PciWindow {
    PciWindow {
        space,
        prefetchable: false,
        pci_address: pci,
        cpu_address: PhysAddr(cpu),
        size,
    }
}

pub fn bridge_with_windows(windows: Vec<PciWindow>) -> PciHostBridge {
    PciHostBridge {
        node: "/pcie@10000000".into(),
        ecam: crate::mm::addr::Range {
            start: PhysAddr(0x40_1000_0000),
            size: 0x1000_0000,
        },
        first_bus: 0,
        last_bus: 0xff,
        windows,
        msi_parent: None,
        msi_map: Vec::new(),
        msi_map_mask: None,
        iommu_map: Vec::new(),
        iommu_map_mask: None,
        dma_coherent: true,
        domain: None,
    }
}
