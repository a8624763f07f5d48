"""Checkers for chapter 08's exercises (see core.py for the verdicts)."""
