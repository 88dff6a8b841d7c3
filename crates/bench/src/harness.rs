//! Measurement: same-run floors, medians, the result table and its JSON form.
//!
//! Every benchmark times its floor right before and right after the measured
//! code in each repetition ([`measure`]), so machine drift between runs cancels
//! out in the ratio. Timings are reported, never asserted.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

/// How a benchmark should run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Smaller sizes and fewer repetitions (CI smoke run, under a minute).
    pub quick: bool,
    /// Only benchmarks whose name contains this string.
    pub filter: Option<String>,
}

impl Config {
    /// Repetitions for medians (at least 5).
    pub fn reps(&self) -> usize {
        if self.quick {
            5
        } else {
            9
        }
    }

    /// `full` normally, `quick` in quick mode.
    pub fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick {
            quick
        } else {
            full
        }
    }
}

/// What a row's target compares.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// `ours / floor <= x`.
    RatioAtMost(f64),
    /// `ours / floor >= x` (a speed-up or throughput fraction).
    RatioAtLeast(f64),
    /// `ours <= x` in the row's unit.
    AbsAtMost(f64),
    /// `ours - floor <= x` in the row's unit (a fixed extra cost per operation).
    ExtraAtMost(f64),
    /// Reported only.
    None,
}

/// One line of the result table.
#[derive(Clone, Debug)]
pub struct Row {
    /// Benchmark name (`B1 ioas_map_bulk`, ...).
    pub bench: String,
    /// Case within the benchmark.
    pub case: String,
    /// Median of the measured code, in `unit`.
    pub ours: f64,
    /// Median of the floor, in `unit` (0 when the row has no floor).
    pub floor: f64,
    /// Unit of `ours` and `floor`.
    pub unit: &'static str,
    /// The target.
    pub target: Target,
    /// Free-form note (what the floor is).
    pub note: String,
}

impl Row {
    /// `ours / floor`, or NaN without a floor.
    pub fn ratio(&self) -> f64 {
        if self.floor > 0.0 {
            self.ours / self.floor
        } else {
            f64::NAN
        }
    }

    /// Whether the target is met (`None` for report-only rows).
    pub fn met(&self) -> Option<bool> {
        match self.target {
            Target::RatioAtMost(x) => Some(self.ratio() <= x),
            Target::RatioAtLeast(x) => Some(self.ratio() >= x),
            Target::AbsAtMost(x) => Some(self.ours <= x),
            Target::ExtraAtMost(x) => Some(self.ours - self.floor <= x),
            Target::None => None,
        }
    }

    /// The target as text.
    pub fn target_text(&self) -> String {
        match self.target {
            Target::RatioAtMost(x) => format!("ratio <= {x}"),
            Target::RatioAtLeast(x) => format!("ratio >= {x}"),
            Target::AbsAtMost(x) => format!("<= {x} {}", self.unit),
            Target::ExtraAtMost(x) => format!("extra <= {x} {}", self.unit),
            Target::None => "-".to_string(),
        }
    }
}

/// The collected rows of a run.
#[derive(Default, Debug)]
pub struct Report {
    /// All rows, in run order.
    pub rows: Vec<Row>,
}

impl Report {
    /// Adds a row and prints it at once (long runs show progress).
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        bench: &str,
        case: &str,
        ours: f64,
        floor: f64,
        unit: &'static str,
        target: Target,
        note: &str,
    ) {
        let row = Row {
            bench: bench.to_string(),
            case: case.to_string(),
            ours,
            floor,
            unit,
            target,
            note: note.to_string(),
        };
        eprintln!(
            "  {:<22} {:<34} {:>12} {:>12} {:>8}  {}",
            row.bench,
            row.case,
            fmt_num(row.ours, row.unit),
            fmt_num(row.floor, row.unit),
            fmt_ratio(row.ratio()),
            met_text(row.met())
        );
        self.rows.push(row);
    }

    /// The table: benchmark, case, ours median, floor median, ratio, target, met?
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<22} {:<34} {:>12} {:>12} {:>8} {:<22} {:<5} floor",
            "benchmark", "case", "ours", "floor", "ratio", "target", "met"
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{:<22} {:<34} {:>12} {:>12} {:>8} {:<22} {:<5} {}",
                r.bench,
                r.case,
                fmt_num(r.ours, r.unit),
                fmt_num(r.floor, r.unit),
                fmt_ratio(r.ratio()),
                r.target_text(),
                met_text(r.met()),
                r.note
            );
        }
        let judged: Vec<bool> = self.rows.iter().filter_map(Row::met).collect();
        let met = judged.iter().filter(|&&m| m).count();
        let _ = writeln!(s, "targets met: {met} of {}", judged.len());
        s
    }

    /// The rows as a JSON document (for comparing runs between commits).
    pub fn json(&self) -> String {
        let mut s = String::from("{\n  \"rows\": [\n");
        for (i, r) in self.rows.iter().enumerate() {
            let met = match r.met() {
                Some(true) => "true",
                Some(false) => "false",
                None => "null",
            };
            let _ = write!(
                s,
                "    {{\"bench\": {}, \"case\": {}, \"unit\": {}, \"ours\": {}, \"floor\": {}, \
                 \"ratio\": {}, \"target\": {}, \"met\": {}, \"note\": {}}}",
                json_str(&r.bench),
                json_str(&r.case),
                json_str(r.unit),
                json_num(r.ours),
                json_num(r.floor),
                json_num(r.ratio()),
                json_str(&r.target_text()),
                met,
                json_str(&r.note)
            );
            s.push_str(if i + 1 < self.rows.len() { ",\n" } else { "\n" });
        }
        s.push_str("  ]\n}\n");
        s
    }
}

fn met_text(m: Option<bool>) -> &'static str {
    match m {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "-",
    }
}

fn fmt_num(v: f64, unit: &str) -> String {
    if v == 0.0 || v.is_nan() {
        return "-".to_string();
    }
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$} {unit}")
}

fn fmt_ratio(r: f64) -> String {
    if r.is_nan() {
        "-".to_string()
    } else {
        format!("{r:.2}")
    }
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".to_string()
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The median of `v` (sorted in place); NaN for an empty slice.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Nanoseconds `f` takes, once.
pub fn time_ns(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_nanos() as f64
}

/// Nanoseconds per iteration of `f` over `iters` iterations.
pub fn per_iter_ns(iters: u64, mut f: impl FnMut(u64)) -> f64 {
    let t = Instant::now();
    for i in 0..iters {
        f(black_box(i));
    }
    t.elapsed().as_nanos() as f64 / iters as f64
}

/// Runs `reps` repetitions of: floor, ours, floor. Each closure returns its own
/// measured value (for example ns per operation). Returns the medians
/// `(ours, floor)`, where a repetition's floor is the mean of its two floor runs.
pub fn measure(
    reps: usize,
    mut floor: impl FnMut() -> f64,
    mut ours: impl FnMut() -> f64,
) -> (f64, f64) {
    // One untimed warm-up of each.
    floor();
    ours();
    let mut o = Vec::with_capacity(reps);
    let mut f = Vec::with_capacity(reps);
    for _ in 0..reps {
        let before = floor();
        o.push(ours());
        let after = floor();
        f.push((before + after) / 2.0);
    }
    (median(&mut o), median(&mut f))
}

/// Like [`measure`] for several measured closures sharing one floor: each
/// repetition runs floor, each of `ours` in turn, floor.
pub fn measure_many(
    reps: usize,
    mut floor: impl FnMut() -> f64,
    ours: &mut [&mut dyn FnMut() -> f64],
) -> (Vec<f64>, f64) {
    floor();
    for o in ours.iter_mut() {
        o();
    }
    let mut os: Vec<Vec<f64>> = vec![Vec::with_capacity(reps); ours.len()];
    let mut f = Vec::with_capacity(reps);
    for _ in 0..reps {
        let before = floor();
        for (i, o) in ours.iter_mut().enumerate() {
            os[i].push(o());
        }
        let after = floor();
        f.push((before + after) / 2.0);
    }
    (os.iter_mut().map(|v| median(v)).collect(), median(&mut f))
}

/// A small deterministic PRNG (xorshift64*), so runs are comparable.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Indices `0..n` drawn from a Zipf(s = 1) distribution, `count` of them.
pub fn zipf_indices(n: u64, count: usize, seed: u64) -> Vec<u64> {
    // Inverse-CDF on the harmonic numbers, by binary search over a table.
    let mut cdf = Vec::with_capacity(n as usize);
    let mut acc = 0.0f64;
    for k in 1..=n {
        acc += 1.0 / k as f64;
        cdf.push(acc);
    }
    let mut rng = Rng::new(seed);
    // Scatter ranks over the index space so hot pages are not adjacent.
    let mult = 0x9e37_79b9_7f4a_7c15u64 | 1;
    (0..count)
        .map(|_| {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * acc;
            let rank = cdf.partition_point(|&c| c < u) as u64;
            rank.wrapping_mul(mult) % n
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn row_met_follows_target() {
        let mut r = Row {
            bench: "b".into(),
            case: "c".into(),
            ours: 3.0,
            floor: 2.0,
            unit: "ns",
            target: Target::RatioAtMost(1.4),
            note: String::new(),
        };
        assert_eq!(r.met(), Some(false));
        r.target = Target::RatioAtMost(1.5);
        assert_eq!(r.met(), Some(true));
        r.target = Target::AbsAtMost(2.0);
        assert_eq!(r.met(), Some(false));
        r.target = Target::ExtraAtMost(1.0);
        assert_eq!(r.met(), Some(true));
        r.target = Target::ExtraAtMost(0.5);
        assert_eq!(r.met(), Some(false));
        r.target = Target::None;
        assert_eq!(r.met(), None);
    }

    #[test]
    fn json_escapes_and_nulls() {
        let mut rep = Report::default();
        rep.rows.push(Row {
            bench: "a\"b".into(),
            case: "c".into(),
            ours: 1.0,
            floor: 0.0,
            unit: "ns",
            target: Target::None,
            note: "x\\y".into(),
        });
        let j = rep.json();
        assert!(j.contains("\"a\\\"b\""));
        assert!(j.contains("\"ratio\": null"));
        assert!(j.contains("\"x\\\\y\""));
    }

    #[test]
    fn zipf_indices_stay_in_range_and_skew() {
        let v = zipf_indices(1000, 10_000, 7);
        assert!(v.iter().all(|&i| i < 1000));
        let top = v.iter().filter(|&&i| i == 0).count();
        assert!(top > 500, "rank 1 should be drawn ~13% of the time: {top}");
    }
}
