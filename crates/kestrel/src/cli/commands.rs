//! The client commands: each reads its arguments, asks Kestrel through [`Connection`], and prints
//! a table or conversation, or with `--json` the API's JSON (for lists read across pages, one
//! `{"data": [...], "next_cursor": ...}` holding every row read).
//!
//! Notes for people (an empty list, how to see more) go to stderr, so stdout stays exactly the
//! table or the JSON.

use caribou_model::api::{AddGrade, Page, TraceFilter, TraceSort};

use crate::cli::connect::Connection;
use crate::cli::conversation::{self, View};
use crate::cli::output::{self, Style};
use crate::cli::paging::{self, Want};
use crate::cli::{
    Command, GradeArgs, ProjectsArgs, RunsArgs, SortArg, StepsArgs, TraceArgs, TracesArgs, format,
    lists,
};

/// Runs a client command (anything but `serve`).
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(_) => anyhow::bail!("`serve` is not a client command"),
        Command::Traces(args) => traces(&args),
        Command::Trace(args) => trace(&args),
        Command::Projects(args) => projects(&args),
        Command::Runs(args) => runs(&args),
        Command::Steps(args) => steps(&args),
        Command::Grade(args) => grade(&args),
    }
}

fn sort(arg: SortArg) -> TraceSort {
    match arg {
        SortArg::Newest => TraceSort::Newest,
        SortArg::Oldest => TraceSort::Oldest,
        SortArg::Cost => TraceSort::CostDesc,
        SortArg::Duration => TraceSort::DurationDesc,
        SortArg::Tokens => TraceSort::TokensDesc,
        SortArg::Grade => TraceSort::GradeDesc,
        SortArg::GradeAsc => TraceSort::GradeAsc,
    }
}

/// Says on stderr how to read on, when the list stopped before its end.
fn more_hint(next_cursor: Option<&str>, shown: usize) {
    if let Some(cursor) = next_cursor {
        output::note(&format!(
            "(first {shown} shown; more with --limit N, --all, or --cursor {cursor})"
        ));
    }
}

fn traces(args: &TracesArgs) -> anyhow::Result<()> {
    let conn = Connection::open(&args.client)?;
    let sort = sort(args.sort);
    let base = TraceFilter {
        project: args.project.clone(),
        run_id: args.run.clone(),
        q: args.query.clone().filter(|q| !q.trim().is_empty()),
        sort,
        grade: matches!(sort, TraceSort::GradeDesc | TraceSort::GradeAsc)
            .then(|| args.grade.clone()),
        ..TraceFilter::default()
    };
    let want = Want::from_flags(args.limit, args.all);
    let page = paging::collect("traces", want, args.cursor.clone(), |limit, cursor| {
        let filter = TraceFilter {
            limit: Some(limit),
            cursor,
            ..base.clone()
        };
        conn.call(|c| c.list_traces(&filter))
    })?;
    if args.client.json {
        return output::print_json(&page);
    }
    if page.data.is_empty() {
        output::note("no traces match");
        return Ok(());
    }
    output::print(&lists::traces(&page.data, Style::for_stdout().enabled))?;
    more_hint(page.next_cursor.as_deref(), page.data.len());
    Ok(())
}

fn trace(args: &TraceArgs) -> anyhow::Result<()> {
    let conn = Connection::open(&args.client)?;
    let detail = conn.call(|c| c.get_trace(&args.trace_id))?;
    if args.client.json {
        return output::print_json(&detail);
    }
    let view = View {
        style: Style::for_stdout(),
        truncate: args.truncate,
    };
    output::print(&conversation::render(&detail, view))
}

fn projects(args: &ProjectsArgs) -> anyhow::Result<()> {
    let conn = Connection::open(&args.client)?;
    let projects = conn.call(|c| c.list_projects())?;
    if args.client.json {
        return output::print_json(&Page {
            data: projects,
            next_cursor: None,
        });
    }
    if projects.is_empty() {
        output::note("no projects yet");
        return Ok(());
    }
    output::print(&lists::projects(&projects, Style::for_stdout().enabled))
}

fn runs(args: &RunsArgs) -> anyhow::Result<()> {
    let conn = Connection::open(&args.client)?;
    let want = Want::from_flags(args.limit, args.all);
    let page = paging::collect("runs", want, None, |limit, cursor| {
        conn.call(|c| c.list_runs(args.project.as_deref(), Some(limit), cursor.as_deref()))
    })?;
    if args.client.json {
        return output::print_json(&page);
    }
    if page.data.is_empty() {
        output::note("no runs");
        return Ok(());
    }
    output::print(&lists::runs(&page.data, Style::for_stdout().enabled))?;
    more_hint(page.next_cursor.as_deref(), page.data.len());
    Ok(())
}

fn steps(args: &StepsArgs) -> anyhow::Result<()> {
    let conn = Connection::open(&args.client)?;
    let query = args.query.as_deref().filter(|q| !q.trim().is_empty());
    let steps = conn.call(|c| match query {
        Some(q) => c.get_run_steps_matching(&args.run_id, q),
        None => c.get_run_steps(&args.run_id),
    })?;
    if args.client.json {
        return output::print_json(&Page {
            data: steps,
            next_cursor: None,
        });
    }
    if steps.is_empty() {
        output::note(&format!("run {} has no steps yet", args.run_id));
        return Ok(());
    }
    output::print(&lists::steps(&steps, Style::for_stdout().enabled))
}

fn grade(args: &GradeArgs) -> anyhow::Result<()> {
    let conn = Connection::open(&args.client)?;
    let value = format::parse_grade_value(&args.value);
    let stored = conn.call(|c| {
        c.grade(
            &args.trace_id,
            AddGrade {
                name: args.name.clone(),
                value: value.clone(),
                comment: args.comment.clone(),
                grader: args.grader.clone(),
                metadata: None,
            },
        )
    })?;
    if args.client.json {
        return output::print_json(&stored);
    }
    output::print(&format!(
        "graded {}: {} = {}\n",
        args.trace_id,
        args.name,
        format::grade_value(&value)
    ))
}
