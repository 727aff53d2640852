"""reports: pure rendering of the daily HTML report (jinja2 + plotly); I/O lives in jobs.report."""
