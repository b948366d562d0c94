"""Entry point of the frdiff app (also the Hugging Face Space): build the demo, launch it."""

import threading

from app.models import MODELS, POOL
from app.ui import CSS, build_demo

if __name__ == "__main__":
    demo = build_demo()
    # the first convolutions on a CPU are slow (kernel selection): pay it before the first visitor
    threading.Thread(target=lambda: [POOL.warm_up(m) for m in MODELS], daemon=True).start()
    demo.launch(css=CSS)
