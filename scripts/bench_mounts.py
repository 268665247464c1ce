"""Mount drivers and timing helpers for scripts/bench: cells-mount, rclone and bindfs mounts
that start, report their process and always come down again, plus the clocks and checks the
measurements share (medians of repeats, paired with a baseline or not, dropping kernel caches,
timed reads and listings)."""

import os
import shutil
import signal
import statistics
import subprocess
import time

# Every mount this process made, so an exit (normal, error or signal) can take them all down.
LIVE_MOUNTS = []


def wait_until(condition, timeout, interval=0.001):
    """Polls `condition` until it is true or `timeout` seconds have passed; returns its last value."""
    deadline = time.perf_counter() + timeout
    while True:
        value = condition()
        if value or time.perf_counter() > deadline:
            return value
        time.sleep(interval)


def is_mounted(path):
    """True when `path` is a mount point in this mount namespace (read from mountinfo, which
    never blocks on a hung FUSE server the way stat() would)."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        return any(line.split()[4] == path for line in f if len(line.split()) > 4)


def ensure_up(mount):
    """Mounts `mount` again when an earlier measurement left it down."""
    if not is_mounted(mount.mountpoint):
        mount.start()


def fuse_unmount(path):
    """Unmounts a FUSE mount, lazily when it is busy."""
    if not is_mounted(path):
        return
    subprocess.run(["fusermount3", "-u", path], capture_output=True, timeout=30)
    if is_mounted(path):
        subprocess.run(["fusermount3", "-u", "-z", path], capture_output=True, timeout=30)


def drop_caches():
    """Empties the kernel's page, dentry and inode caches; False when we may not (not root)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def median_of(repeats, measure):
    """Runs `measure` `repeats` times and returns the median of what it returned."""
    return statistics.median(measure() for _ in range(repeats))


def paired_medians(repeats, measure, baseline):
    """Runs `baseline` and `measure` in turn, `repeats` times each, swapping which goes first
    every round, and returns (median of `measure`, median of `baseline`). On a machine whose
    speed drifts (a shared virtual disk reads at 0.4 to 1.9 GB/s from one minute to the next),
    a baseline measured minutes before its client compares two different machines."""
    ours, base = [], []
    for round_number in range(repeats):
        if round_number % 2 == 0:
            base.append(baseline())
            ours.append(measure())
        else:
            ours.append(measure())
            base.append(baseline())
    return statistics.median(ours), statistics.median(base)


def timed_read(path, expected_size):
    """Reads `path` sequentially with 1 MiB blocks (dd) and returns the seconds it took; fails
    unless exactly `expected_size` bytes came back."""
    start = time.perf_counter()
    done = subprocess.run(
        ["dd", f"if={path}", "of=/dev/null", "bs=1M"],
        capture_output=True, text=True, timeout=900,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"reading {os.path.basename(path)} failed: {last_line(done.stderr)}")
    copied = next((l.split()[0] for l in done.stderr.splitlines() if "bytes" in l), "0")
    if int(copied) != expected_size:
        raise RuntimeError(f"read {copied} bytes of {os.path.basename(path)}, expected {expected_size}")
    return elapsed


def timed_listing(path, expected_entries, long_format=True):
    """Runs `ls -l` (or plain `ls`) on `path` and returns the seconds it took; fails unless it
    listed `expected_entries` names."""
    cmd = ["ls", "-l", "--color=never", path] if long_format else ["ls", "--color=never", path]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, timeout=900)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"ls {os.path.basename(path)} failed: {last_line(done.stderr.decode(errors='replace'))}")
    lines = done.stdout.count(b"\n") - (1 if long_format else 0)  # `ls -l` adds a "total" line
    if lines != expected_entries:
        raise RuntimeError(f"ls {os.path.basename(path)} listed {lines} entries, expected {expected_entries}")
    return elapsed


def peak_rss_mb(pid):
    """The process's peak resident set (VmHWM) in MB (10^6 bytes)."""
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmHWM for process {pid}")


def last_line(text):
    lines = [l.strip() for l in (text or "").splitlines() if l.strip()]
    return lines[-1][:200] if lines else "no message"


def reset_dir(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)


def process_gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie of ours still answers kill(0): reap it if it is our child.
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] == "Z"


class Mount:
    """One FUSE mount of some file system at `mountpoint`, and the process serving it."""

    label = "mount"

    def __init__(self, mountpoint):
        self.mountpoint = mountpoint
        self.pid = None
        os.makedirs(mountpoint, exist_ok=True)

    def start(self):
        """Mounts; returns (seconds from process start to mount live)."""
        raise NotImplementedError

    def stop(self):
        fuse_unmount(self.mountpoint)
        self._wait_for_exit()

    def _wait_for_exit(self):
        if self.pid is None:
            return
        if not wait_until(lambda: process_gone(self.pid), 30, 0.01):
            os.kill(self.pid, signal.SIGTERM)
            wait_until(lambda: process_gone(self.pid), 10, 0.01)
        self.pid = None

    def _register(self):
        if self not in LIVE_MOUNTS:
            LIVE_MOUNTS.append(self)

    def _wait_live(self, proc, started):
        """Waits for `proc` (which stays in the foreground) to have the mount up."""
        live = wait_until(lambda: is_mounted(self.mountpoint) or proc.poll() is not None, 120)
        if proc.poll() is not None or not live:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
                raise RuntimeError(f"{self.label} did not mount in time")
            raise RuntimeError(f"{self.label} exited with status {proc.returncode} before mounting")
        return time.perf_counter() - started


class BindfsMount(Mount):
    label = "bindfs"

    def __init__(self, source, mountpoint):
        super().__init__(mountpoint)
        self.source = source

    def start(self):
        started = time.perf_counter()
        done = subprocess.run(["bindfs", self.source, self.mountpoint], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"bindfs did not mount: {last_line(done.stderr)}")
        self._register()
        return time.perf_counter() - started


class RcloneMount(Mount):
    """`rclone mount --vfs-cache-mode full --vfs-write-back 1s` of the test server's S3 gateway,
    in the foreground (a child of ours, so its PID and peak RSS are at hand). The write-back
    delay (default 5 s) only matters to the write rows' time to the server."""

    label = "rclone"

    def __init__(self, server_url, token, mountpoint, cache_dir):
        super().__init__(mountpoint)
        self.cache_dir = cache_dir
        self.env = dict(os.environ)
        # rclone 1.60 cannot combine AWS_CA_BUNDLE with its own transport; loopback HTTP needs none.
        self.env.pop("AWS_CA_BUNDLE", None)
        self.env.update({
            "RCLONE_CONFIG_CELLS_TYPE": "s3",
            "RCLONE_CONFIG_CELLS_PROVIDER": "Other",
            "RCLONE_CONFIG_CELLS_ENDPOINT": server_url,
            "RCLONE_CONFIG_CELLS_ACCESS_KEY_ID": token,
            "RCLONE_CONFIG_CELLS_SECRET_ACCESS_KEY": "gatewaysecret",
            "RCLONE_CONFIG_CELLS_REGION": "us-east-1",
            "RCLONE_CONFIG_CELLS_FORCE_PATH_STYLE": "true",
            "RCLONE_CONFIG_CELLS_V2_AUTH": "false",
            "RCLONE_CONFIG_CELLS_LIST_VERSION": "2",
        })

    def start(self):
        os.makedirs(self.cache_dir, exist_ok=True)
        cmd = ["rclone", "--config", "/dev/null", "mount", "cells:io/personal-files", self.mountpoint,
               "--vfs-cache-mode", "full", "--vfs-write-back", "1s", "--cache-dir", self.cache_dir]
        # Its log goes to a file: a pipe nobody drains would stall rclone once full.
        log_path = self.cache_dir.rstrip("/") + ".log"
        with open(log_path, "ab") as log:
            started = time.perf_counter()
            proc = subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=log)
        self.pid = proc.pid
        self.proc = proc
        self._register()
        try:
            return self._wait_live(proc, started)
        except RuntimeError as e:
            with open(log_path, encoding="utf-8", errors="replace") as log:
                raise RuntimeError(f"{e}: {last_line(log.read())}") from None

    def wipe(self, state_too):
        """Empties rclone's VFS cache while unmounted (rclone keeps no listings on disk, so
        `state_too` changes nothing)."""
        del state_too
        reset_dir(self.cache_dir)

    def stop(self):
        super().stop()
        if getattr(self, "proc", None) is not None:
            self.proc.wait(timeout=30)
            self.proc = None


class CellsMount(Mount):
    """`cells-mount mount` without --foreground: the command returns once the mount is live, so
    its run time is the process-start-to-live figure; the detached daemon is then found by its
    command line to read its memory."""

    label = "cells-mount"

    def __init__(self, binary, server_url, token, mountpoint, cache_dir, state_dir):
        super().__init__(mountpoint)
        self.binary = os.path.realpath(binary)
        self.server_url = server_url
        self.cache_dir = cache_dir
        self.state_dir = state_dir
        # The token goes through the environment, never the command line (visible in ps).
        self.env = dict(os.environ, CELLS_TOKEN=token)

    def start(self):
        cmd = [self.binary, "mount", self.mountpoint, "--server", self.server_url,
               "--workspace", "personal-files", "--cache-dir", self.cache_dir,
               "--state-dir", self.state_dir, "--cache-size", "4G"]
        started = time.perf_counter()
        done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=300)
        took = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"mount failed: {last_line(done.stderr)}")
        self._register()
        if not is_mounted(self.mountpoint):
            raise RuntimeError("mount failed: the command succeeded but nothing is mounted")
        self.pid = self._find_daemon()
        return took

    def stop(self):
        if is_mounted(self.mountpoint):
            subprocess.run([self.binary, "unmount", self.mountpoint], capture_output=True, timeout=60)
        super().stop()

    def wipe(self, state_too):
        """Empties the content cache (and the metadata index) while unmounted."""
        reset_dir(self.cache_dir)
        if state_too:
            reset_dir(self.state_dir)

    def _find_daemon(self):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.readlink(f"/proc/{entry}/exe") != self.binary:
                    continue
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    args = f.read().split(b"\0")
            except OSError:
                continue
            if self.mountpoint.encode() in args:
                return int(entry)
        raise RuntimeError("mounted, but the cells-mount daemon process was not found")


def unmount_all():
    """Takes down every mount this process made (called on any exit)."""
    while LIVE_MOUNTS:
        mount = LIVE_MOUNTS.pop()
        try:
            mount.stop()
        except Exception as e:  # noqa: BLE001 - cleanup must go on with the next mount
            print(f"bench: could not unmount {mount.mountpoint}: {e}")
            fuse_unmount(mount.mountpoint)
