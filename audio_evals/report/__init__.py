"""Reports of runs and suites: seed-format markdown, a models × datasets table, a results chart,
a self-contained HTML page."""

from audio_evals.report.chart import render_suite_chart
from audio_evals.report.html import render_html
from audio_evals.report.leaderboard import leaderboard_of_results, suite_leaderboard
from audio_evals.report.markdown import render_run_report, render_suite_report

__all__ = ["leaderboard_of_results", "render_html", "render_run_report", "render_suite_chart", "render_suite_report",
           "suite_leaderboard"]
