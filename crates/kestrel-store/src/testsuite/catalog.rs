//! Cases for projects, runs, run steps and datapoints.

use caribou_model::api::{CreateRun, NewDatapoint, TraceFilter};
use caribou_model::{GradeValue, Phase, Record, RolloutStatus, TraceOpen, new_record_id};
use serde_json::json;

use super::fixtures::*;
use crate::{PageRequest, Store, StoreError};

pub async fn projects_get_or_create_is_idempotent(store: &dyn Store) {
    let a = store.get_or_create_project("alpha").await.expect("create");
    let again = store.get_or_create_project("alpha").await.expect("get");
    assert_eq!(a, again, "a second get-or-create returns the same project");
    assert_eq!(a.name, "alpha");
    store
        .get_or_create_project("beta")
        .await
        .expect("create beta");
    assert_eq!(store.get_project("alpha").await.expect("get"), Some(a));
    assert_eq!(store.get_project("gamma").await.expect("get"), None);
    let names: Vec<String> = store
        .list_projects()
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    let err = store
        .get_or_create_project("")
        .await
        .expect_err("an empty name is refused");
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
}

fn new_run(project: &str, phase: Phase, name: &str) -> CreateRun {
    CreateRun {
        project: project.to_owned(),
        phase,
        name: Some(name.to_owned()),
        config: Some(as_map(json!({"lr": 1e-6, "name": name}))),
    }
}

pub async fn runs_create_get_list(store: &dyn Store) {
    let mut made = Vec::new();
    for i in 0..3 {
        let run = store
            .create_run(new_run("p", Phase::Train, &format!("r{i}")))
            .await
            .expect("create");
        assert!(
            run.id.starts_with("run_") && run.id.len() == 36,
            "run id {}",
            run.id
        );
        assert_eq!((run.project.as_str(), run.phase), ("p", Phase::Train));
        assert_eq!(run.config["lr"], json!(1e-6));
        made.push(run);
    }
    let other = store
        .create_run(CreateRun {
            project: "q".into(),
            phase: Phase::Eval,
            name: None,
            config: None,
        })
        .await
        .expect("create");
    assert!(other.config.is_empty());
    assert!(
        store.get_project("q").await.expect("get").is_some(),
        "create_run creates the project"
    );
    assert_eq!(
        store.get_run(&made[1].id).await.expect("get"),
        Some(made[1].clone())
    );
    assert_eq!(
        store
            .get_run("run_00000000000000000000000000000000")
            .await
            .expect("get"),
        None
    );

    let newest_first: Vec<_> = made.iter().rev().cloned().collect();
    let all = store
        .list_runs(Some("p"), PageRequest::default())
        .await
        .expect("list");
    assert_eq!(all.data, newest_first);
    assert_eq!(all.next_cursor, None);
    let first = store
        .list_runs(
            Some("p"),
            PageRequest {
                limit: Some(2),
                cursor: None,
            },
        )
        .await
        .expect("page 1");
    assert_eq!(first.data, newest_first[..2]);
    let second = store
        .list_runs(
            Some("p"),
            PageRequest {
                limit: Some(2),
                cursor: first.next_cursor,
            },
        )
        .await
        .expect("page 2");
    assert_eq!(second.data, newest_first[2..]);
    assert_eq!(second.next_cursor, None);
    assert_eq!(
        store
            .list_runs(None, PageRequest::default())
            .await
            .expect("list")
            .data
            .len(),
        4
    );
    assert!(
        store
            .list_runs(Some("nope"), PageRequest::default())
            .await
            .expect("list")
            .data
            .is_empty()
    );
}

/// Linear interpolation between closest ranks, computed here independently of any backend.
fn expected_quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

pub async fn run_steps_are_idempotent_and_figures_match(store: &dyn Store) {
    let run = store
        .create_run(new_run("rl", Phase::Train, "grpo"))
        .await
        .expect("run");
    let s0 = store.create_run_step(&run.id, 0).await.expect("step");
    let again = store.create_run_step(&run.id, 0).await.expect("step again");
    assert_eq!(
        s0.created_at, again.created_at,
        "registering a step twice keeps it"
    );
    assert_eq!((s0.rollouts, s0.step), (0, 0));
    let err = store
        .create_run_step("run_ffffffffffffffffffffffffffffffff", 0)
        .await
        .expect_err("unknown run");
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");

    // Five rollouts in step 0; one ERROR; one re-graded (its latest reward counts); one label.
    let rewards = [0.1, 0.9, 0.5, 0.3, 0.7];
    let durations_s = [1, 2, 3, 4, 5];
    let mut records = Vec::new();
    for (i, (reward, dur)) in rewards.iter().zip(durations_s).enumerate() {
        let trace = format!("rl-{i}");
        let t = T0 + i as i64 * 10 * SEC;
        let turn = new_record_id();
        records.push(Record::TraceOpen(TraceOpen {
            run_id: Some(run.id.clone()),
            project: None,
            step: Some(0),
            datapoint_id: Some(format!("q{i}")),
            ..open(&trace, t, turn, "ignored")
        }));
        records.push(msg(
            &trace,
            t + 1,
            100 + i as u64,
            10 * i as u64,
            0.25 * i as f64,
        ));
        if i == 2 {
            records.push(grade(&trace, t + 2, "reward", GradeValue::Number(0.95)));
        }
        records.push(grade(&trace, t + 3, "reward", GradeValue::Number(*reward)));
        records.push(grade(
            &trace,
            t + 3,
            "correct",
            GradeValue::Bool(i % 2 == 0),
        ));
        records.push(grade(
            &trace,
            t + 3,
            "label",
            GradeValue::Label("fine".into()),
        ));
        let st = if i == 4 {
            RolloutStatus::Error
        } else {
            RolloutStatus::Completed
        };
        records.push(close(&trace, t + dur * SEC, turn, Some(st)));
    }
    // Two rollouts of a step nobody registered.
    for i in 0..2 {
        let trace = format!("rl-step3-{i}");
        let turn = new_record_id();
        records.push(Record::TraceOpen(TraceOpen {
            run_id: Some(run.id.clone()),
            project: None,
            step: Some(3),
            ..open(&trace, T0 + i * SEC, turn, "ignored")
        }));
        records.push(grade(
            &trace,
            T0 + i * SEC + 1,
            "reward",
            GradeValue::Number(1.0),
        ));
    }
    ingest(store, records).await;

    let steps = store.list_run_steps(&run.id).await.expect("steps");
    assert_eq!(steps.iter().map(|s| s.step).collect::<Vec<_>>(), [0, 3]);
    let s = &steps[0];
    assert_eq!(s.rollouts, 5);
    assert_eq!(s.status.get(&RolloutStatus::Completed), Some(&4));
    assert_eq!(s.status.get(&RolloutStatus::Error), Some(&1));
    assert_eq!(
        s.status.len(),
        2,
        "statuses with no rollout are left out: {:?}",
        s.status
    );
    assert_eq!(s.input_tokens, 100 + 101 + 102 + 103 + 104);
    assert_eq!(s.output_tokens, 10 + 20 + 30 + 40);
    assert!(approx(s.cost_usd, 0.25 * 10.0), "cost {}", s.cost_usd);
    assert!(
        approx(s.duration_ms_mean.expect("duration"), 3000.0),
        "{:?}",
        s.duration_ms_mean
    );
    let r = &s.grades["reward"];
    assert_eq!(r.count, 5);
    assert!(approx(
        r.mean.expect("mean"),
        rewards.iter().sum::<f64>() / 5.0
    ));
    assert_eq!((r.min, r.max), (Some(0.1), Some(0.9)));
    assert!(approx(
        r.p50.expect("p50"),
        expected_quantile(&rewards, 0.5)
    ));
    assert!(approx(
        r.p90.expect("p90"),
        expected_quantile(&rewards, 0.9)
    ));
    let c = &s.grades["correct"];
    assert_eq!(
        (c.count, c.mean),
        (5, Some(3.0 / 5.0)),
        "bools count as 1 and 0"
    );
    assert_eq!(
        s.grades.get("label").map(|g| g.count).unwrap_or(0),
        0,
        "labels have no numeric value"
    );

    let s3 = store
        .get_run_step(&run.id, 3)
        .await
        .expect("get")
        .expect("unregistered step 3 is listed");
    assert_eq!((s3.rollouts, s3.grades["reward"].count), (2, 2));
    assert_eq!(s3.status.get(&RolloutStatus::Running), Some(&2));
    assert_eq!(store.get_run_step(&run.id, 7).await.expect("get"), None);
    assert_eq!(
        store.get_run_step(&run.id, 0).await.expect("get").as_ref(),
        Some(s)
    );
    let err = store
        .list_run_steps("run_ffffffffffffffffffffffffffffffff")
        .await
        .expect_err("unknown run");
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");

    // The traces of a known run are filed under the run's project and phase.
    let filed = list_all(
        store,
        &TraceFilter {
            run_id: Some(run.id.clone()),
            ..TraceFilter::default()
        },
    )
    .await;
    assert_eq!(filed.len(), 7);
    assert!(
        filed
            .iter()
            .all(|t| t.project.as_deref() == Some("rl") && t.phase == Some(Phase::Train))
    );
}

fn dp(id: &str, input: &str) -> NewDatapoint {
    NewDatapoint {
        id: id.to_owned(),
        input: json!(input),
        expected: json!({"answer": id}),
        metadata: Some(as_map(json!({"src": "suite"}))),
    }
}

pub async fn datapoints_add_replace_list_paginate(store: &dyn Store) {
    let n = store
        .add_datapoints(
            "ds",
            None,
            ["q3", "q1", "q5", "q2", "q4"]
                .iter()
                .map(|id| dp(id, "2+2?"))
                .collect(),
        )
        .await
        .expect("add");
    assert_eq!(n, 5);
    let before = store
        .get_datapoint("ds", "q1")
        .await
        .expect("get")
        .expect("q1");
    assert_eq!(before.input, json!("2+2?"));
    assert_eq!(before.metadata["src"], json!("suite"));
    store
        .add_datapoints("ds", None, vec![dp("q1", "3+3?")])
        .await
        .expect("replace");
    let after = store
        .get_datapoint("ds", "q1")
        .await
        .expect("get")
        .expect("q1");
    assert_eq!(
        after.input,
        json!("3+3?"),
        "adding again replaces the content"
    );
    assert_eq!(after.created_at, before.created_at);
    assert_eq!(store.get_datapoint("ds", "nope").await.expect("get"), None);
    assert_eq!(store.get_datapoint("other", "q1").await.expect("get"), None);

    let mut seen = Vec::new();
    let mut page = PageRequest {
        limit: Some(2),
        cursor: None,
    };
    let mut sizes = Vec::new();
    loop {
        let p = store
            .list_datapoints("ds", None, page.clone())
            .await
            .expect("list");
        sizes.push(p.data.len());
        seen.extend(p.data.into_iter().map(|d| d.id));
        match p.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ["q1", "q2", "q3", "q4", "q5"]);
    assert_eq!(sizes, [2, 2, 1]);

    let run = store
        .create_run(new_run("ds", Phase::Eval, "e"))
        .await
        .expect("run");
    store
        .add_datapoints("ds", Some(&run.id), vec![dp("q9", "x"), dp("q2", "y")])
        .await
        .expect("add to run");
    let of_run = store
        .list_datapoints("ds", Some(&run.id), PageRequest::default())
        .await
        .expect("list");
    assert_eq!(
        of_run
            .data
            .iter()
            .map(|d| d.id.as_str())
            .collect::<Vec<_>>(),
        ["q2", "q9"]
    );
    let all = store
        .list_datapoints("ds", None, PageRequest::default())
        .await
        .expect("list");
    assert_eq!(all.data.len(), 6);
    let err = store
        .add_datapoints(
            "ds",
            Some("run_ffffffffffffffffffffffffffffffff"),
            vec![dp("z", "z")],
        )
        .await
        .expect_err("unknown run");
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert_eq!(
        store.get_datapoint("ds", "z").await.expect("get"),
        None,
        "a refused request stores nothing"
    );
    assert!(
        store
            .list_datapoints("nope", None, PageRequest::default())
            .await
            .expect("list")
            .data
            .is_empty()
    );
}

/// Step figures are exact at every moment, whatever the state of a store's per-step cache: after
/// each write (new rollouts, a re-grade, a status change), at once and again a little later,
/// listing the steps answers what computing them from the rollouts answers.
pub async fn run_steps_stay_exact_while_cached(store: &dyn Store) {
    let run = store
        .create_run(new_run("rl-cache", Phase::Train, "cached"))
        .await
        .expect("run");
    // A query every rollout matches: its figures are computed from the rollouts themselves.
    let all = kestrel_query::parse("-trace:no-such-trace").expect("parse");
    let check = |when: &'static str| {
        let run_id = run.id.clone();
        let all = all.clone();
        async move {
            let listed = store.list_run_steps(&run_id).await.expect("steps");
            let live = store
                .list_run_steps_matching(&run_id, &all)
                .await
                .expect("steps matching");
            assert_eq!(listed, live, "{when}");
            for s in &listed {
                let one = store.get_run_step(&run_id, s.step).await.expect("step");
                assert_eq!(one.as_ref(), Some(s), "{when}: step {}", s.step);
            }
            listed
        }
    };
    let rollout = |i: usize, step: i64, reward: f64| {
        let trace = format!("rc-{i}");
        let t = T0 + i as i64 * SEC;
        let turn = new_record_id();
        vec![
            Record::TraceOpen(TraceOpen {
                run_id: Some(run.id.clone()),
                project: None,
                step: Some(step),
                ..open(&trace, t, turn, "ignored")
            }),
            msg(&trace, t + 1, 10 + i as u64, i as u64, 0.125 * i as f64),
            grade(&trace, t + 2, "reward", GradeValue::Number(reward)),
            close(&trace, t + (i as i64 + 1) * 1000, turn, None),
        ]
    };
    let mut records = Vec::new();
    for i in 0..12 {
        records.extend(rollout(i, (i % 3) as i64, i as f64 / 12.0));
    }
    ingest(store, records).await;
    check("after the first rollouts").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before = check("once the cache could catch up").await;
    assert_eq!(
        before.iter().map(|s| s.rollouts).collect::<Vec<_>>(),
        [4, 4, 4]
    );

    // A re-grade changes step 1's reward figures: seen at once.
    let regraded = store
        .add_grade(
            "rc-1",
            caribou_model::api::AddGrade {
                name: "reward".into(),
                value: GradeValue::Number(5.0),
                comment: None,
                grader: None,
                metadata: None,
            },
        )
        .await
        .expect("grade");
    assert!(regraded.ts > T0, "a grade after the fact is the latest");
    let after = check("right after a re-grade").await;
    assert_eq!(after[1].grades["reward"].max, Some(5.0));
    assert_ne!(before[1], after[1]);
    assert_eq!(before[0], after[0], "other steps keep their figures");

    // A status change, a new step and more rollouts in an old one.
    let mut records = vec![status("rc-0", T0 + 200 * SEC, RolloutStatus::Error)];
    records.extend(rollout(20, 7, 0.5));
    records.extend(rollout(21, 2, 0.25));
    ingest(store, records).await;
    let now = check("right after more rollouts").await;
    assert_eq!(
        now.iter().map(|s| (s.step, s.rollouts)).collect::<Vec<_>>(),
        [(0, 4), (1, 4), (2, 5), (7, 1)]
    );
    assert_eq!(now[0].status.get(&RolloutStatus::Error), Some(&1));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(check("later").await, now);
}
