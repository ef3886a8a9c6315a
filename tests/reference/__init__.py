"""Independent numpy references (float64) that pyllong is tested against."""
