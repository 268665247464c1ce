"""The benchmark's measurements (run by scripts/bench, which builds, seeds and starts the test
server): `prepare` writes the data set; `run` measures cells-mount, its baselines (native reads,
bindfs, curl) and rclone on the same files, read path then write path (bench_writes.py), and
prints one table of ratios."""

import os
import signal
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_mounts import (  # noqa: E402
    BindfsMount, CellsMount, RcloneMount, drop_caches, ensure_up, median_of, paired_medians, peak_rss_mb,
    timed_listing, timed_read, unmount_all,
)
from bench_table import Row, print_table  # noqa: E402
from bench_writes import (  # noqa: E402
    KEYS as WRITE_KEYS, WRITES, measure_bindfs_writes, measure_client_writes, prepare_source, write_sizes,
)

BIG_FILE = "big.bin"
DIR = "dir-entries"
HUGE_DIR = "dir-huge"
# How many more runs the warm rows' medians take (see `run`).
WARM_FACTOR = 3
# What `measure_client` stores for each client, under PREFIX_KEY (native_read and curl_cold are
# the baselines paired with that client's runs).
READ_KEYS = ("read_warm", "native_read", "read_cold", "curl_cold", "read_cold_srvmem", "curl_srvmem",
             "ls_warm", "ls_cold", "restart_live", "restart_start", "rss")
# How many more runs than BENCH_REPEAT the cold read row's medians take.
COLD_EXTRA = 2


def sizes():
    """(file MiB, entries of the listed folder, entries of the huge folder, repeats) from env."""
    quick = os.environ.get("BENCH_QUICK") == "1"
    file_mib = int(os.environ.get("BENCH_FILE_MIB", 64 if quick else 1024))
    entries = int(os.environ.get("BENCH_DIR_ENTRIES", 1000 if quick else 10000))
    huge = int(os.environ.get("BENCH_HUGE_DIR_ENTRIES", 10000 if quick else 100000))
    repeats = int(os.environ.get("BENCH_REPEAT", 3))
    if min(file_mib, entries, huge, repeats) < 1:
        raise SystemExit("bench: sizes and BENCH_REPEAT must be positive")
    return file_mib, entries, huge, repeats


def prepare(work):
    """Writes the data set under WORK/data/personal-files/alice, reusing one of the same sizes
    left by an earlier run in the same BENCH_DIR."""
    file_mib, entries, huge, _ = sizes()
    prepare_source(work, write_sizes()[1])
    root = os.path.join(work, "data", "personal-files", "alice")
    marker = os.path.join(work, "data-sizes")
    wanted = f"{file_mib} {entries} {huge}\n"
    if os.path.exists(marker) and read_text(marker) == wanted:
        # An earlier run's written files would collide with this run's names, and its deleted
        # big files (the server moves them to its recycle bin) would only slow the indexing.
        subprocess.run(["rm", "-rf", os.path.join(root, WRITES), os.path.join(root, "recycle_bin")], check=True)
        print(f"bench: reusing the data set in {root}")
        return
    subprocess.run(["rm", "-rf", os.path.join(work, "data")], check=True)
    os.makedirs(root)
    started = time.perf_counter()
    with open(os.path.join(root, BIG_FILE), "wb") as f:
        for _ in range(file_mib):
            f.write(os.urandom(1 << 20))  # incompressible, so no layer can cheat
    for folder, count in ((DIR, entries), (HUGE_DIR, huge)):
        os.makedirs(os.path.join(root, folder))
        for i in range(count):
            with open(os.path.join(root, folder, f"f{i:06d}.txt"), "wb") as f:
                f.write(b"%d\n" % i)
    os.sync()
    with open(marker, "w", encoding="ascii") as f:
        f.write(wanted)
    print(f"bench: wrote {file_mib} MiB + {entries} + {huge} files in {time.perf_counter() - started:.1f} s")


def read_text(path):
    with open(path, encoding="ascii", errors="replace") as f:
        return f.read()


def attempt(results, key, measure):
    """Stores `measure()`'s value under `key`, or the reason it failed."""
    try:
        results[key] = measure()
    except Exception as e:  # noqa: BLE001 - a failed row is reported, the others still run
        results[key] = str(e)


def attempt_paired(results, key, base_key, measure):
    """Stores the (ours, baseline) pair `measure()` returns under `key` and `base_key`, or the
    reason it failed under both."""
    try:
        results[key], results[base_key] = measure()
    except Exception as e:  # noqa: BLE001 - a failed row is reported, the others still run
        results[key] = results[base_key] = str(e)


def measure_baselines(cfg, work, results):
    """The baselines measured apart from any client: bindfs reads and listings. (Native reads
    and curl are measured paired with each client's runs, in `measure_client`.)"""
    file_bytes, entries, repeats = cfg["file_bytes"], cfg["entries"], cfg["repeats"]
    warm = cfg["warm_repeats"]
    bindfs = BindfsMount(cfg["data"], os.path.join(work, "mnt", "bindfs"))
    try:
        bindfs.start()
        path = os.path.join(bindfs.mountpoint, BIG_FILE)
        timed_read(path, file_bytes)
        attempt(results, "bindfs_read", lambda: median_of(warm, lambda: timed_read(path, file_bytes)))
        folder = os.path.join(bindfs.mountpoint, DIR)
        timed_listing(folder, entries)
        attempt(results, "bindfs_ls_warm", lambda: median_of(warm, lambda: timed_listing(folder, entries)))

        def cold_listing():
            drop_caches()
            return timed_listing(folder, entries)

        attempt(results, "bindfs_ls_cold", lambda: median_of(repeats, cold_listing))
    except Exception as e:  # noqa: BLE001
        for key in ("bindfs_read", "bindfs_ls_warm", "bindfs_ls_cold"):
            results.setdefault(key, str(e))
    finally:
        bindfs.stop()


def curl_cold(cfg, server_warm=False):
    """One S3 GET of the big file with the kernel's caches dropped (and the server's copy read
    back into memory with `server_warm`); seconds."""
    drop_caches()
    if server_warm:
        warm_server_copy(cfg)
    url = f"{cfg['server']}/io/personal-files/{BIG_FILE}"
    # The header goes in on stdin (curl -K -) so the token is not on a command line.
    config = f'header = "X-Pydio-Bearer: {cfg["token"]}"\n'
    started = time.perf_counter()
    done = subprocess.run(["curl", "-sS", "-f", "-o", "/dev/null", "-w", "%{size_download}", "-K", "-", url],
                          input=config, capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or done.stdout.strip() != str(cfg["file_bytes"]):
        raise RuntimeError(f"curl got {done.stdout.strip() or 0} bytes: {done.stderr.strip()[:200]}")
    return elapsed


def warm_server_copy(cfg):
    """Reads the server's copy of the big file into the page cache, so a GET of it measures
    the client and the loopback, not the disk."""
    timed_read(os.path.join(cfg["data"], BIG_FILE), cfg["file_bytes"])


def measure_client(cfg, mount, prefix, results):
    """The same six measurements on cells-mount or rclone; results keyed `PREFIX_...`."""
    file_bytes, entries, huge, repeats = cfg["file_bytes"], cfg["entries"], cfg["huge"], cfg["repeats"]
    big = os.path.join(mount.mountpoint, BIG_FILE)
    folder = os.path.join(mount.mountpoint, DIR)
    try:
        mount.wipe(state_too=True)
        mount.start()
    except Exception as e:  # noqa: BLE001 - every row of this client says why
        for key in READ_KEYS:
            results[f"{prefix}_{key}"] = str(e)
        mount.stop()
        return

    native_file = os.path.join(cfg["data"], BIG_FILE)

    def warm_read():
        ensure_up(mount)
        timed_read(big, file_bytes)  # first read fills the client's cache
        same = subprocess.run(["cmp", "-s", big, native_file], timeout=900)  # also warms native_file
        if same.returncode != 0:
            raise RuntimeError("the mount returned different bytes from the server's file")
        return paired_medians(cfg["warm_repeats"], lambda: timed_read(big, file_bytes),
                              lambda: timed_read(native_file, file_bytes))

    def warm_listing():
        ensure_up(mount)
        timed_listing(folder, entries)
        return median_of(cfg["warm_repeats"], lambda: timed_listing(folder, entries))

    def fresh_mount(state_too):
        mount.stop()
        mount.wipe(state_too=state_too)
        mount.start()
        drop_caches()

    def cold_listing():
        fresh_mount(state_too=True)
        return timed_listing(folder, entries)

    def cold_read(server_warm=False):
        fresh_mount(state_too=False)  # content cache emptied; metadata index kept
        if server_warm:
            warm_server_copy(cfg)
        return timed_read(big, file_bytes)

    attempt_paired(results, f"{prefix}_read_warm", f"{prefix}_native_read", warm_read)
    attempt(results, f"{prefix}_ls_warm", warm_listing)
    attempt(results, f"{prefix}_ls_cold", lambda: median_of(repeats, cold_listing))
    # The server's disk reads at anywhere from 0.4 to 1.9 GB/s from one run to the next on a
    # shared VM, so the cold row takes more runs; row 2b takes the disk out altogether.
    cold_repeats = repeats + COLD_EXTRA
    attempt_paired(results, f"{prefix}_read_cold", f"{prefix}_curl_cold",
                   lambda: paired_medians(cold_repeats, cold_read, lambda: curl_cold(cfg)))
    attempt_paired(results, f"{prefix}_read_cold_srvmem", f"{prefix}_curl_srvmem",
                   lambda: paired_medians(repeats, lambda: cold_read(server_warm=True),
                                          lambda: curl_cold(cfg, server_warm=True)))
    restart = []

    def restart_once():
        ensure_up(mount)
        timed_listing(folder, entries, long_format=False)  # the folder is known before the restart
        mount.stop()
        drop_caches()
        to_live = mount.start()
        listing = timed_listing(folder, entries, long_format=False)
        restart.append((listing, to_live + listing))
        return listing

    attempt(results, f"{prefix}_restart_live", lambda: median_of(repeats, restart_once))
    if restart:
        results[f"{prefix}_restart_start"] = statistics.median(total for _, total in restart)
    else:
        results[f"{prefix}_restart_start"] = results[f"{prefix}_restart_live"]

    def rss_after_huge_listing():
        fresh_mount(state_too=True)
        timed_listing(os.path.join(mount.mountpoint, HUGE_DIR), huge)
        return peak_rss_mb(mount.pid)

    attempt(results, f"{prefix}_rss", rss_after_huge_listing)
    mount.stop()


def rows(cfg, r):
    mib = cfg["file_bytes"] / (1 << 20)
    rate = {k: (mib / v if isinstance(v, float) else v) for k, v in r.items() if "read" in k or "curl" in k}
    e, h = cfg["entries"], cfg["huge"]
    size = f"{mib:.0f} MiB"

    def paired(key):
        """(the baseline paired with cells-mount's runs, the one paired with rclone's); the
        table's baseline column falls back to rclone's pairing when cells-mount's failed."""
        ours, theirs = rate[f"cells_{key}"], rate[f"rclone_{key}"]
        return (ours if isinstance(ours, float) or not isinstance(theirs, float) else theirs), theirs

    native, native_rclone = paired("native_read")
    curl, curl_rclone = paired("curl_cold")
    curl_mem, curl_mem_rclone = paired("curl_srvmem")
    return [
        Row(f"1a warm seq read {size} vs native", "rate", rate["cells_read_warm"], native,
            rate["rclone_read_warm"], ">=", 0.9, rclone_base=native_rclone),
        Row(f"1b warm seq read {size} vs bindfs", "rate", rate["cells_read_warm"], rate["bindfs_read"],
            rate["rclone_read_warm"], None, None),
        Row(f"2  cold seq read {size} vs curl", "rate", rate["cells_read_cold"], curl,
            rate["rclone_read_cold"], ">=", 0.8, rclone_base=curl_rclone),
        Row(f"2b cold seq read {size} vs curl, from server RAM", "rate", rate["cells_read_cold_srvmem"], curl_mem,
            rate["rclone_read_cold_srvmem"], None, None, rclone_base=curl_mem_rclone),
        Row(f"3a warm ls -l {e} entries vs bindfs", "time", r["cells_ls_warm"], r["bindfs_ls_warm"],
            r["rclone_ls_warm"], "<=", 1.5),
        Row(f"3b cold ls -l {e} entries vs bindfs", "time", r["cells_ls_cold"], r["bindfs_ls_cold"],
            r["rclone_ls_cold"], None, None),
        Row(f"4a restart to first ls ({e}), from live", "time", r["cells_restart_live"], None,
            r["rclone_restart_live"], "<", 0.200),
        Row(f"4b restart to first ls ({e}), from start", "time", r["cells_restart_start"], None,
            r["rclone_restart_start"], None, None),
        Row(f"5  peak RSS after ls -l {h} entries", "mem", r["cells_rss"], None, r["rclone_rss"], "<", 150.0),
    ] + write_rows(cfg, r)


def write_rows(cfg, r):
    n, w = cfg["write_files"], cfg["write_mib"]
    return [
        Row(f"6a create {n} x 4 KiB files vs bindfs", "files", r["cells_create_rate"], r["bindfs_create_rate"],
            r["rclone_create_rate"], ">=", 0.5),
        Row(f"6b create {n} files until all on server", "time", r["cells_create_server"], None,
            r["rclone_create_server"], None, None),
        Row(f"7a seq write {w} MiB (cp + close) vs bindfs", "rate", r["cells_write_rate"], r["bindfs_write_rate"],
            r["rclone_write_rate"], ">=", 0.8),
        Row(f"7b seq write {w} MiB until on server", "time", r["cells_write_server"], None,
            r["rclone_write_server"], None, None),
    ]


def run(work):
    file_mib, entries, huge, repeats = sizes()
    write_files, write_mib = write_sizes()
    cfg = {
        "write_files": write_files, "write_mib": write_mib,
        "write_source": prepare_source(work, write_mib),
        "file_bytes": file_mib << 20, "entries": entries, "huge": huge, "repeats": repeats,
        # Warm rows run for well under a second each, where one run on a busy machine swings
        # by a fifth: their medians take three times as many runs (the same for every client).
        "warm_repeats": WARM_FACTOR * repeats,
        "server": os.environ["BENCH_SERVER_URL"], "token": os.environ["BENCH_TOKEN"],
        "data": os.path.join(work, "data", "personal-files", "alice"),
    }
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = {}
    try:
        measure_baselines(cfg, work, results)
        measure_bindfs_writes(cfg, work, results)
        unavailable = os.environ.get("BENCH_CELLS_UNAVAILABLE")
        if unavailable:
            for key in (*READ_KEYS, *WRITE_KEYS):
                results[f"cells_{key}"] = unavailable
        else:
            cells = CellsMount(os.environ["BENCH_CELLS_BIN"], cfg["server"], cfg["token"],
                               os.path.join(work, "mnt", "cells"), os.path.join(work, "cells-cache"),
                               os.path.join(work, "cells-state"))
            measure_client(cfg, cells, "cells", results)
            measure_client_writes(cfg, cells, cfg["data"], "cells", results)
        rclone = RcloneMount(cfg["server"], cfg["token"], os.path.join(work, "mnt", "rclone"),
                             os.path.join(work, "rclone-cache"))
        measure_client(cfg, rclone, "rclone", results)
        measure_client_writes(cfg, rclone, cfg["data"], "rclone", results)
    finally:
        unmount_all()
    dropped = "yes" if drop_caches() else "NO (not root: cold rows are warm-ish)"
    print(f"\nbench: {file_mib} MiB file, {entries} and {huge} entry folders, writes of {write_files} x 4 KiB "
          f"and {write_mib} MiB, median of {repeats} runs ({WARM_FACTOR * repeats} for warm rows, "
          f"{repeats + COLD_EXTRA} for row 2); "
          f"timer: time.perf_counter around each command; kernel caches dropped for cold rows: {dropped}; "
          f"rows 1a, 2 and 2b: each client's runs alternate with its baseline's, and its ratio is against "
          f"those paired runs (the baseline column shows cells-mount's); row 2b: the server's copy is read "
          f"into memory before each run, so the client's own cost shows")
    print_table(rows(cfg, results))


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("prepare", "run"):
        raise SystemExit("usage: bench.py prepare|run WORK_DIR (run it through scripts/bench)")
    work = os.path.abspath(sys.argv[2])
    prepare(work) if sys.argv[1] == "prepare" else run(work)


if __name__ == "__main__":
    main()
