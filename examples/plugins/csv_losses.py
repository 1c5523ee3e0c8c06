"""A logger plugin: every optimiser step's training loss as a row of a CSV file.

    retain run --plugin examples/plugins/csv_losses.py --logger csv-losses --strategy er
"""

import csv

from retain.loggers import Logger, register_logger


@register_logger("csv-losses")
class CsvLosses(Logger):
    """--logger csv-losses[:FILE]: one row per optimiser step (default OUT/losses.csv)."""

    def start_run(self, info):
        self.file = open(self.arg or self.out / "losses.csv", "a", newline="")
        self.rows = csv.writer(self.file)
        self.key = info.key

    def log_steps(self, task, first_step, losses):
        self.rows.writerows([self.key, task, first_step + i, loss] for i, loss in enumerate(losses))
        self.file.flush()

    def close(self):
        if hasattr(self, "file"):
            self.file.close()
