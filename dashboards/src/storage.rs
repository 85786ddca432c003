//! What the pages say about the node's disk: a line when free space is below
//! `[storage] min_free` or when the write-ahead log cannot be written.

use ingest::metrics::StorageStatus;

use crate::{Catalog, Lang};

/// Bytes as the reader counts them: "180 Mo" / "180 MB" (decimal units, as disks
/// are sold).
pub(crate) fn format_bytes(bytes: u64, lang: Lang) -> String {
    let (fr, en) = [
        (1e12, "To", "TB"),
        (1e9, "Go", "GB"),
        (1e6, "Mo", "MB"),
        (1e3, "ko", "kB"),
    ]
    .iter()
    .find(|(scale, _, _)| bytes as f64 >= *scale)
    .map(|(scale, fr, en)| {
        let n = bytes as f64 / scale;
        let shown = if n < 10.0 {
            format!("{n:.1}")
        } else {
            format!("{n:.0}")
        };
        (
            format!("{} {fr}", shown.replace('.', ",")),
            format!("{shown} {en}"),
        )
    })
    .unwrap_or_else(|| (format!("{bytes} o"), format!("{bytes} B")));
    match lang {
        Lang::Fr => fr,
        Lang::En => en,
    }
}

/// The line to show, if the disk calls for one: that ingest is held (the log
/// cannot be written), or that space is running low.
pub fn storage_notice(status: &StorageStatus, lang: Lang) -> Option<String> {
    let t = Catalog::for_lang(lang);
    if status.write_failing {
        return Some(t.t("storage.write_failing").to_string());
    }
    let free = status.free_bytes?;
    status.low().then(|| {
        t.tf(
            "storage.low",
            &[
                ("free", &format_bytes(free, lang)),
                ("min", &format_bytes(status.min_free_bytes, lang)),
            ],
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(free: Option<u64>, failing: bool) -> StorageStatus {
        StorageStatus {
            write_failing: failing,
            free_bytes: free,
            min_free_bytes: 200_000_000,
            ..StorageStatus::default()
        }
    }

    #[test]
    fn a_disk_low_on_space_is_said_in_both_languages() {
        assert_eq!(
            storage_notice(&status(Some(5_000_000_000), false), Lang::Fr),
            None
        );
        assert_eq!(storage_notice(&status(None, false), Lang::En), None);
        let fr = storage_notice(&status(Some(150_000_000), false), Lang::Fr).expect("low");
        assert!(fr.contains("150 Mo") && fr.contains("200 Mo"), "{fr}");
        let en = storage_notice(&status(Some(1_500_000), false), Lang::En).expect("low");
        assert!(en.contains("1.5 MB") && en.contains("200 MB"), "{en}");
        assert_ne!(fr, en);
        let failing =
            storage_notice(&status(Some(5_000_000_000), true), Lang::Fr).expect("failing");
        assert!(failing.contains("disque"), "{failing}");
    }
}
