//! The Cells client: REST tree API (v4, under `/a`), the S3 gateway for content, the event
//! feed, and the types the rest of the program sees.

pub mod error;
pub mod model;
pub mod remote;

pub use error::{ClientError, ClientResult};
pub use model::{ContentVersion, HashKind, Node, NodeKind, WorkspaceInfo};
pub use remote::{ListPage, Remote, UploadOutcome};
