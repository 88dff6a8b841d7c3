//! Introspection of the object table for leak and invariant checks (tests only).

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{Ctx, Slot, Table};
use crate::debug::TableStats;
use crate::device::Igroup;
use crate::object::Object;

impl Table {
    fn stats(&self) -> TableStats {
        let mut st = TableStats {
            slots: self.slots.len(),
            used: self.used,
            free_ids: self.free.len(),
            next_id: self
                .free
                .peek()
                .map_or(self.slots.len().max(1) as u32, |r| r.0),
            ..TableStats::default()
        };
        for slot in &self.slots {
            match slot {
                Slot::Empty => {}
                Slot::Reserved => st.reserved += 1,
                Slot::Live(_) => st.live += 1,
            }
        }
        st
    }

    /// The table's own invariants: `used` counts reserved and live slots, the free
    /// heap holds exactly the empty slots above 0, every live object sits at its ID.
    fn check(&self) -> Result<(), String> {
        let st = self.stats();
        if st.used != st.live + st.reserved {
            return Err(format!("table: used {} != {st:?}", self.used));
        }
        let free: BTreeSet<u32> = self.free.iter().map(|r| r.0).collect();
        if free.len() != self.free.len() {
            return Err("table: an ID is free twice".into());
        }
        for (i, slot) in self.slots.iter().enumerate() {
            let is_free = free.contains(&(i as u32));
            match slot {
                Slot::Empty if i > 0 && !is_free => {
                    return Err(format!("table: ID {i} is empty but not free (leaked)"));
                }
                Slot::Reserved | Slot::Live(_) if is_free => {
                    return Err(format!("table: ID {i} is in use and free"));
                }
                Slot::Live(obj) if obj.id() as usize != i => {
                    return Err(format!("table: object {} in slot {i}", obj.id()));
                }
                _ => {}
            }
        }
        if free.contains(&0) {
            return Err("table: ID 0 is free".into());
        }
        if let Some(v) = &self.vfio_ioas {
            if !self.live(v.id()).is_some_and(|o| Arc::ptr_eq(o, v)) {
                return Err(format!("table: VFIO IOAS {} is not live", v.id()));
            }
        }
        Ok(())
    }
}

impl Ctx {
    /// Counts of the object table: live objects and reserved IDs.
    pub fn debug_table(&self) -> TableStats {
        self.lock_table().stats()
    }

    /// The table's invariants (see `Table::check`).
    pub(crate) fn debug_check_table(&self) -> Result<(), String> {
        self.lock_table().check()
    }

    /// Every live object, by ascending ID, and the VFIO compat IOAS.
    pub(crate) fn debug_objects(&self) -> (Vec<Arc<Object>>, Option<Arc<Object>>) {
        let table = self.lock_table();
        let objs = table
            .slots
            .iter()
            .filter_map(|s| match s {
                Slot::Live(obj) => Some(obj.clone()),
                _ => None,
            })
            .collect();
        (objs, table.vfio_ioas.clone())
    }

    /// Every igroup of the context still referenced by a device.
    pub(crate) fn debug_igroups(&self) -> Vec<Arc<Igroup>> {
        let groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Arc<Igroup>> = groups.values().filter_map(|w| w.upgrade()).collect();
        out.sort_by_key(|g| g.group.id());
        out
    }
}
