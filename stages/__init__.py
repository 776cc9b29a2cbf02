"""DVC stages of the regression pipeline; each module runs as `python -m stages.<name>`."""
