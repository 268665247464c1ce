//! The v4 REST wire format (protojson: PascalCase names, int64 as strings, zero values
//! omitted, MetaStore values JSON-encoded) and its conversion into validated [`Node`]s.
//!
//! Everything a server says about a path goes through [`RemotePath::parse`] here: a reply that
//! names something outside the folder we asked about is refused, never returned.

use super::error::{ClientError, ClientResult};
use super::model::{ContentVersion, Node, NodeKind, WorkspaceInfo};
use super::remote::ListPage;
use crate::names::RemotePath;
use serde::{Deserialize, Deserializer};
use std::collections::HashMap;

/// A protojson int64 (a JSON string) or int32 (a JSON number); both forms are accepted.
fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Num(i64),
        Str(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Num(n)) => Ok(Some(n)),
        Some(Raw::Str(s)) if s.is_empty() => Ok(None),
        Some(Raw::Str(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("not an integer: {s:?}"))),
    }
}

/// A v4 `treeNode`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WireNode {
    pub uuid: Option<String>,
    pub path: Option<String>,
    #[serde(rename = "Type")]
    pub node_type: Option<String>,
    #[serde(deserialize_with = "int64")]
    pub size: Option<i64>,
    #[serde(rename = "MTime", deserialize_with = "int64")]
    pub mtime: Option<i64>,
    pub etag: Option<String>,
    pub meta_store: HashMap<String, serde_json::Value>,
}

/// The storage ETag of an upload still in progress. [H]
pub const TEMPORARY_ETAG: &str = "temporary";

impl WireNode {
    /// A MetaStore value, JSON-decoded: `"\"b.txt\""` becomes `b.txt`. Values that are not
    /// JSON strings (some servers send raw text) are taken as they are.
    pub fn meta(&self, key: &str) -> Option<String> {
        match self.meta_store.get(key)? {
            serde_json::Value::String(raw) => match serde_json::from_str(raw) {
                Ok(serde_json::Value::String(decoded)) => Some(decoded),
                Ok(serde_json::Value::Null) => None,
                Ok(other) => Some(other.to_string()),
                Err(_) => Some(raw.clone()),
            },
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    fn meta_flag(&self, key: &str) -> bool {
        self.meta(key).is_some_and(|v| v == "true")
    }

    /// True for a file whose upload has not completed: such nodes are skipped in listings.
    pub fn is_upload_in_progress(&self) -> bool {
        self.etag.as_deref().map(|e| e.trim_matches('"')) == Some(TEMPORARY_ETAG)
    }

    /// Validates and converts. Fails on a missing or invalid path, an unknown type, negative
    /// sizes.
    pub fn into_node(self) -> ClientResult<Node> {
        let raw_path = self
            .path
            .as_deref()
            .ok_or_else(|| ClientError::Protocol("node without a Path".into()))?;
        let path = RemotePath::parse(raw_path)?;
        let kind = match self.node_type.as_deref() {
            Some("LEAF") => NodeKind::File,
            Some("COLLECTION") => NodeKind::Folder,
            // Workspace roots and the root itself are folders whatever their Type says.
            _ if path.components().count() <= 1 => NodeKind::Folder,
            other => {
                return Err(ClientError::Protocol(format!(
                    "node {path} has unknown type {other:?}"
                )));
            }
        };
        let size = self.size.unwrap_or(0);
        let size = u64::try_from(size)
            .map_err(|_| ClientError::Protocol(format!("node {path} has size {size}")))?;
        let version = match kind {
            NodeKind::File => ContentVersion::from_server(
                self.meta("x-cells-hash").as_deref(),
                self.etag.as_deref(),
            ),
            NodeKind::Folder => None,
        };
        let workspace = self.meta("ws_slug").map(|slug| WorkspaceInfo {
            slug,
            uuid: self.meta("ws_uuid"),
            label: self.meta("ws_label"),
        });
        let read_only = self.meta_flag("node_readonly") || self.meta_flag("level_readonly");
        Ok(Node {
            uuid: self.uuid.clone().filter(|u| !u.is_empty()),
            path,
            kind,
            size,
            mtime: self.mtime.unwrap_or(0),
            version,
            storage_etag: self
                .etag
                .as_deref()
                .map(|e| e.trim_matches('"').to_owned())
                .filter(|e| !e.is_empty()),
            read_only,
            workspace,
        })
    }
}

/// Reply of `GET /a/tree/stat/{path}`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WireStat {
    pub node: Option<WireNode>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WirePagination {
    #[serde(deserialize_with = "int64")]
    pub limit: Option<i64>,
    #[serde(deserialize_with = "int64")]
    pub current_offset: Option<i64>,
    #[serde(deserialize_with = "int64")]
    pub next_offset: Option<i64>,
    #[serde(deserialize_with = "int64")]
    pub total: Option<i64>,
}

/// Reply of `POST /a/tree/stats`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WireBulk {
    pub nodes: Vec<WireNode>,
    pub pagination: Option<WirePagination>,
}

/// Converts a stat reply, checking that it describes the path that was asked for.
pub fn stat_reply(asked: &RemotePath, reply: WireStat) -> ClientResult<Node> {
    let node = reply
        .node
        .ok_or_else(|| ClientError::Protocol(format!("stat {asked}: reply without a Node")))?
        .into_node()?;
    if node.path != *asked {
        return Err(ClientError::Protocol(format!(
            "stat {asked}: the server described {} instead",
            node.path
        )));
    }
    Ok(node)
}

/// Converts one page of `dir`'s children. Entries that are not valid direct children of
/// `dir` are refused (listed in `refused`); uploads in progress and the workspace's recycle
/// bin are skipped.
pub fn list_reply(dir: &RemotePath, offset: u64, limit: u32, reply: WireBulk) -> ListPage {
    let received = reply.nodes.len() as u64;
    let mut page = ListPage::default();
    for wire in reply.nodes {
        if wire.is_upload_in_progress() {
            continue;
        }
        let shown = describe(wire.path.as_deref());
        match wire.into_node() {
            Ok(node) if node.path == *dir => {}
            Ok(node) if super::assumptions::is_in_recycle_bin(&node.path) => {}
            Ok(node) if node.path.parent() == *dir && !node.path.is_root() => page.nodes.push(node),
            Ok(node) => page.refused.push(format!(
                "{}: not a child of {dir:?}",
                describe(Some(node.path.as_str()))
            )),
            Err(e) => page.refused.push(format!("{shown}: {e}")),
        }
    }
    let pagination = reply.pagination.unwrap_or_default();
    page.total = pagination.total.and_then(|t| u64::try_from(t).ok());
    let next_by_count = offset + received;
    page.next_offset = match (pagination.next_offset, page.total) {
        // A next offset that does not move forward would make callers loop forever.
        (Some(next), _) if next > offset as i64 => Some(next as u64),
        (_, Some(total)) => (next_by_count < total && received > 0).then_some(next_by_count),
        (_, None) => (received >= u64::from(limit) && received > 0).then_some(next_by_count),
    };
    if let (Some(next), Some(total)) = (page.next_offset, page.total)
        && next >= total
    {
        page.next_offset = None;
    }
    page
}

/// A server-sent path shortened and escaped, safe to log.
fn describe(raw: Option<&str>) -> String {
    match raw {
        None => "<no path>".to_owned(),
        Some(p) => {
            let short: String = p.chars().take(120).collect();
            format!("{short:?}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::model::HashKind;
    use serde_json::json;

    fn parse_bulk(v: serde_json::Value) -> WireBulk {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn protojson_node_parses() {
        let wire: WireNode = serde_json::from_value(json!({
            "Uuid": "u1", "Path": "personal-files/dir/b.txt", "Type": "LEAF",
            "Size": "26214400", "MTime": "1700000000", "Etag": "\"d41d8cd98f00b204e9800998ecf8427e\"",
            "MetaStore": {"x-cells-hash": "\"813604c8e473a3ec08c99023c062c535\"",
                          "name": "\"b.txt\"", "node_readonly": "true"}
        }))
        .unwrap();
        assert_eq!(wire.meta("name").as_deref(), Some("b.txt"));
        let node = wire.into_node().unwrap();
        assert_eq!(node.size, 26_214_400);
        assert_eq!(node.mtime, 1_700_000_000);
        assert_eq!(node.kind, NodeKind::File);
        assert!(node.read_only);
        let v = node.version.unwrap();
        assert_eq!(v.kind, HashKind::CellsHash);
        assert_eq!(v.value, "813604c8e473a3ec08c99023c062c535");
    }

    #[test]
    fn omitted_zero_values_and_numbers_are_accepted() {
        let wire: WireNode =
            serde_json::from_value(json!({"Path": "ws/empty", "Type": "LEAF", "Size": 0})).unwrap();
        let node = wire.into_node().unwrap();
        assert_eq!((node.size, node.mtime), (0, 0));
        assert!(node.version.is_none());
        // Legacy server: no hash, a plain MD5 ETag.
        let wire: WireNode = serde_json::from_value(
            json!({"Path": "ws/f", "Type": "LEAF", "Etag": "0cc175b9c0f1b6a831c399e269772661"}),
        )
        .unwrap();
        assert_eq!(
            wire.into_node().unwrap().version.unwrap().kind,
            HashKind::PlainMd5
        );
    }

    #[test]
    fn malformed_json_is_rejected() {
        for bad in [
            json!({"Path": "ws/a", "Size": "12x"}),
            json!({"Path": "ws/a", "MTime": "1.5"}),
            json!({"Path": 12}),
        ] {
            assert!(serde_json::from_value::<WireNode>(bad).is_err());
        }
        assert!(serde_json::from_str::<WireBulk>("{\"Nodes\": [").is_err());
        let neg: WireNode =
            serde_json::from_value(json!({"Path": "ws/a", "Type": "LEAF", "Size": "-5"})).unwrap();
        assert!(matches!(neg.into_node(), Err(ClientError::Protocol(_))));
        let untyped: WireNode = serde_json::from_value(json!({"Path": "ws/a/b"})).unwrap();
        assert!(matches!(untyped.into_node(), Err(ClientError::Protocol(_))));
    }

    #[test]
    fn hostile_children_are_refused() {
        let dir = RemotePath::parse("ws/d").unwrap();
        let long = format!("ws/d/{}", "x".repeat(300));
        let bulk = parse_bulk(json!({"Nodes": [
            {"Path": "ws/d/ok.txt", "Type": "LEAF"},
            {"Path": "ws/d/..", "Type": "COLLECTION"},
            {"Path": "ws/d/../../etc", "Type": "COLLECTION"},
            {"Path": "ws/d/a\u{0}b", "Type": "LEAF"},
            {"Path": "ws/d/sub/deeper", "Type": "LEAF"},
            {"Path": "ws/other/x", "Type": "LEAF"},
            {"Path": long, "Type": "LEAF"},
            {"Type": "LEAF"},
            {"Path": "ws/d/up.bin", "Type": "LEAF", "Etag": "temporary"},
        ]}));
        let page = list_reply(&dir, 0, 100, bulk);
        let names: Vec<_> = page.nodes.iter().map(|n| n.name().to_owned()).collect();
        assert_eq!(names, ["ok.txt"]);
        assert_eq!(page.refused.len(), 7, "{:?}", page.refused);
        assert!(page.refused.iter().all(|r| !r.contains('\0')));
        assert_eq!(page.next_offset, None);
    }

    #[test]
    fn pagination_is_followed() {
        let dir = RemotePath::parse("ws").unwrap();
        let nodes: Vec<_> = (0..100)
            .map(|i| json!({"Path": format!("ws/f{i}"), "Type": "LEAF"}))
            .collect();
        let page = list_reply(
            &dir,
            0,
            100,
            parse_bulk(
                json!({"Nodes": nodes.clone(), "Pagination": {"Total": 250, "NextOffset": 100}}),
            ),
        );
        assert_eq!((page.next_offset, page.total), (Some(100), Some(250)));
        let page = list_reply(
            &dir,
            200,
            100,
            parse_bulk(
                json!({"Nodes": nodes[..50], "Pagination": {"Total": 250, "CurrentOffset": 200}}),
            ),
        );
        assert_eq!(page.next_offset, None);
        // No pagination block: a full page means "maybe more".
        let page = list_reply(&dir, 0, 100, parse_bulk(json!({"Nodes": nodes})));
        assert_eq!(page.next_offset, Some(100));
        let page = list_reply(&dir, 100, 100, parse_bulk(json!({})));
        assert_eq!(page.next_offset, None);
        // A next offset that goes backwards is ignored.
        let page = list_reply(
            &dir,
            100,
            100,
            parse_bulk(json!({"Nodes": [], "Pagination": {"NextOffset": "0"}})),
        );
        assert_eq!(page.next_offset, None);
    }

    #[test]
    fn stat_of_another_path_is_a_protocol_error() {
        let asked = RemotePath::parse("ws/a.txt").unwrap();
        let reply: WireStat =
            serde_json::from_value(json!({"Node": {"Path": "ws/b.txt", "Type": "LEAF"}})).unwrap();
        assert!(matches!(
            stat_reply(&asked, reply),
            Err(ClientError::Protocol(_))
        ));
        let reply: WireStat =
            serde_json::from_value(json!({"Node": {"Path": "/ws/a.txt", "Type": "LEAF"}})).unwrap();
        assert_eq!(stat_reply(&asked, reply).unwrap().path, asked);
        let reply: WireStat = serde_json::from_value(json!({})).unwrap();
        assert!(stat_reply(&asked, reply).is_err());
    }

    #[test]
    fn workspace_roots_carry_their_info() {
        let bulk = parse_bulk(json!({"Nodes": [{
            "Path": "personal-files", "Uuid": "w1",
            "MetaStore": {"ws_slug": "\"personal-files\"", "ws_label": "\"My Files\"", "ws_uuid": "\"wu\""}
        }]}));
        let page = list_reply(&RemotePath::root(), 0, 100, bulk);
        let ws = page.nodes[0].workspace.clone().unwrap();
        assert_eq!(ws.slug, "personal-files");
        assert_eq!(ws.label.as_deref(), Some("My Files"));
        assert!(page.nodes[0].is_dir());
    }
}
