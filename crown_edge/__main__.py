"""``python -m crown_edge`` runs the CLI."""

from crown_edge.cli import main

main()
