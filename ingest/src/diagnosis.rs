//! Why a device could not be read, as facts rather than sentences.
//!
//! Ingest keeps a device's last failure as text (`last_error` in the API and the
//! logs, in English, where operators and other programs read it). The installer's
//! page says the same thing in the reader's language: it reads the text back into a
//! [`Diagnosis`] and words it from its catalog. The sentences are written and read
//! in this one module, and a test holds every variant to reading back as itself, so
//! that a reworded message can never silently fall out of translation: a text that
//! is no diagnosis is shown as it is.

use std::fmt;

use sensors::modbus::RegisterKind;

/// One way reading a device failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diagnosis {
    /// The request went out and nothing came back in time.
    NoAnswer {
        timeout_ms: u64,
        count: u16,
        kind: RegisterKind,
        start: u16,
    },
    /// The connection failed while reading.
    Transport {
        count: u16,
        kind: RegisterKind,
        start: u16,
        error: String,
    },
    /// The answer held fewer or more registers than asked.
    WrongLength {
        count: u16,
        kind: RegisterKind,
        start: u16,
        got: usize,
    },
    /// A Modbus exception: the device understood and said no.
    Refused {
        count: u16,
        kind: RegisterKind,
        start: u16,
        exception: String,
    },
    ResolveTimeout {
        target: String,
    },
    CannotResolve {
        target: String,
        error: String,
    },
    NoAddress {
        target: String,
    },
    ConnectTimeout {
        target: String,
        timeout_ms: u64,
    },
    CannotConnect {
        target: String,
        error: String,
    },
    CannotOpenSerial {
        path: String,
        error: String,
    },
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diagnosis::NoAnswer {
                timeout_ms,
                count,
                kind,
                start,
            } => write!(
                f,
                "no answer within {timeout_ms} ms reading {count} {} registers at {start}",
                kind.as_str()
            ),
            Diagnosis::Transport {
                count,
                kind,
                start,
                error,
            } => write!(
                f,
                "transport error reading {count} {} registers at {start}: {error}",
                kind.as_str()
            ),
            Diagnosis::WrongLength {
                count,
                kind,
                start,
                got,
            } => write!(
                f,
                "asked {count} {} registers at {start}, got {got}",
                kind.as_str()
            ),
            Diagnosis::Refused {
                count,
                kind,
                start,
                exception,
            } => write!(
                f,
                "device refused reading {count} {} registers at {start}: {exception}",
                kind.as_str()
            ),
            Diagnosis::ResolveTimeout { target } => write!(f, "resolving {target} timed out"),
            Diagnosis::CannotResolve { target, error } => {
                write!(f, "cannot resolve {target}: {error}")
            }
            Diagnosis::NoAddress { target } => write!(f, "{target} resolves to no address"),
            Diagnosis::ConnectTimeout { target, timeout_ms } => {
                write!(f, "connecting to {target} timed out after {timeout_ms} ms")
            }
            Diagnosis::CannotConnect { target, error } => {
                write!(f, "cannot connect to {target}: {error}")
            }
            Diagnosis::CannotOpenSerial { path, error } => {
                write!(f, "cannot open serial port {path}: {error}")
            }
        }
    }
}

/// `"{count} {kind} registers at {start}"` at the start of `text`, and the rest.
fn registers(text: &str) -> Option<(u16, RegisterKind, u16, &str)> {
    let (count, rest) = text.split_once(' ')?;
    let (kind, rest) = rest.split_once(" registers at ")?;
    let kind = match kind {
        "holding" => RegisterKind::Holding,
        "input" => RegisterKind::Input,
        _ => return None,
    };
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    Some((
        count.parse().ok()?,
        kind,
        rest[..end].parse().ok()?,
        &rest[end..],
    ))
}

impl Diagnosis {
    /// The diagnosis a text of [`Diagnosis`]'s `Display` states; `None` for any
    /// other text.
    pub fn parse(text: &str) -> Option<Diagnosis> {
        if let Some(rest) = text.strip_prefix("no answer within ") {
            let (ms, rest) = rest.split_once(" ms reading ")?;
            let (count, kind, start, tail) = registers(rest)?;
            return tail.is_empty().then_some(Diagnosis::NoAnswer {
                timeout_ms: ms.parse().ok()?,
                count,
                kind,
                start,
            });
        }
        if let Some(rest) = text.strip_prefix("transport error reading ") {
            let (count, kind, start, tail) = registers(rest)?;
            return Some(Diagnosis::Transport {
                count,
                kind,
                start,
                error: tail.strip_prefix(": ")?.to_string(),
            });
        }
        if let Some(rest) = text.strip_prefix("device refused reading ") {
            let (count, kind, start, tail) = registers(rest)?;
            return Some(Diagnosis::Refused {
                count,
                kind,
                start,
                exception: tail.strip_prefix(": ")?.to_string(),
            });
        }
        if let Some(rest) = text.strip_prefix("asked ") {
            let (count, kind, start, tail) = registers(rest)?;
            return Some(Diagnosis::WrongLength {
                count,
                kind,
                start,
                got: tail.strip_prefix(", got ")?.parse().ok()?,
            });
        }
        if let Some(rest) = text.strip_prefix("resolving ") {
            return Some(Diagnosis::ResolveTimeout {
                target: rest.strip_suffix(" timed out")?.to_string(),
            });
        }
        if let Some(rest) = text.strip_prefix("cannot resolve ") {
            let (target, error) = rest.split_once(": ")?;
            return Some(Diagnosis::CannotResolve {
                target: target.to_string(),
                error: error.to_string(),
            });
        }
        if let Some(target) = text.strip_suffix(" resolves to no address") {
            return Some(Diagnosis::NoAddress {
                target: target.to_string(),
            });
        }
        if let Some(rest) = text.strip_prefix("connecting to ") {
            let (target, ms) = rest.split_once(" timed out after ")?;
            return Some(Diagnosis::ConnectTimeout {
                target: target.to_string(),
                timeout_ms: ms.strip_suffix(" ms")?.parse().ok()?,
            });
        }
        if let Some(rest) = text.strip_prefix("cannot connect to ") {
            let (target, error) = rest.split_once(": ")?;
            return Some(Diagnosis::CannotConnect {
                target: target.to_string(),
                error: error.to_string(),
            });
        }
        if let Some(rest) = text.strip_prefix("cannot open serial port ") {
            let (path, error) = rest.split_once(": ")?;
            return Some(Diagnosis::CannotOpenSerial {
                path: path.to_string(),
                error: error.to_string(),
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn every_variant() -> Vec<Diagnosis> {
        let (count, start) = (37, 40072);
        vec![
            Diagnosis::NoAnswer {
                timeout_ms: 1000,
                count,
                kind: RegisterKind::Holding,
                start,
            },
            Diagnosis::Transport {
                count,
                kind: RegisterKind::Input,
                start,
                error: "Connection reset by peer (os error 104)".into(),
            },
            Diagnosis::WrongLength {
                count,
                kind: RegisterKind::Holding,
                start,
                got: 12,
            },
            Diagnosis::Refused {
                count,
                kind: RegisterKind::Holding,
                start,
                exception: "Illegal data address".into(),
            },
            Diagnosis::ResolveTimeout {
                target: "onduleur.local:502".into(),
            },
            Diagnosis::CannotResolve {
                target: "onduleur.local:502".into(),
                error: "failed to lookup address information: Name or service not known".into(),
            },
            Diagnosis::NoAddress {
                target: "onduleur.local:502".into(),
            },
            Diagnosis::ConnectTimeout {
                target: "192.168.1.20:502".into(),
                timeout_ms: 2000,
            },
            Diagnosis::CannotConnect {
                target: "192.168.1.20:502".into(),
                error: "Connection refused (os error 111)".into(),
            },
            Diagnosis::CannotOpenSerial {
                path: "/dev/ttyUSB0".into(),
                error: "No such file or directory".into(),
            },
        ]
    }

    #[test]
    fn every_diagnosis_reads_back_as_itself() {
        for d in every_variant() {
            let text = d.to_string();
            assert_eq!(Diagnosis::parse(&text), Some(d), "{text}");
        }
    }

    #[test]
    fn the_messages_are_the_ones_logs_and_the_api_carry() {
        let d = &every_variant()[0];
        assert_eq!(
            d.to_string(),
            "no answer within 1000 ms reading 37 holding registers at 40072"
        );
    }

    #[test]
    fn other_texts_are_no_diagnosis() {
        for text in [
            "",
            "no answer within soon ms reading 3 holding registers at 1",
            "asked 3 coil registers at 1, got 2",
            "cannot connect to nowhere",
            "the WAL is full",
        ] {
            assert_eq!(Diagnosis::parse(text), None, "{text}");
        }
    }
}
