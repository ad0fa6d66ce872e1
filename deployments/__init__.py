"""How evaluations run unattended: Prefect deployments (``serve.py``, ``prefect.yaml``) and their docs."""
