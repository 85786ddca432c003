//! Who may read a household's readings (DESIGN.md §10): the `[[household]]`
//! section, the reader of a query ([`Viewer`]), what that reader may see of each
//! household meter ([`Scope`]), and the session a scope's queries run on
//! ([`Queries::scoped_session`]).
//!
//! Enforcement is here, where the history is read, not in each page: the export,
//! the installers' SQL and the `/me` history run on a session whose `readings`,
//! `readings_1m` (and the two tables the latter is made of) are views that hold a
//! household meter's rows only for that household's members, or under a live
//! grant, at the grant's granularity. A meter no household claims stays invisible
//! in them, as every household meter is by default. The totals (`load_w`, the
//! charts of the community, the replay, the federation's summaries) still count
//! every meter: they run on the full session, and name no household meter.
//!
//! Every read under a grant appends to the ledger's access log (who, what, the
//! meters, the range, the grant), from [`Scope::log`], which the scoped calls run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::SessionContext;
use ledger::{AccessRecord, Grant, Granularity, Journal, Role};
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::history_session::Queries;
use crate::visibility::Visibility;

/// `[[household]]`: a household, its members (accounts of the journal) and the
/// meters whose readings are theirs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HouseholdConfig {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default)]
    pub meters: Vec<String>,
}

/// The configured households, checked against the devices.
#[derive(Debug, Clone, Default)]
pub struct Households {
    list: Vec<HouseholdConfig>,
    by_meter: HashMap<String, usize>,
}

impl Households {
    /// The households of the configuration, or every problem, each naming the key
    /// (`household[i].meters`, `household[i].id`): an unknown meter, a meter that
    /// is the community's (production, grid, battery, a service's meter), a meter in
    /// two households, a duplicate id, a household without members.
    pub fn new(
        list: &[HouseholdConfig],
        visibility: &Visibility,
    ) -> Result<Households, Vec<String>> {
        let mut problems = Vec::new();
        let mut by_meter: HashMap<String, usize> = HashMap::new();
        let mut ids = BTreeSet::new();
        for (i, h) in list.iter().enumerate() {
            let id_ok = !h.id.is_empty()
                && h.id.len() <= 64
                && h.id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !id_ok {
                problems.push(format!(
                    "household[{i}].id {:?}: 1 to 64 letters, digits, `-` or `_`",
                    h.id
                ));
            } else if !ids.insert(h.id.clone()) {
                problems.push(format!("household[{i}].id: `{}` is declared twice", h.id));
            }
            if h.members.is_empty() {
                problems.push(format!(
                    "household[{i}].members: household `{}` has no member to consent for it",
                    h.id
                ));
            }
            for meter in &h.meters {
                if visibility.is_community(meter) {
                    problems.push(format!(
                        "household[{i}].meters: `{meter}` is the community's (production, grid, \
                         battery or a service's meter), not a household's"
                    ));
                } else if !visibility.is_household(meter) {
                    problems.push(format!(
                        "household[{i}].meters: `{meter}` is not a configured device"
                    ));
                } else if let Some(other) = by_meter.insert(meter.clone(), i) {
                    problems.push(format!(
                        "household[{i}].meters: `{meter}` is already a meter of household[{other}] \
                         (`{}`)",
                        list[other].id
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(Households {
                list: list.to_vec(),
                by_meter,
            })
        } else {
            Err(problems)
        }
    }

    /// Every household, in the order of the configuration.
    pub fn all(&self) -> &[HouseholdConfig] {
        &self.list
    }

    pub fn get(&self, id: &str) -> Option<&HouseholdConfig> {
        self.list.iter().find(|h| h.id == id)
    }

    /// The household `member` belongs to, if any (the first, should the
    /// configuration list them in two).
    pub fn of_member(&self, member: &str) -> Option<&HouseholdConfig> {
        self.list
            .iter()
            .find(|h| h.members.iter().any(|m| m == member))
    }

    /// The household whose meter `device` is.
    pub fn of_meter(&self, device: &str) -> Option<&HouseholdConfig> {
        self.by_meter.get(device).map(|&i| &self.list[i])
    }

    /// The members the configuration names, for the caller to check against the
    /// journal's: `(key, member)`.
    pub fn named_members(&self) -> Vec<(String, String)> {
        self.list
            .iter()
            .enumerate()
            .flat_map(|(i, h)| {
                h.members
                    .iter()
                    .map(move |m| (format!("household[{i}].members"), m.clone()))
            })
            .collect()
    }
}

/// Who is reading: a member and their roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    pub member: String,
    pub roles: Vec<Role>,
}

/// What a viewer may read of one household meter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeterAccess {
    /// The viewer's own household's meter: every reading, not logged.
    Own,
    /// Under grant `grant`, at `granularity` (never `aggregate`, which gives no row).
    Granted {
        grant: i64,
        granularity: Granularity,
    },
}

/// What a viewer may read of the households' meters, at an instant.
#[derive(Debug, Clone)]
pub struct Scope {
    viewer: Viewer,
    at: DateTime<Utc>,
    /// Household meters the viewer may read, and how.
    readable: BTreeMap<String, MeterAccess>,
    /// Household meters (every load that meters no service) the viewer may not
    /// read, or only at a coarser granularity than raw.
    hidden_raw: BTreeSet<String>,
    journal: Option<Arc<Journal>>,
}

fn finer(a: Granularity, b: Granularity) -> bool {
    let rank = |g: Granularity| match g {
        Granularity::Aggregate => 0,
        Granularity::Daily => 1,
        Granularity::FifteenMinutes => 2,
        Granularity::Raw => 3,
    };
    rank(a) > rank(b)
}

impl Scope {
    /// The scope of `viewer` at `at`: their household's meters, and those of live
    /// grants that cover them (the finest when several do).
    pub fn new(
        visibility: &Visibility,
        households: &Households,
        grants: &[Grant],
        viewer: Viewer,
        at: DateTime<Utc>,
    ) -> Scope {
        let mut readable = BTreeMap::new();
        if let Some(own) = households.of_member(&viewer.member) {
            for meter in &own.meters {
                readable.insert(meter.clone(), MeterAccess::Own);
            }
        }
        for grant in grants {
            if !grant.is_live(at)
                || grant.granularity == Granularity::Aggregate
                || !grant.grantee.covers(&viewer.member, &viewer.roles)
            {
                continue;
            }
            let Some(household) = households.get(&grant.household) else {
                continue;
            };
            for meter in &household.meters {
                let better = match readable.get(meter) {
                    None => true,
                    Some(MeterAccess::Own) => false,
                    Some(MeterAccess::Granted { granularity, .. }) => {
                        finer(grant.granularity, *granularity)
                    }
                };
                if better {
                    readable.insert(
                        meter.clone(),
                        MeterAccess::Granted {
                            grant: grant.seq,
                            granularity: grant.granularity,
                        },
                    );
                }
            }
        }
        let hidden_raw = visibility
            .household_devices()
            .iter()
            .filter(|d| {
                !matches!(
                    readable.get(d.as_str()),
                    Some(MeterAccess::Own)
                        | Some(MeterAccess::Granted {
                            granularity: Granularity::Raw,
                            ..
                        })
                )
            })
            .cloned()
            .collect();
        Scope {
            viewer,
            at,
            readable,
            hidden_raw,
            journal: None,
        }
    }

    /// The scope of `viewer` now, with the grants of `journal`, into whose access
    /// log its reads under a grant go. Blocking: reads the journal.
    pub fn load(
        journal: Arc<Journal>,
        visibility: &Visibility,
        households: &Households,
        viewer: Viewer,
        at: DateTime<Utc>,
    ) -> Result<Scope> {
        let grants = journal.consent_grants()?;
        let mut scope = Scope::new(visibility, households, &grants, viewer, at);
        scope.journal = Some(journal);
        Ok(scope)
    }

    pub fn viewer(&self) -> &Viewer {
        &self.viewer
    }

    /// How the viewer may read household meter `device`, if at all.
    pub fn access(&self, device: &str) -> Option<MeterAccess> {
        self.readable.get(device).copied()
    }

    /// The household meters the viewer may read, and how.
    pub fn readable(&self) -> &BTreeMap<String, MeterAccess> {
        &self.readable
    }

    /// The reads a request of `what` over `devices` (empty: all it may read) and
    /// `[from, to)` makes under grants: one record per grant.
    pub fn granted_reads(
        &self,
        households: &Households,
        what: &str,
        devices: &[String],
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Vec<AccessRecord> {
        let mut by_grant: BTreeMap<(i64, String), Vec<String>> = BTreeMap::new();
        for (meter, access) in &self.readable {
            let MeterAccess::Granted { grant, .. } = access else {
                continue;
            };
            if !devices.is_empty() && !devices.contains(meter) {
                continue;
            }
            let Some(household) = households.of_meter(meter) else {
                continue;
            };
            by_grant
                .entry((*grant, household.id.clone()))
                .or_default()
                .push(meter.clone());
        }
        by_grant
            .into_iter()
            .map(|((grant, household), meters)| AccessRecord {
                at: self.at,
                household,
                grant,
                reader: self.viewer.member.clone(),
                what: what.chars().take(300).collect(),
                meters,
                from,
                to,
            })
            .collect()
    }

    /// Appends the reads under grants of a request to the access log (see
    /// [`Scope::granted_reads`]); nothing when the scope has no journal.
    pub async fn log(
        &self,
        households: &Households,
        what: &str,
        devices: &[String],
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let records = self.granted_reads(households, what, devices, from, to);
        let Some(journal) = self.journal.clone() else {
            return Ok(());
        };
        if records.is_empty() {
            return Ok(());
        }
        tokio::task::spawn_blocking(move || journal.log_access(&records))
            .await
            .map_err(|e| crate::Error::Internal(format!("access log: {e}")))??;
        Ok(())
    }
}

/// A SQL string literal.
pub(crate) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn list(devices: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    devices
        .into_iter()
        .map(|d| quote(d.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `WHERE` clause keeping every device but `hidden`.
fn without(hidden: &BTreeSet<String>) -> String {
    if hidden.is_empty() {
        String::new()
    } else {
        format!(
            " WHERE arrow_cast(device, 'Utf8') NOT IN ({})",
            list(hidden)
        )
    }
}

/// The `readings` view of a scope: every row but the hidden meters', and the rows
/// of meters granted at a day or a quarter hour, one per period, device and metric
/// (the mean, or the period's last value for energy counters). Days are the site's
/// (from its midnight in `timezone`, clock changes included); quarter hours the
/// same everywhere but in a few zones off by 45 minutes.
fn readings_sql(scope: &Scope, timezone: chrono_tz::Tz) -> String {
    let mut parts = vec![format!(
        "SELECT ts, device, metric, value FROM readings{}",
        without(&scope.hidden_raw)
    )];
    let day = format!(
        "date_trunc('day', arrow_cast(ts, 'Timestamp(Millisecond, Some(\"{}\"))'))",
        timezone.name()
    );
    let quarter =
        "date_bin(INTERVAL '15 minutes', ts, TIMESTAMP '1970-01-01T00:00:00Z')".to_string();
    for (granularity, period) in [
        (Granularity::Daily, day),
        (Granularity::FifteenMinutes, quarter),
    ] {
        let meters: Vec<&String> = scope
            .readable
            .iter()
            .filter(|(_, a)| {
                matches!(a, MeterAccess::Granted { granularity: g, .. } if *g == granularity)
            })
            .map(|(m, _)| m)
            .collect();
        if meters.is_empty() {
            continue;
        }
        parts.push(format!(
            "SELECT arrow_cast({period}, 'Timestamp(Millisecond, Some(\"UTC\"))') AS ts,
                    device, metric,
                    CASE WHEN arrow_cast(metric, 'Utf8') LIKE 'energy%' THEN max(value)
                         ELSE avg(value) END AS value
             FROM readings WHERE arrow_cast(device, 'Utf8') IN ({})
             GROUP BY 1, 2, 3",
            list(meters)
        ));
    }
    parts.join("\nUNION ALL\n")
}

impl Queries {
    /// A session whose history tables (`readings`, `readings_1m`,
    /// `readings_not_rolled_up`, `readings_1m_stored`) hold what `scope` may read,
    /// with `devices` and `services`, on `runtime` (the history session's when
    /// `None`). The full tables are not in its catalog, so no query on it can name
    /// them.
    pub async fn scoped_session(
        &self,
        scope: &Scope,
        runtime: Option<Arc<RuntimeEnv>>,
    ) -> Result<SessionContext> {
        let base = self.session();
        let runtime = runtime.unwrap_or_else(|| base.runtime_env());
        let scoped = SessionContext::new_with_config_rt(base.copied_config(), runtime);
        // The full tables, in a session of their own that only builds the views.
        let builder = SessionContext::new_with_config(base.copied_config());
        for table in ["readings", "readings_not_rolled_up", "readings_1m_stored"] {
            builder.register_table(table, base.table_provider(table).await?)?;
        }
        let coarse: BTreeSet<String> = scope.hidden_raw.clone();
        let views = [
            ("readings", readings_sql(scope, self.timezone())),
            (
                "readings_not_rolled_up",
                format!("SELECT * FROM readings_not_rolled_up{}", without(&coarse)),
            ),
            (
                "readings_1m_stored",
                format!("SELECT * FROM readings_1m_stored{}", without(&coarse)),
            ),
        ];
        for (name, sql) in views {
            let view = builder.sql(&sql).await?.into_view();
            scoped.register_table(name, view)?;
        }
        scoped.sql(crate::history::ROLLUP_VIEW).await?;
        for table in ["devices", "services"] {
            scoped.register_table(table, base.table_provider(table).await?)?;
        }
        Ok(scoped)
    }
}

impl Queries {
    /// The mean `power_w` of each of `meters` per hour of `[from, to)`, as `scope`
    /// may read them (a read under a grant is logged as `what`): `(hour, meter,
    /// mean_w)`, in order.
    pub async fn hourly_power(
        &self,
        scope: &Scope,
        meters: &[String],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        what: &str,
    ) -> Result<Vec<(DateTime<Utc>, String, f64)>> {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::{Float64Type, TimestampMillisecondType};
        if meters.is_empty() {
            return Ok(Vec::new());
        }
        let session = self.scoped_session(scope, None).await?;
        scope
            .log(self.households(), what, meters, Some(from), Some(to))
            .await?;
        let ms = |t: DateTime<Utc>| {
            format!(
                "arrow_cast({}, 'Timestamp(Millisecond, Some(\"UTC\"))')",
                t.timestamp_millis()
            )
        };
        let sql = format!(
            "SELECT arrow_cast(date_bin(INTERVAL '1 hour', ts, TIMESTAMP '1970-01-01T00:00:00Z'),
                               'Timestamp(Millisecond, Some(\"UTC\"))') AS hour,
                    arrow_cast(device, 'Utf8') AS meter, avg(value) AS mean_w
             FROM readings
             WHERE arrow_cast(metric, 'Utf8') = 'power_w' AND ts >= {} AND ts < {}
               AND arrow_cast(device, 'Utf8') IN ({})
             GROUP BY 1, 2 ORDER BY 1, 2",
            ms(from),
            ms(to),
            list(meters)
        );
        let mut out = Vec::new();
        for batch in session.sql(&sql).await?.collect().await? {
            let (Some(hour), Some(meter), Some(mean)) = (
                batch
                    .column(0)
                    .as_primitive_opt::<TimestampMillisecondType>(),
                batch.column(1).as_string_opt::<i32>(),
                batch.column(2).as_primitive_opt::<Float64Type>(),
            ) else {
                return Err(crate::Error::ColumnType {
                    query: "hourly power",
                    column: "hour, meter, mean_w".into(),
                });
            };
            for i in 0..batch.num_rows() {
                if let Some(t) = DateTime::from_timestamp_millis(hour.value(i)) {
                    out.push((t, meter.value(i).to_string(), mean.value(i)));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::AsArray;
    use ledger::Grantee;
    use sensors::config::DeviceConfig;

    use crate::config::ServiceConfig;

    fn device(id: &str, role: &str) -> DeviceConfig {
        serde_json::from_value(serde_json::json!({
            "id": id, "role": role, "profile": "generic-json", "mqtt": {"topic": id}
        }))
        .unwrap_or_else(|e| panic!("{id}: {e}"))
    }

    fn visibility() -> Visibility {
        let service: ServiceConfig = serde_json::from_value(
            serde_json::json!({"id": "fridge", "meter": "clinic", "tier": 1}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Visibility::new(
            &[
                device("roof", "pv"),
                device("clinic", "load"),
                device("house-3", "load"),
                device("house-7", "load"),
                device("shed", "load"),
            ],
            &[service],
        )
    }

    fn household(id: &str, members: &[&str], meters: &[&str]) -> HouseholdConfig {
        HouseholdConfig {
            id: id.into(),
            name: None,
            members: members.iter().map(|s| s.to_string()).collect(),
            meters: meters.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A grant by the day gives the site's days: in Paris (UTC+2 in June), a
    /// reading at 23:30 and one at 00:30 the next day fall on two days, each
    /// starting at the site's midnight, where UTC days would have put them in one.
    #[tokio::test]
    async fn a_daily_grant_gives_days_of_the_site_not_of_utc() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let history = ingest::history::History::open(dir.path(), Default::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let at = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .unwrap_or_else(|e| panic!("{e}"))
                .with_timezone(&Utc)
        };
        let reading = |ts: &str, value: f64| ingest::reading::Reading {
            ts_ms: at(ts).timestamp_millis(),
            device: "house-7".into(),
            metric: sensors::model::Metric::PowerW,
            value,
        };
        history
            .add_pending(
                None,
                &[
                    reading("2026-06-01T21:30:00Z", 100.0),
                    reading("2026-06-01T22:30:00Z", 300.0),
                ],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let devices = [device("house-7", "load")];
        let queries = Queries::new(history, &devices, &[])
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .with_timezone(chrono_tz::Europe::Paris);
        let hh = Households::new(
            &[household("h7", &["bob"], &["house-7"])],
            queries.visibility(),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let grants = [grant(2, "h7", "member:carol", Granularity::Daily)];
        let carol = Viewer {
            member: "carol".into(),
            roles: vec![Role::Resident],
        };
        let scope = Scope::new(
            queries.visibility(),
            &hh,
            &grants,
            carol,
            at("2026-06-02T12:00:00Z"),
        );
        let session = queries
            .scoped_session(&scope, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let batches = session
            .sql("SELECT CAST(ts AS BIGINT) AS ms, value FROM readings ORDER BY ts")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut rows = Vec::new();
        for b in &batches {
            let ms = b
                .column(0)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            let v = b
                .column(1)
                .as_primitive::<datafusion::arrow::datatypes::Float64Type>();
            for i in 0..b.num_rows() {
                rows.push((ms.value(i), v.value(i)));
            }
        }
        assert_eq!(
            rows,
            vec![
                (at("2026-05-31T22:00:00Z").timestamp_millis(), 100.0),
                (at("2026-06-01T22:00:00Z").timestamp_millis(), 300.0),
            ],
            "one row a Paris day, from Paris midnight"
        );
    }

    #[test]
    fn bad_households_are_refused_naming_the_key() {
        let v = visibility();
        let problems = Households::new(
            &[
                household("h3", &["alice"], &["house-3", "nowhere"]),
                household("h7", &[], &["house-3", "roof"]),
                household("h3", &["bob"], &[]),
            ],
            &v,
        )
        .expect_err("refused");
        let text = problems.join("\n");
        for expected in [
            "household[0].meters: `nowhere` is not a configured device",
            "household[1].members: household `h7` has no member",
            "household[1].meters: `house-3` is already a meter of household[0] (`h3`)",
            "household[1].meters: `roof` is the community's",
            "household[2].id: `h3` is declared twice",
        ] {
            assert!(text.contains(expected), "{expected}\nin:\n{text}");
        }
        assert_eq!(problems.len(), 5, "{text}");
    }

    fn grant(seq: i64, household: &str, grantee: &str, g: Granularity) -> Grant {
        let t = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .unwrap_or_else(|e| panic!("{e}"))
                .with_timezone(&Utc)
        };
        Grant {
            seq,
            household: household.into(),
            grantee: grantee.parse::<Grantee>().unwrap_or_else(|e| panic!("{e}")),
            granularity: g,
            purpose: "energy advice".into(),
            starts: t("2026-01-01T00:00:00Z"),
            expires: t("2027-01-01T00:00:00Z"),
            granted_by: "alice".into(),
            granted_at: t("2026-01-01T00:00:00Z"),
            revoked_by: None,
            revoked_at: None,
        }
    }

    #[test]
    fn a_scope_holds_the_own_meters_and_the_live_grants_finest_first() {
        let v = visibility();
        let hh = Households::new(
            &[
                household("h3", &["alice"], &["house-3"]),
                household("h7", &["bob"], &["house-7"]),
            ],
            &v,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let at = DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z")
            .unwrap_or_else(|e| panic!("{e}"))
            .with_timezone(&Utc);
        let viewer = |m: &str, roles: &[Role]| Viewer {
            member: m.into(),
            roles: roles.to_vec(),
        };
        let mut revoked = grant(4, "h7", "member:carol", Granularity::Raw);
        revoked.revoked_at = Some(at - chrono::TimeDelta::days(1));
        let grants = [
            grant(2, "h7", "role:installer", Granularity::Daily),
            grant(3, "h7", "member:carol", Granularity::FifteenMinutes),
            revoked,
            grant(5, "h3", "member:carol", Granularity::Aggregate),
        ];
        let alice = Scope::new(&v, &hh, &grants, viewer("alice", &[Role::Resident]), at);
        assert_eq!(alice.access("house-3"), Some(MeterAccess::Own));
        assert_eq!(alice.access("house-7"), None);
        assert!(alice.hidden_raw.contains("house-7") && alice.hidden_raw.contains("shed"));
        assert!(!alice.hidden_raw.contains("house-3"));

        let carol = Scope::new(
            &v,
            &hh,
            &grants,
            viewer("carol", &[Role::Resident, Role::Installer]),
            at,
        );
        assert_eq!(
            carol.access("house-7"),
            Some(MeterAccess::Granted {
                grant: 3,
                granularity: Granularity::FifteenMinutes
            }),
            "the quarter hour is finer than the installers' day; the revoked raw grant counts for nothing"
        );
        assert_eq!(carol.access("house-3"), None, "aggregate gives no row");
        let reads = carol.granted_reads(&hh, "/api/export", &[], None, None);
        assert_eq!(reads.len(), 1);
        assert_eq!((reads[0].grant, &*reads[0].household), (3, "h7"));
        assert!(
            carol
                .granted_reads(&hh, "/api/export", &["roof".into()], None, None)
                .is_empty(),
            "a read that asks for other devices is not one under the grant"
        );

        let dave = Scope::new(&v, &hh, &grants, viewer("dave", &[Role::Installer]), at);
        assert_eq!(
            dave.access("house-7"),
            Some(MeterAccess::Granted {
                grant: 2,
                granularity: Granularity::Daily
            })
        );
        let later = at + chrono::TimeDelta::days(400);
        let expired = Scope::new(&v, &hh, &grants, viewer("dave", &[Role::Installer]), later);
        assert_eq!(expired.access("house-7"), None, "the grant expired");
    }
}
