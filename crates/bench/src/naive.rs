//! Naive floors shared by several benchmarks: a 4-level radix table with 512-entry
//! tables, walked from the top for every single entry, as the simplest code that
//! maps, unmaps and translates would do.

/// A naive 4-level, 4 KiB-granule radix table (x86-like).
pub struct NaiveRadix {
    tables: Vec<Box<[u64; 512]>>,
}

impl Default for NaiveRadix {
    fn default() -> Self {
        NaiveRadix::new()
    }
}

impl NaiveRadix {
    /// An empty table.
    pub fn new() -> Self {
        NaiveRadix {
            tables: vec![Box::new([0; 512])],
        }
    }

    /// The leaf entry for `iova`, allocating tables on the way.
    #[inline]
    pub fn entry(&mut self, iova: u64) -> &mut u64 {
        let mut table = 0usize;
        for level in (1..4).rev() {
            let idx = ((iova >> (12 + 9 * level)) & 511) as usize;
            let next = self.tables[table][idx];
            table = if next == 0 {
                self.tables.push(Box::new([0; 512]));
                let new = self.tables.len() - 1;
                self.tables[table][idx] = ((new as u64) << 12) | 3;
                new
            } else {
                (next >> 12) as usize
            };
        }
        &mut self.tables[table][((iova >> 12) & 511) as usize]
    }

    /// Maps one 4 KiB page.
    #[inline]
    pub fn map(&mut self, iova: u64, pa: u64) {
        *self.entry(iova) = pa | 3;
    }

    /// Maps a 2 MiB leaf at level 1 (no table below).
    pub fn map_2m(&mut self, iova: u64, pa: u64) {
        let mut table = 0usize;
        for level in (2..4).rev() {
            let idx = ((iova >> (12 + 9 * level)) & 511) as usize;
            let next = self.tables[table][idx];
            table = if next == 0 {
                self.tables.push(Box::new([0; 512]));
                let new = self.tables.len() - 1;
                self.tables[table][idx] = ((new as u64) << 12) | 3;
                new
            } else {
                (next >> 12) as usize
            };
        }
        self.tables[table][((iova >> 21) & 511) as usize] = pa | 0x83;
    }

    /// Translates `iova` (4 KiB and 2 MiB leaves), without allocating.
    #[inline]
    pub fn translate(&self, iova: u64) -> Option<u64> {
        let mut table = 0usize;
        let mut level = 3u32;
        loop {
            let shift = 12 + 9 * level;
            let e = self.tables[table][((iova >> shift) & 511) as usize];
            if e & 3 == 0 {
                return None;
            }
            if level == 0 || e & 0x80 != 0 {
                let mask = (1u64 << shift) - 1;
                return Some((e & !0xfff & !mask) | (iova & mask));
            }
            table = (e >> 12) as usize;
            level -= 1;
        }
    }

    /// Bytes of table memory.
    pub fn bytes(&self) -> u64 {
        self.tables.len() as u64 * 4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_radix_translates_what_it_maps() {
        let mut t = NaiveRadix::new();
        t.map(0x1234_5000, 0x9000);
        t.map_2m(0x4000_0000, 0x20_0000);
        assert_eq!(t.translate(0x1234_5010), Some(0x9010));
        assert_eq!(t.translate(0x4001_2345), Some(0x21_2345));
        assert_eq!(t.translate(0x1234_6000), None);
    }
}
