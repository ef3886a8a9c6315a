"""tools/ entry of the Hugging Face -> GGUF converter (same as `pyllong convert`):
python tools/convert_hf_to_gguf.py MODEL_DIR OUT.gguf [--outtype F16|BF16|F32|Q8_0|Q4_K_M|...]"""
import sys

from pyllong.convert import main

if __name__ == "__main__":
    sys.exit(main())
