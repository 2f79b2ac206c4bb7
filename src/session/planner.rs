//! What PostgreSQL's planner expects of the `sessions` table, read without scanning it: the
//! sweep uses it to choose between the `expires_at` index and a walk in block order, and tests
//! use [`explain`] to check the plans the sweeper's statements get.

use chrono::NaiveDateTime;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{BigInt, Text, Timestamp};

/// PostgreSQL's view of the `sessions` table, for choosing how to sweep it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TableEstimate {
    /// Rows in the table, as the planner estimates them.
    pub rows: f64,
    /// Rows expired at the given time, as the planner estimates them.
    pub expired: f64,
    /// The table's current size in heap blocks.
    pub blocks: i64,
}

#[derive(QueryableByName)]
struct JsonPlan {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    json: String,
}

#[derive(QueryableByName)]
struct Blocks {
    #[diesel(sql_type = BigInt)]
    blocks: i64,
}

/// A plan PostgreSQL made, as `EXPLAIN (FORMAT JSON)` returns it (nothing is executed).
#[derive(Debug, Clone)]
pub struct Plan(serde_json::Value);

impl Plan {
    /// The top node's `"Plan Rows"`: how many rows the planner expects the statement to return.
    pub fn rows(&self) -> Option<f64> {
        self.0.pointer("/0/Plan/Plan Rows")?.as_f64()
    }

    /// Every node of the plan, depth first, as `"Node Type"` plus ` using INDEX` when it reads
    /// an index: e.g. `["Delete", "Tid Scan", "Index Scan using sessions_expires_at_idx"]`.
    pub fn nodes(&self) -> Vec<String> {
        fn walk(node: &serde_json::Value, out: &mut Vec<String>) {
            let kind = node["Node Type"].as_str().unwrap_or("?");
            out.push(match node["Index Name"].as_str() {
                Some(index) => format!("{kind} using {index}"),
                None => kind.to_owned(),
            });
            for child in node["Plans"].as_array().into_iter().flatten() {
                walk(child, out);
            }
        }
        let mut out = Vec::new();
        if let Some(top) = self.0.pointer("/0/Plan") {
            walk(top, &mut out);
        }
        out
    }
}

/// Runs `explain`, an `EXPLAIN (FORMAT JSON) …` statement, and returns its plan.
pub fn explain(
    pg: &mut PgConnection,
    explain: BoxedSqlQuery<'_, Pg, SqlQuery>,
) -> QueryResult<Plan> {
    let JsonPlan { json } = explain.get_result(pg)?;
    serde_json::from_str(&json)
        .map(Plan)
        .map_err(|e| diesel::result::Error::DeserializationError(e.into()))
}

/// The planner's row estimate for `query`, an `EXPLAIN (FORMAT JSON)` statement.
fn planned_rows(pg: &mut PgConnection, query: BoxedSqlQuery<'_, Pg, SqlQuery>) -> QueryResult<f64> {
    let plan = explain(pg, query)?;
    plan.rows().ok_or_else(|| {
        diesel::result::Error::DeserializationError(
            format!("no \"Plan Rows\" in the plan {:?}", plan.0).into(),
        )
    })
}

/// Asks the planner how many rows `sessions` holds and how many of them expired at `now`, and
/// reads the table's size in blocks. Cheap: nothing is scanned.
pub fn estimate_table(pg: &mut PgConnection, now: NaiveDateTime) -> QueryResult<TableEstimate> {
    let rows = planned_rows(
        pg,
        diesel::sql_query("EXPLAIN (FORMAT JSON) SELECT 1 FROM sessions").into_boxed(),
    )?;
    let expired = planned_rows(
        pg,
        diesel::sql_query("EXPLAIN (FORMAT JSON) SELECT 1 FROM sessions WHERE expires_at <= $1")
            .into_boxed()
            .bind::<Timestamp, _>(now),
    )?;
    let Blocks { blocks } = diesel::sql_query(
        "SELECT pg_relation_size('sessions') / current_setting('block_size')::bigint AS blocks",
    )
    .get_result(pg)?;
    Ok(TableEstimate {
        rows,
        expired,
        blocks,
    })
}
