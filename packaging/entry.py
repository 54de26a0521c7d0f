"""What the packaged app runs: the `speechport` command, exactly as the installed console script runs it."""

from speechport.cli import run

run()
