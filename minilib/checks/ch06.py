"""Checkers for chapter 06's exercises (see core.py for the verdicts)."""
