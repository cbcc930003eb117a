"""Deployment files (nginx configuration, a trial certificate); importable for the tests."""
