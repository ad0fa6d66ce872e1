"""``python -m cli``: the ``audio-evals`` console script from a checkout."""

from cli.warm import main

main()
