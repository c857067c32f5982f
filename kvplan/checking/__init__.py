"""`kvplan check`: plan files, engine configs, config lint, verdicts and JUnit reports. Never imports torch."""
