"""An example GAtt scorer for tools/gatt_data.py --scorer scorer:score: higher is better.

A stand-in for a reward model: rewards replies that follow the two checkable instructions of
instructions.txt (French words; at most ten words) and penalizes empty replies."""

FRENCH = {"le", "la", "les", "est", "une", "un", "de", "des", "et", "qui", "eau", "tombe", "nuages", "neige"}


def score(instruction: str, messages: list, reply: str) -> float:
    words = reply.lower().replace(".", " ").replace(",", " ").split()
    if not words:
        return -1.0
    s = 0.0
    if "French" in instruction:
        s += sum(w in FRENCH for w in words) / len(words)
    if "ten words" in instruction:
        s += 1.0 if len(words) <= 10 else -0.1 * (len(words) - 10)
    return s
