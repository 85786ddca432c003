//! `readings_live`: the live store as a DataFusion table. Each scan takes the
//! batches in the window at that instant (cheap: Arrow buffers are shared).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use ingest::reading::readings_schema;
use ingest::store::LiveStore;

#[derive(Debug)]
pub struct LiveTable {
    store: Arc<LiveStore>,
}

impl LiveTable {
    pub fn new(store: Arc<LiveStore>) -> Self {
        LiveTable { store }
    }
}

#[async_trait]
impl TableProvider for LiveTable {
    fn schema(&self) -> SchemaRef {
        readings_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batches = self.store.batches();
        let exec =
            MemorySourceConfig::try_new_exec(&[batches], self.schema(), projection.cloned())?;
        Ok(exec)
    }
}

/// `readings_latest`: the newest reading of each device and metric, from the live
/// store's last-value cache (the way InfluxDB's last cache serves "the latest value"
/// queries): the live evaluation reads this rather than scanning the whole window, so
/// its cost follows the number of devices, not the window's length. Same columns as
/// `readings_live`.
#[derive(Debug)]
pub struct LatestTable {
    store: Arc<LiveStore>,
}

impl LatestTable {
    pub fn new(store: Arc<LiveStore>) -> Self {
        LatestTable { store }
    }
}

#[async_trait]
impl TableProvider for LatestTable {
    fn schema(&self) -> SchemaRef {
        readings_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = self
            .store
            .latest_batch()
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        let exec =
            MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema(), projection.cloned())?;
        Ok(exec)
    }
}
