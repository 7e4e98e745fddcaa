//! A blocking client of Kestrel's JSON API, for eval/train set-up and for reading traces back.
//!
//! Unlike logging, these calls wait for Kestrel and return errors ([`ClientError`]): they are made
//! by set-up code (create a run, register datapoints) that must know whether they worked. Each call
//! is bounded by the config's connect and request timeouts. Kestrel's error answers
//! (`{"error": {"code", "message"}}`) come back as [`ClientError::Api`] with its message.

use caribou_model::api::{
    AddDatapoints, AddDatapointsResponse, AddGrade, CreateProject, CreateRun, CreateRunStep,
    NewDatapoint, Page, Project, Run, RunStep, StoredItem, TraceDetail, TraceFilter, TraceSort,
    TraceSummary,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::Config;
use crate::error::ClientError;
use crate::exporter::{agent, bearer, error_message};

/// Most bytes of one answer read (a page of 1000 traces with metadata fits easily).
const MAX_ANSWER_BYTES: u64 = 256 << 20;

/// The Kestrel API client. Cheap to clone (the HTTP agent and its connection pool are shared).
#[derive(Debug, Clone)]
pub struct KestrelClient {
    inner: Option<Inner>,
}

#[derive(Debug, Clone)]
struct Inner {
    agent: ureq::Agent,
    base: String,
    auth: Option<String>,
}

impl KestrelClient {
    /// A client for `config.endpoint`; disabled (every call answers [`ClientError::Disabled`])
    /// when there is none.
    pub fn from_config(config: &Config) -> KestrelClient {
        let config = config.clone().sanitized();
        let inner = config.endpoint.as_ref().map(|endpoint| Inner {
            agent: agent(&config),
            base: endpoint.clone(),
            auth: bearer(config.api_key.as_deref()),
        });
        KestrelClient { inner }
    }

    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Returns the project of that name, creating it if needed.
    pub fn get_or_create_project(&self, name: &str) -> Result<Project, ClientError> {
        self.post(
            "/api/v1/projects",
            &CreateProject {
                name: name.to_owned(),
            },
        )
    }

    /// Every project, by name.
    pub fn list_projects(&self) -> Result<Vec<Project>, ClientError> {
        let page: Page<Project> = self.get("/api/v1/projects")?;
        Ok(page.data)
    }

    pub fn create_run(&self, req: CreateRun) -> Result<Run, ClientError> {
        self.post("/api/v1/runs", &req)
    }

    pub fn get_run(&self, run_id: &str) -> Result<Run, ClientError> {
        self.get(&format!("/api/v1/runs/{}", encode(run_id)))
    }

    /// Registers a training step (idempotent).
    pub fn create_run_step(&self, run_id: &str, step: i64) -> Result<RunStep, ClientError> {
        self.post(
            &format!("/api/v1/runs/{}/steps", encode(run_id)),
            &CreateRunStep { step },
        )
    }

    /// The run's steps in order, each with its figures.
    pub fn get_run_steps(&self, run_id: &str) -> Result<Vec<RunStep>, ClientError> {
        let page: Page<RunStep> = self.get(&format!("/api/v1/runs/{}/steps", encode(run_id)))?;
        Ok(page.data)
    }

    /// The run's steps in order, each with its figures computed over the rollouts matching a
    /// search-language query only (`status:completed`, `tag:x`).
    pub fn get_run_steps_matching(
        &self,
        run_id: &str,
        query: &str,
    ) -> Result<Vec<RunStep>, ClientError> {
        let page: Page<RunStep> = self.get(&format!(
            "/api/v1/runs/{}/steps?q={}",
            encode(run_id),
            encode(query)
        ))?;
        Ok(page.data)
    }

    /// One page of runs, newest first, of one project or of all.
    pub fn list_runs(
        &self,
        project: Option<&str>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<Run>, ClientError> {
        let pairs = [
            ("project", project.map(str::to_owned)),
            ("limit", limit.map(|n| n.to_string())),
            ("cursor", cursor.map(str::to_owned)),
        ];
        self.get(&format!("/api/v1/runs{}", join_query(&pairs)))
    }

    /// Adds (or replaces) datapoints of the run's project and links them to the run; returns how
    /// many were written.
    pub fn add_datapoints(
        &self,
        run_id: &str,
        datapoints: Vec<NewDatapoint>,
    ) -> Result<u64, ClientError> {
        let answer: AddDatapointsResponse = self.post(
            &format!("/api/v1/runs/{}/datapoints", encode(run_id)),
            &AddDatapoints { datapoints },
        )?;
        Ok(answer.written)
    }

    /// Grades a trace after the fact.
    pub fn grade(&self, trace_id: &str, grade: AddGrade) -> Result<StoredItem, ClientError> {
        self.post(
            &format!("/api/v1/traces/{}/grades", encode(trace_id)),
            &grade,
        )
    }

    pub fn get_trace(&self, trace_id: &str) -> Result<TraceDetail, ClientError> {
        self.get(&format!("/api/v1/traces/{}", encode(trace_id)))
    }

    /// One page of traces matching the filter (its `q` included).
    pub fn list_traces(&self, filter: &TraceFilter) -> Result<Page<TraceSummary>, ClientError> {
        self.get(&format!("/api/v1/traces{}", query_string(filter, None)))
    }

    /// One page of traces matching a search-language query (`status:error tag:x "timed out"`)
    /// and the filter.
    pub fn search(
        &self,
        query: &str,
        filter: &TraceFilter,
    ) -> Result<Page<TraceSummary>, ClientError> {
        self.get(&format!(
            "/api/v1/traces{}",
            query_string(filter, Some(query))
        ))
    }

    fn inner(&self) -> Result<&Inner, ClientError> {
        self.inner.as_ref().ok_or(ClientError::Disabled)
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let inner = self.inner()?;
        let mut request = inner.agent.get(format!("{}{path}", inner.base));
        if let Some(auth) = &inner.auth {
            request = request.header("Authorization", auth);
        }
        answer(request.call())
    }

    fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let inner = self.inner()?;
        let json = serde_json::to_vec(body)
            .map_err(|e| ClientError::Decode(format!("cannot encode the request: {e}")))?;
        let mut request = inner
            .agent
            .post(format!("{}{path}", inner.base))
            .header("Content-Type", "application/json");
        if let Some(auth) = &inner.auth {
            request = request.header("Authorization", auth);
        }
        answer(request.send(&json[..]))
    }
}

fn answer<T: DeserializeOwned>(
    sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<T, ClientError> {
    let mut response = sent.map_err(|e| ClientError::Transport(e.to_string()))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_vec()
        .map_err(|e| ClientError::Transport(e.to_string()))?;
    if !(200..300).contains(&status) {
        let (code, message) = error_message(status, &String::from_utf8_lossy(&body));
        return Err(ClientError::Api {
            status,
            code,
            message,
        });
    }
    serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()))
}

/// `?q=..&project=..&step=..` from a filter (`q` is the given query, else the filter's),
/// percent-encoded; empty when no field is set.
fn query_string(filter: &TraceFilter, q: Option<&str>) -> String {
    let sort = (filter.sort != TraceSort::default())
        .then(|| serde_json::to_value(filter.sort).ok())
        .flatten()
        .and_then(|v| v.as_str().map(str::to_owned));
    join_query(&[
        ("q", q.or(filter.q.as_deref()).map(str::to_owned)),
        ("project", filter.project.clone()),
        ("run_id", filter.run_id.clone()),
        ("phase", filter.phase.map(|p| p.as_str().to_owned())),
        ("step", filter.step.map(|s| s.to_string())),
        ("status", filter.status.map(|s| s.as_str().to_owned())),
        ("datapoint_id", filter.datapoint_id.clone()),
        ("sort", sort),
        ("grade", filter.grade.clone()),
        ("limit", filter.limit.map(|n| n.to_string())),
        ("cursor", filter.cursor.clone()),
    ])
}

/// `?k=v&..` of the pairs that have a value, percent-encoded; empty when none has.
fn join_query(pairs: &[(&str, Option<String>)]) -> String {
    let joined: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if joined.is_empty() {
        return String::new();
    }
    format!("?{}", joined.join("&"))
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for path segments and query
/// values alike).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use caribou_model::{Phase, RolloutStatus};

    #[test]
    fn filters_become_query_strings() {
        assert_eq!(query_string(&TraceFilter::default(), None), "");
        let filter = TraceFilter {
            project: Some("my project".into()),
            phase: Some(Phase::Train),
            step: Some(3),
            status: Some(RolloutStatus::Error),
            sort: TraceSort::CostDesc,
            limit: Some(10),
            ..TraceFilter::default()
        };
        assert_eq!(
            query_string(&filter, Some("tag:a \"timed out\"")),
            "?q=tag%3Aa%20%22timed%20out%22&project=my%20project&phase=train&step=3&status=ERROR&sort=cost_desc&limit=10"
        );
    }

    #[test]
    fn the_filter_query_and_grade_are_sent() {
        let filter = TraceFilter {
            q: Some("status:error".into()),
            sort: TraceSort::GradeAsc,
            grade: Some("correct".into()),
            ..TraceFilter::default()
        };
        assert_eq!(
            query_string(&filter, None),
            "?q=status%3Aerror&sort=grade_asc&grade=correct"
        );
        // An explicit query wins over the filter's.
        assert_eq!(
            query_string(&filter, Some("tag:a")),
            "?q=tag%3Aa&sort=grade_asc&grade=correct"
        );
        assert_eq!(join_query(&[("project", None), ("limit", None)]), "");
    }

    #[test]
    fn ids_are_escaped_in_paths() {
        assert_eq!(encode("trc_a/b?c"), "trc_a%2Fb%3Fc");
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn a_client_without_endpoint_is_disabled() {
        let client = KestrelClient::from_config(&Config::default());
        assert!(!client.enabled());
        assert!(matches!(client.get_trace("t"), Err(ClientError::Disabled)));
    }

    #[test]
    fn an_unreachable_kestrel_is_a_transport_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = KestrelClient::from_config(&Config {
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            ..Config::default()
        });
        let err = client.get_or_create_project("p").unwrap_err();
        assert!(matches!(err, ClientError::Transport(_)), "{err}");
    }
}
