"""What each `factory` command does, one module per group of commands (parser.py wires them up)."""
