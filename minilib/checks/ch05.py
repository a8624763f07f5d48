"""Checkers for chapter 05's exercises (see core.py for the verdicts)."""
