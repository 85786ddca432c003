//! Bytes a reading takes in the history (issue 13), on realistic noisy meter data.
//!
//!     cargo bench -p ingest --bench history_bytes [-- DEVICES]
//!
//! One day of a site at 1 Hz, generated with a fixed seed: household meters that
//! report over MQTT with one decimal (Shelly Gen2: power, three phase voltages,
//! current, frequency, import counter), Modbus meters whose registers are float32
//! (Eastron SDM630: their values are float32 widened to float64), a SunSpec
//! inverter (integers times a power of ten: W, V with SF -1, Wh) and a battery
//! (W, state of charge with one decimal). Loads wander and carry measurement noise;
//! the sun has clouds. The day is sorted as the node sorts it and written as one
//! compacted day, side by side in one run with:
//!
//! - **before**: dictionary on every column, zstd (the encoding of issue 6);
//! - **node**: `ingest::history::writer_properties()`, what the node writes now.
//!
//! Both files are read back and compared value by value: the encoding is lossless.

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Float64Type;
use ingest::reading::{Reading, to_batch};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use sensors::model::Metric;

/// xorshift64*: a fixed, dependency-free sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Roughly normal, mean 0, deviation 1 (sum of 12 uniforms).
    fn gauss(&mut self) -> f64 {
        (0..12).map(|_| self.next()).sum::<f64>() - 6.0
    }
}

fn round_to(v: f64, decimals: i32) -> f64 {
    let k = 10f64.powi(decimals);
    (v * k).round() / k
}

fn as_f32(v: f64) -> f64 {
    f64::from(v as f32)
}

const DAY_S: i64 = 86_400;
/// 2026-03-12T00:00:00Z
const DAY_START_MS: i64 = 1_773_273_600_000;

fn day(devices: usize) -> Vec<Reading> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::new();
    let ids: Vec<Arc<str>> = (0..devices).map(|i| format!("dev-{i:02}").into()).collect();
    let mut load = vec![600.0; devices];
    let mut energy = vec![1_000_000.0; devices];
    let mut cloud = 1.0f64;
    let mut soc = 55.0f64;
    for s in 0..DAY_S {
        let ts_ms = DAY_START_MS + s * 1000;
        let hour = s as f64 / 3600.0;
        cloud = (cloud + 0.02 * rng.gauss()).clamp(0.2, 1.0);
        let sun = if (7.0..19.0).contains(&hour) {
            ((hour - 7.0) / 12.0 * std::f64::consts::PI).sin() * cloud
        } else {
            0.0
        };
        for (i, id) in ids.iter().enumerate() {
            let r = |metric, value| Reading {
                ts_ms,
                device: id.clone(),
                metric,
                value,
            };
            match i % 8 {
                // The inverter: SunSpec integers.
                0 => {
                    let w = (9000.0 * sun + 15.0 * rng.gauss()).max(0.0).round();
                    energy[i] += w / 3600.0;
                    out.push(r(Metric::PowerW, w));
                    out.push(r(Metric::VoltageV, round_to(231.0 + 1.5 * rng.gauss(), 1)));
                    out.push(r(Metric::EnergyExportWh, energy[i].floor()));
                }
                // The battery: W and a state of charge with one decimal.
                1 => {
                    let w = (1500.0 * (hour / 3.0).sin() + 40.0 * rng.gauss()).round();
                    soc = (soc - w / 20_000.0 / 36.0).clamp(5.0, 100.0);
                    out.push(r(Metric::PowerW, w));
                    out.push(r(Metric::SocPct, round_to(soc, 1)));
                }
                // Modbus meters: float32 registers.
                2 | 3 => {
                    load[i] = (load[i] + 25.0 * rng.gauss()).clamp(0.0, 20_000.0);
                    let w = load[i] + 8.0 * rng.gauss();
                    energy[i] += w.max(0.0) / 3600.0;
                    out.push(r(Metric::PowerW, as_f32(w)));
                    out.push(r(Metric::VoltageL1V, as_f32(230.0 + 1.2 * rng.gauss())));
                    out.push(r(Metric::CurrentA, as_f32(w / 230.0)));
                    out.push(r(Metric::FrequencyHz, as_f32(50.0 + 0.02 * rng.gauss())));
                    out.push(r(Metric::EnergyImportWh, as_f32(energy[i])));
                }
                // Household meters over MQTT, one decimal (Shelly Gen2).
                _ => {
                    load[i] = (load[i] + 30.0 * rng.gauss()).clamp(0.0, 9_000.0);
                    let w = round_to(load[i] + 10.0 * rng.gauss(), 1);
                    energy[i] += w.max(0.0) / 3600.0;
                    out.push(r(Metric::PowerW, w));
                    out.push(r(Metric::VoltageL1V, round_to(230.0 + rng.gauss(), 1)));
                    out.push(r(Metric::VoltageL2V, round_to(229.0 + rng.gauss(), 1)));
                    out.push(r(Metric::VoltageL3V, round_to(231.0 + rng.gauss(), 1)));
                    out.push(r(Metric::CurrentA, round_to(w / 230.0, 3)));
                    out.push(r(
                        Metric::FrequencyHz,
                        round_to(50.0 + 0.02 * rng.gauss(), 2),
                    ));
                    out.push(r(Metric::EnergyImportWh, round_to(energy[i], 2)));
                }
            }
        }
    }
    out
}

fn write(batch: &RecordBatch, props: WriterProperties) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), Some(props))
        .unwrap_or_else(|e| panic!("writer: {e}"));
    writer.write(batch).unwrap_or_else(|e| panic!("write: {e}"));
    writer.close().unwrap_or_else(|e| panic!("close: {e}"));
    bytes
}

fn values_of(bytes: Vec<u8>) -> Vec<f64> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .and_then(|b| b.build())
        .unwrap_or_else(|e| panic!("read: {e}"));
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.unwrap_or_else(|e| panic!("batch: {e}"));
        let column = batch.column(3).as_primitive::<Float64Type>();
        out.extend((0..column.len()).map(|i| column.value(i)));
    }
    out
}

fn main() {
    let devices: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(16);
    let readings = day(devices);
    let batch = ingest::history::sorted(&to_batch(&readings).unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("sort: {e}"));
    let n = batch.num_rows();
    let expected: Vec<f64> = batch
        .column(3)
        .as_primitive::<Float64Type>()
        .values()
        .to_vec();
    let before = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_dictionary_enabled(true)
        .build();
    println!("one day at 1 Hz, {devices} devices, {n} readings");
    println!("| encoding | bytes | bytes per reading |");
    println!("|---|---|---|");
    for (name, props) in [
        ("before (dictionary, zstd)", before),
        (
            "node (delta ts, byte-stream-split values, zstd)",
            ingest::history::writer_properties(),
        ),
    ] {
        let bytes = write(&batch, props);
        let size = bytes.len();
        let back = values_of(bytes);
        assert!(
            back.len() == expected.len()
                && back
                    .iter()
                    .zip(&expected)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{name}: the values read back differ"
        );
        println!("| {name} | {size} | {:.2} |", size as f64 / n as f64);
    }
}
