//! Compression codecs on the text files textdrop stores: ratio, and the time to compress and
//! to decompress, medians of repeated runs on one core. `cargo run --release -- DIR` reads
//! the inputs from DIR (bench/codecs.sh makes them) and prints a markdown table.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// A codec under test: compress, then decompress what it made.
struct Codec {
    name: &'static str,
    compress: fn(&[u8]) -> Vec<u8>,
    decompress: fn(&[u8], usize) -> Vec<u8>,
}

fn zstd_at(level: i32, input: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(input, level).expect("zstd compresses")
}

fn zstd_back(input: &[u8], len: usize) -> Vec<u8> {
    zstd::bulk::decompress(input, len).expect("zstd decompresses")
}

fn deflate_at(level: u32, input: &[u8]) -> Vec<u8> {
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
    encoder.write_all(input).expect("deflate compresses");
    encoder.finish().expect("deflate finishes")
}

fn deflate_back(input: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    flate2::read::DeflateDecoder::new(input)
        .read_to_end(&mut out)
        .expect("deflate decompresses");
    out
}

const CODECS: [Codec; 7] = [
    Codec {
        name: "zstd 1",
        compress: |i| zstd_at(1, i),
        decompress: zstd_back,
    },
    Codec {
        name: "zstd 3",
        compress: |i| zstd_at(3, i),
        decompress: zstd_back,
    },
    Codec {
        name: "zstd 9",
        compress: |i| zstd_at(9, i),
        decompress: zstd_back,
    },
    Codec {
        name: "zstd 19",
        compress: |i| zstd_at(19, i),
        decompress: zstd_back,
    },
    Codec {
        name: "deflate 1",
        compress: |i| deflate_at(1, i),
        decompress: deflate_back,
    },
    Codec {
        name: "deflate 6",
        compress: |i| deflate_at(6, i),
        decompress: deflate_back,
    },
    Codec {
        name: "lz4",
        compress: lz4_flex::block::compress,
        decompress: |i, len| lz4_flex::block::decompress(i, len).expect("lz4 decompresses"),
    },
];

/// The median of `runs` timings of `work`.
fn median(runs: usize, mut work: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            work();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn show(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.1} ms", us / 1000.0)
    }
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: codecs DIR");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("the inputs' directory")
        .map(|entry| entry.expect("an entry").path())
        .collect();
    names.sort();
    println!("| input | bytes | codec | stored bytes | ratio | compress | decompress |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for path in names {
        let input = std::fs::read(&path).expect("an input");
        let runs = if input.len() > 1_000_000 { 5 } else { 51 };
        for codec in &CODECS {
            let packed = (codec.compress)(&input);
            assert_eq!(
                (codec.decompress)(&packed, input.len()),
                input,
                "{}",
                codec.name
            );
            let compress = median(runs, || {
                std::hint::black_box((codec.compress)(&input));
            });
            let decompress = median(runs, || {
                std::hint::black_box((codec.decompress)(&packed, input.len()));
            });
            println!(
                "| {} | {} | {} | {} | {:.1} | {} | {} |",
                path.file_name().unwrap_or_default().to_string_lossy(),
                input.len(),
                codec.name,
                packed.len(),
                input.len() as f64 / packed.len() as f64,
                show(compress),
                show(decompress),
            );
        }
    }
}
