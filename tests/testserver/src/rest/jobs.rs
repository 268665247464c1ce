//! Background jobs: move/copy (`PUT /a/jobs/user/{move|copy}`), deletions started by
//! `/a/tree/delete`, and their status (`POST /a/jobs/user`). A job stays "Running" for the
//! configured delay, then applies its effect and turns "Finished" or "Error".

use std::future::Future;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::User;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Located, lock, now_secs};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobStatus {
    Running,
    Finished,
    Error(String),
}

#[derive(Clone, Debug)]
pub struct JobRecord {
    pub owner: String,
    pub label: String,
    pub status: JobStatus,
    pub start: i64,
    pub end: i64,
}

/// Registers a job and runs `work` after the configured delay.
pub fn spawn_job<F>(state: &Arc<AppState>, owner: &str, label: &str, work: F) -> String
where
    F: Future<Output = ApiResult<()>> + Send + 'static,
{
    let id = uuid::Uuid::new_v4().to_string();
    lock(&state.jobs).insert(
        id.clone(),
        JobRecord {
            owner: owner.to_string(),
            label: label.to_string(),
            status: JobStatus::Running,
            start: now_secs(),
            end: 0,
        },
    );
    let st = state.clone();
    let job_id = id.clone();
    tokio::spawn(async move {
        tokio::time::sleep(st.job_delay).await;
        let status = match work.await {
            Ok(()) => JobStatus::Finished,
            Err(e) => JobStatus::Error(e.detail),
        };
        if let Some(job) = lock(&st.jobs).get_mut(&job_id) {
            job.status = status;
            job.end = now_secs();
        }
    });
    id
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserJobRequest {
    #[serde(default)]
    json_parameters: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MoveCopyParams {
    nodes: Vec<String>,
    target: String,
    #[serde(default)]
    target_parent: bool,
}

/// `PUT /a/jobs/user/{name}` for `move` and `copy`.
pub async fn user_job(
    State(st): State<Arc<AppState>>,
    User(login): User,
    Path(name): Path<String>,
    Json(req): Json<UserJobRequest>,
) -> ApiResult<Json<Value>> {
    let copy = match name.as_str() {
        "move" => false,
        "copy" => true,
        other => return Err(ApiError::not_found(&format!("job {other}"))),
    };
    let params: MoveCopyParams = serde_json::from_str(&req.json_parameters)
        .map_err(|e| ApiError::bad(format!("invalid JsonParameters: {e}")))?;
    if params.nodes.is_empty() {
        return Err(ApiError::bad("no nodes given"));
    }
    if !params.target_parent && params.nodes.len() != 1 {
        return Err(ApiError::bad("targetParent=false needs exactly one node"));
    }
    let mut pairs: Vec<(Located, Located)> = Vec::new();
    let target = st
        .locate(&login, &params.target)?
        .ok_or_else(|| ApiError::bad("target cannot be the root"))?;
    for n in &params.nodes {
        let src = st
            .locate(&login, n)?
            .ok_or_else(|| ApiError::bad("cannot move the root"))?;
        let dst = if params.target_parent {
            target.child(src.name())
        } else {
            target.clone()
        };
        pairs.push((src, dst));
    }
    let worker = st.clone();
    let owner = login.clone();
    let label = if copy {
        "Copying files"
    } else {
        "Moving files"
    };
    let id = spawn_job(&st, &login, label, async move {
        for (src, dst) in pairs {
            if copy {
                worker.copy_node(&owner, &src, &dst).await?;
            } else {
                worker.move_node(&src, &dst).await?;
            }
        }
        Ok(())
    });
    Ok(Json(json!({ "JobUuid": id })))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct ListJobsRequest {
    #[serde(rename = "JobIDs")]
    job_ids: Vec<String>,
}

/// `POST /a/jobs/user`: the caller's jobs (all, or those in `JobIDs`) with one task each.
pub async fn list_jobs(
    State(st): State<Arc<AppState>>,
    User(login): User,
    Json(req): Json<ListJobsRequest>,
) -> ApiResult<Json<Value>> {
    let jobs = lock(&st.jobs);
    let mut out = Vec::new();
    for (id, job) in jobs.iter() {
        if job.owner != login || (!req.job_ids.is_empty() && !req.job_ids.contains(id)) {
            continue;
        }
        let mut task = serde_json::Map::new();
        task.insert("ID".into(), json!(format!("{id}-task")));
        task.insert("JobID".into(), json!(id));
        task.insert("StartTime".into(), json!(job.start));
        task.insert("HasProgress".into(), json!(true));
        match &job.status {
            JobStatus::Running => {
                task.insert("Status".into(), json!("Running"));
            }
            JobStatus::Finished => {
                task.insert("Status".into(), json!("Finished"));
                task.insert("Progress".into(), json!(1.0));
                task.insert("EndTime".into(), json!(job.end));
            }
            JobStatus::Error(msg) => {
                task.insert("Status".into(), json!("Error"));
                task.insert("StatusMessage".into(), json!(msg));
                task.insert("EndTime".into(), json!(job.end));
            }
        }
        out.push(json!({
            "ID": id,
            "Owner": job.owner,
            "Label": job.label,
            "Tasks": [Value::Object(task)],
        }));
    }
    Ok(Json(json!({ "Jobs": out })))
}
