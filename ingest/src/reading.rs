//! The narrow readings table of DESIGN.md §2 and its Arrow form.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, Float64Builder, StringDictionaryBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use sensors::model::Metric;

/// One value of one device at one instant, already in the site sign convention.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Milliseconds since the Unix epoch, UTC.
    pub ts_ms: i64,
    pub device: Arc<str>,
    pub metric: Metric,
    pub value: f64,
}

/// The columns every table of readings starts with (DESIGN.md §2): `ts` in UTC
/// milliseconds, then `device` and `metric` as dictionaries, so that repeated names
/// cost one small integer per row. The raw readings add `value`, the one-minute
/// rollups their aggregates, and an export the same columns with plain strings.
pub fn key_fields() -> [Field; 3] {
    let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    [
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("device", dict.clone(), false),
        Field::new("metric", dict, false),
    ]
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = key_fields().to_vec();
    fields.push(Field::new("value", DataType::Float64, false));
    Arc::new(Schema::new(fields))
});

/// `ts`, `device`, `metric`, `value` (DESIGN.md §2).
pub fn readings_schema() -> SchemaRef {
    SCHEMA.clone()
}

/// Builds one record batch from readings; the dictionaries make repeated device
/// and metric names cost one small integer per row.
///
/// The builders are sized to the readings: `StringDictionaryBuilder::new` reserves
/// room for 1,024 keys and 1,024 values, some 10 kB a column that the finished array
/// keeps, which for the batch of a few readings the sink hands over every few
/// milliseconds was most of the memory the history's pending readings held (issue 13).
pub fn to_batch(readings: &[Reading]) -> Result<RecordBatch, ArrowError> {
    let n = readings.len();
    // A batch names few devices and metrics; the builders grow if it names more.
    let distinct = n.min(8);
    let device_bytes = readings[..distinct].iter().map(|r| r.device.len()).sum();
    let mut ts = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut device = StringDictionaryBuilder::<Int32Type>::with_capacity(n, distinct, device_bytes);
    let mut metric =
        StringDictionaryBuilder::<Int32Type>::with_capacity(n, distinct, distinct * 16);
    let mut value = Float64Builder::with_capacity(readings.len());
    for r in readings {
        ts.append_value(r.ts_ms);
        device.append_value(&*r.device);
        metric.append_value(r.metric.as_str());
        value.append_value(r.value);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ts.finish()),
        Arc::new(device.finish()),
        Arc::new(metric.finish()),
        Arc::new(value.finish()),
    ];
    RecordBatch::try_new(readings_schema(), columns)
}
