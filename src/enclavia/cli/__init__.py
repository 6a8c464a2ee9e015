"""Typer command line, thin: each topic module registers its commands."""
