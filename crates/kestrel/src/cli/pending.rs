//! TEMPORARY: methods the SDK client does not have yet (removed once they are in caribou).
use caribou::{ClientError, KestrelClient};
use caribou_model::api::{Page, Project, Run, RunStep};

pub trait Pending {
    fn list_projects(&self) -> Result<Page<Project>, ClientError>;
    fn list_runs(&self, project: Option<&str>, limit: Option<u32>, cursor: Option<&str>) -> Result<Page<Run>, ClientError>;
    fn get_run_steps_matching(&self, run_id: &str, q: Option<&str>) -> Result<Vec<RunStep>, ClientError>;
}

impl Pending for KestrelClient {
    fn list_projects(&self) -> Result<Page<Project>, ClientError> {
        Err(ClientError::Decode("pending".into()))
    }
    fn list_runs(&self, _: Option<&str>, _: Option<u32>, _: Option<&str>) -> Result<Page<Run>, ClientError> {
        Err(ClientError::Decode("pending".into()))
    }
    fn get_run_steps_matching(&self, run_id: &str, _: Option<&str>) -> Result<Vec<RunStep>, ClientError> {
        self.get_run_steps(run_id)
    }
}
