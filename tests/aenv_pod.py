"""Part of the AEnvironment api-service double: starts one env "pod" on a loopback address.

Same as `python -m aenv.main <env dir> --host H --port 8081`, except that the server's
/health self-probe targets its own address: in a real pod `localhost:8081` is the pod
itself, here it would be another process. Usage: python tests/aenv_pod.py <env dir> <host>
"""

import sys
from pathlib import Path

from aenv.core import mcp_health
from aenv.server.mcp_server import create_server
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

env_dir, host = Path(sys.argv[1]), sys.argv[2]
mcp_health._mcp_client = Client(
    StreamableHttpTransport(url=f"http://{host}:8081/mcp", headers={"Content-Type": "application/json"})
)
server = create_server(name="tau2-rollout-env")
server.load_tools_from_directory(env_dir)
server.run(host=host, port=8081)
