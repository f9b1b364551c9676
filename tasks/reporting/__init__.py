"""What runs publish into the Prefect UI: artifacts, reports, progress, boards."""
