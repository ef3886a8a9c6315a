"""Model registry and the synthetic-model builder (installed as `pyllong.models`)."""
