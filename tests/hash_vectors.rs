//! The Cells hash against the shared test vectors (regenerated inputs), and the output format
//! of `cells-mount hash FILE...`.

use cells_mount::hash::{CELLS_HASH_BLOCK, cells_hash};
use md5::{Digest, Md5};
use std::path::PathBuf;

fn shared_dir() -> PathBuf {
    match std::env::var_os("CELLS_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"),
    }
}

fn vectors() -> serde_json::Value {
    let path = shared_dir().join("cells-api/cells-hash-test-vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the hash test vectors at {} ({e}); set CELLS_SHARED_DIR to the folder \
             holding cells-api/cells-hash-test-vectors.json",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("the test vectors file is valid JSON")
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Regenerates a vector's input from its name and length.
fn input_for(name: &str, len: usize) -> Vec<u8> {
    let data = match name {
        "empty" => Vec::new(),
        "a" => b"a".to_vec(),
        "fox" => b"The quick brown fox jumps over the lazy dog".to_vec(),
        n if n.starts_with("zero_") => vec![0u8; len],
        n if n.starts_with("pat_") => pattern(len),
        other => panic!("unknown vector name {other:?}: teach input_for how to build it"),
    };
    assert_eq!(data.len(), len, "vector {name}");
    data
}

#[test]
fn every_vector_matches() {
    let v = vectors();
    assert_eq!(v["block_size"].as_u64(), Some(CELLS_HASH_BLOCK as u64));
    let list = v["vectors"].as_array().expect("a vectors array");
    assert!(list.len() >= 10, "expected the full vector list");
    for vector in list {
        let name = vector["name"].as_str().unwrap();
        let len = vector["length"].as_u64().unwrap() as usize;
        let data = input_for(name, len);
        assert_eq!(
            cells_hash(&data),
            vector["cells_hash"].as_str().unwrap(),
            "{name}"
        );
        if let Some(md5) = vector["plain_md5"].as_str() {
            assert_eq!(
                hex::encode(Md5::digest(&data)),
                md5.to_lowercase(),
                "{name} md5"
            );
        }
    }
}

#[test]
fn counter_example_with_5_mib_parts() {
    let v = vectors();
    let ce = &v["counter_example"];
    let expected = ce["cells_hash"]
        .as_str()
        .unwrap_or_else(|| panic!("counter_example has no cells_hash: {ce}"));
    let data = pattern(25 * 1024 * 1024);
    let part = 5 * 1024 * 1024;
    // The server keeps, per part, the list of its blocks' digests and hashes their
    // concatenation in part order: with 5 MiB parts every part is one short block.
    let mut outer = Md5::new();
    for chunk in data.chunks(part) {
        for block in chunk.chunks(CELLS_HASH_BLOCK) {
            outer.update(Md5::digest(block));
        }
    }
    assert_eq!(hex::encode(outer.finalize()), expected);
    assert_ne!(expected, cells_hash(&data));
}

#[test]
fn hash_command_prints_hash_two_spaces_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.txt");
    let empty = dir.path().join("empty");
    std::fs::write(&a, b"a").unwrap();
    std::fs::write(&empty, b"").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cells-mount"))
        .arg("hash")
        .arg(&a)
        .arg(&empty)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let expected = format!(
        "b6ff9a06b7e20bcb2858c5b8ff744aea  {}\n59adb24ef3cdbe0297f05b395827453f  {}\n",
        a.display(),
        empty.display()
    );
    assert_eq!(stdout, expected);
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_cells-mount"))
        .arg("hash")
        .arg(dir.path().join("nope"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(!missing.stderr.is_empty());
}
