"""The spine of a run: ``RunSpec`` in (``spec``), ``EvalPlan`` between (``plan``), ``RunSummary``
and the run folder out (``summary``, ``folder``); re-runs, regression checks and suites."""
