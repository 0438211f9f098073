//! Software LPIs: a sparse, bounded pending set per vCPU, and a cache of
//! the guest's LPI configuration table (IHI 0069, 5.1.1: one byte per LPI,
//! priority in bits [7:2], enable in bit 0) refreshed when the vITS
//! forwards an INV or INVALL (IHI 0069, 5.1.1: a redistributor may cache
//! the table; software must invalidate after changing it).
//!
//! Every move takes an LPI out of its source before it reaches its target,
//! and an LPI sitting in a list register is redirected rather than copied,
//! so a pending LPI exists exactly once.

use alloc::collections::{BTreeMap, BTreeSet};

use super::{Actions, Vgic, VgicError};
use crate::guest_mem::GuestMemory;
use crate::ids::{VcpuIndex, VirtIntId, FIRST_LPI};
use crate::mm::Ipa;

/// An LPI's configuration, from its property-table byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LpiConfig {
    /// Priority (bits [7:2] of the byte; bits [1:0] read as zero).
    pub priority: u8,
    /// Enable (bit 0).
    pub enabled: bool,
}

impl LpiConfig {
    /// Decodes a property-table byte.
    pub fn from_byte(byte: u8) -> Self {
        Self {
            priority: byte & 0xfc,
            enabled: byte & 1 != 0,
        }
    }

    /// What an unreadable or out-of-range entry means: never delivered.
    const DISABLED: Self = Self {
        priority: 0xfc,
        enabled: false,
    };
}

/// Where LPI configuration comes from: the guest's property table in guest
/// memory ([`GuestLpiTable`]) or a fake in tests.
pub trait LpiConfigSource {
    /// The configuration of `intid`, or `None` if the table does not cover
    /// it or cannot be read.
    fn config(&self, intid: u32) -> Option<LpiConfig>;
}

/// A vCPU's LPI property table in guest memory, as GICR_PROPBASER names it.
pub struct GuestLpiTable<'a> {
    mem: &'a dyn GuestMemory,
    base: u64,
    id_bits: u8,
}

impl<'a> GuestLpiTable<'a> {
    /// The table GICR_PROPBASER value `propbaser` names, covering at most
    /// `max_id_bits` INTID bits (GICD_TYPER.IDbits + 1 wins when smaller,
    /// IHI 0069, 12.10.21).
    pub fn new(mem: &'a dyn GuestMemory, propbaser: u64, max_id_bits: u8) -> Self {
        let id_bits = ((propbaser & 0x1f) as u8)
            .saturating_add(1)
            .min(max_id_bits);
        Self {
            mem,
            base: propbaser & 0x000f_ffff_ffff_f000,
            id_bits,
        }
    }
}

impl LpiConfigSource for GuestLpiTable<'_> {
    fn config(&self, intid: u32) -> Option<LpiConfig> {
        // IDbits below 13 (14 INTID bits) means no LPI is covered.
        if intid < FIRST_LPI || self.id_bits < 14 || u64::from(intid) >> self.id_bits != 0 {
            return None;
        }
        let ipa = self.base.checked_add(u64::from(intid - FIRST_LPI))?;
        let mut byte = [0u8; 1];
        self.mem.read(Ipa(ipa), &mut byte).ok()?;
        Some(LpiConfig::from_byte(byte[0]))
    }
}

/// An LPI a list register of this vCPU holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct ListedLpi {
    /// CLEAR (or DISCARD) arrived since: drop it on fold.
    pub cancel: bool,
    /// MOVI/MOVALL arrived since: on fold, a still-pending copy goes here.
    pub redirect: Option<VcpuIndex>,
}

/// One vCPU's LPIs.
#[derive(Clone, Debug)]
pub(super) struct LpiState {
    pending: BTreeSet<u32>,
    cache: BTreeMap<u32, LpiConfig>,
    pub listed: BTreeMap<u32, ListedLpi>,
    /// Sizes the configuration cache.
    cap: usize,
    /// INVALLs in slices on this vCPU: (walker, next INTID to visit), one
    /// entry per walker (a vITS) with a walk in progress.
    walks: alloc::vec::Vec<(u8, u32)>,
}

/// How far a sliced MOVALL or INVALL got in one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slice {
    /// LPIs visited (at most the budget).
    pub touched: usize,
    /// Nothing is left to do.
    pub done: bool,
}

impl LpiState {
    /// Empty, with a configuration cache sized for `cap` pending LPIs.
    pub fn new(cap: usize) -> Self {
        Self {
            pending: BTreeSet::new(),
            cache: BTreeMap::new(),
            listed: BTreeMap::new(),
            cap,
            walks: alloc::vec::Vec::new(),
        }
    }

    /// Number of pending LPIs outside list registers.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// The pending LPIs outside list registers, lowest first.
    pub fn pending(&self) -> impl Iterator<Item = u32> + '_ {
        self.pending.iter().copied()
    }

    /// Number of LPIs this vCPU's list registers hold.
    pub fn listed_count(&self) -> usize {
        self.listed.len()
    }

    /// Whether `intid` is pending outside the list registers.
    pub fn contains(&self, intid: u32) -> bool {
        self.pending.contains(&intid)
    }

    /// Adds a pending LPI (the partition-wide budget is checked by the caller).
    pub fn insert(&mut self, intid: u32) {
        self.pending.insert(intid);
    }

    /// Removes a pending LPI; whether it was pending.
    pub fn remove(&mut self, intid: u32) -> bool {
        self.pending.remove(&intid)
    }

    /// The cached configuration of `intid`.
    pub fn config(&self, intid: u32) -> Option<LpiConfig> {
        self.cache.get(&intid).copied()
    }

    /// Caches `config` for `intid`, evicting entries nothing needs when the
    /// cache outgrows what the pending set and list registers can use.
    pub fn cache(&mut self, intid: u32, config: LpiConfig) {
        let limit = self.cap.saturating_mul(2).saturating_add(super::MAX_LRS);
        if self.cache.len() >= limit {
            let (pending, listed) = (&self.pending, &self.listed);
            self.cache
                .retain(|i, _| pending.contains(i) || listed.contains_key(i));
        }
        self.cache.insert(intid, config);
    }

    /// Drops every cached configuration (a new GICR_PROPBASER).
    pub fn forget_config(&mut self) {
        self.cache.clear();
    }

    /// The cached configurations, lowest INTID first.
    #[cfg(test)]
    pub fn cached(&self) -> alloc::vec::Vec<(u32, LpiConfig)> {
        self.cache.iter().map(|(&i, &c)| (i, c)).collect()
    }

    /// Whether `intid` is pending or listed here.
    fn holds(&self, intid: u32) -> bool {
        self.pending.contains(&intid) || self.listed.contains_key(&intid)
    }

    /// The lowest `budget` INTIDs from `start` on that the cache, the
    /// pending set or the list registers name (each once).
    fn named_from(&self, start: u32, budget: usize) -> alloc::vec::Vec<u32> {
        let mut intids: alloc::vec::Vec<u32> = self
            .cache
            .range(start..)
            .map(|(&i, _)| i)
            .take(budget)
            .chain(self.pending.range(start..).copied().take(budget))
            .chain(self.listed.range(start..).map(|(&i, _)| i).take(budget))
            .collect();
        intids.sort_unstable();
        intids.dedup();
        intids.truncate(budget);
        intids
    }
}

impl Vgic {
    /// The LPI property table of `vcpu` in guest memory `mem`.
    pub fn lpi_table<'a>(
        &self,
        vcpu: VcpuIndex,
        mem: &'a dyn GuestMemory,
    ) -> Result<GuestLpiTable<'a>, VgicError> {
        let propbaser = self.vcpu(vcpu)?.redist.propbaser;
        Ok(GuestLpiTable::new(mem, propbaser, self.config.lpi_id_bits))
    }

    /// Makes LPI `intid` pending on `vcpu` (an MSI that translated, or INT).
    /// Already pending: nothing changes (IHI 0069, 4.1: pending is a state,
    /// not a count).
    pub fn set_lpi_pending(
        &mut self,
        vcpu: VcpuIndex,
        intid: VirtIntId,
        source: &dyn LpiConfigSource,
    ) -> Result<Actions, VgicError> {
        self.check_lpi(intid)?;
        let enabled_lpis = self.vcpu(vcpu)?.redist.enable_lpis;
        let lookup = self.lookup_config(vcpu, intid.get(), source, false)?;
        // The budget is partition-wide: moves and folds relocate LPIs
        // between vCPUs, so only a total bounds memory whatever the guest does.
        let budget = self
            .config
            .max_pending_lpis
            .saturating_mul(usize::from(self.config.num_vcpus));
        let total = self.lpi_total();
        let lpis = &mut self.vcpu_mut(vcpu)?.lpis;
        if !lpis.contains(intid.get()) && total >= budget {
            self.counters.lpi_overflows = self.counters.lpi_overflows.saturating_add(1);
            return Err(VgicError::LpiPendingFull { vcpu, intid });
        }
        lpis.insert(intid.get());
        let mut actions = Actions::new();
        if enabled_lpis && lookup.enabled {
            actions.kick(vcpu);
        }
        Ok(actions)
    }

    /// Clears LPI `intid`'s pending state on `vcpu` (CLEAR, DISCARD).
    pub fn clear_lpi_pending(
        &mut self,
        vcpu: VcpuIndex,
        intid: VirtIntId,
    ) -> Result<Actions, VgicError> {
        self.check_lpi(intid)?;
        self.vcpu_mut(vcpu)?.lpis.remove(intid.get());
        let mut actions = Actions::new();
        self.for_listed_copy(vcpu, intid.get(), &mut actions, |listed| {
            listed.cancel = true
        });
        Ok(actions)
    }

    /// Moves LPI `intid`'s pending state from `from` to `to` (MOVI). A copy
    /// in one of `from`'s list registers follows when `from` folds.
    pub fn move_lpi_pending(
        &mut self,
        from: VcpuIndex,
        to: VcpuIndex,
        intid: VirtIntId,
    ) -> Result<Actions, VgicError> {
        self.check_lpi(intid)?;
        self.vcpu(to)?;
        self.vcpu(from)?;
        let mut actions = Actions::new();
        if from != to {
            self.move_one(from, to, intid.get(), &mut actions);
        }
        Ok(actions)
    }

    /// Moves every LPI pending on `from` to `to` (MOVALL).
    pub fn move_all_lpis(&mut self, from: VcpuIndex, to: VcpuIndex) -> Result<Actions, VgicError> {
        self.vcpu(to)?;
        let state = self.vcpu(from)?;
        let mut actions = Actions::new();
        if from == to {
            return Ok(actions);
        }
        // Copies listed elsewhere but owned by `from` are found by
        // `for_listed_copy`; collect every INTID any vCPU has listed.
        let mut intids: alloc::vec::Vec<u32> = state.lpis.pending().collect();
        for holder in &self.vcpus {
            intids.extend(holder.lpis.listed.keys().copied());
        }
        for intid in intids {
            self.move_one(from, to, intid, &mut actions);
        }
        Ok(actions)
    }

    /// MOVALL in slices: moves at most `budget` LPIs `from` holds (pending
    /// ones first, lowest INTID first, then copies in list registers that
    /// belong to it), and says whether `from` holds none any more. Each
    /// move takes the LPI away from `from`, so calling again with a fresh
    /// budget until done moves what [`Vgic::move_all_lpis`] moves at once
    /// (and what became pending on `from` in between).
    pub fn move_lpis_within(
        &mut self,
        from: VcpuIndex,
        to: VcpuIndex,
        budget: usize,
    ) -> Result<(Actions, Slice), VgicError> {
        self.vcpu(to)?;
        let state = self.vcpu(from)?;
        let mut actions = Actions::new();
        if from == to {
            return Ok((
                actions,
                Slice {
                    touched: 0,
                    done: true,
                },
            ));
        }
        let mut intids: alloc::vec::Vec<u32> = state.lpis.pending().take(budget).collect();
        let room = budget - intids.len();
        intids.extend(self.listed_copies_of(from).take(room));
        for &intid in &intids {
            self.move_one(from, to, intid, &mut actions);
        }
        let done = self.vcpu(from)?.lpis.pending_count() == 0
            && self.listed_copies_of(from).next().is_none();
        Ok((
            actions,
            Slice {
                touched: intids.len(),
                done,
            },
        ))
    }

    /// The INTIDs of the list-register copies that belong to `owner`
    /// (listed on it and not moved, or moved to it from elsewhere).
    fn listed_copies_of(&self, owner: VcpuIndex) -> impl Iterator<Item = u32> + '_ {
        self.vcpus
            .iter()
            .enumerate()
            .flat_map(move |(index, holder)| {
                let here = VcpuIndex::new(index as u16);
                holder
                    .lpis
                    .listed
                    .iter()
                    .filter(move |(_, l)| !l.cancel && l.redirect.unwrap_or(here) == owner)
                    .map(|(&intid, _)| intid)
            })
    }

    /// INVALL in slices for `walker` (one per caller that may have a walk
    /// in progress, such as a vITS): visits at most `budget` INTIDs `vcpu`
    /// caches or holds, in INTID order from where the walker's last slice
    /// stopped, rereading the configuration of those it holds and
    /// forgetting the others. Calling again until done leaves what
    /// [`Vgic::invalidate_all_lpis`] leaves: exactly the held LPIs cached,
    /// each as the table says now. Until then, an LPI the walk has not
    /// reached may still use its old configuration, as on a redistributor
    /// whose INVALL has not completed.
    pub fn invalidate_lpis_within(
        &mut self,
        vcpu: VcpuIndex,
        walker: u8,
        budget: usize,
        source: &dyn LpiConfigSource,
    ) -> Result<(Actions, Slice), VgicError> {
        let lpis = &self.vcpu(vcpu)?.lpis;
        if budget == 0 {
            let done = false;
            return Ok((Actions::new(), Slice { touched: 0, done }));
        }
        let start = lpis
            .walks
            .iter()
            .find(|(w, _)| *w == walker)
            .map_or(0, |&(_, next)| next);
        let intids = lpis.named_from(start, budget);
        for &intid in &intids {
            if self.vcpu(vcpu)?.lpis.holds(intid) {
                self.lookup_config(vcpu, intid, source, true)?;
            } else {
                self.vcpu_mut(vcpu)?.lpis.cache.remove(&intid);
            }
        }
        let next = match intids.last() {
            Some(&last) if intids.len() == budget => last.checked_add(1),
            _ => None,
        };
        let lpis = &mut self.vcpu_mut(vcpu)?.lpis;
        let next = next.filter(|&n| !lpis.named_from(n, 1).is_empty());
        lpis.walks.retain(|(w, _)| *w != walker);
        let mut actions = Actions::new();
        if let Some(next) = next {
            lpis.walks.push((walker, next));
        } else {
            let state = self.vcpu(vcpu)?;
            if state.redist.enable_lpis && state.lpis.pending_count() > 0 {
                actions.kick(vcpu);
            }
        }
        Ok((
            actions,
            Slice {
                touched: intids.len(),
                done: next.is_none(),
            },
        ))
    }

    /// Rereads LPI `intid`'s configuration for `vcpu` (INV).
    pub fn invalidate_lpi(
        &mut self,
        vcpu: VcpuIndex,
        intid: VirtIntId,
        source: &dyn LpiConfigSource,
    ) -> Result<Actions, VgicError> {
        self.check_lpi(intid)?;
        let config = self.lookup_config(vcpu, intid.get(), source, true)?;
        let state = self.vcpu(vcpu)?;
        let mut actions = Actions::new();
        if config.enabled
            && state.redist.enable_lpis
            && state.lpis.pending().any(|i| i == intid.get())
        {
            actions.kick(vcpu);
        }
        Ok(actions)
    }

    /// Rereads the configuration of every LPI `vcpu` holds (INVALL).
    pub fn invalidate_all_lpis(
        &mut self,
        vcpu: VcpuIndex,
        source: &dyn LpiConfigSource,
    ) -> Result<Actions, VgicError> {
        let lpis = &mut self.vcpu_mut(vcpu)?.lpis;
        lpis.forget_config();
        let held: alloc::vec::Vec<u32> =
            lpis.pending().chain(lpis.listed.keys().copied()).collect();
        for intid in held {
            self.lookup_config(vcpu, intid, source, true)?;
        }
        let state = self.vcpu(vcpu)?;
        let mut actions = Actions::new();
        if state.redist.enable_lpis && state.lpis.pending_count() > 0 {
            actions.kick(vcpu);
        }
        Ok(actions)
    }

    /// Whether LPI `intid` is pending on `vcpu`, in the model or in a list
    /// register as of the last fold.
    pub fn lpi_pending(&self, vcpu: VcpuIndex, intid: VirtIntId) -> bool {
        let Ok(state) = self.vcpu(vcpu) else {
            return false;
        };
        state.lpis.pending().any(|i| i == intid.get())
            || self.vcpus.iter().enumerate().any(|(index, holder)| {
                holder.lpis.listed.get(&intid.get()).is_some_and(|l| {
                    !l.cancel && l.redirect.unwrap_or(VcpuIndex::new(index as u16)) == vcpu
                })
            })
    }

    fn move_one(&mut self, from: VcpuIndex, to: VcpuIndex, intid: u32, actions: &mut Actions) {
        let Ok(source) = self.vcpu_mut(from) else {
            return;
        };
        let config = source.lpis.config(intid);
        let was_pending = source.lpis.remove(intid);
        let Ok(target) = self.vcpu_mut(to) else {
            return;
        };
        if let Some(config) = config {
            target.lpis.cache(intid, config);
        }
        if was_pending {
            target.lpis.insert(intid);
            actions.kick(to);
        }
        self.for_listed_copy(from, intid, actions, |listed| listed.redirect = Some(to));
    }

    /// Applies `change` to the list-register copy of `intid` that belongs
    /// to `owner` (listed on `owner`, or on another vCPU and redirected to
    /// `owner` by an earlier move), and kicks the vCPU holding it so that
    /// it folds soon.
    fn for_listed_copy(
        &mut self,
        owner: VcpuIndex,
        intid: u32,
        actions: &mut Actions,
        change: impl Fn(&mut ListedLpi),
    ) {
        for (index, holder) in self.vcpus.iter_mut().enumerate() {
            let here = VcpuIndex::new(index as u16);
            if let Some(listed) = holder.lpis.listed.get_mut(&intid) {
                if !listed.cancel && listed.redirect.unwrap_or(here) == owner {
                    change(listed);
                    if listed.redirect == Some(here) {
                        listed.redirect = None;
                    }
                    actions.kick(here);
                }
            }
        }
    }

    /// The configuration of `intid` for `vcpu`: from the cache, or read
    /// through `source` (always when `refresh`) and cached.
    fn lookup_config(
        &mut self,
        vcpu: VcpuIndex,
        intid: u32,
        source: &dyn LpiConfigSource,
        refresh: bool,
    ) -> Result<LpiConfig, VgicError> {
        if !refresh {
            if let Some(config) = self.vcpu(vcpu)?.lpis.config(intid) {
                return Ok(config);
            }
        }
        let config = match source.config(intid) {
            Some(config) => config,
            None => {
                self.counters.lpi_unreadable = self.counters.lpi_unreadable.saturating_add(1);
                LpiConfig::DISABLED
            }
        };
        self.vcpu_mut(vcpu)?.lpis.cache(intid, config);
        Ok(config)
    }

    /// LPIs held over all vCPUs, pending or in list registers.
    pub(super) fn lpi_total(&self) -> usize {
        self.vcpus
            .iter()
            .map(|s| s.lpis.pending_count() + s.lpis.listed_count())
            .sum()
    }

    fn check_lpi(&self, intid: VirtIntId) -> Result<(), VgicError> {
        if self.config.is_lpi(intid.get()) {
            Ok(())
        } else {
            Err(VgicError::NoSuchInterrupt(intid))
        }
    }
}
