"""Helpers for the report tests: hand-built published tables and a headless Chromium."""
