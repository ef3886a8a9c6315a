"""Model registry (what `pyllong pull` knows) and the synthetic-model builder used by tests (installed as `pyllong.models`)."""
