"""Layer 1, the command line: the `retain` parser (main.py), one module per subcommand
(run, dissimilarity, report, list, data), the terminal table (console.py) and the warnings printed
after it (warnings.py)."""
