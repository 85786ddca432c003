//! Stopping a query that is computing. Dropping a DataFusion stream stops it only
//! where it next waits, and an operator that computes from batches already in
//! memory (a cross join, an aggregation over one) may not wait again before it is
//! done: the query goes on using a core after whoever asked for it has gone.
//! [`stoppable`] puts a [`StopExec`] above every operator of a physical plan, so
//! that each batch an operator hands on first looks at a flag; once the flag is
//! raised the next batch is an error instead, and the whole plan unwinds within
//! one batch of work.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties,
    ReplaceChildrenOptions,
};
use futures::{Stream, StreamExt};

/// The message of the error a stopped query ends with.
pub const STOPPED: &str = "the query was stopped";

/// `plan` with a [`StopExec`] over each of its operators, all watching `stop`.
pub fn stoppable(
    plan: Arc<dyn ExecutionPlan>,
    stop: &Arc<AtomicBool>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let children = plan
        .children()
        .into_iter()
        .map(|child| stoppable(Arc::clone(child), stop))
        .collect::<Result<Vec<_>>>()?;
    let plan = if children.is_empty() {
        plan
    } else {
        // A StopExec has its input's properties: the operator's need no recomputing.
        plan.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep),
        )?
    };
    Ok(Arc::new(StopExec {
        input: plan,
        stop: Arc::clone(stop),
    }))
}

/// Hands on its input's batches until `stop` is raised, then an error.
#[derive(Debug)]
pub struct StopExec {
    input: Arc<dyn ExecutionPlan>,
    stop: Arc<AtomicBool>,
}

impl DisplayAs for StopExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StopExec")
    }
}

impl ExecutionPlan for StopExec {
    fn name(&self) -> &str {
        "StopExec"
    }

    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    // Operators that look at what their input is see the operator under it.
    fn downcast_delegate(&self) -> Option<&dyn ExecutionPlan> {
        Some(self.input.as_ref())
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(format!(
                "StopExec has one input, not {}",
                children.len()
            )));
        }
        Ok(Arc::new(StopExec {
            input: children.swap_remove(0),
            stop: Arc::clone(&self.stop),
        }))
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(DataFusionError::Execution(STOPPED.into()));
        }
        Ok(Box::pin(StopStream {
            input: self.input.execute(partition, context)?,
            stop: Arc::clone(&self.stop),
        }))
    }
}

struct StopStream {
    input: SendableRecordBatchStream,
    stop: Arc<AtomicBool>,
}

impl Stream for StopStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.stop.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(DataFusionError::Execution(STOPPED.into()))));
        }
        self.input.poll_next_unpin(cx)
    }
}

impl RecordBatchStream for StopStream {
    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    use super::*;

    #[tokio::test]
    async fn a_stopped_plan_ends_with_an_error_and_an_unstopped_one_runs() {
        let ctx = SessionContext::new();
        let df = ctx
            .sql("SELECT count(*) AS n FROM range(1000) a CROSS JOIN range(1000) b")
            .await
            .expect("plan");
        let plan = df.create_physical_plan().await.expect("physical plan");
        let stop = Arc::new(AtomicBool::new(false));
        let wrapped = stoppable(plan, &stop).expect("wrap");
        let batches = datafusion::physical_plan::collect(wrapped.clone(), ctx.task_ctx())
            .await
            .expect("runs");
        let n = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .map(|a| a.value(0));
        assert_eq!(n, Some(1_000_000));
        stop.store(true, Ordering::Relaxed);
        let stopped = datafusion::physical_plan::collect(wrapped, ctx.task_ctx()).await;
        let message = stopped.map(|_| ()).map_err(|e| e.to_string());
        assert!(
            message.as_ref().is_err_and(|e| e.contains(STOPPED)),
            "{message:?}"
        );
    }

    #[tokio::test]
    async fn every_operator_is_watched() {
        let ctx = SessionContext::new();
        let df = ctx
            .sql("SELECT a.value, count(*) FROM range(10) a JOIN range(10) b ON a.value = b.value GROUP BY 1 ORDER BY 1")
            .await
            .expect("plan");
        let plan = df.create_physical_plan().await.expect("physical plan");
        fn count(plan: &Arc<dyn ExecutionPlan>, stops: &mut usize, others: &mut usize) {
            if plan.name() == "StopExec" {
                *stops += 1;
            } else {
                *others += 1;
            }
            for child in plan.children() {
                count(child, stops, others);
            }
        }
        let (mut stops, mut others) = (0, 0);
        count(&plan, &mut stops, &mut others);
        assert_eq!(stops, 0);
        let operators = others;
        let wrapped = stoppable(plan, &Arc::new(AtomicBool::new(false))).expect("wrap");
        let (mut stops, mut others) = (0, 0);
        count(&wrapped, &mut stops, &mut others);
        assert_eq!((stops, others), (operators, operators));
    }
}
