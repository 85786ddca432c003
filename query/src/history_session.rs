//! The session over the history: `readings`, `readings_1m` (see [`crate::history`])
//! and the configuration (`devices`, `services`), apart from the live evaluation's,
//! so that a heavy query never delays the once-a-second allocation. The export and
//! the installers' SQL ([`crate::export`]), the history charts ([`crate::charts`])
//! and the replay of a draft plan ([`crate::replay`]) run on it.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use ingest::history::History;
use sensors::config::DeviceConfig;

use crate::Result;
use crate::config::ServiceConfig;
use crate::consent::{Households, Scope, Viewer};
use crate::export::{SqlLimits, SqlSession};
use crate::visibility::Visibility;

/// What the history session may keep of Parquet footers (with their page indexes),
/// all sessions over it together. DataFusion sizes its caches for a server, 50 MiB
/// of footers and 20 MiB of file statistics; the node's history is a few hundred
/// local files whose footers read in well under a millisecond, on a small computer
/// where that memory is better left free (issue 13: the demo's memory grew while
/// these caches filled).
pub const PARQUET_METADATA_CACHE_BYTES: usize = 4 * 1024 * 1024;
/// What the history session may keep of file statistics (see above).
pub const FILE_STATISTICS_CACHE_BYTES: usize = 1024 * 1024;

/// The session over the history, with the configured devices and services.
#[derive(Clone)]
pub struct Queries {
    ctx: SessionContext,
    /// Which devices any member may export: production, grid, battery, services'
    /// meters (see [`crate::visibility`]).
    visibility: Arc<Visibility>,
    devices: Arc<[DeviceConfig]>,
    services: Arc<[ServiceConfig]>,
    /// Where installers' SQL runs (see [`crate::export`]).
    sql: SqlSession,
    /// The households and their meters (see [`crate::consent`]).
    households: Arc<Households>,
    /// The site's clocks: a grant by the day gives days of the site, not of UTC.
    timezone: chrono_tz::Tz,
}

impl std::fmt::Debug for Queries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queries").finish_non_exhaustive()
    }
}

impl Queries {
    /// A session over `history` with the configured devices and services.
    pub async fn new(
        history: Arc<History>,
        devices: &[DeviceConfig],
        services: &[ServiceConfig],
    ) -> Result<Queries> {
        let config = SessionConfig::new().with_target_partitions(2);
        let runtime = RuntimeEnvBuilder::new()
            .with_metadata_cache_limit(PARQUET_METADATA_CACHE_BYTES)
            .with_file_statistics_cache_limit(FILE_STATISTICS_CACHE_BYTES)
            .build_arc()?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        crate::history::register(&ctx, history).await?;
        ctx.register_table("devices", Arc::new(crate::engine::devices_table(devices)?))?;
        ctx.register_table(
            "services",
            Arc::new(crate::engine::services_table(services)?),
        )?;
        let sql = SqlSession::new(&ctx, SqlLimits::default())?;
        Ok(Queries {
            ctx,
            visibility: Arc::new(Visibility::new(devices, services)),
            devices: devices.into(),
            services: services.into(),
            sql,
            households: Arc::new(Households::default()),
            timezone: chrono_tz::UTC,
        })
    }

    /// The same session with the site's households (see [`crate::consent`]).
    pub fn with_households(mut self, households: Households) -> Queries {
        self.households = Arc::new(households);
        self
    }

    /// The same session on the site's clocks (UTC until told).
    pub fn with_timezone(mut self, timezone: chrono_tz::Tz) -> Queries {
        self.timezone = timezone;
        self
    }

    /// The site's time zone.
    pub fn timezone(&self) -> chrono_tz::Tz {
        self.timezone
    }

    /// The site's households.
    pub fn households(&self) -> &Arc<Households> {
        &self.households
    }

    /// What `viewer` may read now, with the grants of `journal`, into whose access
    /// log the reads under a grant go. Blocking: reads the journal.
    pub fn scope(&self, journal: Arc<ledger::Journal>, viewer: Viewer) -> Result<Scope> {
        Scope::load(
            journal,
            &self.visibility,
            &self.households,
            viewer,
            Utc::now(),
        )
    }

    /// What `viewer` may read with no grant: their household's meters.
    pub fn scope_without_grants(&self, viewer: Viewer) -> Scope {
        Scope::new(&self.visibility, &self.households, &[], viewer, Utc::now())
    }

    /// The same session with other limits on installers' SQL.
    pub fn with_sql_limits(mut self, limits: SqlLimits) -> Result<Queries> {
        self.sql = SqlSession::new(&self.ctx, limits)?;
        Ok(self)
    }

    /// The limits installers' SQL runs within.
    pub fn sql_limits(&self) -> SqlLimits {
        self.sql.limits()
    }

    pub(crate) fn sql_session(&self) -> &SqlSession {
        &self.sql
    }

    /// `plan` replayed over `[from, to)` of the history (see [`crate::replay`]).
    pub async fn replay(
        &self,
        plan: &ledger::plan::Plan,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<crate::replay::Replay> {
        crate::replay::replay(&self.ctx, &self.devices, &self.services, plan, from, to).await
    }

    /// The devices whose readings are the community's, not a household's: every
    /// device but the loads, the loads that meter a service, and the services'
    /// recorded allocations (`service:<id>`).
    pub fn community_devices(&self) -> &HashSet<String> {
        self.visibility.community_devices()
    }

    /// Which configured devices are the community's and which are households', as
    /// every public surface sees them.
    pub fn visibility(&self) -> &Arc<Visibility> {
        &self.visibility
    }

    /// The configured devices.
    pub fn devices(&self) -> &[DeviceConfig] {
        &self.devices
    }

    /// The configured services.
    pub fn services(&self) -> &[ServiceConfig] {
        &self.services
    }

    /// The full session, every household meter included: for the node's own
    /// computations that show totals and the community's devices only (the charts
    /// of `/history`, the replay, the federation's summaries). What a member reads
    /// runs on [`Queries::scoped_session`] instead.
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }
}
