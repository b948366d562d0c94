"""Entry point of the frdiff app (also the Hugging Face Space): build the demo, launch it."""

import os
import threading

from app import first
from app.models import MODELS, POOL
from app.ui import CSS, build_demo, mcp_available

if __name__ == "__main__":
    demo = build_demo()
    # the first convolutions on a CPU are slow (kernel selection): pay it before the first visitor,
    # then compute every tab's first view (kept on disk: a restart reads them back)
    threading.Thread(target=lambda: ([POOL.warm_up(m) for m in MODELS], first.prepare()), daemon=True).start()
    # an MCP server beside the page (gradio[mcp]): agents call the named endpoints as tools,
    # at /gradio_api/mcp/ (FRDIFF_APP_MCP=0 turns it off)
    demo.launch(css=CSS, mcp_server=mcp_available() and os.environ.get("FRDIFF_APP_MCP", "1") != "0")
