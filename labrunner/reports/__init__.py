"""Reports built from engine events: JUnit XML and JSON, with secrets redacted."""

from labrunner.reports.collector import ReportCollector, clean
from labrunner.reports.redact import LineRedactor, redact

__all__ = ["LineRedactor", "ReportCollector", "clean", "redact"]
