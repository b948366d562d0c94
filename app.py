"""Entry point of the frdiff app (also the Hugging Face Space): build the demo, launch it."""

import os
import threading

from app import first
from app.models import MODELS, POOL
from app.ui import CSS, build_demo, mcp_available

if __name__ == "__main__":
    demo = build_demo()
    # the first convolutions on a CPU are slow (kernel selection): pay it before the first visitor;
    # every tab's first view is computed by a process of its own, at nice 10, onto the disk cache
    # the server reads (a restart reads them back)
    threading.Thread(target=lambda: [POOL.warm_up(m) for m in MODELS], daemon=True).start()
    if os.environ.get("FRDIFF_APP_FIRST_VIEWS", "1") != "0":
        first.prepare_elsewhere()
    # an MCP server beside the page (gradio[mcp]): agents call the named endpoints as tools,
    # at /gradio_api/mcp/ (FRDIFF_APP_MCP=0 turns it off)
    demo.launch(css=CSS, mcp_server=mcp_available() and os.environ.get("FRDIFF_APP_MCP", "1") != "0")
