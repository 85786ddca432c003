//! MQTT payload handling shared by the MQTT profiles: what can be wrong with a
//! payload, and JSON paths (`a.b[0].c`, `a.b.0.c`) into it.

use serde_json::Value;

/// Why a payload was rejected. The message names what was wrong so that an
/// installer can fix the device or the configuration from the log line alone.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("payload is not JSON: {0}")]
    NotJson(String),
    #[error("field `{0}` missing")]
    MissingField(String),
    #[error("field `{0}` is not a number")]
    NotANumber(String),
    #[error("topic `{0}` is not one this device subscribes to")]
    UnexpectedTopic(String),
    #[error("invalid JSON path `{path}`: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("no configured field found in the payload (looked for {0})")]
    NoConfiguredField(String),
    #[error("no field of this profile found in the payload (looked for {0})")]
    NoKnownField(String),
    #[error("topic `{0}` adds one channel too many (at most 16 per device)")]
    TooManyChannels(String),
}

/// Does `topic` match the subscription `filter` (`+` one level, `#` the rest)?
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq)]
enum Step<'a> {
    /// `.name`, or `.0` which indexes an array and names a key of an object.
    Key(&'a str),
    /// `[n]`
    Index(usize),
}

/// Splits `a.b[0].c` into steps. An empty path (or `.`) is the whole payload, which
/// is how a plain-number payload is read.
fn parse_path(path: &str) -> Result<Vec<Step<'_>>, DecodeError> {
    let invalid = |reason: &str| DecodeError::InvalidPath {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    let mut steps = Vec::new();
    let trimmed = path.trim();
    if trimmed.is_empty() || trimmed == "." || trimmed == "$" {
        return Ok(steps);
    }
    let trimmed = trimmed.strip_prefix("$.").unwrap_or(trimmed);
    for segment in trimmed.split('.') {
        let (name, mut rest) = match segment.find('[') {
            Some(i) => segment.split_at(i),
            None => (segment, ""),
        };
        if name.is_empty() && rest.is_empty() {
            return Err(invalid("empty segment"));
        }
        if !name.is_empty() {
            steps.push(Step::Key(name));
        }
        while !rest.is_empty() {
            let inner = rest
                .strip_prefix('[')
                .and_then(|r| r.split_once(']'))
                .ok_or_else(|| invalid("unbalanced `[`"))?;
            let index = inner
                .0
                .trim()
                .parse()
                .map_err(|_| invalid("array index is not a number"))?;
            steps.push(Step::Index(index));
            rest = inner.1;
        }
    }
    Ok(steps)
}

/// The value at `path`, or `None` when any step does not exist.
pub fn lookup<'v>(root: &'v Value, path: &str) -> Result<Option<&'v Value>, DecodeError> {
    let mut at = root;
    for step in parse_path(path)? {
        let next = match (step, at) {
            (Step::Key(k), Value::Object(map)) => map.get(k),
            (Step::Key(k), Value::Array(items)) => {
                k.parse::<usize>().ok().and_then(|i| items.get(i))
            }
            (Step::Index(i), Value::Array(items)) => items.get(i),
            _ => None,
        };
        match next {
            Some(v) => at = v,
            None => return Ok(None),
        }
    }
    Ok(Some(at))
}

/// Reads a number at `path`. JSON `null` counts as missing (Shelly reports
/// unmeasured values as null); numeric strings are accepted because several
/// firmwares quote their numbers.
pub fn number_at(root: &Value, path: &str) -> Result<Option<f64>, DecodeError> {
    let Some(v) = lookup(root, path)? else {
        return Ok(None);
    };
    let n = match v {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(x) if x.is_finite() => Ok(Some(x)),
        _ => Err(DecodeError::NotANumber(path.to_string())),
    }
}

/// Parses a payload as JSON; a bare number (`"1234.5"`) is valid JSON too.
pub fn parse_payload(payload: &[u8]) -> Result<Value, DecodeError> {
    serde_json::from_slice(payload).map_err(|e| DecodeError::NotJson(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_walk_objects_and_arrays_both_ways() {
        let v = json!({"a": {"b": [10, {"c": 2.5}]}, "n": {"0": 7}});
        assert_eq!(number_at(&v, "a.b[0]"), Ok(Some(10.0)));
        assert_eq!(number_at(&v, "a.b.0"), Ok(Some(10.0)));
        assert_eq!(number_at(&v, "a.b[1].c"), Ok(Some(2.5)));
        assert_eq!(number_at(&v, "a.b.1.c"), Ok(Some(2.5)));
        assert_eq!(number_at(&v, "n.0"), Ok(Some(7.0)));
        assert_eq!(number_at(&v, "a.x"), Ok(None));
        assert_eq!(number_at(&v, "a.b[5]"), Ok(None));
        assert_eq!(
            number_at(&v, "a"),
            Err(DecodeError::NotANumber("a".to_string()))
        );
    }

    #[test]
    fn plain_numbers_nulls_and_strings() {
        let v = parse_payload(b"1234.5").expect("json");
        assert_eq!(number_at(&v, ""), Ok(Some(1234.5)));
        let v = json!({"n": null, "s": "12.5", "t": "high"});
        assert_eq!(number_at(&v, "n"), Ok(None));
        assert_eq!(number_at(&v, "s"), Ok(Some(12.5)));
        assert!(number_at(&v, "t").is_err());
    }

    #[test]
    fn malformed_paths_are_reported() {
        let v = json!({});
        assert!(matches!(
            lookup(&v, "a[x]"),
            Err(DecodeError::InvalidPath { .. })
        ));
        assert!(matches!(
            lookup(&v, "a[0"),
            Err(DecodeError::InvalidPath { .. })
        ));
        assert!(matches!(
            lookup(&v, "a..b"),
            Err(DecodeError::InvalidPath { .. })
        ));
    }
}
