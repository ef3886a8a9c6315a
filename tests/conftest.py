import os
import sys

# Test helpers (raw_gguf, reference/) import as top-level modules.
sys.path.insert(0, os.path.dirname(__file__))
