"""The app as an MCP server (gradio's [mcp] extra): its named endpoints are tools an agent
can list and call, the policy parameter described."""

import json
import os
import urllib.request

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
pytest.importorskip("mcp")  # requirements.txt installs gradio[mcp]; a bare gradio serves no MCP
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def url():
    from app.ui import serve_locally

    demo, address = serve_locally(mcp_server=True)
    yield address
    demo.close()


def test_the_mcp_tool_list_has_the_apps_endpoints_with_their_parameters(url):
    with urllib.request.urlopen(url + "gradio_api/mcp/schema", timeout=60) as response:
        tools = json.load(response)
    names = [t["name"] for t in tools]
    generate = next(t for t in tools if t["name"] == "generate")
    assert {"generate", "compare_ab", "similarity", "spectra", "record_trajectory", "learn"} <= set(names)
    assert "full compute" in generate["description"]
    properties = generate["inputSchema"]["properties"]
    assert {"model", "glyphs", "steps", "editor", "seed"} <= set(properties)
    assert "uniform:2" in properties["editor"].get("description", "")
