"""The write-path half of scripts/bench: many small file creates and one large sequential write
through a mount (cells-mount, rclone with a 1 s write-back, or a bindfs passthrough baseline),
and for the two network clients the time until the server's data folder holds everything that
was written (it is what the server really has, whatever the client's own queue says)."""

import contextlib
import os
import shutil
import statistics
import subprocess
import time

from bench_mounts import BindfsMount, ensure_up, last_line, wait_until

WRITES = "writes"  # folder, in each mount and on the server, that the write rows create things in
SMALL_BYTES = 4096
SERVER_DEADLINE = 900  # seconds a client gets to bring everything it wrote to the server
KEYS = ("create_rate", "create_server", "write_rate", "write_server")


def write_sizes():
    """(files to create, MiB to write sequentially) from the environment."""
    quick = os.environ.get("BENCH_QUICK") == "1"
    files = int(os.environ.get("BENCH_WRITE_FILES", 200 if quick else 1000))
    mib = int(os.environ.get("BENCH_WRITE_MIB", 64 if quick else 1024))
    if min(files, mib) < 1:
        raise SystemExit("bench: BENCH_WRITE_FILES and BENCH_WRITE_MIB must be positive")
    return files, mib


def prepare_source(work, mib):
    """Makes (or reuses) WORK/write-source.bin, MIB MiB of random bytes the big write copies, so
    no layer can compress or deduplicate its way to a better figure; returns its path."""
    path = os.path.join(work, "write-source.bin")
    if not (os.path.exists(path) and os.path.getsize(path) == mib << 20):
        with open(path + ".part", "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1 << 20))
        os.replace(path + ".part", path)
    return path


def warm(path):
    """Reads `path` once so the timed copy reads it from the page cache, not the disk."""
    with open(path, "rb") as f:
        while f.read(1 << 20):
            pass


def timed_creates(folder, payloads):
    """Creates one file per payload in `folder` (open, one write, close each); returns seconds."""
    started = time.perf_counter()
    for i, payload in enumerate(payloads):
        with open(os.path.join(folder, small_name(i)), "wb", buffering=0) as f:
            if f.write(payload) != len(payload):
                raise RuntimeError(f"short write to {small_name(i)}")
    return time.perf_counter() - started


def small_name(i):
    return f"w{i:05d}.bin"


def timed_copy(source, dest, expected_bytes):
    """`cp SOURCE DEST` (no fsync; the close is inside cp); returns seconds."""
    started = time.perf_counter()
    done = subprocess.run(["cp", source, dest], capture_output=True, text=True, timeout=1800)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"cp to {os.path.basename(dest)} failed: {last_line(done.stderr)}")
    size = os.stat(dest).st_size
    if size != expected_bytes:
        raise RuntimeError(f"{os.path.basename(dest)} has {size} bytes after cp, expected {expected_bytes}")
    return elapsed


def small_files_arrived(folder, count):
    """True when `folder` (on the server's disk) holds all `count` small files at full size."""
    try:
        sizes = {e.name: e.stat().st_size for e in os.scandir(folder) if e.is_file()}
    except FileNotFoundError:
        return False
    return all(sizes.get(small_name(i)) == SMALL_BYTES for i in range(count))


def file_arrived(path, size):
    try:
        return os.stat(path).st_size == size
    except FileNotFoundError:
        return False


def time_to_server(started, arrived, what):
    """Polls `arrived` until true; returns seconds since `started` (the workload's start)."""
    if not wait_until(arrived, SERVER_DEADLINE, 0.02):
        raise RuntimeError(f"{what} not all on the server after {SERVER_DEADLINE} s")
    return time.perf_counter() - started


def check_small_contents(folder, payloads):
    """The server's copies hold exactly the bytes written (not just the right sizes)."""
    for i, payload in enumerate(payloads):
        with open(os.path.join(folder, small_name(i)), "rb") as f:
            if f.read() != payload:
                raise RuntimeError(f"the server's {small_name(i)} differs from what was written")


def check_same(a, b):
    if subprocess.run(["cmp", "-s", a, b], timeout=1800).returncode != 0:
        raise RuntimeError("the server's copy of the big file differs from what was written")


def remove_and_wait(path, server_path):
    """Deletes a written big file through the mount (disk space) and waits, untimed, until the
    server no longer has it, so the next repeat does not share the link with the delete."""
    os.remove(path)
    if server_path:
        wait_until(lambda: not os.path.exists(server_path), 120, 0.05)


def measure_writes(cfg, mount, server_root, results, prefix):
    """Runs both write workloads `cfg["repeats"]` times on a started `mount` and stores the
    medians under PREFIX_create_rate (files/s), PREFIX_write_rate (MiB/s) and, when
    `server_root` is the server folder behind the mount root, PREFIX_create_server and
    PREFIX_write_server (seconds from workload start to all on the server)."""
    files, mib, repeats = cfg["write_files"], cfg["write_mib"], cfg["repeats"]
    source, size = cfg["write_source"], mib << 20
    creates, create_server, writes, write_server = [], [], [], []

    def creates_once(n):
        ensure_up(mount)
        rel = os.path.join(WRITES, f"{prefix}-files-{n}")
        folder = os.path.join(mount.mountpoint, rel)
        os.makedirs(folder)
        payloads = [os.urandom(SMALL_BYTES) for _ in range(files)]  # new bytes every repeat
        os.sync()  # earlier repeats' dirty pages are not this repeat's to write
        started = time.perf_counter()
        creates.append(files / timed_creates(folder, payloads))
        if server_root:
            on_server = os.path.join(server_root, rel)
            with failure_of("create_server"):
                create_server.append(time_to_server(
                    started, lambda: small_files_arrived(on_server, files), f"{files} files"))
                check_small_contents(on_server, payloads)

    def write_once(n):
        ensure_up(mount)
        rel = os.path.join(WRITES, f"{prefix}-big-{n}.bin")
        dest = os.path.join(mount.mountpoint, rel)
        on_server = os.path.join(server_root, rel) if server_root else None
        warm(source)
        os.sync()
        started = time.perf_counter()
        writes.append(mib / timed_copy(source, dest, size))
        if on_server:
            with failure_of("write_server"):
                write_server.append(time_to_server(started, lambda: file_arrived(on_server, size), f"{mib} MiB"))
                if n == 0:
                    check_same(source, on_server)
        remove_and_wait(dest, on_server)

    failures = {}

    @contextlib.contextmanager
    def failure_of(figure):
        """A failure here costs only `figure` (the local rate was measured all the same)."""
        try:
            yield
        except Exception as e:  # noqa: BLE001 - reported in its row
            failures.setdefault(figure, str(e))

    for n in range(repeats):
        attempt_into(failures, "create", lambda: creates_once(n))
    for n in range(repeats):
        attempt_into(failures, "write", lambda: write_once(n))
    figures = {"create_rate": creates, "create_server": create_server,
               "write_rate": writes, "write_server": write_server}
    for key, values in figures.items():
        if key.endswith("_server") and not server_root:
            continue
        # A row with any failed repeat shows the failure, not a median of the survivors.
        failure = failures.get(key) or failures.get(key.split("_")[0])
        results[f"{prefix}_{key}"] = failure or statistics.median(values)


def attempt_into(failures, workload, measure):
    """Runs one repeat; the workload's first failure is kept and the other repeats still run."""
    try:
        measure()
    except Exception as e:  # noqa: BLE001 - a failed repeat is reported in its row
        failures.setdefault(workload, str(e))


def measure_client_writes(cfg, mount, server_root, prefix, results):
    """The write rows of one network client on a freshly wiped mount (its cache and state
    emptied, so nothing from the read rows is pending); results keyed PREFIX_...."""
    try:
        mount.stop()
        mount.wipe(state_too=True)
        mount.start()
        os.makedirs(os.path.join(mount.mountpoint, WRITES), exist_ok=True)
    except Exception as e:  # noqa: BLE001 - every write row of this client says why
        for key in KEYS:
            results[f"{prefix}_{key}"] = str(e)
        mount.stop()
        return
    try:
        measure_writes(cfg, mount, server_root, results, prefix)
    finally:
        mount.stop()


def measure_bindfs_writes(cfg, work, results):
    """The baseline: the same workloads on a bindfs passthrough of a scratch folder on the same
    disk (not the server's data folder, whose index the writes would bypass)."""
    source = os.path.join(work, "bindfs-writes")
    shutil.rmtree(source, ignore_errors=True)
    os.makedirs(os.path.join(source, WRITES))
    bindfs = BindfsMount(source, os.path.join(work, "mnt", "bindfs-writes"))
    try:
        bindfs.start()
        measure_writes(cfg, bindfs, None, results, "bindfs")
    except Exception as e:  # noqa: BLE001
        for key in ("create_rate", "write_rate"):
            results.setdefault(f"bindfs_{key}", str(e))
    finally:
        bindfs.stop()
        shutil.rmtree(source, ignore_errors=True)
