//! Replays a fuzz corpus and random mutations of it through a fuzz target's body, inside a
//! normal `cargo test`: the committed `fuzz/corpus/<target>/` inputs first, then a fixed number
//! of inputs made by libFuzzer-style mutations (bit flips, byte edits, inserted dictionary
//! words, cut, duplicated and spliced ranges). Deterministic: the same seed gives the same
//! inputs, so a failure reproduces; the failing input is also written to a file whose path the
//! panic names (copy it into the corpus once fixed).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest mutated input; libFuzzer's `-max_len` in `scripts/fuzz.sh` is 64 KiB, and short
/// inputs keep the run fast.
const MAX_LEN: usize = 16 * 1024;

/// What [`replay`] ran.
#[derive(Debug, Clone, Copy)]
pub struct Replayed {
    /// Corpus files.
    pub corpus: usize,
    /// Mutated inputs.
    pub mutations: usize,
    pub elapsed: Duration,
}

/// A xorshift64* generator: tiny, seeded, good enough to pick mutations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// Bytes that often matter to parsers of text formats; callers add their own words.
const COMMON: &[&[u8]] = &[
    b"\n",
    b"\r\n",
    b"\0",
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b" ",
    b"\t",
    b"\xff",
    b"\xc3",
    b"\xe2\x80\xa6",
    b"-1",
    b"0",
    b"1e999",
    b"18446744073709551616",
    b"null",
    b"true",
    b"\"\"",
];

/// One mutation of `input`, using `dict` words and `others` (the corpus) for splices.
pub fn mutate(rng: &mut Rng, input: &[u8], dict: &[&[u8]], others: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    // Stacked mutations, as libFuzzer does: one to four per input.
    for _ in 0..=rng.below(4) {
        let len = out.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = rng.next_u64() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                out.insert(i, rng.next_u64() as u8);
            }
            3 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(16)).min(len);
                out.drain(start..end);
            }
            4 | 5 => {
                let words = if rng.below(2) == 0 && !dict.is_empty() {
                    dict
                } else {
                    COMMON
                };
                let word = words[rng.below(words.len())];
                let i = rng.below(len + 1);
                out.splice(i..i, word.iter().copied());
            }
            6 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(64)).min(len);
                let copy = out[start..end].to_vec();
                let at = rng.below(len + 1);
                out.splice(at..at, copy);
            }
            7 if !others.is_empty() => {
                let other = &others[rng.below(others.len())];
                let cut = rng.below(out.len() + 1);
                let from = rng.below(other.len() + 1);
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            _ => {
                out.truncate(rng.below(len + 1));
            }
        }
    }
    out.truncate(MAX_LEN);
    out
}

/// The files of `dir`, sorted by name.
pub fn corpus(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let data =
                std::fs::read(&p).unwrap_or_else(|e| panic!("corpus file {}: {e}", p.display()));
            (p, data)
        })
        .collect()
}

fn run_one(target: &str, input: &[u8], what: &str, body: &impl Fn(&[u8])) {
    if catch_unwind(AssertUnwindSafe(|| body(input))).is_err() {
        let path = std::env::temp_dir().join(format!(
            "yollayah-fuzz-{target}-{}-{}",
            std::process::id(),
            input.len()
        ));
        let saved = std::fs::write(&path, input).is_ok();
        panic!(
            "fuzz target {target} failed on {what} ({} bytes{})",
            input.len(),
            if saved {
                format!(", saved to {}", path.display())
            } else {
                String::new()
            }
        );
    }
}

/// Runs `body` on every file of `corpus_dir` (which must not be empty), then on `mutations`
/// mutated inputs (seed `seed`, words from `dict`). Panics, naming the input, if `body` does.
pub fn replay(
    target: &str,
    corpus_dir: &Path,
    dict: &[&[u8]],
    mutations: usize,
    seed: u64,
    body: impl Fn(&[u8]),
) -> Replayed {
    let started = Instant::now();
    let files = corpus(corpus_dir);
    assert!(
        !files.is_empty(),
        "corpus {} is empty",
        corpus_dir.display()
    );
    for (path, data) in &files {
        run_one(target, data, &path.display().to_string(), &body);
    }
    let seeds: Vec<Vec<u8>> = files.into_iter().map(|(_, d)| d).collect();
    let mut rng = Rng::new(seed);
    for i in 0..mutations {
        let base = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, base, dict, &seeds);
        run_one(
            target,
            &input,
            &format!("mutation {i} (seed {seed})"),
            &body,
        );
    }
    Replayed {
        corpus: seeds.len(),
        mutations,
        elapsed: started.elapsed(),
    }
}
