"""The benchmark's one table: each row's figures (cells-mount, its baseline, rclone), the ratio,
the target and whether it is met, and whether cells-mount is ahead of rclone. A figure that could
not be measured shows as `n/a [N]`, its reason in note N under the table."""

import operator

COMPARE = {">=": operator.ge, "<=": operator.le, "<": operator.lt}


class Row:
    """`kind` is "rate" (MiB/s) or "files" (files/s), higher is better, or "time" (seconds) or
    "mem" (MB), lower is better. With a baseline, the target (`op` `target`) applies to the ratio ours/baseline;
    without one, to our figure itself. `rclone_base`, when given, is the baseline measured in the
    runs paired with rclone's, and rclone's ratio is taken against it (the table shows `base`)."""

    def __init__(self, label, kind, ours, base, rclone, op, target, rclone_base=None):
        self.label, self.kind, self.ours, self.base, self.rclone = label, kind, ours, base, rclone
        self.op, self.target = op, target
        self.rclone_base = rclone_base if rclone_base is not None else base

    def ratio(self, figure, base=None):
        base = self.base if base is None else base
        if isinstance(figure, float) and isinstance(base, float) and base > 0:
            return figure / base
        return None

    def verdict(self, figure, base=None):
        """PASS/FAIL of `figure` (against `base`, or the row's baseline) against the target, "-"
        when the row has none."""
        if self.op is None:
            return "-"
        checked = self.ratio(figure, base) if self.base is not None else figure
        if not isinstance(checked, float):
            return "n/a"
        return "PASS" if COMPARE[self.op](checked, self.target) else "FAIL"

    def target_text(self):
        if self.op is None:
            return "(info)"
        if self.base is not None:
            return f"{self.op} {self.target:g}x"
        if self.kind == "time":
            return f"{self.op} {self.target * 1000:g} ms"
        return f"{self.op} {self.target:g} MB"

    def ahead(self):
        """Is cells-mount's figure better than rclone's?"""
        if not (isinstance(self.ours, float) and isinstance(self.rclone, float)):
            return None
        return self.ours > self.rclone if self.kind in ("rate", "files") else self.ours < self.rclone

    def fmt(self, value):
        if self.kind == "rate":
            return f"{value:.0f} MiB/s"
        if self.kind == "files":
            return f"{value:.0f} files/s"
        if self.kind == "mem":
            return f"{value:.1f} MB"
        return f"{value * 1000:.1f} ms" if value < 10 else f"{value:.2f} s"


def print_table(rows):
    notes = []

    def cell(row, figure):
        if isinstance(figure, float):
            return row.fmt(figure)
        if figure is None:
            return "-"
        if figure not in notes:
            notes.append(figure)
        return f"n/a [{notes.index(figure) + 1}]"

    def ratio_text(row, figure, base=None):
        r = row.ratio(figure, base)
        return f"{r:.2f}x" if r is not None else "-"

    header = ["measurement", "cells-mount", "baseline", "ratio", "target", "pass",
              "rclone", "rclone ratio", "rclone pass", "cells ahead"]
    lines = [header]
    verdicts = []
    for row in rows:
        ahead = row.ahead()
        verdicts.append(ahead)
        lines.append([
            row.label, cell(row, row.ours), cell(row, row.base), ratio_text(row, row.ours),
            row.target_text(), row.verdict(row.ours), cell(row, row.rclone),
            ratio_text(row, row.rclone, row.rclone_base), row.verdict(row.rclone, row.rclone_base),
            {True: "yes", False: "NO", None: "n/a"}[ahead],
        ])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rule = "-+-".join("-" * w for w in widths)
    print()
    for i, line in enumerate(lines):
        print(" | ".join(text.ljust(w) if c == 0 else text.rjust(w)
                         for c, (text, w) in enumerate(zip(line, widths))))
        if i == 0:
            print(rule)
    measured = [v for v in verdicts if v is not None]
    everywhere = "yes" if measured and all(measured) and len(measured) == len(verdicts) else "NO"
    print(f"\ncells-mount ahead of rclone on every row: {everywhere} "
          f"({sum(1 for v in measured if v)} of {len(verdicts)} rows ahead, {len(verdicts) - len(measured)} unmeasured)")
    targets = [row.verdict(row.ours) for row in rows if row.op is not None]
    print(f"cells-mount targets met: {targets.count('PASS')} of {len(targets)}")
    for i, note in enumerate(notes, 1):
        print(f"[{i}] {note}")
