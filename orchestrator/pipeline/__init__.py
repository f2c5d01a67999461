"""The repair run: detect → triage → capture → troubleshooting VM → reproduce → diagnose → repair →
validate → fix package → apply → report. One module per concern; ``run.py`` sequences them."""
