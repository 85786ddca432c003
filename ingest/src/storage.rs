//! Watching the storage directory's free space: measured every few seconds
//! (`communalia_storage_free_bytes`), and when it falls below `[storage] min_free`
//! the node says so (installer page, wall) and makes room before the disk is full,
//! by deleting the oldest days of raw readings whose one-minute rollups are kept.
//! The ledger's journal is never touched.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::history::History;
use crate::metrics::IngestMetrics;

/// How often the free space is measured.
pub const MEASURE_EVERY: Duration = Duration::from_secs(5);

/// Free bytes, for an unprivileged process, of the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Parses a size: a number of bytes, or a number with a unit (`200 MB`, `1.5 GB`,
/// `512 MiB`, `0`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` does not start with a number"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "`{text}`: unknown unit `{other}` (use B, kB, MB, GB, KiB, MiB or GiB)"
            ));
        }
    };
    let bytes = n * factor;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("`{text}` is not a size"));
    }
    Ok(bytes as u64)
}

/// Serde for a size given as a number of bytes or as text with a unit.
pub mod size {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{bytes} B"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Size {
            Bytes(u64),
            Text(String),
        }
        match Size::deserialize(d)? {
            Size::Bytes(b) => Ok(b),
            Size::Text(t) => super::parse_size(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// Starts the watch over `dir`: measures its free space every [`MEASURE_EVERY`]
/// and, below `min_free_bytes`, deletes the oldest raw days the rollups cover.
pub fn spawn_monitor(
    dir: PathBuf,
    min_free_bytes: u64,
    history: Option<Arc<History>>,
    metrics: Arc<IngestMetrics>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(MEASURE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_low = false;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            let dir = dir.clone();
            let history = history.clone();
            let measured = tokio::task::spawn_blocking(move || {
                let free = free_bytes(&dir)?;
                let mut freed_days = Vec::new();
                if free < min_free_bytes
                    && let Some(h) = &history
                {
                    freed_days = h.make_room(|| free_bytes(&dir).map(|f| f >= min_free_bytes));
                }
                let free = if freed_days.is_empty() {
                    free
                } else {
                    free_bytes(&dir)?
                };
                std::io::Result::Ok((free, freed_days))
            })
            .await;
            match measured {
                Ok(Ok((free, freed_days))) => {
                    metrics.set_storage_free(free, min_free_bytes);
                    if !freed_days.is_empty() {
                        tracing::warn!(
                            days = ?freed_days,
                            free_bytes = free,
                            "storage low: deleted the oldest raw readings (their one-minute rollups are kept)"
                        );
                    }
                    let low = free < min_free_bytes;
                    if low && !was_low {
                        tracing::warn!(
                            free_bytes = free,
                            min_free_bytes,
                            "the storage directory is low on space ([storage] min_free)"
                        );
                    }
                    was_low = low;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not measure the free space of the storage directory")
                }
                Err(e) => tracing::warn!(error = %e, "storage watch task failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_or_without_units() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1234"), Ok(1234));
        assert_eq!(parse_size("200 MB"), Ok(200_000_000));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("512 MiB"), Ok(512 * 1024 * 1024));
        let err = parse_size("12 parsecs").expect_err("unknown unit");
        assert!(err.contains("parsecs"), "{err}");
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn free_space_is_measured() {
        let dir = tempfile::tempdir().expect("tmp");
        assert!(free_bytes(dir.path()).expect("statvfs") > 0);
        assert!(free_bytes(&dir.path().join("missing")).is_err());
    }
}
