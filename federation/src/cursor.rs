//! How far the node's sharing has gone, kept in the data directory so that a
//! restart or an outage neither loses nor repeats anything: the last minute
//! JetStream acknowledged, and the last day archived on the bucket.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The cursor file's name in the data directory.
pub const CURSOR_FILE: &str = "federation-cursor.json";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// The last minute JetStream acknowledged; every minute before it (within the
    /// catch-up horizon) was acknowledged too.
    #[serde(default)]
    pub published_through: Option<DateTime<Utc>>,
    /// The last UTC day whose summaries are on the bucket.
    #[serde(default)]
    pub archived_through: Option<NaiveDate>,
}

/// The cursor file, written whole (beside it, synced, then renamed over it).
#[derive(Debug)]
pub struct Cursor {
    path: PathBuf,
    position: Position,
}

impl Cursor {
    /// The publishing cursor in `dir`, empty if there is none yet.
    pub fn open(dir: &Path) -> Result<Cursor> {
        Self::open_named(dir, CURSOR_FILE)
    }

    /// The cursor kept in the file `name` of `dir`.
    pub fn open_named(dir: &Path, name: &str) -> Result<Cursor> {
        let path = dir.join(name);
        let position = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Key {
                path: path.clone(),
                why: format!("not a federation cursor: {e}"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Position::default(),
            Err(e) => return Err(Error::io(&path, e)),
        };
        Ok(Cursor { path, position })
    }

    pub fn position(&self) -> &Position {
        &self.position
    }

    pub fn set_published(&mut self, minute: DateTime<Utc>) -> Result<()> {
        self.position.published_through = Some(minute);
        self.save()
    }

    pub fn set_archived(&mut self, day: NaiveDate) -> Result<()> {
        self.position.archived_through = Some(day);
        self.save()
    }

    fn save(&self) -> Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(&self.position).map_err(|e| Error::Config(e.to_string()))?;
        let mut file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_survives_a_restart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let minute = DateTime::from_timestamp(1_780_000_020, 0).expect("t");
        {
            let mut c = Cursor::open(dir.path()).expect("new");
            assert_eq!(c.position(), &Position::default());
            c.set_published(minute).expect("save");
        }
        let c = Cursor::open(dir.path()).expect("again");
        assert_eq!(c.position().published_through, Some(minute));
    }
}
