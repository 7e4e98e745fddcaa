//! The tables of the list commands: traces, projects, runs, steps of a run.
//!
//! Ids are printed whole (they are what `kestrel trace ID` and `kestrel steps RUN` take); free
//! text columns (tags, grades, config) have a most width so a row stays one line.

use std::collections::BTreeSet;

use caribou_model::api::{Project, Run, RunStep, TraceSummary};
use serde_json::Value;

use crate::cli::format;
use crate::cli::table::{Column, Table};

pub fn traces(rows: &[TraceSummary], bold: bool) -> String {
    let mut t = Table::new(vec![
        Column::left("time (UTC)"),
        Column::left("trace"),
        Column::left("status"),
        Column::left("project/run/step").max(60),
        Column::left("model").max(24),
        Column::left("datapoint").max(20),
        Column::left("grades").max(32),
        Column::right("tokens in/out"),
        Column::right("cost"),
        Column::right("duration"),
        Column::left("tags").max(30),
    ]);
    for s in rows {
        let mut place = vec![s.project.clone().unwrap_or_else(|| "-".to_owned())];
        if let Some(run) = &s.run_id {
            place.push(run.clone());
        }
        if let Some(step) = s.step {
            place.push(step.to_string());
        }
        t.row(vec![
            s.started_at.map_or_else(|| "-".to_owned(), format::time),
            s.trace_id.clone(),
            s.status.as_str().to_owned(),
            place.join("/"),
            s.model_name.clone().unwrap_or_default(),
            s.datapoint_id.clone().unwrap_or_default(),
            format::grades(&s.grades),
            format::tokens(s.input_tokens, s.output_tokens),
            format::cost(s.cost_usd),
            format::opt_duration_ms(s.duration_ms),
            s.tags.join(","),
        ]);
    }
    t.render(bold)
}

pub fn projects(rows: &[Project], bold: bool) -> String {
    let mut t = Table::new(vec![Column::left("project"), Column::left("created (UTC)")]);
    for p in rows {
        t.row(vec![p.name.clone(), format::time(p.created_at)]);
    }
    t.render(bold)
}

pub fn runs(rows: &[Run], bold: bool) -> String {
    let mut t = Table::new(vec![
        Column::left("run"),
        Column::left("project"),
        Column::left("phase"),
        Column::left("name").max(32),
        Column::left("created (UTC)"),
        Column::left("config").max(48),
    ]);
    for r in rows {
        let config = if r.config.is_empty() {
            String::new()
        } else {
            Value::Object(r.config.clone()).to_string()
        };
        t.row(vec![
            r.id.clone(),
            r.project.clone(),
            r.phase.as_str().to_owned(),
            r.name.clone().unwrap_or_default(),
            format::time(r.created_at),
            config,
        ]);
    }
    t.render(bold)
}

/// One row per step; for each grade name seen in any step, its mean, min, max, p50 and p90.
pub fn steps(rows: &[RunStep], bold: bool) -> String {
    let names: BTreeSet<&str> = rows
        .iter()
        .flat_map(|s| s.grades.keys().map(String::as_str))
        .collect();
    let mut columns = vec![
        Column::right("step"),
        Column::right("rollouts"),
        Column::left("status").max(48),
    ];
    for name in &names {
        for stat in ["mean", "min", "max", "p50", "p90"] {
            columns.push(Column::right(&format!("{name}.{stat}")));
        }
    }
    columns.extend([
        Column::right("tokens in/out"),
        Column::right("cost"),
        Column::right("dur mean"),
        Column::right("dur p50"),
        Column::right("dur p90"),
    ]);
    let mut t = Table::new(columns);
    for s in rows {
        let status = s
            .status
            .iter()
            .map(|(status, n)| format!("{status} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut cells = vec![s.step.to_string(), format::count(s.rollouts), status];
        for name in &names {
            match s.grades.get(*name) {
                Some(g) => cells.extend([
                    format::opt_number(g.mean),
                    format::opt_number(g.min),
                    format::opt_number(g.max),
                    format::opt_number(g.p50),
                    format::opt_number(g.p90),
                ]),
                None => cells.extend(std::iter::repeat_n("-".to_owned(), 5)),
            }
        }
        cells.extend([
            format::tokens(s.input_tokens, s.output_tokens),
            format::cost(s.cost_usd),
            format::opt_duration_ms(s.duration_ms_mean),
            format::opt_duration_ms(s.duration_ms_p50),
            format::opt_duration_ms(s.duration_ms_p90),
        ]);
        t.row(cells);
    }
    t.render(bold)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn step_table_has_a_column_group_per_grade() {
        let rows: Vec<RunStep> = serde_json::from_value(json!([
            {"run_id": "run_1", "step": 0, "created_at": 0, "rollouts": 4,
             "status": {"COMPLETED": 3, "ERROR": 1},
             "grades": {"reward": {"count": 3, "mean": 0.5, "min": 0.0, "max": 1.0, "p50": 0.5, "p90": 0.9}},
             "input_tokens": 1000, "output_tokens": 200, "cost_usd": 0.02,
             "duration_ms_mean": 1500.0, "duration_ms_p50": 1200.0, "duration_ms_p90": 2500.0},
            {"run_id": "run_1", "step": 1, "created_at": 0, "rollouts": 0, "status": {},
             "grades": {}, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0,
             "duration_ms_mean": null}
        ]))
        .unwrap();
        let text = steps(&rows, false);
        let lines: Vec<&str> = text.lines().collect();
        let words = |line: &str| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            words(lines[0]),
            "step rollouts status reward.mean reward.min reward.max reward.p50 reward.p90 tokens in/out cost dur mean dur p50 dur p90"
                .split(' ')
                .collect::<Vec<_>>()
        );
        assert_eq!(
            words(lines[1]),
            "0 4 COMPLETED 3, ERROR 1 0.5 0 1 0.5 0.9 1,000 / 200 $0.0200 1.50s 1.20s 2.50s"
                .split(' ')
                .collect::<Vec<_>>()
        );
        assert_eq!(
            words(lines[2]),
            "1 0 - - - - - - $0 - - -".split(' ').collect::<Vec<_>>()
        );
    }
}
