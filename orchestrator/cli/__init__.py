"""orch's command line: one module per command (run, boot, bisect, plan, merge, compare,
gc, doctor), each with its NAME, HELP, `add_arguments(parser)` and `main(args)`; main.py
builds the parser from that table and maps what happens to an exit code."""
