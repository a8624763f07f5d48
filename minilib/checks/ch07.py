"""Checkers for chapter 07's exercises (see core.py for the verdicts)."""
