"""tools/ entry of the GGUF converter: python tools/quantize.py IN OUT TYPE [--allow-requantize]."""
import sys

from pyllong.quantize_model import main

if __name__ == "__main__":
    sys.exit(main())
