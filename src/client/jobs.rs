//! Background jobs (move, copy, delete): starting them is one call, their effect is visible
//! only once their task finishes, so we poll `POST /a/jobs/user` until then.

use super::CellsClient;
use super::assumptions::{JOB_MISSING_MEANS_DONE, REST_PREFIX};
use super::error::{ClientError, ClientResult};
use super::http::Retry;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct WireJobs {
    jobs: Vec<WireJob>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct WireJob {
    #[serde(rename = "ID")]
    id: Option<String>,
    tasks: Vec<WireTask>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct WireTask {
    status: Option<String>,
    status_message: Option<String>,
}

/// Where a job stands, from its tasks' statuses.
#[derive(Debug, PartialEq, Eq)]
enum JobState {
    Pending,
    Done,
    Failed(String),
}

fn job_state(job: &WireJob) -> JobState {
    // A job with several tasks (re-runs) is judged by its latest one, the last in the list.
    let Some(task) = job.tasks.last() else {
        return JobState::Pending;
    };
    match task.status.as_deref() {
        Some("Finished") => JobState::Done,
        Some("Error" | "Interrupted") => JobState::Failed(
            task.status_message
                .clone()
                .unwrap_or_else(|| "the job stopped in error".into()),
        ),
        _ => JobState::Pending,
    }
}

impl CellsClient {
    /// Polls job `uuid` with backoff until it finishes, fails, or the job deadline passes
    /// (then `Offline`: the outcome is unknown, the caller re-lists later).
    pub async fn wait_job(&self, uuid: &str) -> ClientResult<()> {
        let http = self.http();
        let deadline = Instant::now() + http.timeouts.job;
        let mut delay = Duration::from_millis(50);
        let rel = format!("{REST_PREFIX}/jobs/user");
        let body = json!({"JobIDs": [uuid], "LoadTasks": "Any"});
        loop {
            let reply: WireJobs = http
                .rest_json(reqwest::Method::POST, &rel, Some(&body), Retry::Idempotent)
                .await?;
            let job = reply
                .jobs
                .iter()
                .find(|j| j.id.as_deref().is_none_or(|id| id == uuid));
            match job.map(job_state) {
                Some(JobState::Done) => return Ok(()),
                Some(JobState::Failed(why)) => return Err(ClientError::JobFailed(why)),
                None if JOB_MISSING_MEANS_DONE => return Ok(()),
                None | Some(JobState::Pending) => {}
            }
            if Instant::now() + delay > deadline {
                return Err(ClientError::Offline(format!(
                    "job {uuid} still running after {:?}",
                    http.timeouts.job
                )));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(v: serde_json::Value) -> WireJob {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn job_states_follow_the_last_task() {
        assert_eq!(job_state(&job(json!({"ID": "j"}))), JobState::Pending);
        assert_eq!(
            job_state(&job(json!({"Tasks": [{"Status": "Running"}]}))),
            JobState::Pending
        );
        assert_eq!(
            job_state(&job(
                json!({"Tasks": [{"Status": "Error"}, {"Status": "Finished"}]})
            )),
            JobState::Done
        );
        assert_eq!(
            job_state(&job(
                json!({"Tasks": [{"Status": "Error", "StatusMessage": "target exists"}]})
            )),
            JobState::Failed("target exists".into())
        );
    }
}
