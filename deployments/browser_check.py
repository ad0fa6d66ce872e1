"""Screenshot a flow run's page in the Prefect UI with headless Chromium: proof the UI shows the run.

    python -m deployments.browser_check FLOW_RUN_ID --out run.png [--artifacts artifacts.png]
                                        [--page PATH PNG ...] [--ui-url http://127.0.0.1:4200]

``--artifacts`` also captures the UI's artifacts page (tables, reports, progress, leaderboards);
``--page`` any other page, e.g. ``artifacts/artifact/ID table.png`` (one artifact, such as the
headline table) or ``deployments/deployment/ID/run form.png`` (a deployment's run form).

The UI address defaults to ``PREFECT_UI_URL``, else ``PREFECT_API_URL`` without its ``/api``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile

CHROMIUM = "/usr/bin/chromium"


def ui_url(explicit: str | None = None) -> str:
    url = explicit or os.environ.get("PREFECT_UI_URL") or os.environ.get("PREFECT_API_URL", "").removesuffix("/").removesuffix("/api")
    if not url:
        raise SystemExit("no UI address: pass --ui-url or set PREFECT_UI_URL / PREFECT_API_URL")
    return url.rstrip("/")


def screenshot(page: str, out: str, ui: str, wait_ms: int = 15000, timeout_s: float = 90) -> str:
    """Render ``<ui>/<page>`` (the single-page app gets ``wait_ms`` of virtual time) into ``out``."""
    out = os.path.abspath(out)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             f"--virtual-time-budget={wait_ms}", "--hide-scrollbars", f"--screenshot={out}", "--window-size=1400,1000",
             f"{ui}/{page}"],
            check=True, capture_output=True, timeout=timeout_s,
        )
    if not os.path.getsize(out):
        raise RuntimeError(f"chromium wrote an empty screenshot: {out}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("flow_run_id")
    parser.add_argument("--out", default="flow-run.png")
    parser.add_argument("--artifacts", help="Also capture the artifacts page into this PNG.")
    parser.add_argument("--page", nargs=2, action="append", default=[], metavar=("PATH", "PNG"),
                        help="Also capture the UI page PATH into PNG (repeatable).")
    parser.add_argument("--ui-url")
    args = parser.parse_args()
    ui = ui_url(args.ui_url)
    print(screenshot(f"runs/flow-run/{args.flow_run_id}", args.out, ui))
    if args.artifacts:
        print(screenshot("artifacts", args.artifacts, ui))
    for page, out in args.page:
        print(screenshot(page, out, ui))


if __name__ == "__main__":
    main()
