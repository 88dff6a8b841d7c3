//! Run-length storage of the physical addresses of a page store's pinned indices.
//!
//! The kernel keeps pinned PFNs either in an xarray (for accesses) or reads them
//! back out of a domain (`iova_to_phys`). Here every pinned index of a store keeps
//! its run in one ordered map, so a 1 GiB pin of contiguous memory is one entry
//! and no domain is ever asked to give PFNs back.

use std::collections::BTreeMap;

use crate::mm::{PhysRun, PAGE_SIZE};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    npages: u64,
    pa: u64,
    max_pgsize: u64,
}

/// One contiguous piece of a lookup: `npages` pages from `index` at `pa`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PfnSeg {
    pub(crate) index: u64,
    pub(crate) pa: u64,
    pub(crate) npages: u64,
    pub(crate) max_pgsize: u64,
}

/// Page index → physical run, for the pinned indices of one page store.
#[derive(Default, Debug)]
pub(crate) struct PfnMap {
    runs: BTreeMap<u64, Run>,
    npages: u64,
}

impl PfnMap {
    /// Number of indices stored.
    pub(crate) fn npages(&self) -> u64 {
        self.npages
    }

    /// Records `runs`, which cover consecutive indices from `start`; none of them
    /// may be stored yet.
    pub(crate) fn insert(&mut self, start: u64, runs: &[PhysRun]) {
        let mut index = start;
        for run in runs {
            debug_assert!(self.runs.range(index..index + run.npages).next().is_none());
            self.runs.insert(
                index,
                Run {
                    npages: run.npages,
                    pa: run.pa,
                    max_pgsize: run.max_pgsize,
                },
            );
            index += run.npages;
            self.npages += run.npages;
        }
    }

    /// Forgets indices `[start, last]`, splitting runs at the edges.
    pub(crate) fn remove(&mut self, start: u64, last: u64) {
        self.split_at(start);
        if let Some(end) = last.checked_add(1) {
            self.split_at(end);
        }
        let keys: Vec<u64> = self.runs.range(start..=last).map(|(&k, _)| k).collect();
        for key in keys {
            if let Some(run) = self.runs.remove(&key) {
                self.npages -= run.npages;
            }
        }
    }

    /// Makes `index` the start of a run if a run covers it.
    fn split_at(&mut self, index: u64) {
        let Some((&key, &run)) = self.runs.range(..index).next_back() else {
            return;
        };
        if key + run.npages <= index {
            return;
        }
        let head = index - key;
        self.runs.insert(
            key,
            Run {
                npages: head,
                ..run
            },
        );
        self.runs.insert(
            index,
            Run {
                npages: run.npages - head,
                pa: run.pa + head * PAGE_SIZE,
                max_pgsize: run.max_pgsize,
            },
        );
    }

    /// The physical address of `index`, if stored (invariant checks).
    pub(crate) fn pa_of(&self, index: u64) -> Option<u64> {
        let (&key, run) = self.runs.range(..=index).next_back()?;
        (index < key + run.npages).then(|| run.pa + (index - key) * PAGE_SIZE)
    }

    /// How many indices of `[start, last]` are stored (invariant checks).
    pub(crate) fn count_in(&self, start: u64, last: u64) -> u64 {
        let first = self
            .runs
            .range(..=start)
            .next_back()
            .map_or(start, |(&k, _)| k);
        self.runs
            .range(first..=last)
            .map(|(&k, r)| (k + r.npages).min(last + 1).saturating_sub(k.max(start)))
            .sum()
    }

    /// The stored runs clipped to `[start, last]`, ascending. The caller knows the
    /// whole range is stored.
    pub(crate) fn segments(&self, start: u64, last: u64) -> Vec<PfnSeg> {
        let mut out = Vec::new();
        let first = self
            .runs
            .range(..=start)
            .next_back()
            .filter(|(&k, r)| k + r.npages > start)
            .map(|(&k, _)| k)
            .unwrap_or(start);
        for (&key, run) in self.runs.range(first..=last) {
            let seg_start = key.max(start);
            let seg_end = (key + run.npages).min(last + 1);
            out.push(PfnSeg {
                index: seg_start,
                pa: run.pa + (seg_start - key) * PAGE_SIZE,
                npages: seg_end - seg_start,
                max_pgsize: run.max_pgsize,
            });
        }
        debug_assert_eq!(out.iter().map(|s| s.npages).sum::<u64>(), last - start + 1);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pa: u64, npages: u64) -> PhysRun {
        PhysRun {
            pa,
            npages,
            max_pgsize: PAGE_SIZE,
        }
    }

    #[test]
    fn segments_clip_runs() {
        let mut m = PfnMap::default();
        m.insert(10, &[run(0x10000, 4), run(0x80000, 2)]);
        let segs = m.segments(11, 14);
        assert_eq!(segs.len(), 2);
        assert_eq!(
            (segs[0].index, segs[0].pa, segs[0].npages),
            (11, 0x11000, 3)
        );
        assert_eq!(
            (segs[1].index, segs[1].pa, segs[1].npages),
            (14, 0x80000, 1)
        );
    }

    #[test]
    fn remove_splits_and_counts() {
        let mut m = PfnMap::default();
        m.insert(0, &[run(0, 10)]);
        m.remove(3, 5);
        assert_eq!(m.npages(), 7);
        let segs = m.segments(6, 9);
        assert_eq!((segs[0].pa, segs[0].npages), (6 * PAGE_SIZE, 4));
        let segs = m.segments(0, 2);
        assert_eq!((segs[0].pa, segs[0].npages), (0, 3));
    }
}
