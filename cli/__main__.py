"""``python -m cli``: the ``audio-evals`` console script from a checkout."""

from cli.main import main

main()
