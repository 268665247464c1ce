//! Read-ahead in multi-chunk requests: aligned, bounded, never overlapping, stored chunk by
//! chunk (a restart serves them offline), while demand reads still ask for their own chunk.

use super::testing::Failure;
use super::*;

const SPAN: u64 = 4 * CHUNK;

fn spans_config() -> FsConfig {
    FsConfig {
        fetch_request_max: SPAN,
        ..config()
    }
}

fn harness(len: usize) -> (Harness, Vec<u8>) {
    let r = MemoryRemote::new();
    let data = content(len, 9);
    r.add_file("ws/f.bin", data.clone());
    (Harness::with_config(r, spans_config()), data)
}

#[tokio::test]
async fn sequential_reads_fetch_aligned_multi_chunk_ranges_once() {
    let (h, data) = harness(64 * CHUNK as usize + 100);
    let ino = h.lookup_path("f.bin").await.unwrap().attr.ino;
    assert!(h.read_all(ino, 1024).await == data);
    h.fs.wait_fetches_idle().await;
    let log = h.remote.read_log();
    let mut ranges: Vec<_> = log.iter().map(|(_, r)| r.clone()).collect();
    ranges.sort_by_key(|r| r.start);
    for pair in ranges.windows(2) {
        assert!(
            pair[0].end <= pair[1].start,
            "overlapping fetches: {ranges:?}"
        );
    }
    for r in &ranges {
        assert!(r.end - r.start <= SPAN, "request too large: {r:?}");
        assert_eq!(
            r.start / SPAN,
            (r.end - 1) / SPAN,
            "request crosses a span boundary: {r:?}"
        );
    }
    let fetched: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    assert_eq!(
        fetched,
        data.len() as u64,
        "every byte fetched exactly once"
    );
    assert!(
        ranges.iter().filter(|r| r.end - r.start > CHUNK).count() >= 10,
        "read-ahead used multi-chunk requests: {ranges:?}"
    );
    // Everything was stored: after a restart, with the server gone, the file is still whole.
    let h = h.restart().await;
    h.remote.set_failure(Some(Failure::Offline));
    assert!(h.read_all(ino, 8192).await == data);
}

#[tokio::test]
async fn a_random_read_fetches_only_its_chunk_and_the_next() {
    let (h, data) = harness(64 * CHUNK as usize);
    let ino = h.lookup_path("f.bin").await.unwrap().attr.ino;
    let fh = h.fs.open(ino, 0, Caller::default()).await.unwrap().fh;
    let off = 41 * CHUNK + 7;
    let got = h.fs.read(ino, fh, off, 10).await.unwrap();
    assert_eq!(&got[..], &data[off as usize..off as usize + 10]);
    h.fs.wait_fetches_idle().await;
    // The chunk itself and the one after (random read-ahead), in one request or two
    // (whichever of the reader and the read-ahead planner asked first), never a whole span.
    let log = h.remote.read_log();
    let fetched: u64 = log.iter().map(|(_, r)| r.end - r.start).sum();
    assert_eq!(fetched, 2 * CHUNK, "{log:?}");
    assert!(
        log.iter()
            .all(|(_, r)| r.start >= 41 * CHUNK && r.end <= 43 * CHUNK),
        "{log:?}"
    );
}
