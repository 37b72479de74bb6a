"""Reports built from engine events: JUnit XML and JSON, with secrets redacted."""

from labrunner.ansi import clip
from labrunner.reports.collector import ReportCollector, clean

__all__ = ["ReportCollector", "clean", "clip"]
