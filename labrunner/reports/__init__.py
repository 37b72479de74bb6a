"""Reports built from engine events: JUnit XML and JSON, with secrets redacted."""

from labrunner.reports.collector import ReportCollector, clean, clip

__all__ = ["ReportCollector", "clean", "clip"]
