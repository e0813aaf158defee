//! One shard of the verified-token cache: a hash map from token bytes to a slot, the slots
//! (the entries, in the order the CLOCK hand visits them) and the shard's share of the byte
//! budget.
//!
//! Eviction, when an insert would go over the budget: first every entry already past its
//! deadline (a sweep of the shard, at most once a second), then by CLOCK: the hand walks the
//! slots, evicts an expired or unreferenced entry, and clears the "referenced" bit of one hit
//! since its last pass (a second chance). Two passes always find one to evict, so an insert
//! costs at most two sweeps of its shard, and usually a step or two.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{TailHash, Verified};

/// Least time between two sweeps for expired entries, in milliseconds.
const SWEEP_INTERVAL_MS: u64 = 1_000;

struct Slot {
    entry: Arc<Verified>,
    /// The Unix millisecond from which the entry is not served.
    deadline_ms: u64,
    /// Hit since the hand last passed.
    referenced: AtomicBool,
}

pub(super) struct Shard {
    /// Token bytes (sharing the entry's allocation) to an index into `slots`.
    index: HashMap<Arc<[u8]>, u32, TailHash>,
    slots: Vec<Option<Slot>>,
    /// Indices of the empty slots.
    free: Vec<u32>,
    /// The CLOCK hand: the next slot it looks at.
    hand: usize,
    bytes: u64,
    budget: u64,
    /// No sweep for expired entries before this Unix millisecond.
    next_sweep_ms: u64,
}

impl Shard {
    pub(super) fn new(budget: u64, hasher: TailHash) -> Self {
        Self {
            index: HashMap::with_hasher(hasher),
            slots: Vec::new(),
            free: Vec::new(),
            hand: 0,
            bytes: 0,
            budget,
            next_sweep_ms: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Slots allocated, empty ones included.
    #[cfg(test)]
    pub(super) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// The entry of `token` unless past its deadline; marks it referenced.
    pub(super) fn get(&self, token: &[u8], now_ms: u64) -> Option<Arc<Verified>> {
        let &at = self.index.get(token)?;
        let slot = self.slots[at as usize].as_ref()?;
        if now_ms >= slot.deadline_ms {
            return None;
        }
        // Read first: a hot entry's cache line is not written on every hit.
        if !slot.referenced.load(Ordering::Relaxed) {
            slot.referenced.store(true, Ordering::Relaxed);
        }
        Some(slot.entry.clone())
    }

    /// Caches `entry` until `deadline_ms`, evicting what the budget needs.
    pub(super) fn insert(&mut self, entry: Arc<Verified>, deadline_ms: u64, now_ms: u64) {
        let weight = u64::from(entry.weight);
        if weight > self.budget || deadline_ms <= now_ms {
            return;
        }
        // Verified twice at once (two requests with one new token): keep the newer.
        self.remove(entry.token());
        if self.bytes + weight > self.budget && now_ms >= self.next_sweep_ms {
            self.next_sweep_ms = now_ms.saturating_add(SWEEP_INTERVAL_MS);
            self.sweep_expired(now_ms);
        }
        while self.bytes + weight > self.budget {
            if !self.evict_one(now_ms) {
                return;
            }
        }
        let key = Arc::<[u8]>::from(entry.claims.access_token().shared());
        let slot = Slot {
            entry,
            deadline_ms,
            referenced: AtomicBool::new(false),
        };
        let at = match self.free.pop() {
            Some(at) => {
                self.slots[at as usize] = Some(slot);
                at
            }
            None => {
                self.slots.push(Some(slot));
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 entries a shard")
            }
        };
        self.bytes += weight;
        self.index.insert(key, at);
    }

    /// Forgets `token`.
    pub(super) fn remove(&mut self, token: &[u8]) {
        if let Some(at) = self.index.remove(token) {
            self.vacate(at);
        }
    }

    /// Evicts every entry past its deadline.
    fn sweep_expired(&mut self, now_ms: u64) {
        for at in 0..self.slots.len() {
            if let Some(slot) = &self.slots[at]
                && now_ms >= slot.deadline_ms
            {
                self.evict(at);
            }
        }
    }

    /// Moves the hand until it evicts one entry; `false` when there is none.
    fn evict_one(&mut self, now_ms: u64) -> bool {
        // After one pass every bit is clear: the second pass evicts at the latest.
        for _ in 0..=2 * self.slots.len() {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let at = self.hand;
            self.hand += 1;
            let Some(slot) = &self.slots[at] else {
                continue;
            };
            let second_chance =
                now_ms < slot.deadline_ms && slot.referenced.swap(false, Ordering::Relaxed);
            if !second_chance {
                self.evict(at);
                return true;
            }
        }
        false
    }

    /// Removes the entry in slot `at` from the index and the slot.
    fn evict(&mut self, at: usize) {
        if let Some(slot) = &self.slots[at] {
            let token = slot.entry.token();
            self.index.remove(token);
        }
        self.vacate(u32::try_from(at).expect("slot indices fit u32"));
    }

    fn vacate(&mut self, at: u32) {
        if let Some(slot) = self.slots[at as usize].take() {
            self.bytes -= u64::from(slot.entry.weight);
            self.free.push(at);
        }
    }
}
