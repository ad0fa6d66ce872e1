"""The reference tool's entry point: ``python audio_evals/main.py --dataset D --model M``.

This file is only a script shim: it hands the command line to the ``audio-evals`` CLI (which
runs the Prefect flow). The library modules themselves never import Prefect.
"""

import os
import sys

if __name__ == "__main__":
    # Run as a script, Python puts this folder first on sys.path, where our module names
    # could shadow installed packages; the project root belongs there instead.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path.insert(0, os.path.dirname(here))
    from flows.cli import main

    main(["run", *sys.argv[1:]] if sys.argv[1:2] != ["run"] else sys.argv[1:])
